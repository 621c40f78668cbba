"""A per-process cache of authenticated tokens, so that most requests skip the token query."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from access.tokens import Principal, principals_by_digest
from core.cache import TtlCache

__all__ = ["PrincipalCache"]


class PrincipalCache(TtlCache[str, Principal]):
    """Tokens this process checked recently, by digest, for `ttl_s`: a revoked or expired token stops
    working within that time (5 s by default, like flags). Unknown tokens are never cached."""

    def __init__(self, ttl_s: float, max_size: int = 10_000, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(ttl_s, max_entries=max_size, clock=clock)

    async def principal(self, sessions: async_sessionmaker[AsyncSession], digest: str) -> Principal | None:
        """The principal of the token with this SHA-256 digest: cached, else one query per token at a time
        however many requests bring it (the caller holds no connection; the query runs on a session of its own)."""

        async def load() -> Principal | None:
            async with sessions() as session:
                return (await principals_by_digest(session, [digest])).get(digest)

        return await self.get_or_load(digest, load)  # type: ignore[arg-type]
