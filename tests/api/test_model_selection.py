"""Model selection through the real GraphQL schema against a real database: the instance admin's settings,
self-hosted models, group owners' choices down the tree, every validation error, who may change what, the
`ai_model_switching` flag and the audit log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from access import flags
from access.admin import namespaces
from access.admin.accounts import create_token, create_user
from access.tokens import authenticate
from api.graphql.context import Context
from api.graphql.schema import build_schema
from api.services import Services
from core.errors import RESOURCE_NOT_AVAILABLE
from core.secrets import secret_box
from core.tables import SelfHostedModel

SCHEMA = build_schema()
SONNET, HAIKU = "claude_sonnet_4_6", "claude_haiku_4_5_20251001"
NOT_ENABLED = "Model selection is not enabled."
NOT_FOUND = "Model reference not found in definitions"

INSTANCE_UPDATE = """mutation($input: AiFeatureSettingUpdateInput!) { aiFeatureSettingUpdate(input: $input) {
  aiFeatureSetting { feature provider defaultModelRef availableModels { nodes { ref name } } } errors } }"""
NAMESPACE_QUERY = """query($id: NamespaceID!) { aiNamespaceFeatureSettings(namespaceId: $id) { nodes {
  feature title mainFeature provider releaseState offeredModelRef offeredModelName stale effectiveModelRef
  offeredModels { nodes { ref name } } } } }"""
NAMESPACE_UPDATE = """mutation($input: AiNamespaceFeatureSettingUpdateInput!) { aiNamespaceFeatureSettingUpdate(input: $input) {
  aiFeatureSettings { feature offeredModelRef offeredModelName offeredModels { nodes { ref } } } errors } }"""
MODEL_CREATE = """mutation($input: AiSelfHostedModelCreateInput!) { aiSelfHostedModelCreate(input: $input) {
  selfHostedModel { id ref name model endpoint identifier hasApiToken } errors } }"""
MODEL_UPDATE = """mutation($input: AiSelfHostedModelUpdateInput!) { aiSelfHostedModelUpdate(input: $input) {
  selfHostedModel { name hasApiToken } errors } }"""
MODEL_DELETE = """mutation($input: AiSelfHostedModelDeleteInput!) { aiSelfHostedModelDelete(input: $input) { errors } }"""


@dataclass
class Admin:
    services: Services
    tokens: dict[str, str]
    groups: dict[str, str]

    async def run(self, user: str, document: str, **variables: Any) -> dict[str, Any]:
        """The data of the operation; a top-level error's message under "error"."""
        async with self.services.sessions() as session:
            principal = await authenticate(session, self.tokens[user])
        self.services.flags.invalidate()
        result = await SCHEMA.execute(document, variable_values=variables,
                                      context_value=Context(None, None, self.services, principal))  # type: ignore[arg-type]
        if result.errors:
            return {"error": result.errors[0].message}
        (value,) = (result.data or {}).values()
        return value

    async def instance(self, provider: str = "VENDORED", available: list[str] | None = None, default: str | None = None) -> list[str]:
        found = await self.run("root", INSTANCE_UPDATE, input={"feature": "DUO_CHAT", "provider": provider,
                                                              "availableModelRefs": available, "defaultModelRef": default})
        return found["errors"]

    async def choose(self, user: str, group: str, ref: str | None, feature: str = "DUO_CHAT") -> Any:
        found = await self.run(user, NAMESPACE_UPDATE, input={"namespaceId": self.groups[group], "feature": feature,
                                                             "offeredModelRef": ref})
        return found.get("error") or found["errors"]

    async def chat_node(self, user: str, group: str) -> dict[str, Any]:
        found = await self.run(user, NAMESPACE_QUERY, id=self.groups[group])
        return next(node for node in found["nodes"] if node["feature"] == "DUO_CHAT")


@pytest.fixture
async def admin(services: Services, seeded: dict) -> AsyncIterator[Admin]:
    async with services.sessions() as session, session.begin():
        sam = await create_user(session, "sam")  # owner of the subgroup only
        await namespaces.add_member(session, sam, await namespaces.get_group(session, "gitlab-duo/child"), "owner")
        sam_token = await create_token(session, "sam")
    tokens = {name: user["token"] for name, user in seeded["users"].items()} | {"sam": sam_token}
    yield Admin(services, tokens, {"top": seeded["groups"]["gitlab-duo"], "sub": seeded["groups"]["gitlab-duo/child"]})


async def test_the_done_when_story_instance_then_owner_then_subgroup(admin: Admin) -> None:
    assert await admin.instance(available=[SONNET, HAIKU], default=SONNET) == []
    assert await admin.choose("alice", "top", HAIKU) == []
    top = await admin.chat_node("alice", "top")
    assert (top["offeredModelRef"], top["offeredModelName"], top["stale"], top["effectiveModelRef"]) == (
        HAIKU, "Claude Haiku 4.5 - Anthropic", False, HAIKU)
    assert [m["ref"] for m in top["offeredModels"]["nodes"]] == [SONNET, HAIKU]
    assert (top["title"], top["mainFeature"], top["provider"], top["releaseState"]) == (
        "GitLab Duo Chat", "GitLab Duo Chat", "vendored", "GA")
    # The subgroup's owner may only pick what the parent made available.
    assert await admin.choose("sam", "sub", SONNET) == [f"Selected model '{SONNET}' is not compatible with the feature 'duo_chat'"]
    assert await admin.choose("sam", "sub", HAIKU) == []
    sub = await admin.chat_node("sam", "sub")
    assert ([m["ref"] for m in sub["offeredModels"]["nodes"]], sub["effectiveModelRef"]) == ([HAIKU], HAIKU)
    # Blank inherits.
    assert await admin.choose("sam", "sub", "") == []
    assert (await admin.chat_node("sam", "sub"))["offeredModelRef"] is None


async def test_a_choice_the_instance_narrowed_away_is_reported_stale_and_ignored(admin: Admin) -> None:
    assert await admin.instance(available=[SONNET, HAIKU], default=SONNET) == []
    assert await admin.choose("alice", "top", HAIKU) == []
    assert await admin.instance(available=[SONNET], default=SONNET) == []
    top = await admin.chat_node("alice", "top")
    assert (top["offeredModelRef"], top["stale"], top["effectiveModelRef"]) == (HAIKU, True, SONNET)
    assert (await admin.chat_node("alice", "sub"))["offeredModels"]["nodes"] == [{"ref": SONNET, "name": "Claude Sonnet 4.6 - Anthropic"}]


INSTANCE_ERRORS = [  # provider, available, default → errors
    ("VENDORED", [SONNET], None, ["Default model can't be blank"]),
    ("VENDORED", [SONNET], HAIKU, ["Default model must be one of the available models"]),
    ("VENDORED", ["llama3"], "llama3", ["Selected model 'llama3' is not compatible with the feature 'duo_chat'"]),
    ("SELF_HOSTED", [SONNET], SONNET, ["Default model must be a self-hosted model when the provider is self_hosted"]),
]


async def test_instance_setting_validation(admin: Admin) -> None:
    for provider, available, default, errors in INSTANCE_ERRORS:
        assert await admin.instance(provider, available, default) == errors, (provider, available, default)
    assert (await admin.run("root", "{ aiFeatureSettings { nodes { configured } } }"))["nodes"][0] == {"configured": False}


async def test_an_unknown_model_reference_keeps_gitlabs_text_and_lists_the_valid_ones(admin: Admin) -> None:
    (instance,) = await admin.instance("VENDORED", ["nope"], "nope")
    assert instance.startswith(f"{NOT_FOUND}: 'nope'. Valid references: ")
    assert set(instance.split("Valid references: ")[1].split(", ")) >= {SONNET, HAIKU}
    assert await admin.instance(available=[SONNET], default=SONNET) == []
    assert await admin.choose("alice", "top", "gpt-17") == [f"{NOT_FOUND}: 'gpt-17'. Valid references: {SONNET}"]


async def test_namespace_choice_validation(admin: Admin) -> None:
    assert await admin.choose("alice", "top", "mistral") == ["Selected model 'mistral' is not compatible with the feature 'duo_chat'"]
    assert await admin.instance("DISABLED") == []
    assert await admin.choose("alice", "top", SONNET) == [f"Selected model '{SONNET}' is not compatible with the feature 'duo_chat'"]
    assert (await admin.chat_node("alice", "top"))["effectiveModelRef"] is None


async def test_who_may_read_and_change_settings(admin: Admin) -> None:
    assert await admin.choose("bob", "top", SONNET) == RESOURCE_NOT_AVAILABLE  # a developer
    assert await admin.choose("mallory", "top", SONNET) == RESOURCE_NOT_AVAILABLE
    assert await admin.choose("sam", "top", SONNET) == RESOURCE_NOT_AVAILABLE  # owns only the subgroup
    assert (await admin.run("bob", NAMESPACE_QUERY, id=admin.groups["top"]))["error"] == RESOURCE_NOT_AVAILABLE
    assert await admin.choose("alice", "sub", SONNET) == []  # ownership is inherited
    assert await admin.choose("root", "top", SONNET) == []  # admins may
    assert (await admin.run("alice", INSTANCE_UPDATE, input={"feature": "DUO_CHAT", "provider": "DISABLED"}))["error"] == RESOURCE_NOT_AVAILABLE
    for query in ("{ aiFeatureSettings { nodes { feature } } }", "{ aiSelfHostedModels { nodes { name } } }",
                  "{ aiModelSelectionAuditEvents { action } }"):
        assert (await admin.run("alice", query))["error"] == RESOURCE_NOT_AVAILABLE
    assert (await admin.run("alice", "query { aiNamespaceFeatureSettings(namespaceId: \"gid://gitlab/Project/1\") { nodes { feature } } }"))["error"].startswith("namespaceId")


async def test_everything_is_behind_ai_model_switching(admin: Admin) -> None:
    async with admin.services.sessions() as session, session.begin():
        await flags.disable(session, "ai_model_switching")
    assert (await admin.run("alice", NAMESPACE_QUERY, id=admin.groups["top"]))["error"] == NOT_ENABLED
    assert await admin.choose("alice", "top", SONNET) == [NOT_ENABLED]
    assert await admin.instance(available=[SONNET], default=SONNET) == [NOT_ENABLED]
    assert (await admin.run("root", "{ aiFeatureSettings { nodes { feature } } }"))["error"] == NOT_ENABLED


async def test_self_hosted_models_crud_keeps_the_token_encrypted_and_unreturned(admin: Admin) -> None:
    created = await admin.run("root", MODEL_CREATE, input={"name": "Our Llama", "model": "llama3", "endpoint": "http://llm.internal/v1",
                                                          "identifier": "meta-llama/Llama-3.1-8B", "apiToken": "tok-s3cret"})
    model = created["selfHostedModel"]
    assert created["errors"] == [] and model["hasApiToken"] and model["id"].startswith("gid://gitlab/Ai::SelfHostedModel/")
    async with admin.services.sessions() as session:
        row = await session.scalar(select(SelfHostedModel))
    assert row is not None and "tok-s3cret" not in (row.encrypted_api_token or "")
    assert secret_box(admin.services.settings).decrypt(row.encrypted_api_token or "") == "tok-s3cret"
    listed = await admin.run("root", "{ aiSelfHostedModels { nodes { ref name endpoint hasApiToken } } }")
    assert listed["nodes"] == [{"ref": model["ref"], "name": "Our Llama", "endpoint": "http://llm.internal/v1", "hasApiToken": True}]
    assert "apiToken" not in str(SCHEMA.get_type_by_name("AiSelfHostedModel"))

    # It works everywhere a model is chosen.
    assert await admin.instance("SELF_HOSTED", [model["ref"], SONNET], model["ref"]) == []
    assert await admin.choose("alice", "top", model["ref"]) == []
    assert (await admin.chat_node("alice", "top"))["offeredModelName"] == "Our Llama - Self-hosted"
    deleted = await admin.run("root", MODEL_DELETE, input={"id": model["id"]})
    assert deleted["errors"] == ["The self-hosted model is in use by the feature settings: duo_chat"]

    updated = await admin.run("root", MODEL_UPDATE, input={"id": model["id"], "name": "Llama 3.1", "apiToken": ""})
    assert updated == {"selfHostedModel": {"name": "Llama 3.1", "hasApiToken": False}, "errors": []}
    assert await admin.instance(available=[SONNET], default=SONNET) == []
    assert (await admin.run("root", MODEL_DELETE, input={"id": model["id"]}))["errors"] == []
    assert (await admin.run("root", "{ aiSelfHostedModels { nodes { ref } } }"))["nodes"] == []
    assert (await admin.chat_node("alice", "top"))["offeredModelRef"] is None  # choices of it went with it


async def test_self_hosted_model_validation(admin: Admin) -> None:
    valid = {"name": "Taken", "model": "mistral", "endpoint": "https://llm.internal/v1", "identifier": "mistral-7b"}
    assert (await admin.run("root", MODEL_CREATE, input=valid))["errors"] == []
    for changes, error in [
        ({"name": " "}, "Name can't be blank"),
        ({"model": "claude_sonnet_4_6"}, "Model must be one of: gpt, llama3, mistral"),
        ({"endpoint": "llm.internal:8000"}, "Endpoint is not a valid URL"),
        ({"name": "Taken"}, "Name has already been taken"),
    ]:
        assert (await admin.run("root", MODEL_CREATE, input=valid | {"name": "Other"} | changes))["errors"] == [error]


async def test_every_change_is_audited_with_who_what_before_and_after(admin: Admin) -> None:
    assert await admin.instance(available=[SONNET, HAIKU], default=SONNET) == []
    assert await admin.choose("alice", "top", HAIKU) == []
    assert await admin.choose("alice", "top", None) == []
    events = await admin.run("root", "{ aiModelSelectionAuditEvents { author action target before after } }")
    assert events == [
        {"author": "alice", "action": "namespace_feature_setting_updated", "target": "gitlab-duo:duo_chat",
         "before": {"offered_model_ref": HAIKU}, "after": None},
        {"author": "alice", "action": "namespace_feature_setting_updated", "target": "gitlab-duo:duo_chat",
         "before": None, "after": {"offered_model_ref": HAIKU}},
        {"author": "root", "action": "instance_feature_setting_updated", "target": "duo_chat", "before": None,
         "after": {"provider": "vendored", "default_model_ref": SONNET, "available_model_refs": [SONNET, HAIKU]}},
    ]
