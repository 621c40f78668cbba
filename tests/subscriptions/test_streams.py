from __future__ import annotations

import asyncio
import dataclasses

import pytest
from arq.connections import ArqRedis

from core import keys
from core.errors import InvalidInput
from subscriptions.messages import AiMessage, RequestRoutes, route_id, routes_for
from subscriptions.streams import Publisher, after_cursor, parse_cursor, replay


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


async def test_one_failing_call_in_a_batch_fails_alone(redis: ArqRedis) -> None:
    pub = publisher(redis)
    good, bad = route_id("gid://gitlab/User/2", ai_action="chat"), route_id("gid://gitlab/User/3", ai_action="chat")
    await redis.set(keys.route(bad), "not a stream")
    results = await asyncio.gather(
        pub.publish(AiMessage("a", "assistant", content="ok"), [good]),
        pub.publish(AiMessage("b", "assistant", content="no"), [bad]),
        return_exceptions=True,
    )
    assert isinstance(results[0], str) and isinstance(results[1], Exception)
    assert [m.content for m in await replay(redis, good, (0, 0))] == ["ok"]


def test_request_routes_send_echo_chunks_and_final_where_gitlab_does() -> None:
    chat = RequestRoutes(2, None, "chat", "tab-1")
    own, tabs = route_id("gid://gitlab/User/2", ai_action="chat", client_subscription_id="tab-1"), route_id("gid://gitlab/User/2", ai_action="chat")
    assert (chat.echo(), chat.chunks(), chat.final()) == ([tabs], [own], [own, tabs])
    about = RequestRoutes(3, "gid://gitlab/Issue/1", None, None)
    issue = route_id("gid://gitlab/User/3", resource_gid="gid://gitlab/Issue/1")
    assert (about.echo(), about.chunks(), about.final()) == ([issue], [], [issue])
