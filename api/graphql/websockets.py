"""Open websockets stay authenticated (SPEC §5 "Authentication").

A websocket authenticates once, at `connection_init`; afterwards two things keep it honest:
- every operation it starts re-reads its principal through the authentication cache first, so an operation
  sent after a revocation is refused within the cache time even while the socket is still open;
- `OpenSockets`, one per web process, re-reads the tokens of all its open sockets in one query every
  `SWITCHBOARD_AUTH_CACHE_S` (one task while any socket is open, none otherwise) and closes with 4403 every
  socket whose token was revoked or expired, or whose user lost a right the socket had (admin, a scope).
  It refreshes the cache with what it read, which spares the per-operation checks a query.
A streamed message goes out as before: nothing here runs per message.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from access.tokens import Principal, auth_failed, principals_by_digest
from api.auth import principal_for_digest
from api.graphql.protocols import LegacySocketHandler, SocketHandler

if TYPE_CHECKING:
    from api.graphql.context import Context
    from api.services import Services

__all__ = ["WS_FORBIDDEN", "OpenSockets", "TransportWSHandler", "LegacyWSHandler", "keeps_rights"]

log = logging.getLogger(__name__)

WS_FORBIDDEN = 4403
_MIN_INTERVAL_S = 0.2  # SWITCHBOARD_AUTH_CACHE_S=0 (no cache) still re-checks open sockets, 5 times a second
_BATCH = 500  # digests per query: well under every database's bound-parameter limit


def keeps_rights(before: Principal, now: Principal | None) -> bool:
    """Whether `now` (the token's principal as read again) still has every right `before` had."""
    return (
        now is not None
        and now.user_id == before.user_id
        and (now.admin or not before.admin)
        and now.scopes >= before.scopes
    )


class _Reauthenticating:
    """What both protocols' handlers add: registration with `OpenSockets`, the per-operation re-check, and
    closing with 4403. Mixed in before strawberry's handler class."""

    context: Context
    websocket: Any
    view: Any
    connection_acknowledged: bool

    @property
    def _sockets(self) -> OpenSockets:
        return self.view.open_sockets

    async def handle(self) -> None:
        try:
            await super().handle()  # type: ignore[misc]
        finally:
            self._sockets.discard(self)

    async def handle_connection_init(self, message: Any) -> None:
        await super().handle_connection_init(message)  # type: ignore[misc]
        if self.connection_acknowledged and self.context.token_digest is not None:
            self._sockets.add(self)

    async def still_authenticated(self) -> bool:
        """Re-read the principal through the cache before an operation; close the socket when it lost rights."""
        if not self.connection_acknowledged:
            return True  # strawberry refuses the operation itself
        digest = self.context.token_digest
        if self.context.principal is None or digest is None:
            return False  # closed for revocation already
        return await self.reauthenticate(await principal_for_digest(self.context.services, digest))

    async def reauthenticate(self, principal: Principal | None) -> bool:
        before = self.context.principal
        if before is None:
            return False  # already closed
        if keeps_rights(before, principal):
            self.context.principal = principal
            return True
        self.context.principal = None  # operations still running see no caller from now on
        auth_failed("invalid_token" if principal is None else "right_lost", user_id=before.user_id, transport="websocket")
        await self._cancel_operations()
        with suppress(RuntimeError, OSError):  # the client may have gone already
            await self.websocket.close(code=WS_FORBIDDEN, reason="Forbidden")
        return False

    async def _cancel_operations(self) -> None:
        raise NotImplementedError


class TransportWSHandler(_Reauthenticating, SocketHandler):
    """`graphql-transport-ws`, re-authenticated (and with its `connection_init` deadline)."""

    async def handle_subscribe(self, message: Any) -> None:
        if await self.still_authenticated():
            await super().handle_subscribe(message)

    async def _cancel_operations(self) -> None:
        for operation_id in list(self.operations):
            await self.cleanup_operation(operation_id)


class LegacyWSHandler(_Reauthenticating, LegacySocketHandler):
    """The legacy `graphql-ws` (subscriptions-transport-ws), re-authenticated (and with its deadline)."""

    async def handle_start(self, message: Any) -> None:
        if await self.still_authenticated():
            await super().handle_start(message)

    async def _cancel_operations(self) -> None:
        await self.cleanup()


class OpenSockets:
    """The authenticated websockets of one web process, by token digest, re-checked every `interval_s`."""

    def __init__(self) -> None:
        self._by_digest: dict[str, set[_Reauthenticating]] = {}
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return sum(len(sockets) for sockets in self._by_digest.values())

    def add(self, socket: _Reauthenticating) -> None:
        digest = socket.context.token_digest
        assert digest is not None
        self._by_digest.setdefault(digest, set()).add(socket)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._watch(socket.context.services), name="switchboard-socket-auth")
            self._task.add_done_callback(_log_crash)

    def discard(self, socket: _Reauthenticating) -> None:
        digest = socket.context.token_digest
        sockets = self._by_digest.get(digest) if digest is not None else None
        if sockets is not None:
            sockets.discard(socket)
            if not sockets:
                del self._by_digest[digest]  # type: ignore[arg-type]

    async def _watch(self, services: Services) -> None:
        """Runs while any socket is open (the last one to close ends it; the next to open starts another)."""
        interval_s = max(services.settings.auth_cache_s, _MIN_INTERVAL_S)
        while self._by_digest:
            await asyncio.sleep(interval_s)
            try:
                await self.revalidate(services)
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is away: keep the sockets, try again next time
                log.warning("socket_auth_check_failed", exc_info=True)

    async def revalidate(self, services: Services) -> None:
        """Read every open socket's token again (a query per 500 tokens), refresh the cache, close the
        sockets that lost rights."""
        digests = list(self._by_digest)
        fresh: dict[str, Principal] = {}
        for start in range(0, len(digests), _BATCH):
            async with asyncio.timeout(10), services.sessions() as session:
                fresh.update(await principals_by_digest(session, digests[start : start + _BATCH]))
        for digest, principal in fresh.items():
            services.principals.put(digest, principal)
        for digest in digests:
            for socket in list(self._by_digest.get(digest, ())):
                await socket.reauthenticate(fresh.get(digest))


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("socket_auth_watch_crashed", exc_info=task.exception())
