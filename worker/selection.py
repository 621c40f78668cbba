"""Which model answers a request: `resolve_model` is the one place that decides (SPEC §8, §9).

First that applies (`catalogue.selection.resolve`): the nearest namespace choice on the resource's
namespace chain that is still offered at its level (when `ai_model_switching`, pushed, is on for the actor) → the instance default → a migration whose flag is
enabled for the actor (pushed with the job) → `SWITCHBOARD_DEFAULT_MODEL` → the feature setting's
default. A provider `disabled` by the instance admin resolves to no model.

In mock mode the mock model answers every call, but the model that selection picked is still resolved,
logged and recorded with the usage, so that selection stays observable in development and tests.
`candidates` adds the feature's fallback model, tried when the primary fails before its first chunk.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from catalogue import Catalogue, Feature, ModelDefinition
from catalogue.flags import MODEL_SWITCHING
from catalogue.selection import Selection, model_definition, resolve
from core.actions import ActionRecord
from core.secrets import SecretBox
from core.settings import Settings

__all__ = ["MOCK_MODEL", "Choice", "candidates", "resolve_model"]

log = logging.getLogger(__name__)

MOCK_MODEL = "mock"
_NO_SELECTION = Selection()


@dataclass(frozen=True, slots=True)
class Choice:
    """The outcome of selection: the model picked (None: the feature is disabled), why, and which
    namespace choices were ignored as stale."""

    model: ModelDefinition | None
    source: str
    stale: tuple[str, ...] = ()


async def resolve_model(
    settings: Settings,
    catalogue: Catalogue,
    feature: Feature,
    record: ActionRecord | None = None,
    *,
    selection: Selection | None = None,
    namespace_paths: Sequence[str] = (),
    secrets: SecretBox | None = None,
) -> Choice:
    """The model selection picks for `record` about a resource under `namespace_paths` (without a record:
    for the instance as a whole, as `switchboard check` asks)."""
    selection = selection or _NO_SELECTION
    flags = record.flags if record is not None else {}
    if not flags.get(MODEL_SWITCHING, True):  # namespace selection is off for this actor
        namespace_paths = ()
    resolved = resolve(catalogue, selection, feature.feature_setting, namespace_paths, flags)
    if resolved.ref is None:
        return Choice(None, resolved.source, resolved.stale)
    ref, source = resolved.ref, resolved.source
    if source == "catalogue" and settings.default_model:
        if settings.default_model in catalogue.models:
            ref, source = settings.default_model, "SWITCHBOARD_DEFAULT_MODEL"
        else:
            log.warning("SWITCHBOARD_DEFAULT_MODEL %r is not in models.yml; using the catalogue default", settings.default_model)
    registered = selection.self_hosted.get(ref)
    token = None
    if registered is not None and registered.encrypted_api_token and secrets is not None:
        token = secrets.decrypt(registered.encrypted_api_token)
    return Choice(model_definition(catalogue, selection, ref, token), source, resolved.stale)


def candidates(settings: Settings, catalogue: Catalogue, feature: Feature, choice: Choice) -> list[ModelDefinition]:
    """The models to call in order: the mock alone in mock mode; else the chosen one, then the feature's
    fallback; none when the feature is disabled."""
    if choice.model is None:
        return []
    if settings.use_mock_model:
        return [catalogue.model(MOCK_MODEL)]
    models = [choice.model]
    if feature.fallback_model and feature.fallback_model != choice.model.identifier:
        models.append(catalogue.model(feature.fallback_model))
    return models
