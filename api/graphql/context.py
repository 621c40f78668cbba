"""The GraphQL context and the view that builds it (HTTP and both websocket protocols).

A token that is presented and invalid (unknown, revoked, expired) gets HTTP 401 with GitLab's body
`{"message": "401 Unauthorized"}` plus a GraphQL `errors` entry saying why in `extensions.reason`
(`invalid_token`), which GraphQL clients read; no token is an anonymous caller. A
websocket without a valid token is closed with 4403 at `connection_init`, and so later is one whose token
stops being valid (`api.graphql.websockets`)."""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import orjson
from cross_web import HTTPException
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_WS_PROTOCOL

from access.tokens import Principal, auth_failed, hash_token
from api.auth import principal_for_digest, token_from_headers, token_from_params
from api.graphql.websockets import WS_FORBIDDEN, LegacyWSHandler, OpenSockets, TransportWSHandler
from api.pages.graphiql import graphiql_page
from api.services import Services
from core.settings import Settings

__all__ = ["Context", "SwitchboardGraphQL"]

_UNAUTHORIZED = {  # GitLab's body, and the same in GraphQL's error shape with the reason
    "message": "401 Unauthorized",
    "errors": [{"message": "401 Unauthorized", "extensions": {"reason": "invalid_token"}}],
}


class _InvalidToken(Exception):
    """An HTTP request presented a token that is unknown, revoked or expired: 401."""


@dataclass
class Context:
    request: Request | WebSocket
    response: Response | WebSocket | None
    services: Services
    principal: Principal | None
    bad_token: bool = False
    connection_params: dict[str, Any] | None = None
    token_digest: str | None = None  # the SHA-256 of the caller's token: websockets re-check it

    @property
    def hub(self):  # noqa: ANN201 - the subscription resolvers read these four by name
        return self.services.hub

    @property
    def redis(self):  # noqa: ANN201
        return self.services.redis

    @property
    def sessions(self):  # noqa: ANN201
        return self.services.sessions

    @property
    def settings(self) -> Settings:
        return self.services.settings


class _BodyTooLarge(Exception):
    pass


def _error(status: int, message: str, *, close: bool = False) -> Response:
    """An HTTP-level refusal in GraphQL's error shape."""
    return JSONResponse({"errors": [{"message": message}]}, status, headers={"Connection": "close"} if close else None)


class SwitchboardGraphQL(GraphQL[Context, None]):
    # Both protocols: a deadline for connection_init, and the token re-checked on open sockets.
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler

    def encode_json(self, data: object) -> str:
        # orjson: several times faster than json.dumps on every streamed message; text, as clients expect
        return orjson.dumps(data).decode()

    def decode_json(self, data: str | bytes) -> object:
        # orjson is strict where json.loads is not: invalid UTF-8, lone surrogates, NaN/Infinity and nesting
        # beyond 1,024 levels are parse errors (HTTP 400; on a websocket, an invalid message)
        return orjson.loads(data)

    def parse_json(self, data: str | bytes) -> Any:
        parsed = super().parse_json(data)
        if not isinstance(parsed, dict | list):
            raise HTTPException(400, "The request body must be a JSON object")
        return parsed

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Coroutine[Any, Any, None]:
        if scope["type"] != "http":
            # strawberry's own awaitable: no frame of ours stays for as long as a websocket is open
            return super().__call__(scope, receive, send)
        return self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = Request(scope).app.state.services.settings.max_body_bytes
        too_large = f"Request body is too large (maximum is {limit} bytes)"
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:  # refused before a byte of the body is read
            return await _error(413, too_large, close=True)(scope, receive, send)
        received = 0

        async def bounded_receive() -> Message:  # a chunked body is cut off once past the limit
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise _BodyTooLarge
            return message

        try:
            response = await self.run(Request(scope, receive=bounded_receive))
        except HTTPException as exc:
            response = _error(exc.status_code, exc.reason)
        except _BodyTooLarge:
            response = _error(413, too_large, close=True)
        except _InvalidToken:
            response = JSONResponse(_UNAUTHORIZED, status_code=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        except ClientDisconnect:
            return None  # nobody is left to answer
        await response(scope, receive, send)
        return None

    async def render_graphql_ide(self, request: Request) -> Response:
        # GraphiQL from this process's own files (`api.pages.graphiql`), not strawberry's CDN page
        return graphiql_page()

    @cached_property
    def open_sockets(self) -> OpenSockets:
        """This process's authenticated websockets, re-checked every `SWITCHBOARD_AUTH_CACHE_S`."""
        return OpenSockets()

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        services: Services = request.app.state.services
        token = token_from_headers(request.headers)
        digest = hash_token(token) if token is not None else None
        principal = await principal_for_digest(services, digest) if digest is not None else None
        if digest is not None and principal is None and not isinstance(request, WebSocket):
            auth_failed("invalid_token", transport="http")
            raise _InvalidToken
        return Context(request, response, services, principal, bad_token=digest is not None and principal is None,
                       token_digest=digest if principal is not None else None)

    async def on_ws_connect(self, context: Context) -> None:
        if context.principal is None and not context.bad_token:
            token = token_from_params(context.connection_params)
            if token is not None:
                context.token_digest = hash_token(token)
                context.principal = await principal_for_digest(context.services, context.token_digest)
        if context.principal is None:
            reason = "missing_token" if context.token_digest is None and not context.bad_token else "invalid_token"
            auth_failed(reason, transport="websocket")
            context.token_digest = None
            websocket = context.request
            if isinstance(websocket, WebSocket) and websocket.scope.get("subprotocols", [None])[0] == GRAPHQL_WS_PROTOCOL:
                # strawberry closes a rejected legacy graphql-ws connection with 1011; clients expect 4403
                await websocket.close(code=WS_FORBIDDEN, reason="Forbidden")
            raise ConnectionRejectionError({"message": "Forbidden"})
        return None
