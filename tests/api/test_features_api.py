"""GitLab's Features REST API over HTTP (the real app, its real services): admin only, Flipper semantics."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from access.admin.accounts import create_token
from api.app import create_app
from api.services import Services, open_services
from core.settings import Settings


@pytest.fixture
async def client(settings: Settings, seeded: dict) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    app = create_app(settings)
    async with open_services(settings) as services:
        app.state.services = services
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://switchboard") as http:
            yield http, services


def auth(seeded: dict, user: str = "root") -> dict[str, str]:
    return {"PRIVATE-TOKEN": seeded["users"][user]["token"]}


async def test_set_percentage_actors_list_and_delete(client: tuple, seeded: dict) -> None:
    http, services = client
    response = await http.post("/api/v4/features/ai_model_switching", data={"value": "25", "key": "percentage_of_actors"},
                               headers=auth(seeded))
    assert response.status_code == 201
    assert response.json() == {
        "name": "ai_model_switching",
        "state": "conditional",
        "gates": [{"key": "boolean", "value": False}, {"key": "percentage_of_actors", "value": 25}],
        "definition": {"name": "ai_model_switching", "type": "beta", "default_enabled": True, "pushed": True,
                       "description": response.json()["definition"]["description"]},
    }
    response = await http.post("/api/v4/features/expanded_ai_logging", json={"value": True, "user": "alice,bob"},
                               headers=auth(seeded))
    assert response.json()["gates"] == [{"key": "boolean", "value": False}, {"key": "actors", "value": ["User:2", "User:3"]}]
    await http.post("/api/v4/features/expanded_ai_logging?value=false&user=bob", headers=auth(seeded))
    await http.post("/api/v4/features/ai_global_switch", data={"value": "false", "group": "gitlab-duo",
                                                               "project": "gitlab-duo/test"}, headers=auth(seeded))
    listing = (await http.get("/api/v4/features", headers=auth(seeded))).json()
    assert [(f["name"], f["state"]) for f in listing] == [
        ("ai_global_switch", "off"), ("ai_model_switching", "conditional"), ("expanded_ai_logging", "conditional")
    ]
    assert listing[2]["gates"][1] == {"key": "actors", "value": ["User:2"]}
    assert await services.flags.enabled("expanded_ai_logging", "User:2")  # the writer's cache was refreshed
    assert (await http.delete("/api/v4/features/ai_global_switch", headers=auth(seeded))).status_code == 204
    assert [f["name"] for f in (await http.get("/api/v4/features", headers=auth(seeded))).json()] == [
        "ai_model_switching", "expanded_ai_logging"
    ]
    definitions = (await http.get("/api/v4/features/definitions", headers=auth(seeded))).json()
    assert {"ai_global_switch", "ai_duo_chat_switch", "expanded_ai_logging"} <= {d["name"] for d in definitions}


async def test_on_and_off_for_everyone(client: tuple, seeded: dict) -> None:
    http, services = client
    off = await http.post("/api/v4/features/ai_global_switch", data={"value": "0"}, headers=auth(seeded))
    assert off.json()["state"] == "off" and not await services.flags.enabled("ai_global_switch", "User:2")
    on = await http.post("/api/v4/features/ai_global_switch", data={"value": "true"}, headers=auth(seeded))
    assert on.json() == {**on.json(), "state": "on", "gates": [{"key": "boolean", "value": True}]}


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({}, "value is missing"),
        ({"value": "maybe"}, "value must be true, false or a percentage"),
        ({"value": "101", "key": "percentage_of_actors"}, "between 0 and 100"),
        ({"value": "10"}, "percentage_of_time is not supported"),
        ({"value": "true", "user": "nobody"}, "User 'nobody' not found"),
        ({"value": "true", "project": "gitlab-duo/none"}, "Project 'gitlab-duo/none' not found"),
        ({"value": "true", "feature_group": "gitlab_team_members"}, "feature_group gates are not supported"),
        ({"value": "true", "key": "percentage_of_time"}, "key 'percentage_of_time' is not supported"),
    ],
)
async def test_bad_requests_are_400_with_a_message(client: tuple, seeded: dict, params: dict, error: str) -> None:
    http, _ = client
    response = await http.post("/api/v4/features/some_flag", data=params, headers=auth(seeded))
    assert response.status_code == 400 and error in response.json()["message"]
    bad_name = await http.post("/api/v4/features/Bad-Name", data={"value": "true"}, headers=auth(seeded))
    assert bad_name.status_code == 400


async def test_only_admins_with_the_api_scope(client: tuple, seeded: dict) -> None:
    http, services = client
    assert (await http.get("/api/v4/features")).status_code == 401
    assert (await http.get("/api/v4/features", headers={"PRIVATE-TOKEN": "glpat-nope"})).json() == {"message": "401 Unauthorized"}
    forbidden = await http.post("/api/v4/features/ai_global_switch", data={"value": "false"}, headers=auth(seeded, "alice"))
    assert forbidden.status_code == 403 and forbidden.json() == {"message": "403 Forbidden"}
    async with services.sessions() as session, session.begin():
        read_only = await create_token(session, "root", scopes="read_api")
    headers = {"Authorization": f"Bearer {read_only}"}
    assert (await http.get("/api/v4/features", headers=headers)).status_code == 200
    refused = await http.post("/api/v4/features/ai_global_switch", data={"value": "false"}, headers=headers)
    assert refused.status_code == 403 and refused.json()["error"] == "insufficient_scope"
    assert await services.flags.enabled("ai_global_switch")


async def test_a_nul_in_a_target_is_a_400_not_a_database_error(client: tuple, seeded: dict) -> None:
    http, _ = client
    response = await http.post("/api/v4/features/some_flag", data={"value": "true", "group": "a\x00b"}, headers=auth(seeded))
    assert response.status_code == 400 and "not found" in response.json()["message"]
