"""A per-process cache of authenticated tokens, so that most requests skip the token query."""

from __future__ import annotations

import time
from collections import OrderedDict

from access.tokens import Principal

__all__ = ["PrincipalCache"]


class PrincipalCache:
    """Tokens this process checked recently, by digest, for `ttl_s`: a revoked or expired token stops
    working within that time (5 s by default, like flags). Unknown tokens are never cached."""

    def __init__(self, ttl_s: float, max_size: int = 10_000) -> None:
        self._ttl_s = ttl_s
        self._max_size = max_size
        self._entries: OrderedDict[str, tuple[float, Principal]] = OrderedDict()

    def get(self, digest: str) -> Principal | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            del self._entries[digest]
            return None
        return entry[1]

    def put(self, digest: str, principal: Principal) -> None:
        if self._ttl_s <= 0:
            return
        self._entries[digest] = (time.monotonic() + self._ttl_s, principal)
        self._entries.move_to_end(digest)
        while len(self._entries) > self._max_size:
            self._entries.popitem(last=False)
