"""Authentication over HTTP (SPEC §5): a bad token gets 401 with GitLab's body, no token is anonymous, and
GitLab's scope rules: `aiAction` needs `api` or `ai_features`, every other mutation `api`, reading any scope.
Refusals are logged as `auth_failed` with a reason, never with the token."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from access.admin.accounts import create_token, revoke_tokens
from api.app import create_app
from api.services import Services, open_services
from core.errors import RESOURCE_NOT_AVAILABLE
from core.settings import Settings

ACTION = "mutation($input: AiActionInput!) { aiAction(input: $input) { requestId errors } }"
INSTANCE_UPDATE = """mutation($input: AiFeatureSettingUpdateInput!) { aiFeatureSettingUpdate(input: $input) { errors } }"""
DISABLE_CHAT = {"input": {"feature": "DUO_CHAT", "provider": "DISABLED"}}
CHAT = {"input": {"chat": {"content": "hello"}}}
ME = "query { currentUser { username } }"
# GitLab's body, and the same as a GraphQL error that says why
UNAUTHORIZED = {"message": "401 Unauthorized",
                "errors": [{"message": "401 Unauthorized", "extensions": {"reason": "invalid_token"}}]}


@pytest.fixture
async def client(settings: Settings, seeded: dict) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    app = create_app(settings)
    async with open_services(settings) as services:
        app.state.services = services
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://switchboard") as http:
            yield http, services


async def token_for(services: Services, user: str, scopes: str) -> str:
    async with services.sessions() as session, session.begin():
        return await create_token(session, user, scopes=scopes, name=f"only-{scopes}")


async def gql(http: httpx.AsyncClient, token: str | None, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await http.post("/api/graphql", json={"query": query, "variables": variables or {}}, headers=headers)


@pytest.mark.parametrize("headers", [
    pytest.param({"Authorization": "Bearer glpat-not-a-token"}, id="bearer"),
    pytest.param({"PRIVATE-TOKEN": "glpat-not-a-token"}, id="private-token"),
])
async def test_a_bad_token_gets_401_with_gitlabs_body(client: tuple, headers: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    http, _ = client
    with caplog.at_level(logging.INFO):
        response = await http.post("/api/graphql", json={"query": ME}, headers=headers)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.headers["content-type"].startswith("application/json")
    failures = [r for r in caplog.records if r.getMessage() == "auth_failed"]
    assert [r.reason for r in failures] == ["invalid_token"]  # type: ignore[attr-defined]
    assert "glpat-not-a-token" not in caplog.text


async def test_a_revoked_token_gets_401(settings: Settings, seeded: dict) -> None:
    uncached = settings.model_copy(update={"auth_cache_s": 0})  # not waiting out the 5 s cache
    app = create_app(uncached)
    async with open_services(uncached) as services:
        app.state.services = services
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://switchboard") as http:
            await _revoke_then_ask(http, services)


async def _revoke_then_ask(http: httpx.AsyncClient, services: Services) -> None:
    token = await token_for(services, "bob", "api")
    assert (await gql(http, token, ME)).json() == {"data": {"currentUser": {"username": "bob"}}}
    async with services.sessions() as session, session.begin():
        await revoke_tokens(session, "bob", name="only-api")
    response = await gql(http, token, ME)
    assert response.status_code == 401 and response.json() == UNAUTHORIZED


async def test_a_mutation_without_a_token_says_the_token_is_missing(client: tuple, caplog: pytest.LogCaptureFixture) -> None:
    http, _ = client
    with caplog.at_level(logging.INFO):
        action = (await gql(http, None, ACTION, CHAT)).json()
    assert [(e["message"], e["extensions"]) for e in action["errors"]] == [(RESOURCE_NOT_AVAILABLE, {"reason": "missing_token"})]
    assert [r.reason for r in caplog.records if r.getMessage() == "auth_failed"] == ["missing_token"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(("headers", "reason"), [
    pytest.param({}, "missing_token", id="missing"),
    pytest.param({"PRIVATE-TOKEN": "glpat-not-a-token"}, "invalid_token", id="invalid"),
])
async def test_the_features_api_logs_why_it_refused(
    client: tuple, headers: dict[str, str], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    http, _ = client
    with caplog.at_level(logging.INFO):
        response = await http.get("/api/v4/features", headers=headers)
    assert response.status_code == 401 and response.json() == {"message": "401 Unauthorized"}
    assert [r.reason for r in caplog.records if r.getMessage() == "auth_failed"] == [reason]  # type: ignore[attr-defined]
    assert "glpat-not-a-token" not in caplog.text


async def test_no_token_stays_anonymous(client: tuple) -> None:
    http, _ = client
    response = await gql(http, None, ME)
    assert response.status_code == 200
    assert response.json() == {"data": {"currentUser": None}}


async def test_an_ai_features_token_runs_ai_action_but_no_other_mutation(client: tuple, caplog: pytest.LogCaptureFixture) -> None:
    http, services = client
    action = (await gql(http, await token_for(services, "alice", "ai_features"), ACTION, CHAT)).json()
    assert action["data"]["aiAction"]["errors"] == [] and action["data"]["aiAction"]["requestId"]
    token = await token_for(services, "root", "ai_features")  # an administrator's
    with caplog.at_level(logging.INFO):
        update = (await gql(http, token, INSTANCE_UPDATE, DISABLE_CHAT)).json()
    assert update["data"] == {"aiFeatureSettingUpdate": None}
    (error,) = update["errors"]
    assert error["message"] == RESOURCE_NOT_AVAILABLE
    assert error["extensions"] == {"reason": "insufficient_scope"}
    assert any(r.getMessage() == "auth_failed" and r.reason == "insufficient_scope" for r in caplog.records)  # type: ignore[attr-defined]
    assert token not in caplog.text


async def test_a_read_api_token_reads_but_runs_no_mutation(client: tuple) -> None:
    http, services = client
    token = await token_for(services, "alice", "read_api")
    assert (await gql(http, token, ME)).json() == {"data": {"currentUser": {"username": "alice"}}}
    action = (await gql(http, token, ACTION, CHAT)).json()
    assert [(e["message"], e["extensions"]) for e in action["errors"]] == [(RESOURCE_NOT_AVAILABLE, {"reason": "insufficient_scope"})]


async def test_an_api_token_runs_other_mutations(client: tuple) -> None:
    http, services = client
    token = await token_for(services, "root", "api")
    update = (await gql(http, token, INSTANCE_UPDATE, DISABLE_CHAT)).json()
    assert "errors" not in update, update
