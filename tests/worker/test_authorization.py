"""The worker's re-check before any model call: what changed since enqueue ends the request with
AI_NOT_PERMITTED and calls no model."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import delete

from access import flags
from access.checks import Gate
from core.actions import ActionRecord
from core.errors import AI_NOT_PERMITTED
from core.ids import new_request_id
from core.logs import expanded
from core.redis import connect
from core.settings import Settings
from core.tables import AddOnAssignment, Group, Issue
from subscriptions.messages import route_id
from subscriptions.streams import replay
from worker.deps import build_deps
from worker.jobs import run_action

ALICE = "gid://gitlab/User/2"


def summarize(resource: str = "gid://gitlab/Issue/1", user_id: int = 2) -> ActionRecord:
    return ActionRecord(request_id=new_request_id(), feature="summarize_comments", user_id=user_id, resource=resource)


async def _run(
    settings: Settings, record: ActionRecord, change: Callable[[Any], Awaitable[Any]] | None = None,
    outcome: str = "answered",
) -> list:
    redis = connect(settings.redis_url or "")
    deps = build_deps(settings, redis)
    try:
        if change is not None:
            async with deps.sessions() as session, session.begin():
                await change(session)
        assert await run_action({"deps": deps, "job_try": 1}, record.model_dump_json()) == outcome
        return await replay(redis, route_id(ALICE, resource_gid=record.resource), (0, 0))
    finally:
        await deps.close()
        await redis.aclose()


async def test_an_allowed_action_is_answered(settings: Settings, seeded: dict) -> None:
    (final,) = await _run(settings, summarize())
    assert final.errors == () and final.content


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda s: flags.disable(s, "ai_global_switch"), id="flag-turned-off"),
        pytest.param(lambda s: s.execute(delete(AddOnAssignment).where(AddOnAssignment.user_id == 2)), id="seat-taken"),
        pytest.param(lambda s: s.execute(Group.__table__.update().values(duo_features_enabled=False)), id="duo-off"),
        pytest.param(lambda s: s.execute(delete(Issue).where(Issue.id == 1)), id="resource-gone"),
    ],
)
async def test_what_changed_since_enqueue_ends_the_request_without_a_model_call(
    settings: Settings, seeded: dict, change: Callable[[Any], Awaitable[Any]]
) -> None:
    completions = _sample("gitlab_sli_llm_completion_total")
    refused = _sample("switchboard_ai_actions_refused_total")
    (final,) = await _run(settings, summarize(), change, outcome="refused")
    assert final.errors == (AI_NOT_PERMITTED,) and final.content is None
    # A refusal is an answer, not a completion: the llm_completion SLI does not count it (neither way).
    assert _sample("gitlab_sli_llm_completion_total") == completions
    assert _sample("switchboard_ai_actions_refused_total") == refused + 1


def _sample(name: str) -> float:
    return REGISTRY.get_sample_value(name, {"feature": "summarize_comments"}) or 0.0


async def test_the_recheck_reads_fresh_state_per_database(settings: Settings, seeded: dict) -> None:
    redis = connect(settings.redis_url or "")
    deps = build_deps(settings, redis)
    try:
        async with deps.sessions() as session:
            allowed = await Gate(deps.flags, deps.entitlements, "self_managed").recheck(session, summarize())
            assert allowed and allowed.resource is not None  # the issue read by check 5, for the prompt
            assert not await Gate(deps.flags, deps.entitlements, "self_managed").recheck(session, summarize(user_id=4))  # carol: no seat
            assert not await Gate(deps.flags, deps.entitlements, "saas").recheck(session, summarize())  # alice's seat is the instance's
    finally:
        await deps.close()
        await redis.aclose()


async def test_a_job_runs_with_its_pushed_flags(settings: Settings, seeded: dict) -> None:
    seen: list[bool] = []
    redis = connect(settings.redis_url or "")
    deps = build_deps(settings, redis)
    original = deps.publisher.publish

    async def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(bool(expanded(x=1)))
        return await original(*args, **kwargs)

    deps.publisher.publish = spy  # type: ignore[method-assign]
    record = ActionRecord(request_id=new_request_id(), feature="chat", user_id=2, inputs={"content": "hi"},
                          flags={"expanded_ai_logging": True})
    try:
        await run_action({"deps": deps, "job_try": 1}, record.model_dump_json())
    finally:
        await deps.close()
        await redis.aclose()
    assert seen and all(seen)
    assert not bool(expanded(x=1))
