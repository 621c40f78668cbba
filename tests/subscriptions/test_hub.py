from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import AsyncIterator, Callable

import orjson
import pytest
from arq.connections import ArqRedis
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from core import keys
from core.errors import SubscriberOverflow
from subscriptions.hub import Hub, Subscriber
from subscriptions.messages import AiMessage, route_id
from subscriptions.streams import Publisher

ROUTE_A = route_id("gid://gitlab/User/2", ai_action="chat")
ROUTE_B = route_id("gid://gitlab/User/3", ai_action="chat")


@pytest.fixture
async def hub(redis_url: str) -> AsyncIterator[Hub]:
    client = Redis.from_url(redis_url, single_connection_client=True)
    hub = Hub(client, block_ms=200, inbox_size=5)
    task = asyncio.create_task(hub.run())
    await hub.wait_ready()
    try:
        yield hub
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.aclose()


def publisher(redis: ArqRedis) -> Publisher:
    return Publisher(redis, route_maxlen=100, firehose_maxlen=1000, replay_ttl_s=600)


async def take(subscriber, n: int) -> list[AiMessage]:  # noqa: ANN001
    out = []
    async for message in subscriber:
        out.append(message)
        if len(out) == n:
            return out
    return out


async def test_each_subscriber_gets_its_routes_messages_only(hub: Hub, redis: ArqRedis) -> None:
    a1, a2, b = hub.subscribe(ROUTE_A), hub.subscribe(ROUTE_A), hub.subscribe(ROUTE_B)
    pub = publisher(redis)
    await pub.publish(AiMessage("r1", "assistant", content="for a"), [ROUTE_A])
    await pub.publish(AiMessage("r2", "assistant", content="for both"), [ROUTE_A, ROUTE_B])
    got_a1 = await asyncio.wait_for(take(a1, 2), 3)
    got_a2 = await asyncio.wait_for(take(a2, 2), 3)
    got_b = await asyncio.wait_for(take(b, 1), 3)
    assert [m.content for m in got_a1] == [m.content for m in got_a2] == ["for a", "for both"]
    assert [m.content for m in got_b] == ["for both"] and got_b[0].cursor == got_a1[1].cursor
    assert hub.subscriber_count == 3
    for subscriber in (a1, a2, b):
        hub.unsubscribe(subscriber)
    assert hub.subscriber_count == 0


async def test_a_subscriber_that_falls_behind_is_told_to_resume(hub: Hub, redis: ArqRedis) -> None:
    slow = hub.subscribe(ROUTE_A)
    pub = publisher(redis)
    for i in range(8):
        await pub.publish(AiMessage("r", "assistant", content=str(i), chunk_id=i + 1), [ROUTE_A])
    await asyncio.sleep(0.3)
    received = []
    with pytest.raises(SubscriberOverflow):
        async for message in slow:
            received.append(message.content)
    assert received == ["0", "1", "2", "3", "4"]


async def test_the_hub_uses_one_connection_for_any_number_of_subscribers(hub: Hub, redis: ArqRedis) -> None:
    before = len(await redis.client_list())
    subscribers = [hub.subscribe(route_id("gid://gitlab/User/2", client_subscription_id=str(i), ai_action="chat")) for i in range(2000)]
    await asyncio.sleep(0.3)
    assert len(await redis.client_list()) == before
    for subscriber in subscribers:
        hub.unsubscribe(subscriber)


BAD_ENTRIES = [
    pytest.param({"r": ROUTE_A, "m": b"not json"}, id="not-json"),
    pytest.param({"r": ROUTE_A, "m": b"[1, 2]"}, id="not-an-object"),
    pytest.param({"r": ROUTE_A, "m": b'{"role": "assistant"}'}, id="no-request-id"),
    pytest.param({"r": ROUTE_A, "m": b'{"request_id": "x", "role": "assistant", "errors": 3}'}, id="errors-not-a-list"),
    pytest.param({"r": ROUTE_A}, id="no-message"),
    pytest.param({"m": b'{"request_id": "x", "role": "assistant"}'}, id="no-routes"),
]


@pytest.mark.parametrize("entry", BAD_ENTRIES)
async def test_a_bad_entry_is_skipped_and_counted_and_the_hub_reads_on(
    hub: Hub, redis: ArqRedis, entry: dict, caplog: pytest.LogCaptureFixture
) -> None:
    subscriber = hub.subscribe(ROUTE_A)
    skipped = REGISTRY.get_sample_value("switchboard_hub_bad_entries_total") or 0.0
    await redis.xadd(keys.FIREHOSE, entry)
    await publisher(redis).publish(AiMessage("r1", "assistant", content="after the bad one"), [ROUTE_A])
    [message] = await asyncio.wait_for(take(subscriber, 1), 3)
    assert message.content == "after the bad one" and hub.running
    assert REGISTRY.get_sample_value("switchboard_hub_bad_entries_total") == skipped + 1
    assert "hub skipped entry" in caplog.text and "assistant" not in caplog.text  # the content is not logged


async def test_a_message_with_fields_this_version_does_not_know_is_delivered(hub: Hub, redis: ArqRedis) -> None:
    """A newer worker, during a rolling deploy, publishes a field this web process does not know."""
    subscriber = hub.subscribe(ROUTE_A)
    wire = {**AiMessage("r1", "assistant", content="hi").to_wire(), "added_in_a_later_version": [1]}
    await redis.xadd(keys.FIREHOSE, {"r": ROUTE_A, "m": orjson.dumps(wire)})
    [message] = await asyncio.wait_for(take(subscriber, 1), 3)
    assert message.content == "hi" and message.request_id == "r1"


async def test_the_hub_reports_when_it_no_longer_runs(redis_url: str) -> None:
    client = Redis.from_url(redis_url, single_connection_client=True)
    hub = Hub(client, block_ms=200)
    assert not hub.running
    task = asyncio.create_task(hub.run())
    await hub.wait_ready()
    assert hub.running
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert not hub.running
    await client.aclose()


def _bytes_each(make: Callable[[], object], n: int = 1000) -> float:
    """Python heap held by each of `n` objects that `make` returns (tracemalloc)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        held = [make() for _ in range(n)]
        return (tracemalloc.get_traced_memory()[0] - before) / len(held)
    finally:
        tracemalloc.stop()


async def test_an_idle_subscriber_holds_no_queue_also_after_its_messages_were_read() -> None:
    """A web process holds thousands of mostly idle subscribers (SPEC §12: ≤ 20 KB per subscription): an
    empty asyncio.Queue alone is ~3.3 KB."""
    assert _bytes_each(lambda: Subscriber(ROUTE_A, 10_000)) < 200
    subscriber = Subscriber(ROUTE_A, 10_000)
    reading = asyncio.create_task(take(subscriber, 2))
    await asyncio.sleep(0)  # the reader waits
    subscriber.deliver(AiMessage("r1", "assistant", content="1"))
    subscriber.deliver(AiMessage("r1", "assistant", content="2"))
    assert [m.content for m in await reading] == ["1", "2"]
    assert subscriber._messages is None and subscriber._waiter is None
