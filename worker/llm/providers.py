"""The provider clients of one worker process, built once from the settings and closed on shutdown.

A provider without configuration is not built; asking it for a model raises ProviderRejected with what to
set, so that a request fails with a clear log line and `switchboard check` can say the same. A model with
`tool_calling: react` gets its provider's client wrapped in a ReactClient (one per provider), so that the
chat agent offers tools to every model the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from catalogue import ModelDefinition
from core.errors import ProviderRejected
from core.settings import Settings
from worker.llm._status import short
from worker.llm.anthropic import AnthropicModel, build_anthropic, build_anthropic_vertex
from worker.llm.base import LLMClient
from worker.llm.google import GoogleModel, build_google
from worker.llm.mock import MockModel
from worker.llm.openai_compatible import OpenAICompatibleModel
from worker.llm.react import ReactClient

__all__ = ["Providers", "build_providers"]

log = logging.getLogger(__name__)

_HOW_TO = {
    "anthropic": "set ANTHROPIC_API_KEY (or ANTHROPIC_BASE_URL)",
    "vertex": "set GOOGLE_CLOUD_PROJECT and GOOGLE_CLOUD_LOCATION (Claude on Vertex AI), or ANTHROPIC_VERTEX_BASE_URL",
    "google": "set GOOGLE_API_KEY or GEMINI_API_KEY (or GOOGLE_GENAI_USE_VERTEXAI with GOOGLE_CLOUD_PROJECT)",
    "openai_compatible": "set SWITCHBOARD_OPENAI_COMPATIBLE_BASE_URL (or the model's base_url)",
}


@dataclass
class Providers:
    """Clients by provider name, and why the missing ones are missing."""

    clients: dict[str, LLMClient]
    missing: dict[str, str] = field(default_factory=dict)
    openai_base_url: str | None = None
    _react: dict[str, ReactClient] = field(default_factory=dict, repr=False)

    def problem(self, model: ModelDefinition) -> str | None:
        """Why `model` cannot be called as configured; None when it can."""
        if model.provider == "openai_compatible" and not (getattr(model, "base_url", None) or self.openai_base_url):
            return _HOW_TO["openai_compatible"]
        if model.provider not in self.clients:
            return self.missing.get(model.provider, f"provider {model.provider!r} is not configured")
        return None

    def client_for(self, model: ModelDefinition) -> LLMClient:
        """The client that calls `model`: its provider's, given tools in ReAct text when the model has no
        native tool calling."""
        problem = self.problem(model)
        if problem is not None:
            raise ProviderRejected(model.provider, None, f"{model.provider} is not configured: {problem}")
        client = self.clients[model.provider]
        if model.tool_calling != "react":
            return client
        react = self._react.get(model.provider)
        if react is None or react.inner is not client:
            react = self._react[model.provider] = ReactClient(client)
        return react

    async def close(self) -> None:
        for client in self.clients.values():
            close = getattr(client, "close", None)
            if close is not None:
                try:
                    await close()
                except Exception:  # closing is best effort; the process is going away
                    log.exception("could not close the %s client", client.name)


def _secret(value: object) -> str | None:
    return value.get_secret_value() if value is not None else None  # type: ignore[attr-defined]


def build_providers(settings: Settings) -> Providers:
    """Every provider the settings configure (the mock always)."""
    providers = Providers({"mock": MockModel()}, openai_base_url=settings.openai_compatible_base_url)
    builders: dict[str, tuple[object, Callable[[], LLMClient]]] = {
        "anthropic": (
            settings.anthropic_api_key or settings.anthropic_base_url,
            lambda: AnthropicModel(build_anthropic(_secret(settings.anthropic_api_key), settings.anthropic_base_url)),
        ),
        "vertex": (
            settings.google_cloud_project or settings.vertex_base_url,
            lambda: AnthropicModel(
                build_anthropic_vertex(settings.google_cloud_project, settings.google_cloud_location, settings.vertex_base_url),
                "vertex",
            ),
        ),
        "google": (
            settings.google_api_key or (settings.google_genai_use_vertexai and settings.google_cloud_project),
            lambda: GoogleModel(
                build_google(
                    _secret(settings.google_api_key),
                    settings.google_base_url,
                    vertexai=settings.google_genai_use_vertexai,
                    project=settings.google_cloud_project,
                    location=settings.google_cloud_location,
                )
            ),
        ),
        "openai_compatible": (
            True,  # endpoints may come from the catalogue; `problem` checks per model
            lambda: OpenAICompatibleModel(
                httpx.AsyncClient(limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100)),
                base_url=settings.openai_compatible_base_url,
                api_key=_secret(settings.openai_compatible_api_key),
                model=settings.openai_compatible_model,
            ),
        ),
    }
    for provider, (configured, build) in builders.items():
        if not configured:
            providers.missing[provider] = _HOW_TO[provider]
            continue
        try:
            providers.clients[provider] = build()
        except Exception as exc:  # a bad configuration must not stop the worker serving other providers
            log.warning("provider %s could not be set up: %s", provider, type(exc).__name__)
            providers.missing[provider] = f"could not be set up: {type(exc).__name__}: {short(exc)}"
    return providers
