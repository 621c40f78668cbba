"""`aiCompletionResponse` through `schema.subscribe` with real services (hub, Redis, database)."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

from access.tokens import authenticate
from api.graphql.context import Context
from api.graphql.schema import build_schema
from api.services import Services
from subscriptions.messages import AiMessage, route_id

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
