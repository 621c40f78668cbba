"""The model actually called, end to end: settings made through `access.admin.model_settings`, an `aiAction` through
the real schema (pushed flags resolved at enqueue), the real worker job with real provider clients (mock
mode off) against the fake provider server of `tests._providers`, which records what it was asked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from arq.jobs import Job
from pydantic import SecretStr

from access import flags
from access.admin import model_settings, namespaces
from access.tokens import Principal, authenticate, get_principal
from api.graphql.context import Context
from api.graphql.schema import build_schema
from api.services import Services
from catalogue import get_catalogue
from core import keys
from core.actions import ActionRecord
from core.redis import connect
from core.secrets import secret_box
from core.settings import Settings
from tests._providers import FakeLLM, Reply
from worker.deps import Deps, build_deps
from worker.jobs import run_inline
from worker.llm import build_providers
from worker.llm.anthropic import AnthropicModel, build_anthropic_vertex
from worker.usage import read_usage

SCHEMA = build_schema()
ACTION = "mutation($input: AiActionInput!) { aiAction(input: $input) { requestId errors } }"
SONNET, HAIKU = "claude_sonnet_4_6", "claude_haiku_4_5_20251001"
MIGRATION = get_catalogue().feature_settings["duo_chat"].migrations[0]


@pytest.fixture
async def child_project(services: Services) -> str:
    async with services.sessions() as session, session.begin():
        project = await namespaces.create_project(session, "gitlab-duo/child/web")
    return f"gid://gitlab/Project/{project.id}"


@pytest.fixture
async def deps(settings: Settings, fake_llm: FakeLLM) -> AsyncIterator[Deps]:
    """A worker's deps with mock mode off: Anthropic and Claude on Vertex AI at the fake server."""
    provider_settings = settings.model_copy(update={
        "mock_model_responses": None, "anthropic_api_key": SecretStr("sk-ant-test"), "anthropic_base_url": fake_llm.url,
    })
    providers = build_providers(provider_settings)
    vertex = build_anthropic_vertex("proj", "us-east5", f"{fake_llm.url}/v1", access_token="ya29.test")
    providers.clients["vertex"] = AnthropicModel(vertex, "vertex")
    redis = connect(settings.redis_url or "")
    built = build_deps(provider_settings, redis, providers=providers)
    try:
        yield built
    finally:
        await built.close()
        await redis.aclose()


async def as_user(services: Services, name: str) -> Principal:
    async with services.sessions() as session:
        user = await namespaces.get_user(session, name)
        found = await get_principal(session, user.id)
    assert found is not None
    return found


async def change(services: Services, work: Any) -> Any:
    """A settings change in one transaction, as the GraphQL mutations make it; errors must be none."""
    async with services.sessions() as session, session.begin():
        result = await work(session)
    services.flags.invalidate()
    assert result in ([], None) or not isinstance(result, list), result
    return result


async def ask(services: Services, deps: Deps, seeded: dict, resource: str | None = None) -> dict[str, str]:
    """alice's chat about `resource`, run by the worker; the usage recorded for it."""
    async with services.sessions() as session:
        alice = await authenticate(session, seeded["users"]["alice"]["token"])
    chat: dict[str, Any] = {"content": "Which model are you?"} | ({"resourceId": resource} if resource else {})
    result = await SCHEMA.execute(ACTION, variable_values={"input": {"chat": chat}},
                                  context_value=Context(None, None, services, alice))  # type: ignore[arg-type]
    assert result.errors is None and result.data and result.data["aiAction"]["errors"] == [], result
    (job_id,) = await services.redis.zrange(keys.QUEUE, -1, -1)
    info = await Job(job_id.decode(), services.redis, _queue_name=keys.QUEUE).info()
    assert info is not None
    await services.redis.delete(keys.QUEUE)
    record = ActionRecord.model_validate_json(info.args[0])
    deps.selection.invalidate()  # the worker's cache is ≤ 5 s old; a test does not wait for it
    await run_inline({"deps": deps}, deps.settings, deps.redis, record.model_dump_json())
    return await read_usage(deps.redis, record.request_id)


async def test_the_group_owners_pick_answers_a_chat_about_a_project_in_its_subgroup(
    services: Services, deps: Deps, seeded: dict, fake_llm: FakeLLM, child_project: str
) -> None:
    root, alice, catalogue = await as_user(services, "root"), await as_user(services, "alice"), get_catalogue()
    await change(services, lambda s: model_settings.update_instance_setting(s, root, catalogue, "duo_chat", "vendored", [SONNET, HAIKU], SONNET))
    usage = await ask(services, deps, seeded, child_project)
    assert fake_llm.requests[-1].body["model"] == "claude-sonnet-4-6" and usage["model"] == SONNET  # the instance default

    async def pick(session: Any) -> list[str]:
        return await model_settings.update_namespace_setting(
            session, alice, catalogue, await namespaces.get_group(session, "gitlab-duo"), "duo_chat", HAIKU)
    await change(services, pick)
    usage = await ask(services, deps, seeded, child_project)
    (seen,) = fake_llm.requests[1:]
    assert (seen.path, seen.body["model"]) == ("/v1/messages", "claude-haiku-4-5-20251001")
    assert usage["model"] == usage["selected_model"] == HAIKU
    assert fake_llm.requests[-1].body["messages"][-1]["content"] == "Which model are you?"
    usage = await ask(services, deps, seeded)  # not about anything in the group: the instance default
    assert fake_llm.requests[-1].body["model"] == "claude-sonnet-4-6"


async def test_a_registered_self_hosted_model_serves_a_feature_end_to_end(
    services: Services, deps: Deps, seeded: dict, fake_llm: FakeLLM, child_project: str
) -> None:
    root, catalogue, box = await as_user(services, "root"), get_catalogue(), secret_box(services.settings)
    model, errors = await change(services, lambda s: model_settings.create_self_hosted_model(
        s, root, catalogue, box, name="Our Llama", model="llama3", endpoint=f"{fake_llm.url}/v1",
        identifier="meta-llama/Llama-3.1-8B", api_token="tok-s3cret"))
    assert errors == []
    await change(services, lambda s: model_settings.update_instance_setting(s, root, catalogue, "duo_chat", "self_hosted", [model.ref], model.ref))
    fake_llm.script(Reply(deltas=("local", " answer")))
    usage = await ask(services, deps, seeded, child_project)
    (seen,) = fake_llm.requests
    assert seen.path == "/v1/chat/completions" and seen.headers["authorization"] == "Bearer tok-s3cret"
    assert seen.body["model"] == "meta-llama/Llama-3.1-8B"
    assert usage["model"] == model.ref


async def test_a_migration_flag_moves_the_actor_and_turning_it_off_rolls_back(
    services: Services, deps: Deps, seeded: dict, fake_llm: FakeLLM
) -> None:
    await change(services, lambda s: flags.set_percentage(s, MIGRATION.flag, 100))
    usage = await ask(services, deps, seeded)
    assert fake_llm.requests[-1].path.endswith("/publishers/anthropic/models/claude-sonnet-4-6:streamRawPredict")
    assert usage["model"] == MIGRATION.model
    await change(services, lambda s: flags.disable(s, MIGRATION.flag))
    usage = await ask(services, deps, seeded)
    assert fake_llm.requests[-1].path == "/v1/messages" and usage["model"] == SONNET


async def test_in_mock_mode_the_mock_answers_but_the_selected_model_is_recorded(
    services: Services, seeded: dict, settings: Settings, child_project: str
) -> None:
    root, catalogue = await as_user(services, "root"), get_catalogue()
    await change(services, lambda s: model_settings.update_instance_setting(s, root, catalogue, "duo_chat", "vendored", [HAIKU], HAIKU))
    redis = connect(settings.redis_url or "")
    mock_deps = build_deps(settings, redis)
    try:
        usage = await ask(services, mock_deps, seeded, child_project)
    finally:
        await mock_deps.close()
        await redis.aclose()
    assert (usage["model"], usage["selected_model"]) == ("mock", HAIKU)


async def test_a_feature_disabled_by_the_admin_answers_with_the_not_permitted_error(
    services: Services, deps: Deps, seeded: dict, fake_llm: FakeLLM
) -> None:
    root, catalogue = await as_user(services, "root"), get_catalogue()
    await change(services, lambda s: model_settings.update_instance_setting(s, root, catalogue, "duo_chat", "disabled", None, None))
    await ask(services, deps, seeded)
    assert fake_llm.requests == []


async def test_with_ai_model_switching_off_for_the_actor_group_choices_are_not_applied(
    services: Services, deps: Deps, seeded: dict, fake_llm: FakeLLM, child_project: str
) -> None:
    alice, catalogue = await as_user(services, "alice"), get_catalogue()

    async def pick(session: Any) -> list[str]:
        return await model_settings.update_namespace_setting(
            session, alice, catalogue, await namespaces.get_group(session, "gitlab-duo"), "duo_chat", HAIKU)
    await change(services, pick)
    await change(services, lambda s: flags.disable(s, "ai_model_switching"))
    usage = await ask(services, deps, seeded, child_project)
    assert fake_llm.requests[-1].body["model"] == "claude-sonnet-4-6" and usage["model"] == SONNET


EFFECTIVE = """query($id: NamespaceID!) { aiNamespaceFeatureSettings(namespaceId: $id) {
  nodes { feature effectiveModelRef } } }"""


async def reported(services: Services, seeded: dict, feature_setting: str = "DUO_CHAT") -> str | None:
    """What `effectiveModelRef` tells alice her chats about her group resolve to."""
    async with services.sessions() as session:
        alice = await authenticate(session, seeded["users"]["alice"]["token"])
    result = await SCHEMA.execute(EFFECTIVE, variable_values={"id": seeded["groups"]["gitlab-duo"]},
                                  context_value=Context(None, None, services, alice))  # type: ignore[arg-type]
    assert result.errors is None and result.data, result
    (node,) = [n for n in result.data["aiNamespaceFeatureSettings"]["nodes"] if n["feature"] == feature_setting]
    return node["effectiveModelRef"]


async def test_the_reported_effective_model_is_the_one_the_provider_is_called_with(
    services: Services, deps: Deps, seeded: dict, fake_llm: FakeLLM
) -> None:
    catalogue = get_catalogue()
    project = seeded["projects"]["gitlab-duo/test"]
    services.settings = services.settings.model_copy(update={"default_model": HAIKU})
    deps.settings = deps.settings.model_copy(update={"default_model": HAIKU})
    ref = await reported(services, seeded)
    usage = await ask(services, deps, seeded, project)
    assert ref == usage["model"] == HAIKU  # SWITCHBOARD_DEFAULT_MODEL, which the report used to skip
    assert fake_llm.requests[-1].body["model"] == catalogue.models[HAIKU].provider_model

    alice = await as_user(services, "alice")
    await change(services, lambda s: flags.add_actors(s, MIGRATION.flag, [f"User:{alice.user_id}"]))
    ref = await reported(services, seeded)
    usage = await ask(services, deps, seeded, project)
    assert ref == usage["model"] == MIGRATION.model  # the migration flag for this actor wins over the default
    assert fake_llm.requests[-1].path.startswith("/v1/projects/")  # Claude on Vertex AI, as the report says
