"""Model selection rules over a snapshot (no database): the inheritance matrix instance → top-level group →
subgroup with narrowing and stale choices, migrations rolled out by percentage, and rollback."""

from __future__ import annotations

import pytest

from access.flags import FlagState, actor_id
from catalogue import get_catalogue
from catalogue.selection import (
    InstanceChoice,
    RegisteredModel,
    Selection,
    levels,
    model_definition,
    resolve,
)

CATALOGUE = get_catalogue()
TOP, SUB = "gitlab-duo", "gitlab-duo/child"
PATHS = [TOP, SUB]
SONNET, HAIKU, VERTEX, GEMINI = "claude_sonnet_4_6", "claude_haiku_4_5_20251001", "claude_sonnet_4_6_vertex", "gemini_2_5_pro"
TWO_CLAUDES = InstanceChoice("vendored", SONNET, (SONNET, HAIKU))
MIGRATION = CATALOGUE.feature_settings["duo_chat"].migrations[0]


def chat(instance: InstanceChoice | None = None, top: str | None = None, sub: str | None = None,
         self_hosted: tuple[RegisteredModel, ...] = ()) -> Selection:
    choices = {(path, "duo_chat"): ref for path, ref in ((TOP, top), (SUB, sub)) if ref is not None}
    return Selection({"duo_chat": instance} if instance else {}, choices, {m.ref: m for m in self_hosted})


@pytest.mark.parametrize(("selection", "model", "source", "stale"), [
    pytest.param(chat(), SONNET, "catalogue", (), id="nothing-chosen: catalogue default"),
    pytest.param(chat(TWO_CLAUDES), SONNET, "instance", (), id="instance default"),
    pytest.param(chat(InstanceChoice("vendored", HAIKU, (SONNET, HAIKU))), HAIKU, "instance", (), id="instance picks haiku"),
    pytest.param(chat(TWO_CLAUDES, top=HAIKU), HAIKU, f"namespace {TOP}", (), id="top-level picks among the instance's"),
    pytest.param(chat(TWO_CLAUDES, sub=HAIKU), HAIKU, f"namespace {SUB}", (), id="subgroup picks, top-level blank"),
    pytest.param(chat(TWO_CLAUDES, top=HAIKU, sub=HAIKU), HAIKU, f"namespace {SUB}", (), id="subgroup repeats its parent"),
    pytest.param(chat(TWO_CLAUDES, top=HAIKU, sub=SONNET), HAIKU, f"namespace {TOP}", (SUB,), id="subgroup outside its parent's choice: stale"),
    pytest.param(chat(InstanceChoice("vendored", SONNET, (SONNET,)), top=HAIKU), SONNET, "instance", (TOP,), id="instance narrowed later: top-level stale"),
    pytest.param(chat(InstanceChoice("vendored", SONNET, (SONNET,)), top=HAIKU, sub=SONNET), SONNET, f"namespace {SUB}", (TOP,), id="stale parent passes the instance's set on"),
    pytest.param(chat(None, top=GEMINI), GEMINI, f"namespace {TOP}", (), id="no instance setting: catalogue selectable models"),
    pytest.param(chat(None, top="llama3"), SONNET, "catalogue", (TOP,), id="never selectable: stale"),
    pytest.param(chat(InstanceChoice("disabled", None, ()), top=SONNET), None, "disabled", (TOP,), id="disabled by the admin"),
])
def test_inheritance_matrix(selection: Selection, model: str | None, source: str, stale: tuple[str, ...]) -> None:
    resolved = resolve(CATALOGUE, selection, "duo_chat", PATHS)
    assert (resolved.ref, resolved.source, resolved.stale) == (model, source, stale)


def test_each_level_is_offered_what_its_parent_left_open() -> None:
    top, sub = levels(CATALOGUE, chat(TWO_CLAUDES, top=HAIKU), "duo_chat", PATHS)
    assert (top.offered, top.choice, top.stale) == ((SONNET, HAIKU), HAIKU, False)
    assert (sub.offered, sub.choice, sub.stale) == ((HAIKU,), None, False)
    (top,) = levels(CATALOGUE, chat(), "duo_chat", [TOP])
    assert set(top.offered) == set(CATALOGUE.feature_settings["duo_chat"].selectable_models)


def test_a_deleted_self_hosted_model_drops_out_of_the_instances_offer() -> None:
    llama = RegisteredModel(7, "Our Llama", "llama3", "http://llm.internal/v1", "meta-llama/Llama-3.1-8B")
    instance = InstanceChoice("self_hosted", llama.ref, (llama.ref, SONNET))
    assert resolve(CATALOGUE, chat(instance, top=llama.ref, self_hosted=(llama,)), "duo_chat", PATHS).ref == llama.ref
    gone = resolve(CATALOGUE, chat(instance, top=llama.ref), "duo_chat", PATHS)
    assert (gone.ref, gone.stale) == (SONNET, (TOP,))  # neither the choice nor the default exist: catalogue


def test_a_self_hosted_model_is_an_openai_compatible_model_of_its_family() -> None:
    llama = RegisteredModel(7, "Our Llama", "llama3", "http://llm.internal/v1", "meta-llama/Llama-3.1-8B")
    model = model_definition(CATALOGUE, chat(self_hosted=(llama,)), llama.ref, "s3cret")
    assert (model.identifier, model.provider, model.provider_model, model.family) == (
        "self_hosted_7", "openai_compatible", "meta-llama/Llama-3.1-8B", ("llama3",))
    assert (model.base_url, model.api_key, model.served_name) == ("http://llm.internal/v1", "s3cret", True)
    assert "s3cret" not in repr(model) and "api_key" not in model.model_dump()


def test_a_migration_applies_below_any_choice_and_rolls_back_with_its_flag() -> None:
    on, off = {MIGRATION.flag: True}, {MIGRATION.flag: False}
    assert resolve(CATALOGUE, chat(), "duo_chat", PATHS, on).ref == MIGRATION.model == VERTEX
    assert resolve(CATALOGUE, chat(), "duo_chat", PATHS, on).source == f"migration {MIGRATION.flag}"
    assert resolve(CATALOGUE, chat(), "duo_chat", PATHS, off).ref == SONNET  # rolled back
    assert resolve(CATALOGUE, chat(TWO_CLAUDES), "duo_chat", PATHS, on).ref == SONNET  # the admin's default wins
    assert resolve(CATALOGUE, chat(None, top=HAIKU), "duo_chat", PATHS, on).ref == HAIKU  # a group's choice wins


@pytest.mark.parametrize("percentage", [0, 10, 25, 50, 100])
def test_a_percentage_rollout_moves_that_share_of_actors_and_grows_monotonically(percentage: int) -> None:
    def moved(share: float) -> set[int]:
        state = FlagState(MIGRATION.flag, percentage_of_actors=share)
        return {
            user for user in range(1, 4001)
            if resolve(CATALOGUE, chat(), "duo_chat", PATHS, {MIGRATION.flag: state.enabled_for([actor_id("User", user)])}).ref == VERTEX
        }

    now = moved(percentage)
    assert abs(len(now) / 4000 - percentage / 100) < 0.03
    assert moved(max(percentage - 10, 0)) <= now  # the same actors stay in as the percentage grows


ROLLOUT_FLAG = "model_migration_duo_chat"


@pytest.mark.parametrize(("selection", "flags", "model", "source"), [
    pytest.param(Selection(rollouts={ROLLOUT_FLAG: HAIKU}), {ROLLOUT_FLAG: True}, HAIKU, f"rollout {ROLLOUT_FLAG}",
                 id="actor in a running rollout"),
    pytest.param(Selection(rollouts={ROLLOUT_FLAG: HAIKU}), {ROLLOUT_FLAG: False}, SONNET, "catalogue",
                 id="actor outside the rollout keeps the old model"),
    pytest.param(Selection(), {ROLLOUT_FLAG: True}, SONNET, "catalogue", id="flag on but no rollout: nothing to follow"),
    pytest.param(Selection(rollouts={ROLLOUT_FLAG: "no_such_model"}), {ROLLOUT_FLAG: True}, SONNET, "catalogue",
                 id="a rollout to an unknown model is ignored"),
    pytest.param(Selection(instance={"duo_chat": TWO_CLAUDES}, rollouts={ROLLOUT_FLAG: HAIKU}), {ROLLOUT_FLAG: True},
                 SONNET, "instance", id="the instance admin's default wins"),
    pytest.param(Selection(rollouts={ROLLOUT_FLAG: HAIKU}), {ROLLOUT_FLAG: True, MIGRATION.flag: True}, HAIKU,
                 f"rollout {ROLLOUT_FLAG}", id="a rollout before a declared migration"),
    pytest.param(Selection(promoted={("model", "duo_chat"): HAIKU}), {}, HAIKU, "promoted", id="promoted default"),
    pytest.param(Selection(promoted={("model", "duo_chat"): HAIKU}), {MIGRATION.flag: True}, MIGRATION.model,
                 f"migration {MIGRATION.flag}", id="a declared migration before the promoted default"),
])
def test_guarded_rollouts_in_the_resolution(selection: Selection, flags: dict[str, bool], model: str, source: str) -> None:
    resolved = resolve(CATALOGUE, selection, "duo_chat", (), flags)
    assert (resolved.ref, resolved.source) == (model, source)


def test_promoted_default_is_above_the_environment_default() -> None:
    from catalogue.selection import resolve_model

    choice = resolve_model(CATALOGUE, "duo_chat", selection=Selection(promoted={("model", "duo_chat"): HAIKU}),
                           default_model=GEMINI)
    assert choice.model is not None and (choice.model.identifier, choice.source) == (HAIKU, "promoted")
    assert resolve_model(CATALOGUE, "duo_chat", default_model=GEMINI).source == "SWITCHBOARD_DEFAULT_MODEL"


def test_prompt_version_resolution() -> None:
    from catalogue import get_feature
    from catalogue.features import PromptMigration
    from catalogue.selection import resolve_prompt_version

    feature = get_feature("explain_code").model_copy(
        update={"prompt_migrations": (PromptMigration(flag="prompt_migration_explain_code", version="1.0.0"),)}
    )
    flag = "prompt_migration_explain_code"
    assert resolve_prompt_version(feature, Selection(), {}) == feature.prompt_version
    assert resolve_prompt_version(feature, Selection(), {flag: True}) == "1.0.0"
    assert resolve_prompt_version(feature, Selection(rollouts={flag: "2.0.0"}), {flag: True}) == "2.0.0"
    assert resolve_prompt_version(feature, Selection(rollouts={flag: "2.0.0"}), {flag: False}) == feature.prompt_version
    assert resolve_prompt_version(feature, Selection(promoted={("prompt", "explain_code"): "1.2.0"}), {}) == "1.2.0"
