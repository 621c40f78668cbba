"""Running one AI action: re-check access, render the prompt, call the model, stream chunks, publish exactly
one final message.

The model comes from `catalogue.selection.resolve_model`; when it fails before its first chunk, the feature's fallback model
is tried in the same run. Each call is guarded by its model's circuit breaker and bounded by the call's
timeout (the feature's, unless the prompt or `SWITCHBOARD_LLM_TIMEOUT_S` says otherwise), counted from the
start and again after every chunk, so a long answer that keeps streaming is never cut. No arq and no retry
policy here: errors propagate to `worker.jobs`, which decides.

Redis may go away mid-request. Chunks are best effort: after a chunk could not be published, the call
publishes no more chunks (so the chunk ids a subscriber saw stay contiguous) and streams on. The final
message is kept and its publication retried with backoff until Redis answers, for up to
`FINAL_PUBLISH_PATIENCE_S`; its exactly-once guard makes a retry of a publish that did go out harmless.
Token usage is recorded alongside the final message and never fails the request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from catalogue import Feature, ModelDefinition, Prompt, get_feature
from catalogue.selection import models_to_call, resolve_model
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
from core.redis import REDIS_UNAVAILABLE
from subscriptions import history
from subscriptions.messages import AiMessage, RequestRoutes
from worker.deps import Deps
from worker.llm import Completion, Message, Usage
from worker.prompt_variables import prompt_variables
from worker.usage import estimated_usage, record_usage

__all__ = ["execute", "publish_failure", "user_text", "build_completion", "Outcome", "FINAL_PUBLISH_PATIENCE_S"]

log = logging.getLogger(__name__)

_DEFAULT_MAX_TOKENS = 2048
# How long a finished request waits for Redis to come back to publish its final message.
FINAL_PUBLISH_PATIENCE_S = 120.0

# How a request ended: its answer went out, access was refused (an answer, not a completion), or another
# run of the job had published its final already.
Outcome = Literal["answered", "refused", "answered before"]
_T = TypeVar("_T")


def user_text(feature: Feature, record: ActionRecord) -> str:
    if feature.user_text_field is None:
        return feature.humanized
    return str(record.inputs.get(feature.user_text_field, ""))


def _routes(record: ActionRecord, feature: Feature) -> RequestRoutes:
    return RequestRoutes(record.user_id, record.resource, feature.ai_action, record.client_subscription_id)


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


async def execute(deps: Deps, record: ActionRecord, *, attempt: int = 0) -> Outcome:
    feature = get_feature(record.feature)
    verdict = await deps.gate.recheck(deps.sessions, record)
    choice = resolve_model(
        deps.catalogue, feature.feature_setting, selection=await deps.selection.get(), namespace_paths=verdict.namespace_paths,
        flags=record.flags, default_model=deps.settings.default_model, secrets=deps.secrets,
    ) if verdict else None
    if choice is None or choice.model is None:  # refused, or the feature's provider is disabled by the admin
        refusal = AiMessage(record.request_id, "assistant", errors=(AI_NOT_PERMITTED,))
        return "refused" if await _publish_final(deps, record, feature, refusal) else "answered before"
    variables = await prompt_variables(deps.sessions, feature, record)
    models = models_to_call(deps.catalogue, feature, choice, mock=deps.settings.use_mock_model)
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
    published = await _publish_answer(deps, record, feature, answer, call.model.identifier, usage,
                                      selected=choice.model.identifier)
    INPUT_TOKENS.labels(feature.key, call.model.identifier).inc(usage.input_tokens)
    OUTPUT_TOKENS.labels(feature.key, call.model.identifier).inc(usage.output_tokens)
    if not published:
        return "answered before"
    log.info(
        "completion_service_performed",
        extra={"request_id": record.request_id, "feature": feature.key, "model": call.model.identifier,
               "selected_model": choice.model.identifier, "selected_by": choice.source,
               "stale_choices": list(choice.stale), "provider": call.model.provider, "duration_s": round(time.perf_counter() - call.started, 4),
               "first_chunk_s": call.first_chunk_s, "input_tokens": usage.input_tokens,
               "output_tokens": usage.output_tokens, "tokens_estimated": usage.estimated},
    )
    return "answered"


async def _publish_answer(
    deps: Deps, record: ActionRecord, feature: Feature, answer: AiMessage, model: str, usage: Usage, *, selected: str
) -> bool:
    """The final message and the token usage, two round trips at once. A usage record that fails is logged;
    it never turns the answer into an error."""

    async def recorded() -> None:
        try:
            await record_usage(deps.redis, answer.request_id, model, usage, selected=selected)
        except Exception as exc:
            log.warning("usage_not_recorded", extra={"request_id": answer.request_id, "error": type(exc).__name__})

    published, _ = await asyncio.gather(_publish_final(deps, record, feature, answer), recorded())
    return published


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
    chunk_routes = _routes(record, feature).chunks()
    context = {"request_id": record.request_id, "feature": feature.key, "model": model.identifier,
               "provider": model.provider, "prompt": prompt.location, "try": attempt + 1}
    log.info("performing_request", extra={**context, **expanded(
        user_input=completion.user_text, prompt=completion.messages)})  # dataclasses: JSON objects
    loop = asyncio.get_running_loop()
    chunks_lost = False
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
                        if chunk_routes and not chunks_lost:
                            chunk = AiMessage(record.request_id, "assistant", content=event, chunk_id=len(call.parts),
                                              thread_id=record.thread_id)
                            try:
                                await deps.publisher.publish(chunk, chunk_routes)
                            except REDIS_UNAVAILABLE as exc:  # the final message carries the whole answer
                                chunks_lost = True
                                log.warning("chunks_not_published", extra={**context, "error": type(exc).__name__,
                                                                           "chunks": len(call.parts)})
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
    """Publish the request's final message, waiting for Redis when it is away; False when another run of
    the job had published it."""
    routes = _routes(record, feature).final()
    if not routes:  # an internal feature without resource or chat route (categorize_question): nobody listens
        return True
    cursor = await _once_redis_answers(lambda: deps.publisher.publish(message, routes, final=True), record)
    if cursor is None:
        return False
    if feature.cache_response:
        await _once_redis_answers(lambda: history.append(deps.redis, record.user_id, message), record)
    return True


async def _once_redis_answers(operation: Callable[[], Awaitable[_T]], record: ActionRecord) -> _T:
    """Run `operation`, again with backoff while Redis is unreachable, for up to `FINAL_PUBLISH_PATIENCE_S`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FINAL_PUBLISH_PATIENCE_S
    backoff = 0.1
    while True:
        try:
            return await operation()
        except REDIS_UNAVAILABLE as exc:
            if loop.time() + backoff > deadline:
                raise
            log.warning("final_publish_waiting_for_redis", extra={"request_id": record.request_id,
                                                                 "error": type(exc).__name__, "retry_in_s": backoff})
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)
