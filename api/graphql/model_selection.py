"""GraphQL for namespace model selection (SPEC §9, GitLab's `aiNamespaceFeatureSettings` and
`aiNamespaceFeatureSettingUpdate`), and the types the instance level shares (`api.graphql.instance_models`).

A group owner (or an admin) reads and changes the group's choice per feature setting, among the models
the group is offered: the instance's available models for a top-level group, the parent's for a subgroup.
Everything is behind the `ai_model_switching` flag (for the user and the group).
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.types import Info

from access.admin import model_settings
from access.flags import actor_id
from access.reading import access_level
from access.tokens import Principal
from api.auth import READ_SCOPES, WRITE_SCOPES, require_scopes
from catalogue import Catalogue, get_catalogue
from catalogue.features import FEATURE_LIST
from catalogue.flags import MODEL_SWITCHING
from catalogue.selection import Selection, levels, model_name, resolve_model
from catalogue.selection_store import load_selection
from core.errors import AccessDenied
from core.ids import GlobalID
from core.tables import AccessLevel, Group
from subscriptions.scalars import NamespaceID

__all__ = [
    "AiFeatures",
    "AiOfferedModel",
    "AiOfferedModelConnection",
    "NamespaceSelectionMutation",
    "NamespaceSelectionQuery",
    "feature_title",
    "main_feature",
    "offered_models",
    "release_state",
    "require_switching",
]

# The feature settings every feature names (Python literals: no file is read to build the schema). Built
# with Enum's functional API, which type checkers cannot follow: to them it is a plain Enum.
if TYPE_CHECKING:
    AiFeatures = Enum
else:
    AiFeatures = strawberry.enum(
        Enum("AiFeatures", {name.upper(): name for name in dict.fromkeys(f.feature_setting for f in FEATURE_LIST)}),
        name="AiFeatures", description="A feature setting: the features whose model is chosen together.",
    )


@strawberry.type(description="A model that may be chosen.")
class AiOfferedModel:
    ref: str
    name: str


@strawberry.type
class AiOfferedModelConnection:
    nodes: list[AiOfferedModel]


def offered_models(catalogue: Catalogue, selection: Selection, refs: tuple[str, ...] | list[str]) -> AiOfferedModelConnection:
    return AiOfferedModelConnection(
        nodes=[AiOfferedModel(ref=ref, name=model_name(catalogue, selection, ref) or ref) for ref in refs]
    )


def main_feature(feature_setting: str) -> str:
    return next((f.title for f in FEATURE_LIST if f.feature_setting == feature_setting), feature_setting)


def release_state(feature_setting: str) -> str:
    maturity = next((f.maturity for f in FEATURE_LIST if f.feature_setting == feature_setting), "ga")
    return {"ga": "GA", "beta": "BETA", "experimental": "EXPERIMENT"}[maturity]


def feature_title(catalogue: Catalogue, feature_setting: str) -> str:
    return catalogue.feature_settings[feature_setting].title


async def require_switching(info: Info, principal: Principal, *actors: str, session: AsyncSession | None = None) -> bool:
    """Whether `ai_model_switching` is on for the user (and `actors`); `session`: the caller's, if it holds one."""
    flags = info.context.services.flags
    return await flags.enabled(MODEL_SWITCHING, actor_id("User", principal.user_id), *actors, session=session)


@strawberry.type(name="AiNamespaceFeatureSetting", description="A group's model choice for one feature setting.")
class AiNamespaceFeatureSetting:
    feature: AiFeatures
    title: str
    main_feature: str
    provider: str
    release_state: str
    offered_model_ref: str | None = strawberry.field(description="The group's own choice; null inherits.")
    offered_model_name: str | None
    offered_models: AiOfferedModelConnection = strawberry.field(description="What the group may choose from.")
    stale: bool = strawberry.field(description="The group's choice is no longer offered to it and is ignored.")
    effective_model_ref: str | None = strawberry.field(
        description="The model the caller's requests about this group resolve to; null when disabled.")


@strawberry.type
class AiNamespaceFeatureSettingConnection:
    nodes: list[AiNamespaceFeatureSetting]


@strawberry.input(name="AiNamespaceFeatureSettingUpdateInput")
class AiNamespaceFeatureSettingUpdateInput:
    namespace_id: NamespaceID
    feature: AiFeatures
    offered_model_ref: str | None = strawberry.field(default=None, description="Blank or null: inherit.")
    client_mutation_id: str | None = None


@strawberry.type(name="AiNamespaceFeatureSettingUpdatePayload")
class AiNamespaceFeatureSettingUpdatePayload:
    ai_feature_settings: list[AiNamespaceFeatureSetting]
    errors: list[str]
    client_mutation_id: str | None = None


async def _nodes(
    info: Info, principal: Principal, group: Group, selection: Selection, feature_settings: list[str]
) -> list[AiNamespaceFeatureSetting]:
    """The group's settings as the caller sees them: `effectiveModelRef` is what `resolve_model` answers for
    the caller's requests about the group (the worker's own resolution)."""
    services = info.context.services
    flags = await services.gate.pushed_flags(principal, group)
    catalogue = get_catalogue()
    return [
        _node(catalogue, selection, setting, group.ancestor_paths, flags, services.settings.default_model)
        for setting in feature_settings
    ]


def _node(
    catalogue: Catalogue, selection: Selection, feature_setting: str, paths: list[str],
    flags: dict[str, bool], default_model: str | None,
) -> AiNamespaceFeatureSetting:
    own = levels(catalogue, selection, feature_setting, paths)[-1]
    choice = resolve_model(catalogue, feature_setting, selection=selection, namespace_paths=paths, flags=flags,
                           default_model=default_model)
    instance = selection.instance.get(feature_setting)
    return AiNamespaceFeatureSetting(
        feature=AiFeatures(feature_setting),
        title=feature_title(catalogue, feature_setting),
        main_feature=main_feature(feature_setting),
        provider=instance.provider if instance is not None else "vendored",
        release_state=release_state(feature_setting),
        offered_model_ref=own.choice,
        offered_model_name=model_name(catalogue, selection, own.choice) if own.choice else None,
        offered_models=offered_models(catalogue, selection, own.offered),
        stale=own.stale,
        effective_model_ref=choice.model.identifier if choice.model is not None else None,
    )


async def _owned_group(info: Info, session: AsyncSession, namespace_id: str, scopes: frozenset[str]) -> tuple[Principal, Group]:
    """The group, when the caller owns it (or is an admin) with a token allowing `scopes`; the resource
    error otherwise."""
    principal = require_scopes(info.context.principal, scopes)
    gid = GlobalID.parse(namespace_id, argument="namespaceId", types={"Group", "Namespace"})
    group = await session.get(Group, gid.id)
    if group is None or not (principal.admin or await access_level(session, principal, group) >= AccessLevel.OWNER):
        raise AccessDenied()
    return principal, group


@strawberry.type
class NamespaceSelectionQuery:
    @strawberry.field(description="A group's model choice per feature setting (group owners).")
    async def ai_namespace_feature_settings(self, info: Info, namespace_id: NamespaceID) -> AiNamespaceFeatureSettingConnection | None:
        async with info.context.services.sessions() as session:
            principal, group = await _owned_group(info, session, namespace_id, READ_SCOPES)
            if not await require_switching(info, principal, actor_id("Group", group.id), session=session):
                raise AccessDenied(model_settings.NOT_ENABLED)
            selection = await load_selection(session)
        settings = [member.value for member in AiFeatures]
        return AiNamespaceFeatureSettingConnection(nodes=await _nodes(info, principal, group, selection, settings))


@strawberry.type
class NamespaceSelectionMutation:
    @strawberry.mutation(description="Choose a group's model for one feature setting (blank inherits).")
    async def ai_namespace_feature_setting_update(
        self, info: Info, input: AiNamespaceFeatureSettingUpdateInput  # noqa: A002 - GitLab's argument name
    ) -> AiNamespaceFeatureSettingUpdatePayload | None:
        catalogue = get_catalogue()
        feature = input.feature.value
        async with info.context.services.sessions() as session, session.begin():
            principal, group = await _owned_group(info, session, input.namespace_id, WRITE_SCOPES)
            if not await require_switching(info, principal, actor_id("Group", group.id), session=session):
                return AiNamespaceFeatureSettingUpdatePayload(ai_feature_settings=[], errors=[model_settings.NOT_ENABLED],
                                                              client_mutation_id=input.client_mutation_id)
            errors = await model_settings.update_namespace_setting(
                session, principal, catalogue, group, feature, input.offered_model_ref)
            selection = await load_selection(session)
        nodes = [] if errors else await _nodes(info, principal, group, selection, [feature])
        return AiNamespaceFeatureSettingUpdatePayload(ai_feature_settings=nodes, errors=errors,
                                                      client_mutation_id=input.client_mutation_id)
