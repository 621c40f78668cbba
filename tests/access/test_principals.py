from __future__ import annotations

import time

from access.principals import PrincipalCache
from access.tokens import Principal

ALICE = Principal(2, "alice", False, frozenset({"api"}))


def test_a_checked_token_is_trusted_for_the_ttl_only() -> None:
    cache = PrincipalCache(ttl_s=0.05)
    cache.put("d", ALICE)
    assert cache.get("d") == ALICE
    time.sleep(0.06)
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
