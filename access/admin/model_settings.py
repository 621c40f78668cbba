"""Changing model selection settings (SPEC §9), for GraphQL and the CLI alike: validation with GitLab's
error texts, the write, and one audit event (who, what, before, after) per change.

Every function takes an open session and the author (None: the `switchboard models` command line, audited
as "cli"), returns the errors to show (empty on success) and
leaves committing to the caller. Permission checks are the caller's (`api.graphql.model_selection`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from access.tokens import Principal
from catalogue import Catalogue
from catalogue.selection import SELF_HOSTED_PREFIX, instance_offer, levels, model_name
from catalogue.selection_store import load_selection
from core.secrets import SecretBox
from core.tables import (
    PROVIDER_KINDS,
    FeatureSettingChoice,
    Group,
    ModelSelectionAuditEvent,
    NamespaceFeatureSetting,
    SelfHostedModel,
)

__all__ = [
    "NOT_ENABLED",
    "NOT_FOUND",
    "audit",
    "create_self_hosted_model",
    "delete_self_hosted_model",
    "incompatible",
    "not_found",
    "reset_instance_setting",
    "update_instance_setting",
    "update_namespace_setting",
    "update_self_hosted_model",
]

log = logging.getLogger(__name__)

NOT_ENABLED = "Model selection is not enabled."
NOT_FOUND = "Model reference not found in definitions"
DEFAULT_REQUIRED = "Default model can't be blank"
DEFAULT_NOT_AVAILABLE = "Default model must be one of the available models"


def not_found(ref: str, valid: Sequence[str]) -> str:
    """GitLab's text, then the unknown reference and the ones that would do (a typo is then one look away)."""
    return f"{NOT_FOUND}: {ref!r}. Valid references: {', '.join(valid) or 'none'}"


def incompatible(ref: str, feature: str) -> str:
    return f"Selected model '{ref}' is not compatible with the feature '{feature}'"


async def audit(session: AsyncSession, author: Principal | str | None, action: str, target: str,
                before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
    """One audit entry; `author` is the user who made the change, or the name of what made it (the
    rollout `controller`; None: the command line)."""
    name = author.username if isinstance(author, Principal) else (author or "cli")
    session.add(ModelSelectionAuditEvent(
        author_id=author.user_id if isinstance(author, Principal) else None, author_name=name,
        action=action, target=target, before=before, after=after,
    ))
    await session.flush()
    log.info("model_selection_changed", extra={"action": action, "target": target, "author": name})


def _instance_state(row: FeatureSettingChoice | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"provider": row.provider, "default_model_ref": row.default_model_ref,
            "available_model_refs": list(row.available_model_refs)}


async def update_instance_setting(
    session: AsyncSession, author: Principal | None, catalogue: Catalogue, feature: str, provider: str,
    available: Sequence[str] | None, default: str | None,
) -> list[str]:
    """The instance admin's choice for `feature`: provider, available models, required default."""
    if provider not in PROVIDER_KINDS:
        return [f"Provider must be one of: {', '.join(PROVIDER_KINDS)}"]
    selection = await load_selection(session)
    setting = catalogue.feature_settings[feature]
    refs = list(dict.fromkeys(available if available else ([default] if default else [])))
    if provider == "disabled":
        refs, default = [], None
    errors = []
    valid = [*dict.fromkeys([*setting.selectable_models, *setting.beta_models]), *selection.self_hosted]
    for ref in refs:
        if model_name(catalogue, selection, ref) is None:
            errors.append(not_found(ref, valid))
        elif not ref.startswith(SELF_HOSTED_PREFIX) and ref not in (*setting.selectable_models, *setting.beta_models):
            errors.append(incompatible(ref, feature))
    if provider != "disabled":
        if not default:
            errors.append(DEFAULT_REQUIRED)
        elif default not in refs:
            errors.append(DEFAULT_NOT_AVAILABLE)
        elif (provider == "self_hosted") != default.startswith(SELF_HOSTED_PREFIX):
            kind = "a self-hosted" if provider == "self_hosted" else "a vendored"
            errors.append(f"Default model must be {kind} model when the provider is {provider}")
    if errors:
        return list(dict.fromkeys(errors))
    row = await session.scalar(select(FeatureSettingChoice).where(FeatureSettingChoice.feature == feature))
    before = _instance_state(row)
    if row is None:
        row = FeatureSettingChoice(feature=feature)
        session.add(row)
    row.provider, row.default_model_ref, row.available_model_refs = provider, default, refs
    await session.flush()
    await audit(session, author, "instance_feature_setting_updated", feature, before, _instance_state(row))
    return []


async def reset_instance_setting(session: AsyncSession, author: Principal | str | None, feature: str) -> bool:
    """Forget the instance admin's choice for `feature`: the catalogue's defaults (and rollouts) apply again.
    False when there was none."""
    row = await session.scalar(select(FeatureSettingChoice).where(FeatureSettingChoice.feature == feature))
    if row is None:
        return False
    before = _instance_state(row)
    await session.delete(row)
    await session.flush()
    await audit(session, author, "instance_feature_setting_reset", feature, before, None)
    return True


async def update_namespace_setting(
    session: AsyncSession, author: Principal | None, catalogue: Catalogue, group: Group, feature: str, ref: str | None,
) -> list[str]:
    """A group owner's choice for `feature` among what the group is offered; blank inherits."""
    selection = await load_selection(session)
    ref = (ref or "").strip() or None
    if ref is not None:
        offered = levels(catalogue, selection, feature, group.ancestor_paths)[-1].offered
        if model_name(catalogue, selection, ref) is None:
            return [not_found(ref, offered)]
        if ref not in offered:
            return [incompatible(ref, feature)]
    where = (NamespaceFeatureSetting.namespace_id == group.id, NamespaceFeatureSetting.feature == feature)
    row = await session.scalar(select(NamespaceFeatureSetting).where(*where))
    before = {"offered_model_ref": row.offered_model_ref} if row is not None else None
    if ref is None:
        if row is not None:
            await session.delete(row)
    else:
        if row is None:
            row = NamespaceFeatureSetting(namespace_id=group.id, feature=feature)
            session.add(row)
        row.offered_model_ref, row.offered_model_name = ref, model_name(catalogue, selection, ref) or ref
    await session.flush()
    after = {"offered_model_ref": ref} if ref is not None else None
    if before != after:
        await audit(session, author, "namespace_feature_setting_updated", f"{group.full_path}:{feature}", before, after)
    return []


def _self_hosted_families(catalogue: Catalogue) -> list[str]:
    return sorted(m.identifier for m in catalogue.models.values() if m.provider == "openai_compatible")


def _model_state(row: SelfHostedModel) -> dict[str, Any]:
    return {"name": row.name, "model": row.model, "endpoint": row.endpoint, "identifier": row.identifier,
            "has_api_token": row.encrypted_api_token is not None}


async def _check_model(session: AsyncSession, catalogue: Catalogue, values: dict[str, Any], own_id: int | None) -> list[str]:
    errors = []
    for name in ("name", "model", "endpoint", "identifier"):
        if name in values and not str(values[name] or "").strip():
            errors.append(f"{name.capitalize()} can't be blank")
    families = _self_hosted_families(catalogue)
    if values.get("model") and values["model"] not in families:
        errors.append(f"Model must be one of: {', '.join(families)}")
    if values.get("endpoint"):
        url = urlparse(values["endpoint"])
        if url.scheme not in ("http", "https") or not url.netloc:
            errors.append("Endpoint is not a valid URL")
    if values.get("name"):
        taken = await session.scalar(select(SelfHostedModel.id).where(SelfHostedModel.name == values["name"]))
        if taken is not None and taken != own_id:
            errors.append("Name has already been taken")
    return errors


async def create_self_hosted_model(
    session: AsyncSession, author: Principal | None, catalogue: Catalogue, box: SecretBox, *, name: str, model: str,
    endpoint: str, identifier: str, api_token: str | None = None,
) -> tuple[SelfHostedModel | None, list[str]]:
    values = {"name": name, "model": model, "endpoint": endpoint, "identifier": identifier}
    if errors := await _check_model(session, catalogue, values, None):
        return None, errors
    row = SelfHostedModel(**{k: v.strip() for k, v in values.items()},
                          encrypted_api_token=box.encrypt(api_token) if api_token else None)
    session.add(row)
    await session.flush()
    await audit(session, author, "self_hosted_model_created", row.ref, None, _model_state(row))
    return row, []


async def update_self_hosted_model(
    session: AsyncSession, author: Principal | None, catalogue: Catalogue, box: SecretBox, row: SelfHostedModel,
    changes: dict[str, str | None],
) -> list[str]:
    """`changes` holds the fields to set; `api_token` "" removes the token."""
    values = {k: v for k, v in changes.items() if k != "api_token" and v is not None}
    if errors := await _check_model(session, catalogue, values, row.id):
        return errors
    before = _model_state(row)
    for key, value in values.items():
        setattr(row, key, value.strip())
    if changes.get("api_token") is not None:
        row.encrypted_api_token = box.encrypt(changes["api_token"]) if changes["api_token"] else None
    await session.flush()
    after = _model_state(row) | ({"api_token_changed": True} if changes.get("api_token") is not None else {})
    await audit(session, author, "self_hosted_model_updated", row.ref, before, after)
    return []


async def delete_self_hosted_model(session: AsyncSession, author: Principal | None, catalogue: Catalogue, row: SelfHostedModel) -> list[str]:
    """Refused while an instance feature setting offers it; namespace choices of it are removed."""
    selection = await load_selection(session)
    users = [f for f in selection.instance if row.ref in instance_offer(catalogue, selection, f)]
    if users:
        return [f"The self-hosted model is in use by the feature settings: {', '.join(sorted(users))}"]
    before = _model_state(row)
    await session.execute(delete(NamespaceFeatureSetting).where(NamespaceFeatureSetting.offered_model_ref == row.ref))
    await session.delete(row)
    await session.flush()
    await audit(session, author, "self_hosted_model_deleted", row.ref, before, None)
    return []
