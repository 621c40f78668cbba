"""The whole catalogue loaded at once: features and chat tools (Python), models, feature settings and prompts
(YAML under the catalogue's folder). `catalogue.validation` checks its cross-references."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from catalogue.features import Feature
from catalogue.models import FeatureSetting, ModelDefinition, load_feature_settings, load_models
from catalogue.prompts import PromptRegistry
from catalogue.tools import TOOL_LIST, Tool

__all__ = ["CATALOGUE_DIR", "Catalogue", "load_catalogue"]

CATALOGUE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Catalogue:
    """Features and chat tools (Python), models, feature settings and prompts (YAML under `root`)."""

    features: dict[str, Feature]
    models: dict[str, ModelDefinition]
    feature_settings: dict[str, FeatureSetting]
    prompts: PromptRegistry
    tools: dict[str, Tool] = field(default_factory=lambda: {tool.name: tool for tool in TOOL_LIST})

    def model(self, identifier: str) -> ModelDefinition:
        return self.models[identifier]

    def models_of(self, feature: Feature) -> list[str]:
        """Every model identifier `feature` may run on, default first."""
        setting = self.feature_settings.get(feature.feature_setting)
        names: list[str] = []
        if setting is not None:
            names += [setting.default_model, *setting.selectable_models, *setting.beta_models]
            names += [migration.model for migration in setting.migrations]
        if feature.fallback_model:
            names.append(feature.fallback_model)
        return list(dict.fromkeys(names))

    def entries(self) -> list[dict[str, object]]:
        """Everything in the catalogue as JSON objects, each with its `type` and `key`
        (`switchboard catalogue show` prints one a line)."""
        lines: list[dict[str, object]] = []
        for feature in self.features.values():
            prompts = {}
            for identifier in self.models_of(feature):
                if identifier in self.models:
                    found = self.prompts.get(feature.prompt, self.models[identifier].family, feature.prompt_version)
                    prompts[identifier] = f"prompts/{found.location}"
            lines.append({"type": "feature", **feature.model_dump(mode="json"), "prompt_files": prompts})
        for model in self.models.values():
            lines.append({"type": "model", "key": model.identifier, **model.model_dump(mode="json", exclude_none=True)})
        for setting in self.feature_settings.values():
            lines.append({"type": "feature_setting", "key": setting.feature_setting, **setting.model_dump(mode="json")})
        for prompt in self.prompts:
            definition = prompt.definition.model_dump(mode="json", exclude={"prompt_template"}, exclude_none=True)
            lines.append({"type": "prompt", "key": prompt.location, "prompt_id": prompt.prompt_id, "family": prompt.family,
                          "version": prompt.version, "roles": list(prompt.definition.prompt_template),
                          "variables": sorted(prompt.variables), **definition})
        for tool in self.tools.values():
            lines.append({"type": "tool", "key": tool.name, **tool.model_dump(mode="json")})
        return lines


def load_catalogue(
    features: tuple[Feature, ...], root: Path = CATALOGUE_DIR, tools: tuple[Tool, ...] = TOOL_LIST
) -> tuple[Catalogue, list[str]]:
    """The catalogue and the problems found while loading its files (not yet cross-checked)."""
    problems: list[str] = []
    models = load_models(root / "models.yml", problems)
    settings = load_feature_settings(root / "feature_settings.yml", problems)
    prompts = PromptRegistry(root / "prompts", problems)
    by_key = {feature.key: feature for feature in features}
    return Catalogue(by_key, models, settings, prompts, {tool.name: tool for tool in tools}), problems
