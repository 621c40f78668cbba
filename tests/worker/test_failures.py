"""The failed AI actions a worker keeps for `/admin` (`core.metrics.record_failure`): each with its reason
(the user-facing text and the internal error's class), never the user's input; the last 50 only."""

from __future__ import annotations

import time

import pytest

from core import keys
from core.actions import ActionRecord
from core.ids import new_request_id
from core.metrics import Failure, recent_failures, record_failure
from core.redis import connect
from core.settings import Settings
from tests._services import run_worker
from worker.deps import build_deps
from worker.jobs import MAX_TRIES, run_action


def chat(text: str) -> ActionRecord:
    return ActionRecord(request_id=new_request_id(), feature="chat", user_id=2, inputs={"content": text},
                        client_subscription_id="s")


async def failures(settings: Settings) -> tuple[list[Failure], list[bytes]]:
    redis = connect(settings.redis_url or "")
    try:
        return await recent_failures(redis), await redis.lrange(keys.FAILURES, 0, -1)
    finally:
        await redis.aclose()


@pytest.mark.parametrize(
    ("script", "overrides", "error_class", "status", "tries", "text"),
    [
        pytest.param('<response error="400">x</response>', {}, "ProviderError", 400, 1, "Error code: A9999", id="rejected"),
        pytest.param('<response error="500">x</response>', {"retry_base_delay_s": 0.01}, "ProviderError", 500, MAX_TRIES,
                     "Error code: A9999", id="retries-exhausted"),
        pytest.param('<response error="429">x</response>', {"retry_base_delay_s": 0.01}, "ProviderRateLimited", 429, MAX_TRIES,
                     "Maximum number of retries (3) exceeded.", id="rate-limited"),
        pytest.param('<response latency_ms="2000">late</response>', {"llm_timeout_s": 0.2}, "ProviderTimeout", None, 1,
                     "Error code: A1000", id="timeout"),
    ],
)
async def test_a_failed_action_is_kept_with_its_reason_and_without_the_users_text(
    settings: Settings, seeded: dict, script: str, overrides: dict, error_class: str, status: int | None, tries: int, text: str
) -> None:
    settings = settings.model_copy(update=overrides)
    record = chat(f"top-secret question {script}")
    before = time.time()
    await run_worker(settings, record)
    (failure,), raw = await failures(settings)
    assert (failure.request_id, failure.feature, failure.model) == (record.request_id, "chat", "mock")
    assert (failure.error_class, failure.status, failure.tries) == (error_class, status, tries)
    assert text in failure.error and before <= failure.at <= time.time()
    assert b"top-secret" not in raw[0] and b"scripted error" not in raw[0]  # no user input, no provider text


async def test_an_answered_action_is_not_a_failure(settings: Settings, seeded: dict) -> None:
    await run_worker(settings, chat("fine"))
    assert await failures(settings) == ([], [])


async def test_a_job_whose_tries_all_died_is_kept_as_tries_exhausted(settings: Settings, seeded: dict) -> None:
    record = chat("doomed")
    redis = connect(settings.redis_url or "")
    deps = build_deps(settings, redis)
    try:
        assert await run_action({"deps": deps, "job_try": MAX_TRIES + 1}, record.model_dump_json()) == "gave up"
    finally:
        await deps.close()
        await redis.aclose()
    (failure,), _ = await failures(settings)
    assert (failure.request_id, failure.error_class, failure.model, failure.tries) == (record.request_id, "TriesExhausted", None, MAX_TRIES)
    assert "A9999" in failure.error


async def test_only_the_latest_failures_are_kept_newest_first_and_they_expire(settings: Settings) -> None:
    redis = connect(settings.redis_url or "")
    try:
        for number in range(keys.FAILURES_MAXLEN + 5):
            await record_failure(redis, Failure(at=float(number), request_id=f"r{number}", feature="chat", error="e",
                                                error_class="ProviderError"))
        kept = await recent_failures(redis)
        ttl = await redis.ttl(keys.FAILURES)
        await redis.lpush(keys.FAILURES, b"not json")
        after_junk = await recent_failures(redis, limit=3)
    finally:
        await redis.aclose()
    assert [f.request_id for f in kept] == [f"r{n}" for n in range(keys.FAILURES_MAXLEN + 4, 4, -1)]
    assert 0 < ttl <= keys.FAILURES_TTL_S
    assert [f.request_id for f in after_junk] == [f"r{keys.FAILURES_MAXLEN + 4}", f"r{keys.FAILURES_MAXLEN + 3}"]
