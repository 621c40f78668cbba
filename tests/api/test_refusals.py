"""Why `aiAction` refused: GitLab's payload text stays as it is, and the reason (the entitlement's `Refusal`)
is in the response's top-level `extensions.refusals`, one entry per refused field, under its alias."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from access.admin.namespaces import get_group, set_setting
from api.app import create_app
from api.services import Services, open_services
from core.errors import AI_NOT_PERMITTED
from core.settings import Settings

CHAT = 'aiAction(input: {chat: {content: "hi"}}) { errors requestId }'


@pytest.fixture
async def client(settings: Settings, seeded: dict) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    app = create_app(settings)
    async with open_services(settings) as services:
        app.state.services = services
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://switchboard") as http:
            yield http, services


async def ask(http: httpx.AsyncClient, token: str, document: str, variables: dict | None = None) -> dict:
    response = await http.post("/api/graphql", json={"query": document, "variables": variables or {}},
                               headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    return response.json()


async def test_a_user_without_a_seat_is_told_no_seat_beside_gitlabs_text(client: tuple, seeded: dict) -> None:
    http, _ = client
    answer = await ask(http, seeded["users"]["carol"]["token"], f"mutation {{ {CHAT} }}")
    assert answer["data"] == {"aiAction": {"errors": [AI_NOT_PERMITTED], "requestId": None}}
    assert "errors" not in answer
    assert answer["extensions"] == {"refusals": [{"path": ["aiAction"], "message": AI_NOT_PERMITTED, "reason": "no_seat"}]}


async def test_duo_switched_off_on_the_resources_group_is_duo_disabled(client: tuple, seeded: dict) -> None:
    http, services = client
    async with services.sessions() as session, session.begin():
        await set_setting(session, await get_group(session, "gitlab-duo"), "duo_features_enabled", "false")
    document = """mutation($issue: AiModelID!) {
      first: aiAction(input: {explainCode: {resourceId: $issue, code: "x"}}) { errors }
      second: aiAction(input: {explainCode: {resourceId: $issue, code: "y"}}) { errors }
    }"""
    answer = await ask(http, seeded["users"]["alice"]["token"], document, {"issue": seeded["resources"]["issue"]})
    assert answer["data"] == {"first": {"errors": [AI_NOT_PERMITTED]}, "second": {"errors": [AI_NOT_PERMITTED]}}
    assert [(r["path"], r["reason"]) for r in answer["extensions"]["refusals"]] == [(["first"], "duo_disabled"), (["second"], "duo_disabled")]


async def test_an_accepted_action_has_no_refusals_and_one_operation_never_sees_anothers(client: tuple, seeded: dict) -> None:
    http, _ = client
    refused = await ask(http, seeded["users"]["carol"]["token"], f"mutation {{ {CHAT} }}")
    assert refused["extensions"]["refusals"][0]["reason"] == "no_seat"
    accepted = await ask(http, seeded["users"]["alice"]["token"], f"mutation {{ {CHAT} }}")
    assert accepted["data"]["aiAction"]["errors"] == [] and accepted["data"]["aiAction"]["requestId"]
    assert "extensions" not in accepted
