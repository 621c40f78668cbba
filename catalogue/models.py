"""Models (`models.yml`) and feature settings (`feature_settings.yml`), loaded into strict pydantic models.

A model is one way to reach an LLM: a catalogue identifier, a provider and the provider's model name, the
prompt families it prefers (tried in order, then `base`), default parameters, its context size, and how it
calls tools (`tool_calling: react` when it has no tool API). A feature setting groups features for model
selection: its unit primitives, default model, the models that may be selected instead, beta models, and
flag-driven migrations to a new default (SPEC §9).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

__all__ = [
    "PROVIDERS",
    "ModelParams",
    "ModelDefinition",
    "OpenAICompatibleModel",
    "Deprecation",
    "FeatureSetting",
    "Migration",
    "load_models",
    "load_feature_settings",
    "read_yaml",
    "describe",
]

PROVIDERS = ("anthropic", "vertex", "google", "openai_compatible", "mock")
_IDENTIFIER = r"^[a-z0-9][a-z0-9_.-]*$"
_T = TypeVar("_T")


class ModelParams(BaseModel):
    """Call parameters; a prompt's `model.params` override the model's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, gt=0)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, gt=0)
    stop: tuple[str, ...] | None = None

    def merged(self, override: ModelParams) -> ModelParams:
        return self.model_copy(update=override.model_dump(exclude_none=True))


class Deprecation(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    deprecation_date: str
    removal_version: str


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    identifier: str = Field(pattern=_IDENTIFIER)
    name: str  # as shown to users, with the provider: "Claude Sonnet 4.5 - Anthropic"
    description: str = ""
    cost_indicator: Literal["$", "$$", "$$$", "$$$$"] | None = None
    provider_model: str  # the provider's name for it
    family: tuple[str, ...] = Field(min_length=1)
    max_context_tokens: int = Field(gt=0)
    params: ModelParams = ModelParams()
    deprecation: Deprecation | None = None
    # How the chat agent's tools reach it (SPEC §13.3): the provider's tool API, or the ReAct text format
    # for a model served without one.
    tool_calling: Literal["native", "react"] = "native"


class AnthropicModel(_Model):
    provider: Literal["anthropic"]


class VertexModel(_Model):
    """Claude on Vertex AI (Anthropic's SDK, Google credentials)."""

    provider: Literal["vertex"]


class GoogleModel(_Model):
    """Gemini, through the Gemini API or Vertex AI (google-genai)."""

    provider: Literal["google"]


class OpenAICompatibleModel(_Model):
    """A self-hosted model behind an OpenAI-compatible chat-completions API (vLLM, Ollama, LiteLLM)."""

    provider: Literal["openai_compatible"]
    base_url: str | None = None  # else SWITCHBOARD_OPENAI_COMPATIBLE_BASE_URL
    # Registered self-hosted models (SPEC §9, never in models.yml): the decrypted API token, and whether
    # `provider_model` is the served name (it then wins over SWITCHBOARD_OPENAI_COMPATIBLE_MODEL).
    api_key: str | None = Field(None, exclude=True, repr=False)
    served_name: bool = Field(False, exclude=True)


class MockModelDefinition(_Model):
    provider: Literal["mock"]


ModelDefinition = Annotated[
    AnthropicModel | VertexModel | GoogleModel | OpenAICompatibleModel | MockModelDefinition,
    Field(discriminator="provider"),
]


class Migration(BaseModel):
    """With `flag` enabled for an actor, `model` replaces the default (SPEC §9)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    flag: str
    model: str


class FeatureSetting(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    feature_setting: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    unit_primitives: tuple[str, ...] = ()
    default_model: str
    selectable_models: tuple[str, ...] = ()
    beta_models: tuple[str, ...] = ()
    migrations: tuple[Migration, ...] = ()


def read_yaml(path: Path, problems: list[str]) -> Any:
    """The YAML document at `path`, or None with the reason appended to `problems`."""
    try:
        return yaml.safe_load(path.read_text())
    except OSError as exc:
        problems.append(f"{path.name}: cannot be read ({exc.strerror})")
    except yaml.YAMLError as exc:
        problems.append(f"{path.name}: invalid YAML ({str(exc).splitlines()[0]})")
    return None


def describe(exc: ValidationError, where: str) -> list[str]:
    """One line per pydantic error, prefixed with the file and the path inside it."""
    return [f"{where}: {'.'.join(map(str, e['loc'])) or '<top>'}: {e['msg']}" for e in exc.errors()]


def _entries(path: Path, key: str, schema: Any, problems: list[str]) -> list[Any]:
    """The entries of the list under `key`, each validated on its own so that one bad entry is reported
    without hiding the others."""
    data = read_yaml(path, problems)
    if data is None:
        return []
    if not isinstance(data, dict) or set(data) != {key} or not isinstance(data[key], list):
        problems.append(f"{path.name}: expected a single top-level key {key!r} holding a list")
        return []
    adapter = TypeAdapter(schema)
    entries = []
    for index, item in enumerate(data[key]):
        try:
            entries.append(adapter.validate_python(item))
        except ValidationError as exc:
            problems.extend(describe(exc, f"{path.name}: {key}[{index}]"))
    return entries


def _unique(items: list[_T], key: str, what: str, where: str, problems: list[str]) -> dict[str, _T]:
    by_key: dict[str, _T] = {}
    for item in items:
        name = getattr(item, key)
        if name in by_key:
            problems.append(f"{where}: {what} {name!r} is declared twice")
        by_key[name] = item
    return by_key


def load_models(path: Path, problems: list[str]) -> dict[str, ModelDefinition]:
    """`models.yml` by identifier; problems are appended, never raised."""
    return _unique(_entries(path, "models", ModelDefinition, problems), "identifier", "model", path.name, problems)


def load_feature_settings(path: Path, problems: list[str]) -> dict[str, FeatureSetting]:
    """`feature_settings.yml` by name; problems are appended, never raised."""
    entries = _entries(path, "feature_settings", FeatureSetting, problems)
    return _unique(entries, "feature_setting", "feature setting", path.name, problems)
