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
  compile and contain nothing the sandbox would refuse.
"""

from __future__ import annotations

from catalogue.contents import Catalogue
from catalogue.features import Feature
from catalogue.flags import FLAGS
from catalogue.models import FeatureSetting
from catalogue.prompts import CHECK_PROMPT, CONTEXT_VARIABLES

__all__ = ["check_catalogue"]

def check_catalogue(catalogue: Catalogue, features: tuple[Feature, ...]) -> list[str]:
    """Every broken cross-reference of a loaded catalogue."""
    problems: list[str] = []
    seen: set[str] = set()
    for feature in features:
        if feature.key in seen:
            problems.append(f"feature {feature.key!r} is declared twice")
        seen.add(feature.key)
        problems += _feature_shape(feature)
        problems += _feature_references(catalogue, feature)
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
        try:
            prompt = catalogue.prompts.get(feature.prompt, model.family, feature.prompt_version)
        except (LookupError, ValueError) as exc:
            problems.append(f"{where}: model {identifier!r}: {exc}")
            continue
        unknown = sorted(prompt.variables - provided)
        if unknown:
            problems.append(f"{where}: prompts/{prompt.location} uses variables it is not given: {', '.join(unknown)}")
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
