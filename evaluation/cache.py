"""The evaluation cache (table `ai_eval_cache`): model answers and judgements, so that a second run of the
same dataset costs no model call.

An answer is keyed by the model asked for and the one that answers (the mock in mock mode), the call's
parameters, the rendered prompt (a hash of its messages and the tools offered), the prompt file's version
and the epoch; a judgement by the judge and its version, the kind (`grade` or `compare`), the item, the
answers judged (for a grade, also the arm's model and prompt version) and the epoch. Errors are never cached. `--no-cache` neither reads nor writes it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.tables import EvalCacheEntry

__all__ = ["EvalCache", "cache_key"]


def cache_key(kind: str, parts: Mapping[str, Any]) -> str:
    """A stable SHA-256 of `kind` and `parts` (JSON with sorted keys)."""
    payload = orjson.dumps({"kind": kind, **parts}, option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(payload).hexdigest()


class EvalCache:
    """Reads and writes the cache, each in a short transaction of its own; counts hits."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, enabled: bool = True) -> None:
        self._sessions = sessions
        self.enabled = enabled
        self.hits = 0

    async def get(self, key: str) -> dict[str, Any] | None:
        if not self.enabled:
            return None
        async with self._sessions() as session:
            entry = await session.get(EvalCacheEntry, key)
        if entry is None:
            return None
        self.hits += 1
        return dict(entry.value)

    async def put(self, key: str, kind: str, value: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        try:
            async with self._sessions() as session, session.begin():
                session.add(EvalCacheEntry(key=key, kind=kind, value=dict(value)))
        except IntegrityError:  # another task of this run (or another run) stored the same key first
            pass
