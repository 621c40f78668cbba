"""Which model answers a request: `resolve_model` is the one place that decides (SPEC §8, §9).

Today, first that applies: the mock model in mock mode; `SWITCHBOARD_DEFAULT_MODEL`; the feature setting's
default model. Namespace and instance choices and migration flags (SPEC §9) slot in here, before the
catalogue default. `candidates` adds the feature's fallback model, tried when the primary fails before its
first chunk.
"""

from __future__ import annotations

import logging

from catalogue import Catalogue, Feature, ModelDefinition
from core.actions import ActionRecord
from core.settings import Settings

__all__ = ["MOCK_MODEL", "candidates", "resolve_model"]

log = logging.getLogger(__name__)

MOCK_MODEL = "mock"


async def resolve_model(
    settings: Settings, catalogue: Catalogue, feature: Feature, record: ActionRecord | None = None
) -> ModelDefinition:
    """The model that answers `record` for `feature` (without a record: for the instance as a whole, as
    `switchboard check` asks)."""
    if settings.use_mock_model:
        return catalogue.model(MOCK_MODEL)
    if settings.default_model:
        try:
            return catalogue.model(settings.default_model)
        except KeyError:
            log.warning("SWITCHBOARD_DEFAULT_MODEL %r is not in models.yml; using the catalogue default", settings.default_model)
    return catalogue.model(catalogue.feature_settings[feature.feature_setting].default_model)


async def candidates(
    settings: Settings, catalogue: Catalogue, feature: Feature, record: ActionRecord | None = None
) -> list[ModelDefinition]:
    """The models to try in order: the resolved one, then the feature's fallback (never in mock mode)."""
    primary = await resolve_model(settings, catalogue, feature, record)
    models = [primary]
    if feature.fallback_model and not settings.use_mock_model and feature.fallback_model != primary.identifier:
        models.append(catalogue.model(feature.fallback_model))
    return models
