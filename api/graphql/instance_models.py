"""GraphQL for the instance admin's model selection (SPEC §9): `aiFeatureSettings`,
`aiFeatureSettingUpdate`, the self-hosted models (`aiSelfHostedModels`, `aiSelfHostedModelCreate`,
`aiSelfHostedModelUpdate`, `aiSelfHostedModelDelete`) and the audit log (`aiModelSelectionAuditEvents`).

Admins only, behind `ai_model_switching`. API tokens are write-only: stored encrypted, never returned
(`hasApiToken` says whether one is set).
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import strawberry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.scalars import JSON
from strawberry.types import Info

from access.admin import model_settings
from access.tokens import Principal
from api.auth import READ_SCOPES, WRITE_SCOPES, require_scopes
from api.graphql.model_selection import (
    AiFeatures,
    AiOfferedModelConnection,
    feature_title,
    main_feature,
    offered_models,
    release_state,
    require_switching,
)
from catalogue import Catalogue, get_catalogue
from catalogue.selection import Selection, instance_offer, model_name
from catalogue.selection_store import load_selection
from core.errors import AccessDenied
from core.ids import GlobalID
from core.secrets import secret_box
from core.tables import ModelSelectionAuditEvent, SelfHostedModel
from subscriptions.scalars import AiSelfHostedModelID, Time

__all__ = ["InstanceSelectionMutation", "InstanceSelectionQuery"]

_MODEL_TYPE = "Ai::SelfHostedModel"


@strawberry.enum(name="AiFeatureProviders")
class AiFeatureProviders(Enum):
    DISABLED = "disabled"
    VENDORED = "vendored"
    SELF_HOSTED = "self_hosted"


@strawberry.type(name="AiFeatureSetting", description="The instance's model choice for one feature setting.")
class AiFeatureSetting:
    feature: AiFeatures
    title: str
    main_feature: str
    release_state: str
    provider: AiFeatureProviders
    configured: bool = strawberry.field(description="Set by an admin; otherwise the catalogue's defaults apply.")
    default_model_ref: str | None
    default_model_name: str | None
    available_models: AiOfferedModelConnection = strawberry.field(description="What groups may choose from.")
    selectable_models: AiOfferedModelConnection = strawberry.field(
        description="What the admin may make available: the catalogue's selectable models and the self-hosted models.")


@strawberry.type(name="AiSelfHostedModel")
class AiSelfHostedModel:
    id: AiSelfHostedModelID
    ref: str
    name: str
    model: str
    endpoint: str
    identifier: str
    has_api_token: bool
    created_at: Time
    updated_at: Time

    @classmethod
    def from_model(cls, row: SelfHostedModel) -> AiSelfHostedModel:
        return cls(id=AiSelfHostedModelID(str(GlobalID(_MODEL_TYPE, row.id))), ref=row.ref, name=row.name, model=row.model, endpoint=row.endpoint,
                   identifier=row.identifier, has_api_token=row.encrypted_api_token is not None,
                   created_at=Time(row.created_at.isoformat()), updated_at=Time(row.updated_at.isoformat()))


@strawberry.type(name="AiModelSelectionAuditEvent")
class AiModelSelectionAuditEvent:
    id: int
    author: str
    action: str
    target: str
    before: JSON | None
    after: JSON | None
    created_at: Time


@strawberry.type
class AiFeatureSettingConnection:
    nodes: list[AiFeatureSetting]


@strawberry.type
class AiSelfHostedModelConnection:
    nodes: list[AiSelfHostedModel]


@strawberry.input(name="AiFeatureSettingUpdateInput")
class AiFeatureSettingUpdateInput:
    feature: AiFeatures
    provider: AiFeatureProviders
    available_model_refs: list[str] | None = None
    default_model_ref: str | None = None
    client_mutation_id: str | None = None


@strawberry.type(name="AiFeatureSettingUpdatePayload")
class AiFeatureSettingUpdatePayload:
    ai_feature_setting: AiFeatureSetting | None
    errors: list[str]
    client_mutation_id: str | None = None


@strawberry.input(name="AiSelfHostedModelCreateInput")
class AiSelfHostedModelCreateInput:
    name: str
    model: str = strawberry.field(description="Its family in models.yml: llama3, mistral, gpt.")
    endpoint: str
    identifier: str = strawberry.field(description="The name the server serves the model under.")
    api_token: str | None = None
    client_mutation_id: str | None = None


@strawberry.input(name="AiSelfHostedModelUpdateInput")
class AiSelfHostedModelUpdateInput:
    id: AiSelfHostedModelID
    name: str | None = None
    model: str | None = None
    endpoint: str | None = None
    identifier: str | None = None
    api_token: str | None = strawberry.field(default=None, description="Empty removes the token.")
    client_mutation_id: str | None = None


@strawberry.input(name="AiSelfHostedModelDeleteInput")
class AiSelfHostedModelDeleteInput:
    id: AiSelfHostedModelID
    client_mutation_id: str | None = None


@strawberry.type(name="AiSelfHostedModelPayload")
class AiSelfHostedModelPayload:
    self_hosted_model: AiSelfHostedModel | None
    errors: list[str]
    client_mutation_id: str | None = None


def instance_node(catalogue: Catalogue, selection: Selection, feature_setting: str) -> AiFeatureSetting:
    setting = catalogue.feature_settings[feature_setting]
    choice = selection.instance.get(feature_setting)
    default = choice.default if choice is not None else setting.default_model
    selectable = [*dict.fromkeys([*setting.selectable_models, *setting.beta_models]), *selection.self_hosted]
    return AiFeatureSetting(
        feature=AiFeatures(feature_setting),
        title=feature_title(catalogue, feature_setting),
        main_feature=main_feature(feature_setting),
        release_state=release_state(feature_setting),
        provider=AiFeatureProviders(choice.provider if choice is not None else "vendored"),
        configured=choice is not None,
        default_model_ref=default,
        default_model_name=model_name(catalogue, selection, default) if default else None,
        available_models=offered_models(catalogue, selection, instance_offer(catalogue, selection, feature_setting)),
        selectable_models=offered_models(catalogue, selection, selectable),
    )


async def _admin(info: Info, scopes: frozenset[str]) -> Principal:
    principal = require_scopes(info.context.principal, scopes)
    if not principal.admin:
        raise AccessDenied()
    return principal


async def _model(session: AsyncSession, id: str) -> SelfHostedModel:  # noqa: A002
    row = await session.get(SelfHostedModel, GlobalID.parse(id, argument="id", types={_MODEL_TYPE}).id)
    if row is None:
        raise AccessDenied()
    return row


@strawberry.type
class InstanceSelectionQuery:
    @strawberry.field(description="The instance's model choice per feature setting (admins).")
    async def ai_feature_settings(self, info: Info) -> AiFeatureSettingConnection | None:
        principal = await _admin(info, READ_SCOPES)
        if not await require_switching(info, principal):
            raise AccessDenied(model_settings.NOT_ENABLED)
        async with info.context.services.sessions() as session:
            selection = await load_selection(session)
        catalogue = get_catalogue()
        return AiFeatureSettingConnection(
            nodes=[instance_node(catalogue, selection, member.value) for member in AiFeatures])

    @strawberry.field(description="The registered self-hosted models (admins).")
    async def ai_self_hosted_models(self, info: Info) -> AiSelfHostedModelConnection | None:
        principal = await _admin(info, READ_SCOPES)
        if not await require_switching(info, principal):
            raise AccessDenied(model_settings.NOT_ENABLED)
        async with info.context.services.sessions() as session:
            rows = await session.scalars(select(SelfHostedModel).order_by(SelfHostedModel.id))
            return AiSelfHostedModelConnection(nodes=[AiSelfHostedModel.from_model(row) for row in rows])

    @strawberry.field(description="Changes of model selection settings, newest first (admins).")
    async def ai_model_selection_audit_events(self, info: Info, first: int = 50) -> list[AiModelSelectionAuditEvent] | None:
        await _admin(info, READ_SCOPES)
        async with info.context.services.sessions() as session:
            query = select(ModelSelectionAuditEvent).order_by(ModelSelectionAuditEvent.id.desc()).limit(max(1, min(first, 500)))
            return [AiModelSelectionAuditEvent(id=e.id, author=e.author_name, action=e.action, target=e.target,
                                               before=e.before, after=e.after, created_at=e.created_at)
                    for e in await session.scalars(query)]


def _payload(row: SelfHostedModel | None, errors: list[str], input: Any) -> AiSelfHostedModelPayload | None:  # noqa: A002
    return AiSelfHostedModelPayload(self_hosted_model=AiSelfHostedModel.from_model(row) if row is not None and not errors else None,
                                    errors=errors, client_mutation_id=input.client_mutation_id)


@strawberry.type
class InstanceSelectionMutation:
    @strawberry.mutation(description="Set a feature setting's provider, available models and default (admins).")
    async def ai_feature_setting_update(self, info: Info, input: AiFeatureSettingUpdateInput) -> AiFeatureSettingUpdatePayload | None:  # noqa: A002
        principal = await _admin(info, WRITE_SCOPES)
        if not await require_switching(info, principal):
            return AiFeatureSettingUpdatePayload(ai_feature_setting=None, errors=[model_settings.NOT_ENABLED],
                                                 client_mutation_id=input.client_mutation_id)
        catalogue, feature = get_catalogue(), input.feature.value
        async with info.context.services.sessions() as session, session.begin():
            errors = await model_settings.update_instance_setting(
                session, principal, catalogue, feature, input.provider.value, input.available_model_refs, input.default_model_ref)
            selection = await load_selection(session)
        node = None if errors else instance_node(catalogue, selection, feature)
        return AiFeatureSettingUpdatePayload(ai_feature_setting=node, errors=errors, client_mutation_id=input.client_mutation_id)

    @strawberry.mutation(description="Register a self-hosted model (admins).")
    async def ai_self_hosted_model_create(self, info: Info, input: AiSelfHostedModelCreateInput) -> AiSelfHostedModelPayload | None:  # noqa: A002
        principal = await _admin(info, WRITE_SCOPES)
        if not await require_switching(info, principal):
            return _payload(None, [model_settings.NOT_ENABLED], input)
        box = secret_box(info.context.services.settings)
        async with info.context.services.sessions() as session, session.begin():
            row, errors = await model_settings.create_self_hosted_model(
                session, principal, get_catalogue(), box, name=input.name, model=input.model, endpoint=input.endpoint,
                identifier=input.identifier, api_token=input.api_token)
            return _payload(row, errors, input)

    @strawberry.mutation(description="Change a self-hosted model (admins).")
    async def ai_self_hosted_model_update(self, info: Info, input: AiSelfHostedModelUpdateInput) -> AiSelfHostedModelPayload | None:  # noqa: A002
        principal = await _admin(info, WRITE_SCOPES)
        if not await require_switching(info, principal):
            return _payload(None, [model_settings.NOT_ENABLED], input)
        box = secret_box(info.context.services.settings)
        changes = {"name": input.name, "model": input.model, "endpoint": input.endpoint, "identifier": input.identifier,
                   "api_token": input.api_token}
        async with info.context.services.sessions() as session, session.begin():
            row = await _model(session, input.id)
            errors = await model_settings.update_self_hosted_model(session, principal, get_catalogue(), box, row, changes)
            return _payload(row, errors, input)

    @strawberry.mutation(description="Delete a self-hosted model no feature setting offers (admins).")
    async def ai_self_hosted_model_delete(self, info: Info, input: AiSelfHostedModelDeleteInput) -> AiSelfHostedModelPayload | None:  # noqa: A002
        principal = await _admin(info, WRITE_SCOPES)
        if not await require_switching(info, principal):
            return _payload(None, [model_settings.NOT_ENABLED], input)
        async with info.context.services.sessions() as session, session.begin():
            row = await _model(session, input.id)
            deleted = AiSelfHostedModel.from_model(row)
            errors = await model_settings.delete_self_hosted_model(session, principal, get_catalogue(), row)
        return AiSelfHostedModelPayload(self_hosted_model=None if errors else deleted, errors=errors,
                                        client_mutation_id=input.client_mutation_id)
