"""`aiActionCancel` through the real schema with real services (SPEC §13.5): only the caller's own request,
one cancel signal however often it is called, nothing for a finished request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio.client import PubSub

from access.tokens import authenticate
from api.graphql.context import Context
from api.graphql.schema import build_schema
from api.services import Services, open_services
from core import keys
from core.errors import RESOURCE_NOT_AVAILABLE
from core.ids import new_request_id
from core.settings import Settings
from subscriptions.messages import AiMessage
from worker.jobs import InlineRunner

ACTION = "mutation($input: AiActionInput!) { aiAction(input: $input) { requestId errors } }"
CANCEL = "mutation($input: AiActionCancelInput!) { aiActionCancel(input: $input) { errors clientMutationId } }"
SCHEMA = build_schema()
_SENTINEL = "end-of-test"


async def execute(services: Services, user: str | None, seeded: dict, query: str, input: dict) -> tuple[dict | None, list[str]]:
    principal = None
    if user:
        async with services.sessions() as session:
            principal = await authenticate(session, seeded["users"][user]["token"])
    result = await SCHEMA.execute(
        query, variable_values={"input": input}, context_value=Context(None, None, services, principal)  # type: ignore[arg-type]
    )
    return result.data, [error.message for error in result.errors or []]


async def ask(services: Services, seeded: dict, user: str = "alice") -> str:
    data, errors = await execute(services, user, seeded, ACTION, {"chat": {"content": "hi"}, "clientSubscriptionId": "s"})
    assert errors == [] and data and data["aiAction"]["errors"] == []
    return data["aiAction"]["requestId"]


async def cancel(services: Services, seeded: dict, user: str | None, request_id: str) -> list[str]:
    data, errors = await execute(services, user, seeded, CANCEL, {"requestId": request_id, "clientMutationId": "c1"})
    assert errors == [] and data, errors
    assert data["aiActionCancel"]["clientMutationId"] == "c1"
    return data["aiActionCancel"]["errors"]


@pytest.fixture
async def channel(services: Services) -> AsyncIterator[PubSub]:
    """A subscriber of the workers' cancel channel."""
    pubsub = services.redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(keys.CANCELS)
    try:
        yield pubsub
    finally:
        await pubsub.aclose()


async def published(services: Services, pubsub: PubSub) -> list[str]:
    """What the channel carried until now: a sentinel published last marks the end (Redis delivers in order)."""
    await services.redis.publish(keys.CANCELS, _SENTINEL)
    received: list[str] = []
    while True:
        message = await asyncio.wait_for(pubsub.get_message(timeout=5), 10)
        if message is None:
            continue
        data = message["data"].decode()
        if data == _SENTINEL:
            return received
        received.append(data)


async def test_the_caller_cancels_their_own_request_once_however_often_they_ask(
    services: Services, seeded: dict, channel: PubSub
) -> None:
    request_id = await ask(services, seeded)
    assert await cancel(services, seeded, "alice", request_id) == []
    assert await cancel(services, seeded, "alice", request_id) == []  # idempotent
    assert await published(services, channel) == [request_id]
    assert 0 < await services.redis.ttl(keys.cancel(request_id)) <= keys.CANCEL_TTL_S
    assert 0 < await services.redis.ttl(keys.owner(request_id)) <= keys.OWNER_TTL_S


@pytest.mark.parametrize(
    ("user", "request_id"),
    [
        pytest.param("bob", None, id="another-users-request"),
        pytest.param("alice", "UNKNOWN", id="unknown-request"),
        pytest.param("alice", "not-a-request-id", id="malformed-id"),
    ],
)
async def test_a_request_that_is_not_the_callers_is_not_available(
    services: Services, seeded: dict, channel: PubSub, user: str, request_id: str | None
) -> None:
    alices = await ask(services, seeded)
    target = {None: alices, "UNKNOWN": new_request_id()}.get(request_id, request_id)
    assert await cancel(services, seeded, user, target) == [RESOURCE_NOT_AVAILABLE]
    assert await published(services, channel) == []
    assert not await services.redis.exists(keys.cancel(alices), keys.cancel(target))


async def test_an_anonymous_caller_is_refused(services: Services, seeded: dict) -> None:
    request_id = await ask(services, seeded)
    data, errors = await execute(services, None, seeded, CANCEL, {"requestId": request_id})
    assert errors == [RESOURCE_NOT_AVAILABLE] and data is None
    assert not await services.redis.exists(keys.cancel(request_id))


async def test_cancelling_a_finished_request_changes_nothing(services: Services, seeded: dict, channel: PubSub) -> None:
    request_id = await ask(services, seeded)
    await services.publisher.publish(AiMessage(request_id, "assistant", content="done"), ["r"], final=True)
    assert await cancel(services, seeded, "alice", request_id) == []
    assert await published(services, channel) == []
    assert not await services.redis.exists(keys.cancel(request_id))


async def test_a_request_run_inline_is_finished_when_cancelled(settings: Settings, seeded: dict) -> None:
    """`SWITCHBOARD_SYNC_EXECUTION`: the request ran within `aiAction`; cancelling it afterwards is no error."""
    runner = InlineRunner(settings)
    try:
        async with open_services(settings, runner) as services:
            request_id = await ask(services, seeded)
            assert await cancel(services, seeded, "alice", request_id) == []
            assert not await services.redis.exists(keys.cancel(request_id))
            assert await cancel(services, seeded, "bob", request_id) == [RESOURCE_NOT_AVAILABLE]
    finally:
        await runner.close()
