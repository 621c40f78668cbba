"""Issue 3's "done when", end to end over real processes seeded with `switchboard seed --json`: alice runs
every feature, bob only the Duo Pro ones, carol and mallory are refused with GitLab's texts, nobody follows
another user's responses, and `ai_global_switch` stops everything but chat within 5 s."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from catalogue import Feature, external_features
from catalogue.add_ons import requirement
from core.errors import AI_NOT_PERMITTED, RESOURCE_NOT_AVAILABLE
from tests._client import GraphQLSocket, post
from tests._stack import Stack
from tests.api._world import action_input

pytestmark = pytest.mark.timeout(90)

ACTION = "mutation($input: AiActionInput!) { aiAction(input: $input) { requestId errors } }"
_BY_TYPE = {"Issue": "issue", "MergeRequest": "merge_request", "Vulnerability": "vulnerability", "Epic": "epic"}


def resource_for(stack: Stack, feature: Feature) -> str | None:
    if not feature.resource_required:
        return None
    for kind, name in _BY_TYPE.items():
        if kind in feature.resource_types:
            return stack.seed["resources"][name]
    if "Project" in feature.resource_types:
        return stack.seed["projects"]["gitlab-duo/test"]
    return stack.seed["groups"]["gitlab-duo"]


async def ask(stack: Stack, user: str, feature: Feature) -> dict[str, Any]:
    return await post(stack.url, stack.token(user), ACTION, {"input": action_input(feature, resource_for(stack, feature))})


async def test_alice_runs_every_feature_and_the_worker_lets_each_through(stack: Stack) -> None:
    socket = await GraphQLSocket.connect(stack.ws_url, stack.token("alice"))
    for feature in external_features():
        resource = resource_for(stack, feature)
        variables = {"userId": stack.gid("alice")} | ({"resourceId": resource} if resource else {"aiAction": "CHAT"})
        op = await socket.subscribe(variables, settle_s=0.1)
        result = await ask(stack, "alice", feature)
        assert "errors" not in result and result["data"]["aiAction"]["errors"] == [], (feature.key, result)
        request_id = result["data"]["aiAction"]["requestId"]
        while True:
            message = await socket.message(op, timeout=30)
            if message["requestId"] == request_id and message["role"] == "ASSISTANT" and message["chunkId"] is None:
                break
        assert AI_NOT_PERMITTED not in (message["errors"] or []), feature.key
    await socket.close()


async def test_bob_is_refused_the_duo_enterprise_only_features(stack: Stack) -> None:
    for feature in external_features():
        payload = (await ask(stack, "bob", feature))["data"]["aiAction"]
        if "duo_pro" in requirement(feature).add_ons:
            assert payload["errors"] == [] and payload["requestId"], feature.key
        else:
            assert payload == {"requestId": None, "errors": [AI_NOT_PERMITTED]}, feature.key


async def test_carol_without_a_seat_and_mallory_without_access_are_refused_with_gitlabs_texts(stack: Stack) -> None:
    for feature in external_features():
        carol = await ask(stack, "carol", feature)
        assert carol["data"]["aiAction"] == {"requestId": None, "errors": [AI_NOT_PERMITTED]}, feature.key
        mallory = await ask(stack, "mallory", feature)
        if feature.resource_required:
            assert [e["message"] for e in mallory["errors"]] == [RESOURCE_NOT_AVAILABLE], feature.key
        else:
            assert mallory["data"]["aiAction"] == {"requestId": None, "errors": [AI_NOT_PERMITTED]}


async def test_nobody_follows_another_users_responses(stack: Stack) -> None:
    socket = await GraphQLSocket.connect(stack.ws_url, stack.token("bob"))
    for variables in ({"userId": stack.gid("alice"), "aiAction": "CHAT"},
                      {"userId": stack.gid("alice"), "resourceId": stack.seed["resources"]["issue"]}):
        frame = await socket.next(await socket.subscribe(variables, settle_s=0))
        errors = frame["payload"] if frame["type"] == "error" else frame["payload"]["errors"]
        assert errors and RESOURCE_NOT_AVAILABLE in str(errors)
    await socket.close()


async def _until(check: Any, timeout_s: float) -> float:
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < timeout_s, "not within the flag cache time"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def test_turning_ai_global_switch_off_stops_everything_but_chat_within_5_s(stack: Stack) -> None:
    features = {f.key: f for f in external_features()}
    root = {"PRIVATE-TOKEN": stack.token("root")}

    async def refused() -> bool:
        result = await ask(stack, "alice", features["explain_code"])
        return [e["message"] for e in result.get("errors", [])] == ["required feature flag is disabled."]

    async def accepted() -> bool:
        return not (await ask(stack, "alice", features["explain_code"])).get("errors")

    async with httpx.AsyncClient(base_url=stack.url, headers=root, timeout=10) as http:
        assert (await http.post("/api/v4/features/ai_global_switch", data={"value": "false"})).status_code == 201
        try:
            assert await _until(refused, 5.5) <= 5.5
            chat = await ask(stack, "alice", features["chat"])
            assert chat["data"]["aiAction"]["errors"] == []
        finally:
            assert (await http.delete("/api/v4/features/ai_global_switch")).status_code == 204
        await _until(accepted, 5.5)
