"""The per-process time-to-live cache behind every short-lived cache of Switchboard: tokens (`access.principals`),
feature flags (`access.flags`), entitlement (`access.entitlement`) and model selection (`catalogue.selection_store`).

- A value is fresh for `ttl_s` after it was stored, by an injected `clock` (tests pass their own and never
  sleep); `ttl_s <= 0` keeps nothing.
- Bounded: at most `max_entries`, the least recently used goes first.
- `get_or_load` is single-flight: one load per key at a time; callers arriving meanwhile await that load's
  result (or its error) instead of starting their own. A loader that is cancelled hands the load to the next
  caller. `None` is never stored: a load that finds nothing is asked again next time.
- `invalidate` forgets a key (or everything); a load that was under way then does not store its result,
  since it may have read the state from before the change.

Deadlock rule: whoever waits on a load must never hold what the load needs. A load that needs a pool
connection passes `hold` (the caller's `session.connection`): the connection is taken before the caller
becomes the key's loader, so callers waiting on the load wait on someone who already has one.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["TtlCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Abandoned(Exception):
    """The loader was cancelled: a waiter loads in its place."""


class TtlCache(Generic[K, V]):
    def __init__(self, ttl_s: float, *, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._loading: dict[K, asyncio.Future[V]] = {}
        self._generation = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        """The fresh value of `key`, or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self.clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: K, value: V) -> None:
        if self.ttl_s <= 0 or value is None:
            return
        self._entries[key] = (self.clock() + self.ttl_s, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def invalidate(self, key: K | None = None) -> None:
        """Forget `key`, or every key when None (after a write made by this process)."""
        self._generation += 1
        if key is None:
            self._entries.clear()
        else:
            self._entries.pop(key, None)

    async def get_or_load(
        self, key: K, load: Callable[[], Awaitable[V]], *, hold: Callable[[], Awaitable[object]] | None = None
    ) -> V:
        """The fresh value of `key`, else the result of the load under way, else that of `load()`.

        `hold` acquires what `load` needs (see the deadlock rule above); it is called only when this caller
        is about to load, and never while it waits on another caller's load."""
        held = hold is None
        while True:
            found = self.get(key)
            if found is not None:
                return found
            pending = self._loading.get(key)
            if pending is not None:
                try:
                    return await asyncio.shield(pending)
                except _Abandoned:
                    continue
            if not held:
                await hold()  # type: ignore[misc]
                held = True
                continue  # someone may have loaded, or started loading, meanwhile
            break
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        generation = self._generation
        try:
            value = await load()
        except asyncio.CancelledError:
            _fail(future, _Abandoned())
            raise
        except BaseException as exc:
            _fail(future, exc)
            raise
        finally:
            if self._loading.get(key) is future:
                del self._loading[key]
        if generation == self._generation:
            self.put(key, value)
        future.set_result(value)
        return value


def _fail(future: asyncio.Future[V], exc: BaseException) -> None:
    future.set_exception(exc)
    future.exception()  # retrieved: a load nobody else waited on is not reported as an unhandled error
