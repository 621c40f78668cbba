"""The declarative catalogue: features (and, later, models, feature settings, prompts, flags)."""

from __future__ import annotations

from types import MappingProxyType

from catalogue.features import FEATURE_LIST, MAX_CONTENT_SIZE, Feature, InputField
from core.errors import CatalogueError, FeatureNotFound

__all__ = [
    "FEATURES",
    "Feature",
    "InputField",
    "MAX_CONTENT_SIZE",
    "external_features",
    "get_feature",
    "validate",
]

FEATURES = MappingProxyType({feature.key: feature for feature in FEATURE_LIST})


def get_feature(key: str) -> Feature:
    try:
        return FEATURES[key]
    except KeyError:
        raise FeatureNotFound(key) from None


def external_features() -> tuple[Feature, ...]:
    """The features a client may ask for through `aiAction`, in catalogue order."""
    return tuple(f for f in FEATURE_LIST if not f.internal)


def validate(features: tuple[Feature, ...] = FEATURE_LIST) -> None:
    """Check every cross-reference of the catalogue; raise one CatalogueError listing all problems."""
    problems: list[str] = []
    seen: set[str] = set()
    for feature in features:
        if feature.key in seen:
            problems.append(f"feature {feature.key!r} is declared twice")
        seen.add(feature.key)
        names = [f.name for f in feature.fields]
        if len(set(names)) != len(names):
            problems.append(f"feature {feature.key!r} declares a field twice")
        if "resource_id" in names:
            problems.append(f"feature {feature.key!r}: resource_id is implicit, do not declare it")
        if feature.user_text_field is not None and feature.user_text_field not in names:
            problems.append(
                f"feature {feature.key!r}: user_text_field {feature.user_text_field!r} is not one of its fields"
            )
        if not feature.resource_types:
            problems.append(f"feature {feature.key!r} allows no resource type")
        if feature.timeout_s <= 0:
            problems.append(f"feature {feature.key!r}: timeout_s must be positive")
    if problems:
        raise CatalogueError(problems)
