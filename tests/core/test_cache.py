"""The one TTL cache (`core.cache.TtlCache`), on an injected clock: freshness, bounds, single-flight loads."""

from __future__ import annotations

import asyncio

import pytest

from core.cache import TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_value_is_fresh_for_the_ttl_only(clock: Clock) -> None:
    cache: TtlCache[str, int] = TtlCache(5, clock=clock)
    cache.put("k", 1)
    clock.now += 4.999
    assert cache.get("k") == 1
    clock.now += 0.001
    assert cache.get("k") is None and len(cache) == 0


def test_a_zero_ttl_and_none_keep_nothing(clock: Clock) -> None:
    nothing: TtlCache[str, int] = TtlCache(0, clock=clock)
    nothing.put("k", 1)
    assert nothing.get("k") is None
    cache: TtlCache[str, int | None] = TtlCache(5, clock=clock)
    cache.put("k", None)
    assert len(cache) == 0


def test_it_is_bounded_and_drops_the_least_recently_used(clock: Clock) -> None:
    cache: TtlCache[str, int] = TtlCache(60, max_entries=3, clock=clock)
    for i, key in enumerate("abc"):
        cache.put(key, i)
    assert cache.get("a") == 0  # used: "b" is now the least recent
    cache.put("d", 3)
    assert [cache.get(k) for k in "abcd"] == [0, None, 2, 3]
    assert len(cache) == 3


def test_invalidate_forgets_one_key_or_all(clock: Clock) -> None:
    cache: TtlCache[str, int] = TtlCache(60, clock=clock)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.invalidate("a")
    assert (cache.get("a"), cache.get("b")) == (None, 2)
    cache.invalidate()
    assert len(cache) == 0


async def test_one_load_per_key_however_many_ask(clock: Clock) -> None:
    cache: TtlCache[str, str] = TtlCache(5, clock=clock)
    release = asyncio.Event()
    loads: list[str] = []

    async def load(key: str) -> str:
        loads.append(key)
        await release.wait()
        return key.upper()

    callers = [asyncio.create_task(cache.get_or_load(k, lambda k=k: load(k))) for k in "aab" * 50]
    await asyncio.sleep(0)  # let every caller reach the cache (none can finish before the release)
    release.set()
    assert await asyncio.gather(*callers) == ["A", "A", "B"] * 50
    assert sorted(loads) == ["a", "b"]
    assert await cache.get_or_load("a", lambda: load("a")) == "A" and len(loads) == 2  # fresh: no load
    clock.now += 5
    assert await cache.get_or_load("a", lambda: load("a")) == "A" and len(loads) == 3  # stale: loaded again


async def test_a_failed_load_fails_its_waiters_and_is_not_kept(clock: Clock) -> None:
    cache: TtlCache[str, int] = TtlCache(5, clock=clock)
    release = asyncio.Event()

    async def failing() -> int:
        await release.wait()
        raise RuntimeError("database down")

    callers = [asyncio.create_task(cache.get_or_load("k", failing)) for _ in range(3)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert [str(r) for r in results] == ["database down"] * 3

    async def working() -> int:
        return 7

    assert await cache.get_or_load("k", working) == 7


async def test_a_cancelled_loader_hands_the_load_to_a_waiter(clock: Clock) -> None:
    cache: TtlCache[str, int] = TtlCache(5, clock=clock)
    started, never = asyncio.Event(), asyncio.Event()

    async def stuck() -> int:
        started.set()
        await never.wait()
        return 1

    async def quick() -> int:
        return 2

    loader = asyncio.create_task(cache.get_or_load("k", stuck))
    await started.wait()
    waiter = asyncio.create_task(cache.get_or_load("k", quick))
    await asyncio.sleep(0)  # the waiter now waits on the loader's load
    loader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loader
    assert await waiter == 2  # it loaded in the cancelled loader's place


async def test_a_load_under_way_when_invalidated_is_not_kept(clock: Clock) -> None:
    cache: TtlCache[str, int] = TtlCache(5, clock=clock)
    started, release = asyncio.Event(), asyncio.Event()

    async def before_the_change() -> int:
        started.set()
        await release.wait()
        return 1

    loading = asyncio.create_task(cache.get_or_load("k", before_the_change))
    await started.wait()
    cache.invalidate()  # a write happened while the load read the old state
    release.set()
    assert await loading == 1
    assert cache.get("k") is None


async def test_hold_is_taken_by_the_loader_only(clock: Clock) -> None:
    """The loader takes what its load needs before anyone waits on it; waiters never take it."""
    cache: TtlCache[str, int] = TtlCache(5, clock=clock)
    release = asyncio.Event()
    held: list[int] = []

    async def load() -> int:
        await release.wait()
        return 1

    def hold(i: int):  # noqa: ANN202
        async def take() -> None:
            held.append(i)

        return take

    callers = [asyncio.create_task(cache.get_or_load("k", load, hold=hold(i))) for i in range(5)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*callers) == [1] * 5
    assert held == [0]
