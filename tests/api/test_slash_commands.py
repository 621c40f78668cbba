"""`aiSlashCommands` through the real schema and a seeded database (SPEC §13.2): what a page and a seat offer."""

from __future__ import annotations

import pytest

from api.services import Services
from core.errors import RESOURCE_NOT_AVAILABLE
from tests.api.test_chat_conversations import gql

QUERY = """query($resourceId: AiModelID, $url: String) {
  aiSlashCommands(resourceId: $resourceId, url: $url) { name description shouldSubmit } }"""
EVERYWHERE = ["/reset", "/clear", "/new", "/help"]


async def offered(services: Services, seeded: dict, user: str, **variables: str) -> list[str]:
    data, errors = await gql(services, seeded, user, QUERY, **variables)
    assert errors == []
    return [command["name"] for command in data["aiSlashCommands"]]


async def test_the_base_commands_and_the_code_commands_of_a_duo_pro_seat(services: Services, seeded: dict) -> None:
    names = await offered(services, seeded, "bob")
    assert names == [*EVERYWHERE, "/explain", "/refactor", "/tests", "/fix"]


@pytest.mark.parametrize(
    ("variables", "extra"),
    [
        ({"resourceId": "issue"}, "/summarize_comments"),
        ({"url": "https://gitlab.example/gitlab-duo/test/-/merge_requests/1"}, "/summarize_comments"),
        ({"resourceId": "vulnerability"}, "/vulnerability_explain"),
    ],
)
async def test_resource_commands_follow_the_page_and_need_duo_enterprise(
    services: Services, seeded: dict, variables: dict[str, str], extra: str
) -> None:
    variables = {k: seeded["resources"][v] if k == "resourceId" else v for k, v in variables.items()}
    assert extra in await offered(services, seeded, "alice", **variables)
    assert extra not in await offered(services, seeded, "bob", **variables)  # Duo Pro
    assert extra not in await offered(services, seeded, "alice")  # no page


async def test_a_resource_the_caller_cannot_read_is_refused(services: Services, seeded: dict) -> None:
    data, errors = await gql(services, seeded, "mallory", QUERY, resourceId=seeded["resources"]["issue"])
    assert errors == [RESOURCE_NOT_AVAILABLE] and data is None


async def test_should_submit_is_false_for_commands_that_take_input(services: Services, seeded: dict) -> None:
    data, _ = await gql(services, seeded, "bob", QUERY)
    submit = {c["name"]: c["shouldSubmit"] for c in data["aiSlashCommands"]}
    assert submit["/reset"] is True and submit["/explain"] is False
