"""The catalogue's one validator, which collects every problem before raising.

Checks, beyond what the pydantic schemas enforce while loading:
- features: unique keys and fields, `user_text_field` among the fields, a resource type, a positive timeout,
  the feature setting exists, the prompt resolves for every model the feature may run on (its feature
  setting's default, selectable and beta models, and its fallback) and uses only variables the feature
  provides, the fallback model exists and uses another provider than the default model;
- models: at least one, unique identifiers, each reachable by `switchboard check`'s prompt;
- feature settings: every model they name exists, the default is selectable (when a list is given), and
  migrations name existing models and pushed flags (catalogue/flags.py);
- prompts: file names are semantic versions, family folders are `base` or some model's family, templates
  compile and contain nothing the sandbox would refuse;
- evaluation datasets: every line of every `evals/<feature>/*.jsonl` (see `catalogue.evals`);
- chat tools: unique names, a unit primitive some add-on bundles, an input schema that is a JSON-schema
  object with properties in the subset `Tool.argument_error` enforces. (Whether each tool's handler exists
  is `chat.tools.check_handlers`: the catalogue does not import `chat`.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from catalogue.add_ons import add_ons_bundling
from catalogue.contents import Catalogue
from catalogue.evals import dataset_problems
from catalogue.features import Feature
from catalogue.flags import FLAGS
from catalogue.models import FeatureSetting
from catalogue.prompts import CHECK_PROMPT, CONTEXT_VARIABLES
from catalogue.tools import PROPERTY_KEYWORDS, PROPERTY_TYPES, SCHEMA_KEYWORDS, TOOL_LIST, Tool

__all__ = ["check_catalogue", "check_datasets", "check_tools"]

def check_catalogue(
    catalogue: Catalogue, features: tuple[Feature, ...], tools: tuple[Tool, ...] = TOOL_LIST
) -> list[str]:
    """Every broken cross-reference of a loaded catalogue."""
    problems: list[str] = []
    seen: set[str] = set()
    for feature in features:
        if feature.key in seen:
            problems.append(f"feature {feature.key!r} is declared twice")
        seen.add(feature.key)
        problems += _feature_shape(feature)
        problems += _feature_references(catalogue, feature)
    keys = {feature.key: feature for feature in features}
    for feature in features:
        categorizer = keys.get(feature.categorized_by or "")
        if feature.categorized_by is not None and (categorizer is None or not categorizer.counts_categories):
            problems.append(f"feature {feature.key!r}: categorized_by {feature.categorized_by!r} is not a feature "
                            "that counts categories")
    if not catalogue.models:
        problems.append("models.yml: no model is declared")
    for model in catalogue.models.values():
        try:
            catalogue.prompts.get(CHECK_PROMPT, model.family)
        except LookupError as exc:
            problems.append(f"model {model.identifier!r}: {exc} (switchboard check needs it)")
    for setting in catalogue.feature_settings.values():
        problems += _setting_references(catalogue, setting)
    problems += _prompt_folders(catalogue)
    problems += check_tools(tools)
    return problems


def check_datasets(root: Path, features: tuple[Feature, ...]) -> list[str]:
    """Every broken line of the evaluation datasets under `root`/evals, as `evals/<feature>/<name>.jsonl:line: problem`."""
    return dataset_problems(root / "evals", features)


def check_tools(tools: tuple[Tool, ...]) -> list[str]:
    """Every problem of the chat tools' declarations (their handlers aside)."""
    problems: list[str] = []
    seen: set[str] = set()
    for tool in tools:
        where = f"tool {tool.name!r}"
        if tool.name in seen:
            problems.append(f"{where} is declared twice")
        seen.add(tool.name)
        if not add_ons_bundling(tool.unit_primitive):
            problems.append(f"{where}: unit primitive {tool.unit_primitive!r} is bundled by no add-on (catalogue/add_ons.py)")
        if not tool.resource_noun.strip():
            problems.append(f"{where}: resource_noun is empty")
        if not tool.handler.isidentifier():
            problems.append(f"{where}: handler {tool.handler!r} is not a Python name")
        problems += [f"{where}: input_schema {problem}" for problem in _schema_problems(tool.input_schema)]
    return problems


def _schema_problems(schema: dict[str, Any]) -> list[str]:
    if schema.get("type") != "object":
        return ["must be a JSON schema of type 'object'"]
    problems = [f"uses {key!r}, which tools do not support" for key in sorted(set(schema) - SCHEMA_KEYWORDS)]
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        return [*problems, "declares no properties"]
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(name, str) for name in required):
        problems.append("'required' must be a list of property names")
    else:
        problems += [f"requires {name!r}, which is not one of its properties" for name in required if name not in properties]
    if not isinstance(schema.get("additionalProperties", False), bool):
        problems.append("'additionalProperties' must be true or false")
    for name, spec in properties.items():
        problems += [f"property {name!r} {problem}" for problem in _property_problems(spec)]
    return problems


def _property_problems(spec: object) -> list[str]:
    if not isinstance(spec, dict):
        return ["must be a JSON schema object"]
    problems = [f"uses {key!r}, which tools do not support" for key in sorted(set(spec) - PROPERTY_KEYWORDS)]
    kind = spec.get("type")
    if kind not in PROPERTY_TYPES:
        problems.append(f"has type {kind!r}; tools support {', '.join(PROPERTY_TYPES)}")
    lengths = {key: spec[key] for key in ("minLength", "maxLength") if key in spec}
    if lengths and kind != "string":
        problems.append("sets a length but is not a string")
    if any(not isinstance(value, int) or isinstance(value, bool) or value < 0 for value in lengths.values()):
        problems.append("lengths must be non-negative integers")
    elif lengths.get("minLength", 0) > lengths.get("maxLength", float("inf")):
        problems.append("has minLength above maxLength")
    return problems


def _feature_shape(feature: Feature) -> list[str]:
    problems = []
    names = [field.name for field in feature.fields]
    if len(set(names)) != len(names):
        problems.append(f"feature {feature.key!r} declares a field twice")
    if "resource_id" in names:
        problems.append(f"feature {feature.key!r}: resource_id is implicit, do not declare it")
    if feature.user_text_field is not None and feature.user_text_field not in names:
        problems.append(f"feature {feature.key!r}: user_text_field {feature.user_text_field!r} is not one of its fields")
    if not feature.resource_types:
        problems.append(f"feature {feature.key!r} allows no resource type")
    if feature.timeout_s <= 0:
        problems.append(f"feature {feature.key!r}: timeout_s must be positive")
    return problems


def _feature_references(catalogue: Catalogue, feature: Feature) -> list[str]:
    where = f"feature {feature.key!r}"
    problems = []
    setting = catalogue.feature_settings.get(feature.feature_setting)
    if setting is None:
        problems.append(f"{where}: feature setting {feature.feature_setting!r} is not in feature_settings.yml")
    if feature.fallback_model is not None:
        fallback = catalogue.models.get(feature.fallback_model)
        default = catalogue.models.get(setting.default_model) if setting else None
        if fallback is None:
            problems.append(f"{where}: fallback model {feature.fallback_model!r} is not in models.yml")
        elif default is not None and default.provider == fallback.provider:
            problems.append(f"{where}: fallback model {fallback.identifier!r} uses the default model's provider {fallback.provider!r}")
    if feature.prompt not in catalogue.prompts.ids():
        return [*problems, f"{where}: prompt {feature.prompt!r} has no definition under prompts/"]
    provided = {field.name for field in feature.fields} | CONTEXT_VARIABLES
    for identifier in catalogue.models_of(feature):
        model = catalogue.models.get(identifier)
        if model is None:
            continue  # reported with the feature setting
        for version in (feature.prompt_version, *(m.version for m in feature.prompt_migrations)):
            try:
                prompt = catalogue.prompts.get(feature.prompt, model.family, version)
            except (LookupError, ValueError) as exc:
                problems.append(f"{where}: model {identifier!r}: {exc}")
                continue
            unknown = sorted(prompt.variables - provided)
            if unknown:
                problems.append(f"{where}: prompts/{prompt.location} uses variables it is not given: {', '.join(unknown)}")
    for migration in feature.prompt_migrations:
        definition = FLAGS.get(migration.flag)
        if definition is None or not definition.pushed:
            problems.append(f"{where}: prompt migration flag {migration.flag!r} is not a pushed flag of catalogue/flags.py")
    return list(dict.fromkeys(problems))


def _setting_references(catalogue: Catalogue, setting: FeatureSetting) -> list[str]:
    where = f"feature setting {setting.feature_setting!r}"
    problems = []
    named = [("default model", setting.default_model)]
    named += [("selectable model", name) for name in setting.selectable_models]
    named += [("beta model", name) for name in setting.beta_models]
    named += [(f"migration {m.flag!r} model", m.model) for m in setting.migrations]
    for what, name in named:
        if name not in catalogue.models:
            problems.append(f"{where}: {what} {name!r} is not in models.yml")
    if setting.selectable_models and setting.default_model not in setting.selectable_models:
        problems.append(f"{where}: default model {setting.default_model!r} is not one of its selectable models")
    for migration in setting.migrations:
        definition = FLAGS.get(migration.flag)
        if definition is None or not definition.pushed:
            problems.append(f"{where}: migration flag {migration.flag!r} is not a pushed flag of catalogue/flags.py")
    return problems


def _prompt_folders(catalogue: Catalogue) -> list[str]:
    families = {"base"} | {family for model in catalogue.models.values() for family in model.family}
    problems = []
    for prompt_id in catalogue.prompts.ids():
        for folder in catalogue.prompts.folders(prompt_id):
            if folder not in families:
                problems.append(f"prompts/{prompt_id}/{folder}: {folder!r} is neither 'base' nor a model family")
    return problems
