"""Model selection rules (SPEC §9) over one snapshot of the settings: what each level may choose from, which
choices went stale, and which model answers.

- The instance offers, per feature setting, the catalogue's selectable (and beta) models, or what its admin
  made available (catalogue models and registered self-hosted models) with a default among them; provider
  `disabled` offers nothing.
- A top-level group chooses among what the instance offers; a subgroup among what its parent offers: a
  group that chose a model offers only that model below it, a group that left it blank passes on what it
  was offered. A choice no longer offered at its level (a parent narrowed the set later) is *stale*: it
  is ignored, and reported.
- Resolution, first that applies: the nearest non-stale choice on the namespace chain (when
  `ai_model_switching` is on for the actor) → the instance default → a guarded rollout (SPEC §9.1) whose
  flag is enabled for the actor → a declared migration whose flag is enabled for the actor → the default a
  rollout was promoted to → `SWITCHBOARD_DEFAULT_MODEL` → the catalogue default. A provider `disabled` by
  the instance admin resolves to no model.
- The prompt version constraint (`resolve_prompt_version`), first that applies: a guarded prompt rollout
  whose flag is enabled for the actor → a declared `prompt_migrations` entry whose flag is → the version a
  prompt rollout was promoted to → the feature's own constraint.

`resolve_model` is the one function that answers "which model will this request use": the worker calls it
before the model call and GraphQL's `effectiveModelRef` reports what it returns. `models_to_call` adds the
feature's fallback (tried when the primary fails before its first chunk), or the mock model in mock mode
(selection is still resolved, logged and recorded, so that it stays observable in development and tests).

References are catalogue identifiers or `self_hosted_<id>` for registered self-hosted models.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from catalogue.contents import Catalogue
from catalogue.features import Feature
from catalogue.flags import MODEL_SWITCHING, model_migration_flag, prompt_migration_flag
from catalogue.models import (
    FeatureSetting,
    ModelDefinition,
    ModelParams,
    OpenAICompatibleModel,
)
from core.secrets import SecretBox

__all__ = [
    "MOCK_MODEL",
    "Choice",
    "InstanceChoice",
    "Level",
    "RegisteredModel",
    "Resolved",
    "SELF_HOSTED_PREFIX",
    "Selection",
    "levels",
    "instance_offer",
    "model_definition",
    "model_name",
    "models_to_call",
    "resolve",
    "resolve_model",
    "resolve_prompt_version",
]

log = logging.getLogger(__name__)

MOCK_MODEL = "mock"

SELF_HOSTED_PREFIX = "self_hosted_"
_EMPTY: Mapping = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class InstanceChoice:
    provider: str  # disabled | vendored | self_hosted
    default: str | None
    available: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RegisteredModel:
    """A self-hosted model as registered (its token still encrypted)."""

    id: int
    name: str
    model: str  # the models.yml family entry (llama3, mistral, gpt)
    endpoint: str
    identifier: str  # the name the server serves it under
    encrypted_api_token: str | None = None

    @property
    def ref(self) -> str:
        return f"{SELF_HOSTED_PREFIX}{self.id}"


@dataclass(frozen=True)
class Selection:
    """Every model selection setting at one moment."""

    instance: Mapping[str, InstanceChoice] = field(default_factory=dict)  # by feature setting
    namespaces: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (group path, feature setting) → ref
    self_hosted: Mapping[str, RegisteredModel] = field(default_factory=dict)  # by ref
    # Guarded rollouts (SPEC §9.1): the target (model ref or prompt version) of every rollout whose flag
    # holds actors, by flag; and what promoted rollouts made the default: ("model", setting) → model ref,
    # ("prompt", feature) → prompt version.
    rollouts: Mapping[str, str] = field(default_factory=dict)
    promoted: Mapping[tuple[str, str], str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Level:
    """One group of a namespace chain for one feature setting."""

    path: str
    offered: tuple[str, ...]  # what this group may choose from
    choice: str | None  # what it chose (None: inherits)
    stale: bool  # it chose something no longer offered to it


@dataclass(frozen=True, slots=True)
class Resolved:
    ref: str | None  # None: the feature is disabled by the instance admin
    source: str  # "namespace <path>" | "instance" | "migration <flag>" | "catalogue" | "disabled"
    stale: tuple[str, ...] = field(default=())  # groups whose choice was ignored as stale


def _known(catalogue: Catalogue, selection: Selection, ref: str) -> bool:
    return ref in selection.self_hosted or (ref in catalogue.models and not ref.startswith(SELF_HOSTED_PREFIX))


def model_name(catalogue: Catalogue, selection: Selection, ref: str) -> str | None:
    """The name shown for `ref`; None when it is neither in the catalogue nor registered."""
    if (registered := selection.self_hosted.get(ref)) is not None:
        return f"{registered.name} - Self-hosted"
    model = catalogue.models.get(ref)
    return model.name if model is not None else None


def _catalogue_offer(setting: FeatureSetting) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*setting.selectable_models, *setting.beta_models])) or (setting.default_model,)


def instance_offer(catalogue: Catalogue, selection: Selection, feature_setting: str) -> tuple[str, ...]:
    """What the instance makes available for `feature_setting` (deleted self-hosted models drop out)."""
    choice = selection.instance.get(feature_setting)
    if choice is None:
        return _catalogue_offer(catalogue.feature_settings[feature_setting])
    if choice.provider == "disabled":
        return ()
    return tuple(ref for ref in choice.available if _known(catalogue, selection, ref))


def levels(catalogue: Catalogue, selection: Selection, feature_setting: str, paths: Sequence[str]) -> list[Level]:
    """The chain `paths` (top-level first) for `feature_setting`: per group, what it is offered and chose."""
    offered = instance_offer(catalogue, selection, feature_setting)
    found = []
    for path in paths:
        choice = selection.namespaces.get((path, feature_setting))
        stale = choice is not None and choice not in offered
        found.append(Level(path, offered, choice, stale))
        if choice is not None and not stale:
            offered = (choice,)
    return found


def resolve(
    catalogue: Catalogue,
    selection: Selection,
    feature_setting: str,
    paths: Sequence[str] = (),
    flags: Mapping[str, bool] = _EMPTY,
) -> Resolved:
    """The model reference that answers `feature_setting` for a resource under `paths`, for an actor whose
    flags are `flags` (the pushed flags of the job)."""
    chain = levels(catalogue, selection, feature_setting, paths)
    stale = tuple(level.path for level in chain if level.stale)
    for level in reversed(chain):
        if level.choice is not None and not level.stale:
            return Resolved(level.choice, f"namespace {level.path}", stale)
    choice = selection.instance.get(feature_setting)
    if choice is not None:
        if choice.provider == "disabled":
            return Resolved(None, "disabled", stale)
        if choice.default is not None and _known(catalogue, selection, choice.default):
            return Resolved(choice.default, "instance", stale)
    rollout_flag = model_migration_flag(feature_setting)
    target = selection.rollouts.get(rollout_flag)
    if target is not None and flags.get(rollout_flag, False) and _known(catalogue, selection, target):
        return Resolved(target, f"rollout {rollout_flag}", stale)
    setting = catalogue.feature_settings[feature_setting]
    for migration in setting.migrations:
        if flags.get(migration.flag, False):
            return Resolved(migration.model, f"migration {migration.flag}", stale)
    promoted = selection.promoted.get(("model", feature_setting))
    if promoted is not None and _known(catalogue, selection, promoted):
        return Resolved(promoted, "promoted", stale)
    return Resolved(setting.default_model, "catalogue", stale)


def resolve_prompt_version(feature: Feature, selection: Selection, flags: Mapping[str, bool] = _EMPTY) -> str:
    """The prompt version constraint that answers `feature` for an actor whose pushed flags are `flags`."""
    rollout_flag = prompt_migration_flag(feature.key)
    target = selection.rollouts.get(rollout_flag)
    if target is not None and flags.get(rollout_flag, False):
        return target
    for migration in feature.prompt_migrations:
        if flags.get(migration.flag, False):
            return migration.version
    return selection.promoted.get(("prompt", feature.key), feature.prompt_version)


def model_definition(catalogue: Catalogue, selection: Selection, ref: str, api_token: str | None = None) -> ModelDefinition:
    """The callable model for `ref`: the catalogue's, or a registered self-hosted model as an
    OpenAI-compatible model of its family (its endpoint, served name and decrypted `api_token`)."""
    registered = selection.self_hosted.get(ref)
    if registered is None:
        return catalogue.model(ref)
    family = catalogue.models.get(registered.model)
    return OpenAICompatibleModel(
        provider="openai_compatible",
        identifier=ref,
        name=f"{registered.name} - Self-hosted",
        provider_model=registered.identifier,
        family=family.family if family is not None else (registered.model,),
        max_context_tokens=family.max_context_tokens if family is not None else 8_192,
        params=family.params if family is not None else ModelParams(),
        tool_calling=family.tool_calling if family is not None else "native",
        base_url=registered.endpoint,
        api_key=api_token,
        served_name=True,
    )


@dataclass(frozen=True, slots=True)
class Choice:
    """The outcome of selection: the model picked (None: the feature is disabled), why, and which
    namespace choices were ignored as stale."""

    model: ModelDefinition | None
    source: str
    stale: tuple[str, ...] = ()


def resolve_model(
    catalogue: Catalogue,
    feature_setting: str,
    *,
    selection: Selection | None = None,
    namespace_paths: Sequence[str] = (),
    flags: Mapping[str, bool] = _EMPTY,
    default_model: str | None = None,
    secrets: SecretBox | None = None,
) -> Choice:
    """The model that answers `feature_setting` for an actor whose pushed flags are `flags`, about a resource under
    `namespace_paths` (top-level first; none: the instance as a whole, as `switchboard check` asks).
    `default_model` is `SWITCHBOARD_DEFAULT_MODEL`, below a promoted default."""
    selection = selection or Selection()
    if not flags.get(MODEL_SWITCHING, True):  # namespace selection is off for this actor
        namespace_paths = ()
    resolved = resolve(catalogue, selection, feature_setting, namespace_paths, flags)
    if resolved.ref is None:
        return Choice(None, resolved.source, resolved.stale)
    ref, source = resolved.ref, resolved.source
    if source == "catalogue" and default_model:
        if default_model in catalogue.models:
            ref, source = default_model, "SWITCHBOARD_DEFAULT_MODEL"
        else:
            log.warning("SWITCHBOARD_DEFAULT_MODEL %r is not in models.yml; using the catalogue default", default_model)
    registered = selection.self_hosted.get(ref)
    token = None
    if registered is not None and registered.encrypted_api_token and secrets is not None:
        token = secrets.decrypt(registered.encrypted_api_token)
    return Choice(model_definition(catalogue, selection, ref, token), source, resolved.stale)


def models_to_call(catalogue: Catalogue, feature: Feature, choice: Choice, *, mock: bool) -> list[ModelDefinition]:
    """The models to call in order: the mock alone in mock mode; else the chosen one, then the feature's
    fallback; none when the feature is disabled."""
    if choice.model is None:
        return []
    if mock:
        return [catalogue.model(MOCK_MODEL)]
    models = [choice.model]
    if feature.fallback_model and feature.fallback_model != choice.model.identifier:
        models.append(catalogue.model(feature.fallback_model))
    return models
