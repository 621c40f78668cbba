"""Backpressure: a web process refuses at once what it cannot serve soon, instead of letting requests queue
for minutes and fail with a 500.

- At most `SWITCHBOARD_MAX_INFLIGHT_REQUESTS` HTTP requests (default 256) are served at once; one more is
  answered HTTP 503 with `Retry-After` without being read.
- A request holds at most its share of the database pool at once (`core.db.request_scope`), so one query
  with hundreds of aliases does not queue ahead of every other request.
- A request that met a database pool time-out (`core.db`: no connection free within the checkout timeout,
  `core.errors.Overloaded`), wherever it was caught (a GraphQL resolver turns it into an error of its own),
  is answered 503 with `Retry-After` as well, never 500.

The body says so in a shape the client reads: GraphQL's `{"errors": [{"message": ...}]}` on `/api/graphql`,
`{"message": ...}` elsewhere. Health endpoints (`/-/...`), `/metrics` and websockets are never refused here.
"""

from __future__ import annotations

from collections.abc import Awaitable

import orjson
from sqlalchemy import exc as sa_exc
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.db import DATABASE_BUSY, request_scope
from core.errors import Overloaded

__all__ = ["Backpressure", "TOO_MANY_REQUESTS"]

TOO_MANY_REQUESTS = "Switchboard is busy: too many requests in progress. Retry after a moment."
_GRAPHQL_PATH = "/api/graphql"
_EXEMPT = ("/-/", "/metrics")


class Backpressure:
    """ASGI middleware: the in-flight limit and the 503 for pool time-outs (see the module's docstring)."""

    def __init__(self, app: ASGIApp, max_inflight: int) -> None:
        self.app = app
        self.max_inflight = max_inflight  # 0: no limit
        self.inflight = 0

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != "http" or scope["path"].startswith(_EXEMPT):
            # The app's own awaitable: no frame of this middleware stays for as long as a websocket is open.
            return self.app(scope, receive, send)
        return self._limited(scope, receive, send)

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.max_inflight and self.inflight >= self.max_inflight:
            await _refuse(scope, send, Overloaded(TOO_MANY_REQUESTS))
            return
        self.inflight += 1
        try:
            services = getattr(scope["app"].state, "services", None)
            with request_scope(services.engine if services is not None else None) as refused:
                await self._serve(scope, receive, send, refused)
        finally:
            self.inflight -= 1

    async def _serve(self, scope: Scope, receive: Receive, send: Send, refused: list[Overloaded]) -> None:
        started = answered = False

        async def send_unless_refused(message: Message) -> None:
            nonlocal started, answered
            if answered:  # the app's own response to a refused request is dropped
                return
            if message["type"] == "http.response.start":
                started = True
                if refused:
                    answered = True
                    await _refuse(scope, send, refused[0])
                    return
            await send(message)

        try:
            await self.app(scope, receive, send_unless_refused)
        except Exception as exc:
            overloaded = refused[0] if refused else _overloaded(exc)
            if overloaded is None or started:
                raise
            await _refuse(scope, send, overloaded)


def _overloaded(exc: BaseException | None) -> Overloaded | None:
    """The overload behind `exc`: an `Overloaded` or a pool time-out, possibly wrapped or grouped."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, Overloaded):
            return exc
        if isinstance(exc, sa_exc.TimeoutError):
            return Overloaded(DATABASE_BUSY)
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                if (found := _overloaded(inner)) is not None:
                    return found
        exc = exc.__cause__ or exc.__context__
    return None


async def _refuse(scope: Scope, send: Send, overloaded: Overloaded) -> None:
    message = str(overloaded)
    body = {"errors": [{"message": message}]} if scope["path"] == _GRAPHQL_PATH else {"message": message}
    payload = orjson.dumps(body)
    await send({
        "type": "http.response.start",
        "status": 503,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            (b"retry-after", str(overloaded.retry_after_s).encode()),
        ],
    })
    await send({"type": "http.response.body", "body": payload})
