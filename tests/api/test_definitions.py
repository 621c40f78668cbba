"""`GET /v1/models/definitions` serves models.yml and feature_settings.yml in the seed's shape."""

from __future__ import annotations

import httpx
import pytest

import catalogue
from api.app import create_app
from core.settings import Settings


@pytest.fixture
async def client(tmp_path) -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
    app = create_app(Settings(data_dir=tmp_path))  # the route needs no services: no lifespan
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://switchboard") as http:
        yield http


async def test_definitions_in_the_shape_gitlab_reads(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/models/definitions")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"models", "unit_primitives"}
    shipped = catalogue.get_catalogue()
    assert body["models"][0] == {"name": "Claude Sonnet 4.6 - Anthropic", "identifier": "claude_sonnet_4_6"}
    assert [m["identifier"] for m in body["models"]] == list(shipped.models)
    chat = next(entry for entry in body["unit_primitives"] if entry["feature_setting"] == "duo_chat")
    assert set(chat) == {"feature_setting", "default_model", "selectable_models", "beta_models", "unit_primitives"}
    assert chat["default_model"] == "claude_sonnet_4_6" and "claude_sonnet_4_6_vertex" in chat["selectable_models"]
    assert "duo_chat" in chat["unit_primitives"]
    assert {entry["feature_setting"] for entry in body["unit_primitives"]} == {f.feature_setting for f in catalogue.FEATURES.values()}


async def test_gitlabs_encoded_path_reaches_the_same_route(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/models%2Fdefinitions")
    assert response.status_code == 200 and "unit_primitives" in response.json()


async def test_no_authentication_is_needed_and_nothing_else_is_served_there(client: httpx.AsyncClient) -> None:
    assert (await client.post("/v1/models/definitions")).status_code == 405
