"""The arq job in a real worker (burst mode) against real Redis and a real database."""

from __future__ import annotations

import asyncio
import time

import pytest
from arq.constants import in_progress_key_prefix, retry_key_prefix
from prometheus_client import REGISTRY
from sqlalchemy import select

from access.admin.seed import seed  # noqa: F401 - seeded fixture comes from tests._services
from core import keys
from core.actions import ActionRecord
from core.db import create_engine, session_factory
from core.errors import AI_NOT_PERMITTED
from core.ids import new_request_id
from core.redis import connect, enqueue_action
from core.settings import Settings
from core.tables import ConversationMessage
from subscriptions.messages import AiMessage, route_id
from subscriptions.streams import replay
from tests._services import run_worker
from worker.deps import build_deps
from worker.jobs import MAX_TRIES, run_action
from worker.process import build_worker

ALICE = "gid://gitlab/User/2"


def chat(text: str, *, sub: str | None = "s", user_id: int = 2, resource: str | None = None) -> ActionRecord:
    return ActionRecord(request_id=new_request_id(), feature="chat", user_id=user_id, resource=resource,
                        inputs={"content": text}, client_subscription_id=sub)


async def stream(settings: Settings, *, user: str = ALICE, sub: str | None = "s") -> list[AiMessage]:
    redis = connect(settings.redis_url or "")
    try:
        return await replay(redis, route_id(user, ai_action="chat", client_subscription_id=sub), (0, 0))
    finally:
        await redis.aclose()


async def test_a_job_streams_chunks_then_one_final_and_saves_the_answer(settings: Settings, seeded: dict) -> None:
    await run_worker(settings, chat("to be or not"))
    messages = await stream(settings)
    assert [(m.chunk_id, m.content) for m in messages] == [
        (1, "echo:"), (2, " to"), (3, " be"), (4, " or"), (5, " not"), (None, "echo: to be or not")
    ]
    broadcast = await stream(settings, sub=None)
    assert [(m.chunk_id, m.content) for m in broadcast] == [(None, "echo: to be or not")]
    engine = create_engine(settings.database)
    try:
        async with session_factory(engine)() as session:
            saved = (await session.scalars(select(ConversationMessage))).all()
    finally:
        await engine.dispose()
    assert [(m.role, m.content, m.model) for m in saved] == [("assistant", "echo: to be or not", "mock")]


async def test_a_rate_limited_call_is_retried_with_backoff_and_then_answers(settings: Settings, seeded: dict) -> None:
    started = time.monotonic()
    await run_worker(settings, chat('<response error="429">x</response><response>second try</response>'))
    finals = [m for m in await stream(settings) if m.final]
    assert [(m.content, m.errors) for m in finals] == [("second try", ())]
    assert time.monotonic() - started >= 1.0  # first backoff delay is 1 s


@pytest.mark.parametrize(
    ("text", "overrides", "error"),
    [
        pytest.param('<response error="400">x</response>', {}, "Error code: A9999", id="rejected"),
        pytest.param('<response latency_ms="2000">late</response>', {"llm_timeout_s": 0.2}, "Error code: A1000", id="timeout"),
    ],
)
async def test_a_failed_completion_ends_in_one_final_error(settings: Settings, seeded: dict, text: str, overrides: dict, error: str) -> None:
    settings = settings.model_copy(update=overrides)
    await run_worker(settings, chat(text))
    (final,) = await stream(settings)
    assert final.final and final.content is None
    assert len(final.errors) == 1 and final.errors[0].endswith(error) and "Traceback" not in final.errors[0]


async def test_the_worker_rechecks_access_and_calls_no_model(settings: Settings, seeded: dict) -> None:
    mallory = "gid://gitlab/User/5"
    record = chat("secret?", user_id=5, resource=seeded["resources"]["confidential_issue"])
    await run_worker(settings, record)
    (final,) = await stream(settings, user=mallory)
    assert final.errors == (AI_NOT_PERMITTED,) and final.content is None


async def test_a_second_run_of_a_finished_job_publishes_nothing(settings: Settings, seeded: dict) -> None:
    redis = connect(settings.redis_url or "")
    deps = build_deps(settings, redis)
    record = chat("once")
    try:
        assert await run_action({"deps": deps, "job_try": 1}, record.model_dump_json()) == "answered"
        assert await run_action({"deps": deps, "job_try": 2}, record.model_dump_json()) == "done before"
    finally:
        await deps.close()
        await redis.aclose()
    assert [m.chunk_id for m in await stream(settings)] == [1, 2, None]


async def test_a_job_past_its_last_try_still_ends_with_a_final_error(settings: Settings, seeded: dict) -> None:
    redis = connect(settings.redis_url or "")
    deps = build_deps(settings, redis)
    try:
        assert await run_action({"deps": deps, "job_try": MAX_TRIES + 1}, chat("doomed").model_dump_json()) == "gave up"
    finally:
        await deps.close()
        await redis.aclose()
    (final,) = await stream(settings)
    assert final.errors and "A9999" in final.errors[0]


async def test_a_job_whose_workers_died_in_its_last_try_still_ends_with_a_final_error(
    settings: Settings, seeded: dict
) -> None:
    record = chat("unlucky")
    redis = connect(settings.redis_url or "")
    await enqueue_action(redis, record)
    # arq counts a try at each start: two workers died after starting the give-up try (MAX_TRIES + 1)
    await redis.set(retry_key_prefix + record.request_id, MAX_TRIES + 2)
    worker = build_worker(settings, burst=True, handle_signals=False, poll_delay=0.01)
    try:
        await asyncio.wait_for(worker.main(), 10)
    finally:
        await worker.close()
        await redis.aclose()
    (final,) = await stream(settings)
    assert final.errors and "A9999" in final.errors[0]


async def test_a_running_job_holds_a_short_lease_that_its_worker_renews(settings: Settings, seeded: dict) -> None:
    settings = settings.model_copy(update={"job_lease_s": 0.6})
    record = chat('<response latency_ms="1500">slow</response>')
    redis = connect(settings.redis_url or "")
    worker = build_worker(settings, burst=True, handle_signals=False, poll_delay=0.01)
    await enqueue_action(redis, record)
    running = asyncio.create_task(worker.main())
    try:
        ttls = []
        for _ in range(10):
            await asyncio.sleep(0.12)
            ttls.append(await redis.pttl(in_progress_key_prefix + record.request_id))
        assert all(0 < ttl <= 600 for ttl in ttls[2:])  # 1.2 s in: alive only because it was renewed
        await asyncio.wait_for(running, 10)
    finally:
        running.cancel()
        await worker.close()
        await redis.aclose()
    assert [m.content for m in await stream(settings) if m.final] == ["slow"]


async def test_a_finished_job_leaves_no_arq_keys_behind(settings: Settings, seeded: dict) -> None:
    """The request's final message is its outcome: no arq result (1.4 KB for a minute) is stored."""
    records = [chat(f"number {i}") for i in range(3)]
    await run_worker(settings, *records)
    redis = connect(settings.redis_url or "")
    try:
        assert await redis.keys("arq:*") == [] and await redis.zcard(keys.QUEUE) == 0
    finally:
        await redis.aclose()
    assert len([m for m in await stream(settings) if m.final]) == 3


async def test_a_job_whose_stored_job_expired_is_dropped_from_the_queue(settings: Settings, seeded: dict) -> None:
    record = chat("gone")
    redis = connect(settings.redis_url or "")
    try:
        await enqueue_action(redis, record)
        await redis.delete(f"arq:job:{record.request_id}")
        worker = build_worker(settings, burst=True, handle_signals=False, poll_delay=0.01)
        try:
            await asyncio.wait_for(worker.main(), 10)
        finally:
            await worker.close()
        assert await redis.zcard(keys.QUEUE) == 0 and await redis.keys("arq:*") == []
    finally:
        await redis.aclose()


async def test_a_job_running_on_another_worker_is_checked_with_one_exists_not_a_claim_per_poll(
    settings: Settings, seeded: dict
) -> None:
    record = chat("held elsewhere")
    job_id = record.request_id.encode()
    redis = connect(settings.redis_url or "")
    worker = build_worker(settings, burst=True, handle_signals=False, poll_delay=0.01)
    await enqueue_action(redis, record)
    await redis.set(in_progress_key_prefix + record.request_id, b"1", px=60_000)  # another worker's lease

    async def claims_in_one_poll() -> tuple[int, int]:
        before = await redis.info("commandstats")
        await worker.start_jobs([job_id])
        after = await redis.info("commandstats")
        return tuple(after.get(f"cmdstat_{name}", {}).get("calls", 0) - before.get(f"cmdstat_{name}", {}).get("calls", 0)
                     for name in ("evalsha", "watch"))  # type: ignore[return-value]

    try:
        # one claim script for a new id (no WATCH); after that, the held id costs one EXISTS, no claim
        assert [await claims_in_one_poll() for _ in range(3)] == [(1, 0), (0, 0), (0, 0)]
        assert worker.tasks == {}
        await redis.delete(in_progress_key_prefix + record.request_id)  # that worker died; its lease ran out
        await asyncio.wait_for(worker.main(), 10)
    finally:
        await worker.close()
        await redis.aclose()
    assert [m.content for m in await stream(settings) if m.final] == ["echo: held elsewhere"]


async def test_a_usage_record_that_fails_does_not_turn_the_answer_into_an_error(settings: Settings, seeded: dict) -> None:
    redis = connect(settings.redis_url or "")
    deps = build_deps(settings, redis)
    record = chat("answered anyway")
    await redis.set(keys.usage(record.request_id), "not a hash")  # HSET fails with WRONGTYPE
    errors = REGISTRY.get_sample_value("gitlab_sli_llm_completion_error_total", {"feature": "chat"}) or 0.0
    try:
        assert await run_action({"deps": deps, "job_try": 1}, record.model_dump_json()) == "answered"
    finally:
        await deps.close()
        await redis.aclose()
    finals = [m for m in await stream(settings) if m.final]
    assert [(m.content, m.errors) for m in finals] == [("echo: answered anyway", ())]
    assert (REGISTRY.get_sample_value("gitlab_sli_llm_completion_error_total", {"feature": "chat"}) or 0.0) == errors


async def test_a_job_that_outlasts_the_job_timeout_still_ends_with_one_final_error(settings: Settings, seeded: dict) -> None:
    """Every chunk restarts the model call's own timeout, so a steady stream can outlast the whole job's time
    (`job_timeout_s`): the request must still end in one final (a time-out), not be dropped by arq's time limit."""
    settings = settings.model_copy(update={"job_timeout_s": 1.0})
    await run_worker(settings, chat('<response chunk_delay_ms="300">a b c d e f g h</response>'))
    finals = [m for m in await stream(settings) if m.final]
    assert len(finals) == 1 and finals[0].errors and finals[0].errors[0].endswith("Error code: A1000")
