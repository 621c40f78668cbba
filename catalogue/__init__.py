"""The declarative catalogue: features and chat tools (Python), models, feature settings and prompt definitions
(YAML), evaluation datasets (JSONL, `catalogue.evals`).

`get_catalogue()` loads and validates the shipped catalogue once per process; `validate()` reports every
broken cross-reference at once (`switchboard catalogue validate`).
"""

from __future__ import annotations

import functools
from pathlib import Path
from types import MappingProxyType

from catalogue.contents import CATALOGUE_DIR, Catalogue, load_catalogue
from catalogue.features import FEATURE_LIST, MAX_CONTENT_SIZE, Feature, InputField
from catalogue.models import FeatureSetting, ModelDefinition, ModelParams
from catalogue.prompts import CHECK_PROMPT, CONTEXT_VARIABLES, Prompt, PromptRegistry
from catalogue.tools import TOOL_LIST, Tool
from catalogue.validation import check_catalogue, check_datasets
from core.errors import CatalogueError, FeatureNotFound

__all__ = [
    "CATALOGUE_DIR",
    "CHECK_PROMPT",
    "CONTEXT_VARIABLES",
    "Catalogue",
    "FEATURES",
    "Feature",
    "FeatureSetting",
    "InputField",
    "MAX_CONTENT_SIZE",
    "ModelDefinition",
    "ModelParams",
    "Prompt",
    "PromptRegistry",
    "TOOL_LIST",
    "Tool",
    "external_features",
    "get_catalogue",
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


def validate(
    features: tuple[Feature, ...] = FEATURE_LIST,
    root: Path = CATALOGUE_DIR,
    tools: tuple[Tool, ...] = TOOL_LIST,
    *,
    datasets: bool = True,
) -> Catalogue:
    """Load the catalogue under `root` and check every cross-reference and (with `datasets`) every
    evaluation dataset; one CatalogueError lists all problems."""
    catalogue, problems = load_catalogue(features, root, tools)
    problems += check_catalogue(catalogue, features, tools)
    if datasets:
        problems += check_datasets(root, features)
    if problems:
        raise CatalogueError(problems)
    return catalogue


@functools.cache
def get_catalogue() -> Catalogue:
    """The shipped catalogue, validated; loaded once per process on first use. Evaluation datasets are
    left to `switchboard catalogue validate` and `eval run`: a broken one must not stop a server."""
    return validate(datasets=False)
