"""Stopping requests in the worker (SPEC §13.5): real workers, real Redis, the mock model; the cancel is
sent as the web process sends it (`api.graphql.cancel.cancel_request`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from arq.connections import ArqRedis
from pydantic import SecretStr

from api.graphql.cancel import cancel_request
from core import keys
from core.actions import ActionRecord
from core.ids import new_request_id
from core.redis import enqueue_action
from core.settings import Settings
from subscriptions.messages import AiMessage, route_id
from subscriptions.streams import replay
from tests._providers import FakeLLM, Reply
from worker.cancel import Cancellations, RequestCancelled, until_cancelled
from worker.deps import build_deps
from worker.jobs import run_action
from worker.process import build_worker

ALICE = "gid://gitlab/User/2"
WORDS = " ".join(f"w{i}" for i in range(1, 31))


def chat(text: str, *, sub: str | None = "s") -> ActionRecord:
    return ActionRecord(request_id=new_request_id(), feature="chat", user_id=2, inputs={"content": text},
                        client_subscription_id=sub)


async def stream(redis: ArqRedis, sub: str | None = "s") -> list[AiMessage]:
    return await replay(redis, route_id(ALICE, ai_action="chat", client_subscription_id=sub), (0, 0))


def events(caplog: pytest.LogCaptureFixture, name: str, request_id: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == name and getattr(r, "request_id", None) == request_id]


async def run_burst(settings: Settings) -> None:
    worker = build_worker(settings, burst=True, handle_signals=False, poll_delay=0.01)
    try:
        await asyncio.wait_for(worker.main(), 30)
    finally:
        await worker.close()


async def first_chunks(redis: ArqRedis, count: int, sub: str = "s") -> None:
    """Until `count` chunks of the request were published on its subscription's route."""
    route = keys.route(route_id(ALICE, ai_action="chat", client_subscription_id=sub))
    cursor, seen = "0-0", 0
    while seen < count:
        for _, entries in await redis.xread({route: cursor}, block=10_000) or []:  # type: ignore[union-attr]
            seen += len(entries)
            cursor = entries[-1][0]


async def test_a_request_cancelled_while_queued_runs_no_model_and_ends_cancelled(
    settings: Settings, seeded: dict, redis: ArqRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    record = chat(f'<response chunk_delay_ms="10">{WORDS}</response>')
    await enqueue_action(redis, record)
    assert await cancel_request(redis, 2, record.request_id) == "cancelled"
    await run_burst(settings)

    (final,) = await stream(redis)
    assert (final.request_id, final.chunk_id, final.content, final.extras) == (record.request_id, None, "", {"cancelled": True})
    assert [m.extras for m in await stream(redis, None)] == [{"cancelled": True}]  # the chat broadcast too
    assert events(caplog, "performing_request", record.request_id) == []
    (line,) = events(caplog, "request_cancelled", record.request_id)
    assert (line.feature, line.stage, line.chunks) == ("chat", "queued", 0)  # type: ignore[attr-defined]


async def test_a_running_request_stops_and_ends_with_the_chunks_streamed_so_far(
    settings: Settings, seeded: dict, redis: ArqRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    record = chat(f'<response chunk_delay_ms="200">{WORDS}</response>')
    await enqueue_action(redis, record)
    worker = asyncio.create_task(run_burst(settings))
    await first_chunks(redis, 2)  # the model call is running
    assert await cancel_request(redis, 2, record.request_id) == "cancelled"
    await worker

    messages = await stream(redis)
    chunks, final = messages[:-1], messages[-1]
    assert [m.chunk_id for m in chunks] == list(range(1, len(chunks) + 1)) and 2 <= len(chunks) < 30
    assert final.chunk_id is None and final.extras == {"cancelled": True} and final.errors == ()
    assert final.content == "".join(m.content or "" for m in chunks)
    (line,) = events(caplog, "request_cancelled", record.request_id)
    assert (line.stage, line.chunks) == ("running", len(chunks))  # type: ignore[attr-defined]
    assert events(caplog, "response_received", record.request_id) == []  # the model call did not run to its end


async def test_a_real_provider_stream_is_closed_when_stopped(
    settings: Settings, seeded: dict, redis: ArqRedis, fake_llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    """Through the Anthropic SDK against a local fake server: the stopped stream's HTTP response is closed
    (the job ends, no `response_received`), and the final carries the deltas streamed."""
    caplog.set_level(logging.INFO)
    fake_llm.script(Reply(deltas=tuple(f" d{i}" for i in range(1, 31)), chunk_delay_s=0.2))
    provider_settings = settings.model_copy(update={
        "mock_model_responses": None, "anthropic_api_key": SecretStr("sk-ant-test"), "anthropic_base_url": fake_llm.url,
    })
    record = chat("a long answer, please")
    await enqueue_action(redis, record)
    worker = asyncio.create_task(run_burst(provider_settings))
    await first_chunks(redis, 2)
    assert await cancel_request(redis, 2, record.request_id) == "cancelled"
    await worker

    messages = await stream(redis)
    chunks, final = messages[:-1], messages[-1]
    assert final.extras == {"cancelled": True} and final.content == "".join(m.content or "" for m in chunks)
    assert 2 <= len(chunks) < 30 and len(fake_llm.requests) == 1
    assert events(caplog, "response_received", record.request_id) == []


async def test_a_retry_after_a_cancel_runs_no_model(
    settings: Settings, seeded: dict, redis: ArqRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    record = chat("again?")
    await enqueue_action(redis, record)
    assert await cancel_request(redis, 2, record.request_id) == "cancelled"
    deps = build_deps(settings, redis)
    try:
        assert await run_action({"deps": deps, "job_try": 2}, record.model_dump_json()) == "cancelled"
        assert await run_action({"deps": deps, "job_try": 3}, record.model_dump_json()) == "done before"
    finally:
        await deps.close()
    assert [(m.content, m.extras) for m in await stream(redis)] == [("", {"cancelled": True})]
    assert events(caplog, "performing_request", record.request_id) == []


async def test_a_cancel_after_the_answer_changes_nothing(settings: Settings, seeded: dict, redis: ArqRedis) -> None:
    record = chat("done already")
    await enqueue_action(redis, record)
    await run_burst(settings)
    assert await cancel_request(redis, 2, record.request_id) == "finished"
    assert not await redis.exists(keys.cancel(record.request_id))
    assert [(m.content, m.extras) for m in await stream(redis) if m.final] == [("echo: done already", None)]


@pytest.fixture
async def cancellations(redis: ArqRedis) -> AsyncIterator[Cancellations]:
    listener = Cancellations(redis)
    await listener.start()
    try:
        yield listener
    finally:
        await listener.close()


async def test_the_listener_sets_the_event_of_a_watched_request_only(cancellations: Cancellations, redis: ArqRedis) -> None:
    mine, other = new_request_id(), new_request_id()
    await redis.set(keys.owner(mine), 2)
    await redis.set(keys.owner(other), 2)
    async with cancellations.watch(mine) as stop, cancellations.watch(mine) as twice:
        assert await cancel_request(redis, 2, other) == "cancelled"  # not running here: ignored
        assert await cancel_request(redis, 2, mine) == "cancelled"
        await asyncio.wait_for(stop.wait(), 10)
        assert twice.is_set()
    async with cancellations.watch(other) as late:
        assert not late.is_set()  # a watch sees only cancels that arrive while it is held (the job checks the key)


async def test_a_cancel_missed_while_the_listener_was_disconnected_is_found_when_it_reconnects(
    cancellations: Cancellations, redis: ArqRedis
) -> None:
    request_id = new_request_id()
    async with cancellations.watch(request_id) as stop:
        await redis.set(keys.cancel(request_id), "1")  # as if published while the listener was away
        own_db = int(redis.connection_pool.connection_kwargs.get("db", 0))
        for client in (await redis.client_list(_type="pubsub")):
            if int(client["db"]) == own_db:  # this test's listener (an end-to-end stack uses another database)
                await redis.client_kill_filter(_id=client["id"])
        await asyncio.wait_for(stop.wait(), 10)


async def test_a_stop_closes_the_model_stream_and_raises_request_cancelled() -> None:
    closed, streaming = asyncio.Event(), asyncio.Event()
    produced: list[int] = []

    async def model() -> None:
        async def chunks() -> AsyncIterator[int]:
            try:
                for index in range(1000):
                    yield index
                    await asyncio.sleep(0.01)
            finally:
                closed.set()

        async for chunk in chunks():
            produced.append(chunk)
            if len(produced) == 2:
                streaming.set()

    stop = asyncio.Event()
    running = asyncio.create_task(until_cancelled(stop, model()))
    await streaming.wait()
    stop.set()
    with pytest.raises(RequestCancelled):
        await running
    assert closed.is_set() and len(produced) < 1000


async def test_work_that_ends_first_gives_its_result_or_error() -> None:
    stop = asyncio.Event()

    async def answer() -> str:
        return "answer"

    async def failure() -> str:
        raise ValueError("provider")

    assert await until_cancelled(stop, answer()) == "answer"
    with pytest.raises(ValueError, match="provider"):
        await until_cancelled(stop, failure())
    assert await until_cancelled(None, answer()) == "answer"


async def test_work_stopped_before_it_began_never_runs() -> None:
    stop = asyncio.Event()
    stop.set()
    ran = False

    async def work() -> None:
        nonlocal ran
        ran = True

    with pytest.raises(RequestCancelled):
        await until_cancelled(stop, work())
    assert not ran


async def test_cancelling_the_job_itself_propagates_and_stops_the_work() -> None:
    """arq's job timeout or a stopping worker cancels the job: that is no user's stop and is never swallowed."""
    started, finished = asyncio.Event(), asyncio.Event()

    async def work() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            finished.set()

    job = asyncio.create_task(until_cancelled(asyncio.Event(), work()))
    await started.wait()
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    assert finished.is_set()
