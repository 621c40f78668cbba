from __future__ import annotations

from access.principals import PrincipalCache
from access.tokens import Principal

ALICE = Principal(2, "alice", False, frozenset({"api"}))


def test_a_checked_token_is_trusted_for_the_ttl_only() -> None:
    now = [100.0]
    cache = PrincipalCache(ttl_s=5, clock=lambda: now[0])
    cache.put("d", ALICE)
    now[0] = 104.9
    assert cache.get("d") == ALICE
    now[0] = 105.0
    assert cache.get("d") is None


def test_a_zero_ttl_caches_nothing() -> None:
    cache = PrincipalCache(ttl_s=0)
    cache.put("d", ALICE)
    assert cache.get("d") is None


def test_the_cache_is_bounded_and_drops_the_oldest() -> None:
    cache = PrincipalCache(ttl_s=60, max_size=3)
    for digest in "abcd":
        cache.put(digest, ALICE)
    assert [cache.get(d) for d in "abcd"] == [None, ALICE, ALICE, ALICE]
