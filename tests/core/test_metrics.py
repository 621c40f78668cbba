"""`core.metrics`: the SLI counters, the per-minute counters flushed to Redis, and the queue sample."""

from __future__ import annotations

import time

from prometheus_client import REGISTRY

from core import keys
from core.metrics import (
    MinuteStats,
    record_completion,
    record_provider_request,
    sample_queue,
)


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_completion_counts_towards_error_ratio_and_apdex() -> None:
    before = {name: value(name, feature="sli_test") for name in (
        "gitlab_sli_llm_completion_total", "gitlab_sli_llm_completion_error_total",
        "gitlab_sli_llm_completion_apdex_total", "gitlab_sli_llm_completion_apdex_success_total")}
    record_completion("sli_test", ok=True, seconds=1.0)
    record_completion("sli_test", ok=True, seconds=45.0)  # answered, but too slow for apdex
    record_completion("sli_test", ok=False, seconds=2.0)  # errors are not measured for apdex
    after = {name: value(name, feature="sli_test") - before[name] for name in before}
    assert after == {"gitlab_sli_llm_completion_total": 3, "gitlab_sli_llm_completion_error_total": 1,
                     "gitlab_sli_llm_completion_apdex_total": 2, "gitlab_sli_llm_completion_apdex_success_total": 1}
    record_provider_request("mock", "sli_model", "ProviderTimeout", 0.5)
    assert value("switchboard_provider_requests_total", provider="mock", model="sli_model", outcome="ProviderTimeout") == 1


async def test_minute_counters_are_flushed_to_redis_and_kept_when_redis_fails(redis) -> None:  # noqa: ANN001
    stats = MinuteStats()
    stats.add("done")
    stats.add("done")
    stats.add("apdex:chat")
    await stats.flush(redis)
    minute = int(time.time() // 60)
    row = await redis.hgetall(keys.stats(minute))
    assert row[b"done"] in (b"2", b"1") and 0 < await redis.ttl(keys.stats(minute)) <= keys.STATS_TTL_S

    class Broken:
        def pipeline(self, **kwargs: object) -> object:
            raise ConnectionError("redis is away")

    stats.add("failed")
    try:
        await stats.flush(Broken())  # type: ignore[arg-type]
    except ConnectionError:
        pass
    await stats.flush(redis)  # what could not be written is written now
    rows = [await redis.hgetall(keys.stats(m)) for m in (minute, minute + 1)]
    assert sum(int(row.get(b"failed", 0)) for row in rows) == 1


async def test_the_queue_sample_reads_depth_and_the_oldest_due_job(redis) -> None:  # noqa: ANN001
    now_ms = time.time() * 1000
    await redis.zadd(keys.QUEUE, {"old": now_ms - 4000, "new": now_ms, "deferred": now_ms + 60_000})
    depth, age = await sample_queue(redis)
    assert depth == 3 and 3.5 < age < 6
    assert value("switchboard_queue_depth") == 3
