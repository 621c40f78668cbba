"""`switchboard check`: a test completion against every model the features are configured to use.

Each model gets the `model_configuration/check` prompt once (as the AI gateway's readiness check does),
through the same clients, prompt registry and timeouts as real requests. One result per model: answered
(with the time it took) or why not. Fallback models whose provider is not configured are reported as
skipped, not failed.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing
from dataclasses import dataclass, field

from catalogue import CHECK_PROMPT, FEATURES, Catalogue, ModelDefinition, get_catalogue
from catalogue.selection import models_to_call, resolve_model
from core.errors import ProviderError, ProviderTimeout
from core.settings import Settings
from worker.llm import Completion, Message, Providers, build_providers

__all__ = ["ProbeResult", "probe_models"]


@dataclass
class ProbeResult:
    model: ModelDefinition
    status: str  # "ok", "failed" or "skipped"
    detail: str
    feature_settings: list[str] = field(default_factory=list)
    fallback_only: bool = False

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    def line(self) -> str:
        used = ("fallback of " if self.fallback_only else "for ") + ", ".join(self.feature_settings)
        where = f"{self.model.provider} {self.model.provider_model}"
        return f"{self.status:<7} {self.model.identifier} ({where}): {self.detail} [{used}]"


async def _configured_models(settings: Settings, catalogue: Catalogue) -> dict[str, tuple[ModelDefinition, list[str], bool]]:
    """Model identifier → (model, feature settings using it, whether only as a fallback)."""
    found: dict[str, tuple[ModelDefinition, list[str], bool]] = {}
    for feature in FEATURES.values():
        choice = resolve_model(catalogue, feature.feature_setting, default_model=settings.default_model)
        for index, model in enumerate(models_to_call(catalogue, feature, choice, mock=settings.use_mock_model)):
            _, users, fallback_only = found.get(model.identifier, (model, [], True))
            if feature.feature_setting not in users:
                users.append(feature.feature_setting)
            found[model.identifier] = (model, users, fallback_only and index > 0)
    return found


async def _probe(providers: Providers, catalogue: Catalogue, model: ModelDefinition, timeout_s: float | None) -> tuple[str, str]:
    problem = providers.problem(model)
    if problem is not None:
        return "failed", f"not configured: {problem}"
    prompt = catalogue.prompts.get(CHECK_PROMPT, model.family)
    params = model.params.merged(prompt.definition.model.params)
    timeout = timeout_s or prompt.definition.params.timeout or 30.0
    completion = Completion(
        messages=tuple(Message(role, text) for role, text in prompt.render({})),
        model=model.provider_model, max_tokens=params.max_tokens or 16, temperature=params.temperature,
        timeout_s=timeout, user_text="ok", endpoint=getattr(model, "base_url", None),
    )
    started = time.perf_counter()
    text = ""
    try:
        async with asyncio.timeout(timeout), aclosing(providers.client_for(model).stream(completion)) as events:
            async for event in events:
                if isinstance(event, str):
                    text += event
    except TimeoutError:
        return "failed", str(ProviderTimeout(model.provider, f"no answer within {timeout} s"))
    except ProviderError as exc:
        return "failed", str(exc)
    if not text.strip():
        return "failed", "answered with no text"
    return "ok", f"answered in {time.perf_counter() - started:.2f} s"


async def probe_models(settings: Settings, providers: Providers | None = None) -> list[ProbeResult]:
    """One result per model the catalogue's features would use with these settings."""
    catalogue = get_catalogue()
    owned = providers is None
    providers = providers or build_providers(settings)
    try:
        models = await _configured_models(settings, catalogue)
        probes = []
        for model, _users, fallback_only in models.values():
            if fallback_only and providers.problem(model) is not None:
                probes.append(asyncio.sleep(0, ("skipped", f"not configured: {providers.problem(model)}")))
            else:
                probes.append(_probe(providers, catalogue, model, settings.llm_timeout_s))
        outcomes = await asyncio.gather(*probes)
    finally:
        if owned:
            await providers.close()
    return [
        ProbeResult(model, status, detail, users, fallback_only)
        for (model, users, fallback_only), (status, detail) in zip(models.values(), outcomes, strict=True)
    ]
