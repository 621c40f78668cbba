"""Running one AI action: re-check access, render the prompt, call the model, stream chunks, publish exactly
one final message.

The model comes from `worker.selection`; when it fails before its first chunk, the feature's fallback model
is tried in the same run. Each call is guarded by its model's circuit breaker and bounded by the call's
timeout (the feature's, unless the prompt or `SWITCHBOARD_LLM_TIMEOUT_S` says otherwise), counted from the
start and again after every chunk, so a long answer that keeps streaming is never cut. No arq and no retry
policy here: errors propagate to `worker.jobs`, which decides.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import aclosing
from dataclasses import dataclass, field

from catalogue import Feature, ModelDefinition, Prompt, get_feature
from core.actions import ActionRecord
from core.errors import (
    AI_NOT_PERMITTED,
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
)
from core.logs import expanded
from core.metrics import (
    FIRST_CHUNK_SECONDS,
    INPUT_TOKENS,
    OUTPUT_TOKENS,
    record_provider_request,
)
from subscriptions import history
from subscriptions.messages import AiMessage, routes_for
from worker.deps import Deps
from worker.llm import Completion, Message, Usage
from worker.prompt_variables import prompt_variables
from worker.selection import candidates, resolve_model
from worker.usage import estimated_usage, record_usage

__all__ = ["execute", "publish_failure", "user_text", "build_completion"]

log = logging.getLogger(__name__)

_DEFAULT_MAX_TOKENS = 2048


def user_text(feature: Feature, record: ActionRecord) -> str:
    if feature.user_text_field is None:
        return feature.humanized
    return str(record.inputs.get(feature.user_text_field, ""))


def _routes(record: ActionRecord, feature: Feature, *, with_subscription: bool) -> list[str]:
    return routes_for(
        f"gid://gitlab/User/{record.user_id}",
        resource_gid=record.resource,
        ai_action=feature.ai_action,
        client_subscription_id=record.client_subscription_id if with_subscription else None,
    )


def _final_routes(record: ActionRecord, feature: Feature) -> list[str]:
    """The answer goes to the request's own routes; a chat answer is also broadcast to every tab."""
    routes = _routes(record, feature, with_subscription=True)
    if record.client_subscription_id is not None and feature.ai_action is not None:
        routes += _routes(record, feature, with_subscription=False)
    return routes


def build_completion(
    deps: Deps, feature: Feature, record: ActionRecord, model: ModelDefinition, prompt: Prompt,
    variables: dict[str, object], *, attempt: int = 0,
) -> Completion:
    """The call for `model`: the prompt rendered, the model's parameters overridden by the prompt's."""
    params = model.params.merged(prompt.definition.model.params)
    timeout = deps.settings.llm_timeout_s or prompt.definition.params.timeout or feature.timeout_s
    return Completion(
        messages=tuple(Message(role, text) for role, text in prompt.render(variables)),
        model=model.provider_model,
        max_tokens=params.max_tokens or _DEFAULT_MAX_TOKENS,
        temperature=params.temperature,
        top_p=params.top_p,
        top_k=params.top_k,
        stop=prompt.definition.params.stop or params.stop or (),
        timeout_s=timeout,
        user_text=user_text(feature, record),
        turn=attempt,
        endpoint=getattr(model, "base_url", None),
        api_key=getattr(model, "api_key", None),
        served_name=getattr(model, "served_name", False),
    )


@dataclass
class _Call:
    """One model call of a request, as it goes."""

    model: ModelDefinition
    parts: list[str] = field(default_factory=list)
    usage: Usage | None = None
    started: float = field(default_factory=time.perf_counter)
    first_chunk_s: float | None = None


async def execute(deps: Deps, record: ActionRecord, *, attempt: int = 0) -> None:
    feature = get_feature(record.feature)
    verdict = await deps.gate.recheck(deps.sessions, record)
    choice = await resolve_model(
        deps.settings, deps.catalogue, feature, record,
        selection=await deps.selection.get(), namespace_paths=verdict.namespace_paths, secrets=deps.secrets,
    ) if verdict else None
    if choice is None or choice.model is None:  # refused, or the feature's provider is disabled by the admin
        await _publish_final(deps, record, feature, AiMessage(record.request_id, "assistant", errors=(AI_NOT_PERMITTED,)))
        return
    variables = await prompt_variables(deps.sessions, feature, record)
    models = candidates(deps.settings, deps.catalogue, feature, choice)
    call = await _answer(deps, feature, record, models, variables, attempt)
    content = "".join(call.parts)
    answer = AiMessage(
        record.request_id,
        "assistant",
        content=content,
        content_html=deps.markdown.render(content),
        thread_id=record.thread_id,
    )
    usage = call.usage or Usage(0, 0, estimated=True)
    async with asyncio.TaskGroup() as group:  # two round trips at once
        final = group.create_task(_publish_final(deps, record, feature, answer))
        group.create_task(record_usage(deps.redis, record.request_id, call.model.identifier, usage, selected=choice.model.identifier))
    INPUT_TOKENS.labels(feature.key, call.model.identifier).inc(usage.input_tokens)
    OUTPUT_TOKENS.labels(feature.key, call.model.identifier).inc(usage.output_tokens)
    if final.result():
        log.info(
            "completion_service_performed",
            extra={"request_id": record.request_id, "feature": feature.key, "model": call.model.identifier,
                   "selected_model": choice.model.identifier, "selected_by": choice.source,
                   "stale_choices": list(choice.stale), "provider": call.model.provider, "duration_s": round(time.perf_counter() - call.started, 4),
                   "first_chunk_s": call.first_chunk_s, "input_tokens": usage.input_tokens,
                   "output_tokens": usage.output_tokens, "tokens_estimated": usage.estimated},
        )


async def _answer(
    deps: Deps, feature: Feature, record: ActionRecord, models: list[ModelDefinition],
    variables: dict[str, object], attempt: int,
) -> _Call:
    """Stream from the first model that answers; a later model is tried only while nothing was streamed.
    When all fail, the first model's error propagates (its retry-after decides the backoff)."""
    first_error: ProviderError | None = None
    for index, model in enumerate(models):
        call = _Call(model)
        try:
            await _stream(deps, feature, record, call, variables, attempt)
            return call
        except ProviderError as exc:
            if call.parts:
                raise
            first_error = first_error or exc
            if index + 1 < len(models):
                log.info("falling back", extra={"request_id": record.request_id, "feature": feature.key,
                                                "model": model.identifier, "fallback": models[index + 1].identifier})
    raise first_error or ProviderRejected("none", None, "no model to try")


async def _stream(
    deps: Deps, feature: Feature, record: ActionRecord, call: _Call, variables: dict[str, object], attempt: int
) -> None:
    model = call.model
    prompt = deps.catalogue.prompts.get(feature.prompt, model.family, feature.prompt_version)
    completion = build_completion(deps, feature, record, model, prompt, variables, attempt=attempt)
    client = deps.providers.client_for(model)
    chunk_routes = _routes(record, feature, with_subscription=True) if record.client_subscription_id else []
    context = {"request_id": record.request_id, "feature": feature.key, "model": model.identifier,
               "provider": model.provider, "prompt": prompt.location, "try": attempt + 1}
    log.info("performing_request", extra={**context, **expanded(
        user_input=completion.user_text, prompt=completion.messages)})  # dataclasses: JSON objects
    loop = asyncio.get_running_loop()
    try:
        with deps.circuits.for_model(model.identifier, model.provider).guard():
            try:
                async with asyncio.timeout(completion.timeout_s) as deadline, aclosing(client.stream(completion)) as events:
                    async for event in events:
                        if isinstance(event, Usage):
                            call.usage = event
                            continue
                        call.parts.append(event)
                        if call.first_chunk_s is None:
                            call.first_chunk_s = round(time.perf_counter() - call.started, 4)
                            FIRST_CHUNK_SECONDS.labels(feature.key).observe(call.first_chunk_s)
                        if chunk_routes:
                            chunk = AiMessage(record.request_id, "assistant", content=event, chunk_id=len(call.parts),
                                              thread_id=record.thread_id)
                            await deps.publisher.publish(chunk, chunk_routes)
                        deadline.reschedule(loop.time() + completion.timeout_s)
            except TimeoutError as exc:
                raise ProviderTimeout(model.provider, f"no chunk within {completion.timeout_s} s") from exc
    except ProviderError as exc:
        record_provider_request(model.provider, model.identifier, type(exc).__name__, time.perf_counter() - call.started)
        log.warning("error_response_received", extra={**context, "error": type(exc).__name__, "status": exc.status,
                                                        "detail": exc.loggable_detail, "chunks": len(call.parts),
                                                        **expanded(provider_detail=exc.detail)})
        raise
    call.usage = call.usage or estimated_usage(completion, "".join(call.parts))
    duration_s = time.perf_counter() - call.started
    record_provider_request(model.provider, model.identifier, "success", duration_s)
    log.info("response_received", extra={**context, "duration_s": round(duration_s, 4),
                                          "first_chunk_s": call.first_chunk_s, "chunks": len(call.parts),
                                          **expanded(response="".join(call.parts))})


async def publish_failure(deps: Deps, record: ActionRecord, text: str) -> None:
    """End the request with a user-facing error (no-op when its final message is out already)."""
    feature = get_feature(record.feature)
    await _publish_final(deps, record, feature, AiMessage(record.request_id, "assistant", errors=(text,), thread_id=record.thread_id))


async def _publish_final(deps: Deps, record: ActionRecord, feature: Feature, message: AiMessage) -> bool:
    routes = _final_routes(record, feature)
    if not routes:  # an internal feature without resource or chat route (categorize_question): nobody listens
        return True
    cursor = await deps.publisher.publish(message, routes, final=True)
    if cursor is None:
        return False
    if feature.cache_response:
        await history.append(deps.redis, record.user_id, message)
    return True
