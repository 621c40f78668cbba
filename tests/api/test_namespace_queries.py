"""`currentUser`, `group(fullPath:)`, `project(fullPath:)` and `aiFeatures` with the caller's availability."""

from __future__ import annotations

from typing import Any

from access import flags
from access.admin import namespaces
from access.tokens import authenticate
from api.graphql.context import Context
from tests.api._world import SCHEMA, World


async def query(world: World, user: str | None, document: str, **variables: Any) -> tuple[dict | None, list[str]]:
    principal = None
    if user:
        async with world.services.sessions() as session:
            principal = await authenticate(session, world.tokens[user])
    context = Context(None, None, world.services, principal)  # type: ignore[arg-type]
    result = await SCHEMA.execute(document, variable_values=variables, context_value=context)
    return result.data, [e.message for e in result.errors or []]


ME = "{ currentUser { id username name admin duoAddOns duoChatAvailable } }"
GROUP = """query($path: ID!) { group(fullPath: $path) { id fullPath duoFeaturesEnabled lockDuoFeaturesEnabled
  duoFeaturesEnabledLockedBy experimentFeaturesEnabled aiFeatures { name available } } }"""
PROJECT = """query($path: ID!) { project(fullPath: $path) { id fullPath visibility duoFeaturesEnabled
  duoFeaturesEnabledLockedBy aiFeatures { name available } } }"""
FEATURES = "query($id: AiModelID) { aiFeatures(resourceId: $id) { name maturity available } }"


def available(features: list[dict]) -> set[str]:
    return {f["name"] for f in features if f["available"]}


async def test_current_user_tells_a_frontend_about_duo(world: World) -> None:
    data, errors = await query(world, "alice", ME)
    assert errors == [] and data["currentUser"] == {
        "id": "gid://gitlab/User/2", "username": "alice", "name": "Alice Liddell", "admin": False,
        "duoAddOns": ["duo_enterprise"], "duoChatAvailable": True,
    }
    data, _ = await query(world, "carol", ME)
    assert data["currentUser"]["duoAddOns"] == [] and data["currentUser"]["duoChatAvailable"] is False
    await world.admin(lambda session: flags.disable(session, "ai_duo_chat_switch"))
    data, _ = await query(world, "alice", ME)
    assert data["currentUser"]["duoChatAvailable"] is False
    assert (await query(world, None, ME))[0] == {"currentUser": None}


async def test_group_and_project_with_their_effective_duo_settings(world: World) -> None:
    data, errors = await query(world, "bob", GROUP, path="gitlab-duo")
    group = data["group"]
    assert errors == [] and group["id"] == "gid://gitlab/Group/1" and group["duoFeaturesEnabled"] is True
    assert group["experimentFeaturesEnabled"] is True and group["duoFeaturesEnabledLockedBy"] is None
    assert available(group["aiFeatures"]) >= {"chat", "explainCode"} and "summarizeComments" not in available(group["aiFeatures"])

    async def lock_off(session):  # noqa: ANN001, ANN202
        top = await namespaces.get_group(session, "gitlab-duo")
        await namespaces.set_setting(session, top, "duo_features_enabled", "false")
        await namespaces.set_setting(session, top, "lock_duo_features_enabled", "true")

    await world.admin(lock_off)
    data, _ = await query(world, "alice", PROJECT, path="gitlab-duo/child/web")
    project = data["project"]
    assert project["duoFeaturesEnabled"] is False and project["duoFeaturesEnabledLockedBy"] == "gitlab-duo"
    assert available(project["aiFeatures"]) == set()
    data, _ = await query(world, "alice", GROUP, path="gitlab-duo")
    assert data["group"]["lockDuoFeaturesEnabled"] is True and data["group"]["duoFeaturesEnabledLockedBy"] is None


async def test_what_the_caller_cannot_see_is_null(world: World) -> None:
    assert (await query(world, "mallory", GROUP, path="gitlab-duo"))[0] == {"group": None}
    assert (await query(world, "dave", PROJECT, path="gitlab-duo/test"))[0] == {"project": None}
    assert (await query(world, "alice", PROJECT, path="nowhere/x"))[0] == {"project": None}
    assert (await query(world, "dave", PROJECT, path="gitlab-duo/child/web"))[0]["project"]["fullPath"] == "gitlab-duo/child/web"


async def test_ai_features_availability_per_caller_and_resource(world: World) -> None:
    data, _ = await query(world, "alice", FEATURES)
    assert {"chat", "explainCode", "summarizeComments"} <= available(data["aiFeatures"])
    data, _ = await query(world, "bob", FEATURES)
    assert "summarizeComments" not in available(data["aiFeatures"]) and "chat" in available(data["aiFeatures"])
    data, _ = await query(world, "alice", FEATURES, id=world.gids["vulnerability"])
    assert "explainCode" not in available(data["aiFeatures"])  # not about vulnerabilities
    data, errors = await query(world, "mallory", FEATURES, id=world.gids["issue"])
    assert data is None and errors and "you don't have permission" in errors[0]


async def test_paths_that_no_namespace_can_have_are_null_without_a_query(world: World) -> None:
    for path in ("\x00", "a\x00b", "../x", "", "a//b", "x" * 2000 + "\x00"):
        assert (await query(world, "alice", GROUP, path=path)) == ({"group": None}, [])
        assert (await query(world, "alice", PROJECT, path=path)) == ({"project": None}, [])
