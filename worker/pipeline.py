"""Running one AI action: re-check access, pick the model, answer (`worker.agent`; chat turns are prepared
by `worker.conversation`), publish exactly one final message.

The model comes from `catalogue.selection.resolve_model`; when it fails before its first chunk, the
feature's fallback model is tried in the same run. No arq and no retry policy here: errors propagate to
`worker.jobs`, which decides.

Redis may go away mid-request: the final message is kept and its publication retried with backoff until
Redis answers, for up to `FINAL_PUBLISH_PATIENCE_S`; its exactly-once guard makes a retry of a publish that
did go out harmless. Token usage is recorded alongside the final message and never fails the request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from catalogue import Feature, get_feature
from catalogue.selection import models_to_call, resolve_model, resolve_prompt_version
from chat import conversations
from core.actions import ActionRecord
from core.errors import AGENT_STEP_LIMIT, AI_NOT_PERMITTED
from core.metrics import INPUT_TOKENS, OUTPUT_TOKENS, Cohort
from core.redis import REDIS_UNAVAILABLE
from subscriptions.messages import AiMessage
from worker.agent import Answer, answer, routes_of
from worker.cancel import RequestCancelled, record_cancelled, until_cancelled
from worker.conversation import ChatTurn, categorize_later, categorizer_of, chat_turn, record_category
from worker.deps import Deps
from worker.llm import Usage
from worker.prompt_variables import prompt_variables
from worker.usage import record_usage

__all__ = ["execute", "publish_failure", "publish_cancelled", "Measured", "Outcome", "FINAL_PUBLISH_PATIENCE_S"]

log = logging.getLogger(__name__)

# How long a finished request waits for Redis to come back to publish its final message.
FINAL_PUBLISH_PATIENCE_S = 120.0

# How a request ended: its answer went out, access was refused (an answer, not a completion), the user
# stopped it (`aiActionCancel`), or another run of the job had published its final already.
Outcome = Literal["answered", "refused", "cancelled", "answered before"]
_T = TypeVar("_T")


@dataclass
class Measured:
    """What a run tells its caller for the rollouts' cohort counters (`worker.jobs` counts once the final
    message is out, answer or error): the cohort, set when the model is about to be called (None: no model
    call, as for a refusal or a chat command), and the answer so far (its time to first chunk)."""

    cohort: Cohort | None = None
    answer: Answer | None = None


async def execute(
    deps: Deps, record: ActionRecord, *, attempt: int = 0, stop: asyncio.Event | None = None,
    measured: Measured | None = None,
) -> Outcome:
    """Run the request; when `stop` is set (`worker.cancel`), the model call stops and the final message
    carries what was streamed so far, marked cancelled. `measured` is filled for the caller, also when an
    error propagates."""
    feature = get_feature(record.feature)
    selection = await deps.selection.get()  # before the session below: a cache that loads takes its own
    async with deps.sessions() as session:  # one session re-checks access and reads what the prompt needs (history too)
        verdict = await deps.gate.recheck(session, record)
        choice = resolve_model(
            deps.catalogue, feature.feature_setting, selection=selection, namespace_paths=verdict.namespace_paths,
            flags=record.flags, default_model=deps.settings.default_model, secrets=deps.secrets,
        ) if verdict else None
        allowed = choice is not None and choice.model is not None and verdict.principal is not None
        if allowed and (version := resolve_prompt_version(feature, selection, record.flags)) != feature.prompt_version:
            feature = feature.model_copy(update={"prompt_version": version})  # a prompt rollout holds this actor
        variables = await prompt_variables(session, feature, record, verdict.resource) if allowed else {}
        turn: ChatTurn | None = None
        if choice is not None and choice.model is not None and verdict.principal is not None:
            models = models_to_call(deps.catalogue, feature, choice, mock=deps.settings.use_mock_model)
            if feature.agent:
                turn = await chat_turn(deps, session, feature, record, verdict.principal, models, variables)
    if choice is None or choice.model is None or verdict.principal is None:  # refused, or the feature's provider is disabled by the admin
        refusal = AiMessage(record.request_id, "assistant", errors=(AI_NOT_PERMITTED,))
        return "refused" if await _publish_final(deps, record, feature, refusal) else "answered before"
    state = Answer()
    if turn is not None:
        if turn.reply is not None:  # a command answered without the model
            reply = AiMessage(record.request_id, "assistant", content=turn.reply,
                              content_html=deps.markdown.render(turn.reply), thread_id=record.thread_id)
            return "answered" if await _publish_final(deps, record, feature, reply, save=turn.save_reply) else "answered before"
        answering = answer(deps, feature, record, models, turn.variables, state, attempt=attempt, history=turn.history,
                           toolbox=turn.toolbox, renders=turn.renders)
    else:
        answering = answer(deps, feature, record, models, variables, state, attempt=attempt)
    if measured is not None:
        measured.cohort = Cohort(feature.feature_setting, choice.model.identifier, feature.prompt_version)
        measured.answer = state
    try:
        await until_cancelled(stop, answering)
    except RequestCancelled:
        if not await publish_cancelled(deps, record, state.content, state.extras(),
                                       model=state.model.identifier if state.model else None):
            return "answered before"
        record_cancelled(record.request_id, feature.key, "running", len(state.parts))
        return "cancelled"
    content = state.content
    answer_message = AiMessage(
        record.request_id,
        "assistant",
        content=content,
        content_html=deps.markdown.render(content),
        errors=(AGENT_STEP_LIMIT,) if state.exhausted else (),
        extras=state.extras() or None,
        thread_id=record.thread_id,
    )
    model = state.model or models[0]
    usage = state.usage
    published = await _publish_answer(deps, record, feature, answer_message, model.identifier, usage,
                                      selected=choice.model.identifier)
    INPUT_TOKENS.labels(feature.key, model.identifier).inc(usage.input_tokens)
    OUTPUT_TOKENS.labels(feature.key, model.identifier).inc(usage.output_tokens)
    if not published:
        return "answered before"
    log.info(
        "completion_service_performed",
        extra={"request_id": record.request_id, "feature": feature.key, "model": model.identifier,
               "selected_model": choice.model.identifier, "selected_by": choice.source,
               "stale_choices": list(choice.stale), "provider": model.provider, "duration_s": round(time.perf_counter() - state.started, 4),
               "first_chunk_s": state.first_chunk_s, "input_tokens": usage.input_tokens, "steps": state.steps,
               "tool_calls": len(state.tool_calls), "output_tokens": usage.output_tokens, "tokens_estimated": usage.estimated},
    )
    if feature.counts_categories:
        record_category(content)
    if (categorizer := categorizer_of(feature)) is not None:
        await categorize_later(deps, record, categorizer)
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

    published, _ = await asyncio.gather(_publish_final(deps, record, feature, answer, model=model), recorded())
    return published


async def publish_failure(deps: Deps, record: ActionRecord, text: str) -> bool:
    """End the request with a user-facing error (no-op, False, when its final message is out already)."""
    feature = get_feature(record.feature)
    return await _publish_final(deps, record, feature, AiMessage(record.request_id, "assistant", errors=(text,), thread_id=record.thread_id))


async def publish_cancelled(
    deps: Deps, record: ActionRecord, content: str, extras: dict[str, object] | None = None, *, model: str | None = None
) -> bool:
    """End a stopped request with what was streamed so far, marked `extras.cancelled` (no-op, False, when
    its final message is out already)."""
    feature = get_feature(record.feature)
    message = AiMessage(record.request_id, "assistant", content=content,
                        content_html=deps.markdown.render(content) if content else None,
                        extras={**(extras or {}), "cancelled": True}, thread_id=record.thread_id)
    return await _publish_final(deps, record, feature, message, model=model)


async def _publish_final(
    deps: Deps, record: ActionRecord, feature: Feature, message: AiMessage, *, model: str | None = None,
    save: bool = True,
) -> bool:
    """Publish the request's final message, waiting for Redis when it is away; False when another run of
    the job had published it. Chat and `cache_response` answers are saved in the database first, with
    `model`, the identifier of the model that answered (None: no model answered), unless `save` is False
    (the answers of /reset, /clear and /new): a client that reads the thread when the final arrives finds
    it there, and a run that dies between the two saves nothing twice (the save is idempotent)."""
    routes = routes_of(record, feature).final()
    if not routes:  # an internal feature without resource or chat route (categorize_question): nobody listens
        return True
    if save and (feature.ai_action is not None or feature.cache_response):
        try:
            await conversations.save_answer(deps.engine, record.user_id, conversations.thread_pk(record.thread_id),
                                            message, model)
        except Exception as exc:  # the answer must still go out; a history without it is better than an error
            log.warning("answer_not_saved", extra={"request_id": record.request_id, "error": type(exc).__name__})
    cursor = await _once_redis_answers(lambda: deps.publisher.publish(message, routes, final=True), record)
    return cursor is not None


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
