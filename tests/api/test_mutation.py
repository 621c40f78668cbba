"""`aiAction` through the real schema with real services: the order of checks, and one job per request."""

from __future__ import annotations

import uuid

import pytest

from access.tokens import authenticate
from api.graphql.context import Context
from api.graphql.schema import build_schema
from api.services import Services, open_services
from core import keys
from core.errors import RESOURCE_NOT_AVAILABLE
from core.redis import connect
from core.settings import Settings
from subscriptions.messages import route_id
from subscriptions.streams import Publisher, replay
from tests._redis import free_port
from worker.jobs import InlineRunner

ACTION = "mutation($input: AiActionInput!) { aiAction(input: $input) { requestId errors clientMutationId } }"
SCHEMA = build_schema()


async def run(services: Services, token: str | None, input: dict) -> tuple[dict | None, list[str]]:
    principal = None
    if token:
        async with services.sessions() as session:
            principal = await authenticate(session, token)
    result = await SCHEMA.execute(
        ACTION, variable_values={"input": input}, context_value=Context(None, None, services, principal)  # type: ignore[arg-type]
    )
    return result.data, [error.message for error in result.errors or []]


async def queued(services: Services) -> int:
    return await services.redis.zcard(keys.QUEUE)


async def test_an_accepted_request_gets_a_uuid4_and_exactly_one_job(services: Services, seeded: dict) -> None:
    data, errors = await run(services, seeded["users"]["alice"]["token"],
                             {"explainCode": {"resourceId": seeded["projects"]["gitlab-duo/test"], "code": "x = 1"},
                              "clientMutationId": "m1"})
    assert errors == []
    payload = data["aiAction"]
    assert payload["errors"] == [] and payload["clientMutationId"] == "m1"
    assert uuid.UUID(payload["requestId"]).version == 4
    assert await services.redis.zrange(keys.QUEUE, 0, -1) == [payload["requestId"].encode()]


def _issue(seeded: dict, name: str = "issue") -> str:
    return seeded["resources"][name]


@pytest.mark.parametrize(
    ("user", "input", "expected"),
    [
        pytest.param(None, {"chat": {"content": "hi"}}, RESOURCE_NOT_AVAILABLE, id="anonymous"),
        pytest.param("alice", {}, "Only one method argument is required", id="no-action"),
        pytest.param("alice", {"chat": {"content": "hi"}, "summarizeComments": {"resourceId": "ISSUE"}},
                     "Only one method argument is required", id="two-actions"),
        pytest.param("mallory", {"chat": {"content": "hi"}, "explainCode": {"resourceId": "CONFIDENTIAL", "code": ""}},
                     "Only one method argument is required", id="one-action-is-checked-before-the-resource"),
        pytest.param("mallory", {"summarizeComments": {"resourceId": "ISSUE"}}, RESOURCE_NOT_AVAILABLE, id="no-access"),
        pytest.param("bob", {"summarizeComments": {"resourceId": "gid://gitlab/Issue/999"}}, RESOURCE_NOT_AVAILABLE, id="missing"),
        pytest.param("mallory", {"explainCode": {"resourceId": "CONFIDENTIAL", "code": ""}}, RESOURCE_NOT_AVAILABLE,
                     id="resource-is-checked-before-input"),
        pytest.param("alice", {"summarizeComments": {"resourceId": "Issue/1"}},
                     "summarizeComments.resourceId: 'Issue/1' is not a valid Global ID", id="malformed-id"),
        pytest.param("alice", {"summarizeComments": {"resourceId": "gid://gitlab/User/2"}},
                     "summarizeComments.resourceId: 'gid://gitlab/User/2' does not represent an instance of Epic or Issue or MergeRequest",
                     id="wrong-type"),
        pytest.param("alice", {"chat": {"content": "   "}}, "chat.content: can't be blank", id="blank"),
        pytest.param("alice", {"chat": {"content": "x" * 400_001}}, "chat.content: is too long (maximum is 400000 characters)",
                     id="too-long"),
        pytest.param("alice", {"chat": {"content": "hi"}, "clientSubscriptionId": "x" * 256},
                     "clientSubscriptionId: is too long (maximum is 255 characters)", id="long-subscription-id"),
    ],
)
async def test_refusals_answer_with_the_first_failed_check_and_enqueue_nothing(
    services: Services, seeded: dict, user: str | None, input: dict, expected: str
) -> None:
    for action in input.values():
        if isinstance(action, dict) and action.get("resourceId") in ("ISSUE", "CONFIDENTIAL"):
            action["resourceId"] = _issue(seeded, "issue" if action["resourceId"] == "ISSUE" else "confidential_issue")
    data, errors = await run(services, seeded["users"][user]["token"] if user else None, input)
    assert errors == [expected]
    assert await queued(services) == 0


async def test_a_read_only_token_may_not_ask(services: Services, seeded: dict) -> None:
    from access.admin.accounts import create_token

    async with services.sessions() as session, session.begin():
        token = await create_token(session, "alice", scopes=("read_api",))
    _, errors = await run(services, token, {"chat": {"content": "hi"}})
    assert errors == [RESOURCE_NOT_AVAILABLE]
    assert await queued(services) == 0


async def test_a_chat_question_is_echoed_to_the_users_other_tabs_but_not_to_its_own_subscription(
    services: Services, seeded: dict
) -> None:
    alice = seeded["users"]["alice"]
    data, errors = await run(services, alice["token"], {"chat": {"content": "are you there?"}, "clientSubscriptionId": "tab-1"})
    assert errors == []
    tabs = await replay(services.redis, route_id(alice["gid"], ai_action="chat"), (0, 0))
    assert [(m.role, m.content, m.request_id) for m in tabs] == [("user", "are you there?", data["aiAction"]["requestId"])]
    assert await replay(services.redis, route_id(alice["gid"], ai_action="chat", client_subscription_id="tab-1"), (0, 0)) == []


async def test_sync_execution_answers_inline_without_a_job(settings: Settings, seeded: dict) -> None:
    runner = InlineRunner(settings)
    async with open_services(settings, runner) as services:
        await _ask_inline(services, seeded)


async def _ask_inline(services: Services, seeded: dict) -> None:
    alice = seeded["users"]["alice"]
    data, errors = await run(services, alice["token"], {"chat": {"content": "inline"}, "clientSubscriptionId": "s"})
    assert errors == [] and await queued(services) == 0
    streamed = await replay(services.redis, route_id(alice["gid"], ai_action="chat", client_subscription_id="s"), (0, 0))
    assert [(m.chunk_id, m.content) for m in streamed] == [(1, "echo:"), (2, " inline"), (None, "echo: inline")]


async def test_refusals_are_answers_not_logged_errors(services: Services, seeded: dict, caplog: pytest.LogCaptureFixture) -> None:
    secret = "gid://gitlab/Secret/" + "7" * 5
    _, errors = await run(services, seeded["users"]["alice"]["token"], {"summarizeComments": {"resourceId": secret}})
    assert errors and secret in errors[0]
    assert secret not in caplog.text and "Traceback" not in caplog.text


@pytest.mark.parametrize(
    ("input", "rate_limit"),
    [
        pytest.param({"chat": {"content": "hi"}}, 0, id="chat-echo"),
        pytest.param({"explainCode": {"resourceId": "PROJECT", "code": "x = 1"}}, 0, id="enqueue"),
        pytest.param({"chat": {"content": "hi"}}, 100, id="rate-limit-check"),
    ],
)
async def test_while_redis_is_unreachable_ai_action_says_so(
    services: Services, seeded: dict, input: dict, rate_limit: int
) -> None:
    unreachable = connect(f"redis://127.0.0.1:{free_port()}/0", max_connections=2)
    services.redis, services.publisher = unreachable, Publisher.for_settings(unreachable, services.settings)
    services.settings = services.settings.model_copy(update={"ai_action_rate_limit": rate_limit})
    if "explainCode" in input:
        input["explainCode"]["resourceId"] = seeded["projects"]["gitlab-duo/test"]
    principal = await _principal(services, seeded["users"]["alice"]["token"])
    try:
        result = await SCHEMA.execute(ACTION, variable_values={"input": input},
                                      context_value=Context(None, None, services, principal))  # type: ignore[arg-type]
    finally:
        await unreachable.aclose()
    [error] = result.errors or []
    assert error.message == "The service is temporarily unavailable; try again."  # not a masked internal error
    assert error.extensions == {"code": "SERVICE_UNAVAILABLE"}


async def _principal(services: Services, token: str):  # noqa: ANN202
    async with services.sessions() as session:
        return await authenticate(session, token)


async def test_a_question_echoed_but_not_enqueued_still_ends_with_one_final(services: Services, seeded: dict) -> None:
    await services.redis.set(keys.QUEUE, "not a queue")  # the enqueue fails after the echo went out (WRONGTYPE)
    alice = seeded["users"]["alice"]
    _, errors = await run(services, alice["token"], {"chat": {"content": "are you there?"}, "clientSubscriptionId": "tab-1"})
    assert errors  # the mutation fails ...
    tabs = await replay(services.redis, route_id(alice["gid"], ai_action="chat"), (0, 0))
    own = await replay(services.redis, route_id(alice["gid"], ai_action="chat", client_subscription_id="tab-1"), (0, 0))
    assert [(m.role, m.chunk_id, bool(m.errors)) for m in tabs] == [("user", None, False), ("assistant", None, True)]
    assert [(m.role, m.errors) for m in own] == [("assistant", ("The service is temporarily unavailable; try again.",))]
    assert tabs[0].request_id == tabs[1].request_id == own[0].request_id  # ... and its echo got its one final
