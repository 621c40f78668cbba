from __future__ import annotations

import asyncio
import dataclasses

import pytest
from arq.connections import ArqRedis
from redis.exceptions import ResponseError

from core import keys
from core.errors import InvalidInput
from core.redis import REDIS_UNAVAILABLE, connect
from subscriptions.messages import AiMessage, RequestRoutes, route_id, routes_for
from subscriptions.streams import Publisher, after_cursor, parse_cursor, replay
from tests._redis import free_port


def publisher(redis: ArqRedis, **limits: int) -> Publisher:
    return Publisher(redis, **{"route_maxlen": 100, "firehose_maxlen": 1000, "replay_ttl_s": 600, **limits})


def test_a_route_is_its_exact_argument_set() -> None:
    user = "gid://gitlab/User/2"
    assert route_id(user, ai_action="chat") == route_id(user, ai_action="chat")
    distinct = {
        route_id(user, ai_action="chat"),
        route_id(user, ai_action="chat", client_subscription_id="c"),
        route_id(user, resource_gid="gid://gitlab/Issue/1"),
        route_id(user, resource_gid="gid://gitlab/Issue/1", client_subscription_id="c"),
        route_id("gid://gitlab/User/3", ai_action="chat"),
    }
    assert len(distinct) == 5


def test_routes_for_a_chat_message_about_a_resource() -> None:
    routes = routes_for("gid://gitlab/User/2", resource_gid="gid://gitlab/Issue/1", ai_action="chat", client_subscription_id="c")
    assert routes == [
        route_id("gid://gitlab/User/2", resource_gid="gid://gitlab/Issue/1", client_subscription_id="c"),
        route_id("gid://gitlab/User/2", ai_action="chat", client_subscription_id="c"),
    ]


async def test_published_messages_replay_in_order_after_a_cursor(redis: ArqRedis) -> None:
    pub = publisher(redis)
    route = route_id("gid://gitlab/User/2", ai_action="chat")
    cursors = [await pub.publish(AiMessage("r", "assistant", content=str(i), chunk_id=i), [route]) for i in range(1, 5)]
    assert all(cursors)
    replayed = await replay(redis, route, parse_cursor(cursors[1]))
    assert [(m.content, m.cursor) for m in replayed] == [("3", cursors[2]), ("4", cursors[3])]
    assert await redis.ttl(keys.route(route)) == 600


async def test_a_route_expires_from_a_requests_first_message_and_again_from_its_final(redis: ArqRedis) -> None:
    pub = publisher(redis, replay_ttl_s=600)
    route = route_id("gid://gitlab/User/2", ai_action="chat")
    calls_before = (await redis.info("commandstats")).get("cmdstat_expire", {}).get("calls", 0)
    await pub.publish(AiMessage("r", "assistant", content="1", chunk_id=1), [route])
    assert 0 < await redis.ttl(keys.route(route)) <= 600
    await redis.expire(keys.route(route), 50)  # as if time passed: chunks after the first renew nothing
    for chunk_id in range(2, 6):
        await pub.publish(AiMessage("r", "assistant", content=str(chunk_id), chunk_id=chunk_id), [route])
    assert await redis.ttl(keys.route(route)) <= 50
    await pub.publish(AiMessage("r", "assistant", content="12345"), [route], final=True)
    assert await redis.ttl(keys.route(route)) > 50  # the final renews it: replay lasts replay_ttl_s after it
    calls = (await redis.info("commandstats"))["cmdstat_expire"]["calls"] - calls_before
    assert calls == 3  # the first chunk, the test's own, the final


async def test_a_final_message_is_published_once_per_request(redis: ArqRedis) -> None:
    pub = publisher(redis)
    routes = [route_id("gid://gitlab/User/2", ai_action="chat"), route_id("gid://gitlab/User/2", resource_gid="gid://gitlab/Issue/1")]
    assert await pub.publish(AiMessage("req", "assistant", content="a"), routes, final=True)
    assert await pub.publish(AiMessage("req", "assistant", content="b"), routes, final=True) is None
    assert await pub.has_final("req")
    for route in routes:
        assert [m.content for m in await replay(redis, route, (0, 0))] == ["a"]
    assert await redis.xlen(keys.FIREHOSE) == 1


async def test_the_same_cursor_names_the_message_on_every_route(redis: ArqRedis) -> None:
    pub = publisher(redis)
    routes = [route_id("gid://gitlab/User/2", ai_action="chat"), route_id("gid://gitlab/User/2", ai_action="chat", client_subscription_id="x")]
    cursor = await pub.publish(AiMessage("r", "assistant", content="x"), routes, final=True)
    assert [[m.cursor for m in await replay(redis, r, (0, 0))] for r in routes] == [[cursor], [cursor]]


async def test_streams_are_capped(redis: ArqRedis) -> None:
    pub = publisher(redis, route_maxlen=10, firehose_maxlen=10)
    route = route_id("gid://gitlab/User/2", ai_action="chat")
    for i in range(500):
        await pub.publish(AiMessage("r", "assistant", content=str(i), chunk_id=i + 1), [route])
    assert await redis.xlen(keys.route(route)) < 200 and await redis.xlen(keys.FIREHOSE) < 200


@pytest.mark.parametrize("cursor", ["", "abc", "1-", "-1", "1-2-3", "1 - 2"])
def test_malformed_cursors_are_refused_by_name(cursor: str) -> None:
    with pytest.raises(InvalidInput, match="^after: "):
        parse_cursor(cursor)


def test_cursor_order() -> None:
    assert after_cursor("10-1", (10, 0)) and after_cursor("11-0", (10, 5))
    assert not after_cursor("10-0", (10, 0)) and not after_cursor("9-9", (10, 0))


def test_a_message_survives_the_wire() -> None:
    message = AiMessage("r", "assistant", content="x", errors=("e",), extras={"sources": []}, chunk_id=3)
    assert AiMessage.from_wire(message.to_wire(), cursor="1-0") == dataclasses.replace(message, cursor="1-0")


async def test_concurrent_publishes_share_round_trips_and_keep_their_results(redis: ArqRedis) -> None:
    pub = publisher(redis)
    routes = [route_id("gid://gitlab/User/2", ai_action="chat", client_subscription_id=str(i)) for i in range(300)]
    await redis.script_flush()  # the first batch must load the script itself
    cursors = await asyncio.gather(*(pub.publish(AiMessage(f"r{i}", "assistant", content=str(i)), [r]) for i, r in enumerate(routes)))
    assert len(set(cursors)) == 300 and all(cursors)
    for i in (0, 150, 299):
        assert [m.content for m in await replay(redis, routes[i], (0, 0))] == [str(i)]


async def test_one_failing_message_in_a_batch_fails_alone(redis: ArqRedis) -> None:
    pub = publisher(redis)
    good, bad = route_id("gid://gitlab/User/2", ai_action="chat"), route_id("gid://gitlab/User/3", ai_action="chat")
    await redis.set(keys.route(bad), "not a stream")
    results = await asyncio.gather(
        pub.publish(AiMessage("a", "assistant", content="ok"), [good]),
        pub.publish(AiMessage("b", "assistant", content="no"), [bad]),
        pub.publish(AiMessage("c", "assistant", content="after"), [good]),
        return_exceptions=True,
    )
    assert isinstance(results[0], str) and isinstance(results[2], str)
    assert isinstance(results[1], ResponseError) and "WRONGTYPE" in str(results[1])
    assert [m.content for m in await replay(redis, good, (0, 0))] == ["ok", "after"]


async def test_a_batch_is_one_command_and_keeps_each_streams_order(redis: ArqRedis) -> None:
    pub = publisher(redis)
    one = route_id("gid://gitlab/User/2", ai_action="chat", client_subscription_id="one")
    two = [route_id("gid://gitlab/User/3", ai_action="chat", client_subscription_id="two"),
           route_id("gid://gitlab/User/3", resource_gid="gid://gitlab/Issue/1", client_subscription_id="two")]
    await pub.publish(AiMessage("warm-up", "assistant", content="-"), [one])  # the script is loaded
    before = (await redis.info("commandstats"))["cmdstat_evalsha"]["calls"]
    publishes = []
    for chunk_id in range(1, 6):  # interleaved, not awaited one by one: they wait in one batch
        publishes.append(pub.publish(AiMessage("r1", "assistant", content=f"a{chunk_id}", chunk_id=chunk_id), [one]))
        publishes.append(pub.publish(AiMessage("r2", "assistant", content=f"b{chunk_id}", chunk_id=chunk_id), two))
    publishes.append(pub.publish(AiMessage("r2", "assistant", content="b"), two, final=True))
    cursors = await asyncio.gather(*publishes)
    assert (await redis.info("commandstats"))["cmdstat_evalsha"]["calls"] - before == 1
    assert len(set(cursors)) == len(cursors) and all(cursors)
    assert [m.content for m in await replay(redis, one, (0, 0))] == ["-", "a1", "a2", "a3", "a4", "a5"]
    for route in two:
        replayed = await replay(redis, route, (0, 0))
        assert [m.content for m in replayed] == ["b1", "b2", "b3", "b4", "b5", "b"]
        assert [m.cursor for m in replayed] == [*cursors[1:10:2], cursors[10]]
    hub = await redis.xrange(keys.FIREHOSE)
    assert [entry_id.decode() for entry_id, _ in hub][1:] == cursors  # the firehose in publish order
    assert {fields[b"r"] for _, fields in hub[2::2]} == {",".join(two).encode()}


async def test_a_final_is_published_once_also_within_one_batch(redis: ArqRedis) -> None:
    pub = publisher(redis)
    route = route_id("gid://gitlab/User/2", ai_action="chat")
    results = await asyncio.gather(
        pub.publish(AiMessage("req", "assistant", content="first"), [route], final=True),
        pub.publish(AiMessage("other", "assistant", content="chunk", chunk_id=1), [route]),
        pub.publish(AiMessage("req", "assistant", content="second"), [route], final=True),
    )
    assert results[0] and results[1] and results[2] is None
    assert [m.content for m in await replay(redis, route, (0, 0))] == ["first", "chunk"]
    assert await redis.xlen(keys.FIREHOSE) == 2


async def test_a_failed_call_reaches_every_waiting_publisher(redis: ArqRedis) -> None:
    unreachable = connect(f"redis://127.0.0.1:{free_port()}/0", timeout_s=1.0)
    try:
        pub = publisher(unreachable)
        route = route_id("gid://gitlab/User/2", ai_action="chat")
        results = await asyncio.gather(
            *(pub.publish(AiMessage(f"r{i}", "assistant", content=str(i), chunk_id=1), [route]) for i in range(5)),
            return_exceptions=True,
        )
        assert all(isinstance(result, REDIS_UNAVAILABLE) for result in results)
        pub = publisher(redis)  # a later batch on a working server is not affected by an earlier failure
        assert await pub.publish(AiMessage("r", "assistant", content="x", chunk_id=1), [route])
    finally:
        await unreachable.aclose()


def chunk(n: int, request: str = "r1") -> AiMessage:
    return AiMessage(request, "assistant", content=f"c{n}", chunk_id=n)


async def evalsha_calls(redis: ArqRedis) -> int:
    return (await redis.info("commandstats")).get("cmdstat_evalsha", {}).get("calls", 0)


async def test_chunks_handed_over_together_go_out_in_one_call_in_order_before_the_final(redis: ArqRedis) -> None:
    pub = publisher(redis)
    route = route_id("gid://gitlab/User/2", ai_action="chat", client_subscription_id="s")
    await pub.publish(AiMessage("warm-up", "assistant", content="-"), [route])  # the script is loaded
    before = await evalsha_calls(redis)
    stream = pub.chunks([route])
    for n in range(1, 6):
        await stream.send(chunk(n))  # returns once handed over
    final = asyncio.create_task(pub.publish(AiMessage("r1", "assistant", content="c1c2c3c4c5"), [route], final=True))
    await stream.drain()
    assert await final
    assert await evalsha_calls(redis) - before == 2  # one for the five chunks, one for the final behind them
    assert [m.content for m in await replay(redis, route, (0, 0))] == ["-", "c1", "c2", "c3", "c4", "c5", "c1c2c3c4c5"]
    assert stream.lost is None


async def test_a_chunk_stream_waits_once_its_window_is_full(redis: ArqRedis) -> None:
    route = route_id("gid://gitlab/User/2", ai_action="chat", client_subscription_id="s")
    stream = publisher(redis).chunks([route])
    stream.WINDOW = 2
    for n in range(1, 4):
        await stream.send(chunk(n))  # the third waits for the first to be published
    assert [m.content for m in await replay(redis, route, (0, 0))] == ["c1", "c2"]
    await stream.drain()
    assert [m.content for m in await replay(redis, route, (0, 0))] == ["c1", "c2", "c3"]


async def test_after_a_chunk_fails_no_later_chunk_of_its_stream_is_published(redis: ArqRedis) -> None:
    pub = publisher(redis)
    route = route_id("gid://gitlab/User/2", ai_action="chat", client_subscription_id="s")
    other = route_id("gid://gitlab/User/3", ai_action="chat", client_subscription_id="s")
    await pub.publish(AiMessage("warm-up", "assistant", content="-"), [other])  # the script is loaded
    await redis.set(keys.route(route), "not a stream")
    before = await evalsha_calls(redis)
    stream, bystander = pub.chunks([route]), pub.chunks([other])
    await stream.send(chunk(1))
    await asyncio.sleep(0)  # one turn of the loop: the publisher's call with chunk 1 is under way
    await stream.send(chunk(2))  # waits behind it, and is dropped when chunk 1 fails
    await bystander.send(chunk(1, "r2"))
    await asyncio.gather(stream.drain(), bystander.drain())
    assert isinstance(stream.lost, ResponseError) and "WRONGTYPE" in str(stream.lost)
    assert await evalsha_calls(redis) - before == 2  # chunk 1's call; the second carried only the bystander
    await redis.delete(keys.route(route))
    await stream.send(chunk(3))  # a lost stream publishes nothing more
    await stream.drain()
    assert await replay(redis, route, (0, 0)) == []
    assert bystander.lost is None
    assert [m.content for m in await replay(redis, other, (0, 0))] == ["-", "c1"]


def test_request_routes_send_echo_chunks_and_final_where_gitlab_does() -> None:
    chat = RequestRoutes(2, None, "chat", "tab-1")
    own, tabs = route_id("gid://gitlab/User/2", ai_action="chat", client_subscription_id="tab-1"), route_id("gid://gitlab/User/2", ai_action="chat")
    assert (chat.echo(), chat.chunks(), chat.final()) == ([tabs], [own], [own, tabs])
    about = RequestRoutes(3, "gid://gitlab/Issue/1", None, None)
    issue = route_id("gid://gitlab/User/3", resource_gid="gid://gitlab/Issue/1")
    assert (about.echo(), about.chunks(), about.final()) == ([issue], [], [issue])
