"""`aiCompletionResponse` through `schema.subscribe` with real services (hub, Redis, database)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from contextlib import aclosing

from strawberry.extensions.context import OperationContextManager

from access.tokens import authenticate
from api.graphql.context import Context
from api.graphql.schema import build_schema
from api.services import Services
from subscriptions.execution import EVENT_SINK, EventSink
from subscriptions.messages import AiMessage, route_id
from subscriptions.quota import QUOTA

SCHEMA = build_schema()
QUERY = """subscription($userId: UserID, $resourceId: AiModelID, $after: String) {
  aiCompletionResponse(userId: $userId, resourceId: $resourceId, aiAction: CHAT, after: $after) { content chunkId cursor role }
}"""
RESOURCE_QUERY = """subscription($userId: UserID, $resourceId: AiModelID) {
  aiCompletionResponse(userId: $userId, resourceId: $resourceId) { content }
}"""


async def context(services: Services, token: str) -> Context:
    async with services.sessions() as session:
        return Context(None, None, services, await authenticate(session, token))  # type: ignore[arg-type]


async def test_after_replays_then_follows_live_without_gap_or_duplicate(services: Services, seeded: dict) -> None:
    alice = seeded["users"]["alice"]
    route = route_id(alice["gid"], ai_action="chat")
    cursors = [await services.publisher.publish(AiMessage("r", "assistant", content=f"m{i}", chunk_id=i), [route]) for i in range(1, 4)]
    ctx = await context(services, alice["token"])
    stream = await SCHEMA.subscribe(QUERY, variable_values={"userId": alice["gid"], "after": cursors[0]}, context_value=ctx)
    async with aclosing(stream) as results:
        received = []

        async def publish_live() -> None:
            await asyncio.sleep(0.1)
            await services.publisher.publish(AiMessage("r", "assistant", content="m4", chunk_id=4), [route])

        live = asyncio.create_task(publish_live())
        async for result in results:
            assert result.errors is None, result.errors
            received.append(result.data["aiCompletionResponse"]["content"])
            if len(received) == 3:
                break
        await live
    assert received == ["m2", "m3", "m4"]
    assert services.hub.subscriber_count == 0  # closing the subscription unregistered it


async def test_a_subscription_about_an_unreadable_resource_is_refused(services: Services, seeded: dict) -> None:
    mallory = seeded["users"]["mallory"]
    ctx = await context(services, mallory["token"])
    result = await SCHEMA.subscribe(
        RESOURCE_QUERY, variable_values={"userId": mallory["gid"], "resourceId": seeded["resources"]["issue"]}, context_value=ctx
    )
    async with aclosing(result) as results:  # type: ignore[type-var]
        first = await anext(results)
    assert first.errors and "you don't have permission" in first.errors[0].message
    assert services.hub.subscriber_count == 0


class _Sent:
    """A sink's `send` that keeps what it was sent; `reached(n)` waits until it holds `n` events."""

    def __init__(self) -> None:
        self.data: list[dict] = []
        self._waiting: dict[int, asyncio.Event] = {}

    async def __call__(self, data: dict) -> None:
        self.data.append(data)
        if (waiting := self._waiting.get(len(self.data))) is not None:
            waiting.set()

    async def reached(self, n: int) -> None:
        if len(self.data) < n:
            await self._waiting.setdefault(n, asyncio.Event()).wait()


async def _published_three(services: Services, route: str) -> str:
    """m1..m3 on `route`; the cursor of m1 (subscribing `after` it replays m2 and m3)."""
    cursors = [await services.publisher.publish(AiMessage("r", "assistant", content=f"m{i}", chunk_id=i), [route]) for i in range(1, 4)]
    return cursors[0]


async def _replayed_live_then_stopped(services: Services, route: str, sent: _Sent, running: asyncio.Task) -> None:
    """Once m2 and m3 were replayed to `sent`, m4 is published live; once it arrived, `running` is stopped."""
    await sent.reached(2)
    await services.publisher.publish(AiMessage("r", "assistant", content="m4", chunk_id=4), [route])
    await sent.reached(3)
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running


async def _executed(services: Services, user: dict, variables: dict, n: int) -> list[dict]:
    """The data of the first `n` events of the executed path (no sink)."""
    stream = await SCHEMA.subscribe(QUERY, variable_values=variables, context_value=await context(services, user["token"]))
    async with aclosing(stream) as results:  # type: ignore[type-var]
        return [(await anext(results)).data for _ in range(n)]


async def test_a_transport_that_sends_events_itself_gets_each_rendered_and_nothing_is_yielded(services: Services, seeded: dict) -> None:
    """With an `EVENT_SINK` set (as graphql-ws sets it), replayed and live events go to the sink,
    rendered as the full execution renders them, and strawberry's stream yields none."""
    alice = seeded["users"]["alice"]
    route = route_id(alice["gid"], ai_action="chat")
    variables = {"userId": alice["gid"], "after": await _published_three(services, route)}
    sent = _Sent()
    yielded: list = []

    async def subscribe_with_sender() -> None:
        EVENT_SINK.set(EventSink(sent))  # in this task only, as the websocket handler sets it in the operation's task
        stream = await SCHEMA.subscribe(QUERY, variable_values=variables, context_value=await context(services, alice["token"]))
        async with aclosing(stream) as results:  # type: ignore[type-var]
            async for result in results:
                yielded.append(result)

    await _replayed_live_then_stopped(services, route, sent, asyncio.create_task(subscribe_with_sender()))
    assert yielded == []
    assert services.hub.subscriber_count == 0
    assert sent.data == await _executed(services, alice, variables, 3)
    assert [data["aiCompletionResponse"]["content"] for data in sent.data] == ["m2", "m3", "m4"]


async def test_a_live_subscription_keeps_only_error_masking_as_an_operation_hook(services: Services, seeded: dict) -> None:
    """strawberry keeps every extension's operation hook (a suspended generator and its wrappers, ~1.2 KB) for
    as long as a subscription lives, and a web process holds thousands (SPEC §12): the depth rule is added when
    validating and refusals are collected per execution, so only error masking stays."""
    alice = seeded["users"]["alice"]
    route = route_id(alice["gid"], ai_action="chat")
    cursors = [await services.publisher.publish(AiMessage("r", "assistant", content=f"m{i}"), [route]) for i in (1, 2)]
    ctx = await context(services, alice["token"])
    stream = await SCHEMA.subscribe(QUERY, variable_values={"userId": alice["gid"], "after": cursors[0]}, context_value=ctx)
    async with aclosing(stream) as results:
        first = await anext(results)  # replayed: the subscription is live
        assert first.data is not None and first.data["aiCompletionResponse"]["content"] == "m2"
        kept = [
            type(hook.extension).__name__
            for manager in gc.get_objects()
            if issubclass(type(manager), OperationContextManager)  # not isinstance: a dead weakref proxy raises
            for hook in manager.hooks
            if hook.extension.execution_context.context is ctx
        ]
    assert kept == ["_MaskErrors"]


async def test_a_detachable_sink_takes_the_events_and_the_execution_ends_at_once(services: Services, seeded: dict) -> None:
    """With a detachable sink (as graphql-transport-ws sets it) the subscription hands its events over and its
    execution ends without a result; the events hold their place (hub, quota) until the sink runs and closes
    them, and running them sends replayed and live events as the executed path renders them."""
    alice = seeded["users"]["alice"]
    route = route_id(alice["gid"], ai_action="chat")
    variables = {"userId": alice["gid"], "after": await _published_three(services, route)}
    sent = _Sent()
    sink = EventSink(sent, detachable=True)

    async def execute() -> list:
        EVENT_SINK.set(sink)  # in this task only, as the websocket handler sets it in the operation's task
        stream = await SCHEMA.subscribe(QUERY, variable_values=variables, context_value=await context(services, alice["token"]))
        async with aclosing(stream) as results:  # type: ignore[type-var]
            return [result async for result in results]

    assert await asyncio.create_task(execute()) == []  # the execution ended, nothing yielded
    assert services.hub.subscriber_count == 1 and QUOTA.held(alice["id"]) == 1  # the events keep their place
    await _replayed_live_then_stopped(services, route, sent, asyncio.create_task(sink.run_detached()))
    assert services.hub.subscriber_count == 0 and QUOTA.held(alice["id"]) == 0
    assert sent.data == await _executed(services, alice, variables, 3)


async def test_detached_events_that_never_run_give_their_place_back_when_the_sink_closes(services: Services, seeded: dict) -> None:
    alice = seeded["users"]["alice"]
    sink = EventSink(lambda data: asyncio.sleep(0), detachable=True)

    async def execute() -> None:
        EVENT_SINK.set(sink)
        stream = await SCHEMA.subscribe(QUERY, variable_values={"userId": alice["gid"]}, context_value=await context(services, alice["token"]))
        async with aclosing(stream) as results:  # type: ignore[type-var]
            assert [result async for result in results] == []

    await asyncio.create_task(execute())
    assert services.hub.subscriber_count == 1 and QUOTA.held(alice["id"]) == 1
    sink.close()  # the operation was stopped before its events ran
    assert services.hub.subscriber_count == 0 and QUOTA.held(alice["id"]) == 0
    sink.close()  # and again: nothing more to give back
    assert QUOTA.held(alice["id"]) == 0
