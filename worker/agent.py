"""Answering a request: the model calls, and for chat the agent's tool steps (SPEC §13.3).

Every feature is answered the same way: a call to the first model that answers (a later model is tried only
while nothing was streamed), whose text deltas go out as chunks. A feature with tools (chat) runs that as an
agent: when the model answers with tool calls, each call is announced (`type: TOOL` progress messages on the
request's routes), run through `chat.tools` (which authorizes it for the user), and its result sent back in
the next call; at most `MAX_STEPS` calls, then GitLab's A1006 text. Chunk ids run on across steps, so the
chunks of a request always concatenate to its final content; text a model writes before it calls a tool
("Let me read the issue") is part of the answer.

Each model call is guarded by its model's circuit breaker and bounded by the call's timeout (the feature's,
unless the prompt or `SWITCHBOARD_LLM_TIMEOUT_S` says otherwise), counted from the start and again after
every chunk, so a long answer that keeps streaming is never cut. Chunks go out through the answer's
`subscriptions.streams.ChunkStream`: the model does not wait for each to be published (those it sends
together go out in one call), and each model call ends once its chunks are out. Redis may go away
mid-request: after a chunk could not be published no more chunks are (the ids a subscriber saw stay
contiguous); the final message, published by `worker.pipeline` after the chunks, carries the whole answer.

`Answer` holds what was answered so far, so that a request stopped midway (`aiActionCancel`) still ends with
the content its subscribers saw. An `Answer` with `publish=False` is answered for nobody (`switchboard eval`
runs items through this code): no chunk and no tool progress is published.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from functools import cached_property

import orjson

from catalogue import Feature, ModelDefinition, Prompt
from catalogue.prompts import Role
from chat.tools import Tool, ToolContext, ToolResult, progress_text, run_tool
from core.actions import ActionRecord
from core.errors import TOOL_REPEATED, ProviderError, ProviderRejected, ProviderTimeout
from core.logs import expanded
from core.metrics import FIRST_CHUNK_SECONDS, record_provider_request
from core.redis import REDIS_UNAVAILABLE
from subscriptions.messages import AiMessage, RequestRoutes
from subscriptions.streams import ChunkStream
from worker.deps import Deps
from worker.llm import Completion, Message, ToolCall, ToolSpec, Usage, estimate_tokens
from worker.usage import estimated_usage

__all__ = ["MAX_STEPS", "Answer", "PromptRenders", "Toolbox", "answer", "history_budget", "routes_of", "user_text"]

log = logging.getLogger(__name__)

MAX_STEPS = 10  # model calls of one chat answer (GitLab's MAX_ITERATIONS)
_DEFAULT_MAX_TOKENS = 2048
_TOOL_TIMEOUT_S = 30.0


def user_text(feature: Feature, record: ActionRecord) -> str:
    if feature.user_text_field is None:
        return feature.humanized
    return str(record.inputs.get(feature.user_text_field, ""))


def routes_of(record: ActionRecord, feature: Feature) -> RequestRoutes:
    return RequestRoutes(record.user_id, record.resource, feature.ai_action, record.client_subscription_id)


@dataclass
class Toolbox:
    """The tools offered to the model for one request (those the user's seats entitle), every tool of the
    catalogue (a model may still call one it was not offered: `chat.tools` refuses it with M3005), and
    what running them needs."""

    context: ToolContext
    offered: tuple[Tool, ...]
    known: Mapping[str, Tool]

    @cached_property
    def specs(self) -> tuple[ToolSpec, ...]:
        return tuple(ToolSpec(t.name, t.description, t.input_schema) for t in self.offered)


@dataclass
class Answer:
    """What a request has answered so far."""

    model: ModelDefinition | None = None  # the model that answers (after any fallback)
    parts: list[str] = field(default_factory=list)  # every streamed delta, all steps: chunk n is parts[n-1]
    tool_calls: list[dict[str, object]] = field(default_factory=list)
    sources: list[dict[str, str]] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    estimated: bool = False
    steps: int = 0
    exhausted: bool = False  # the step limit was reached with the model still calling tools
    started: float = field(default_factory=time.perf_counter)
    first_chunk_s: float | None = None
    chunks: ChunkStream | None = None  # the answer's chunks on its routes, from its first chunk on
    chunks_lost: bool = False  # a chunk could not be published (logged once): no later chunk was
    publish: bool = True  # False: neither chunks nor tool progress go out (an evaluation run answers no subscriber)

    @property
    def content(self) -> str:
        return "".join(self.parts)

    @property
    def usage(self) -> Usage:
        return Usage(self.input_tokens, self.output_tokens, estimated=self.estimated)

    def extras(self) -> dict[str, object]:
        extras: dict[str, object] = {}
        if self.sources:
            extras["sources"] = self.sources
        if self.tool_calls:
            extras["tool_calls"] = self.tool_calls
        return extras


def build_completion(
    deps: Deps, feature: Feature, record: ActionRecord, model: ModelDefinition, prompt: Prompt,
    messages: Sequence[Message], *, turn: int, tools: tuple[ToolSpec, ...] = (),
) -> Completion:
    """The call for `model`: the messages, the model's parameters overridden by the prompt's."""
    params = model.params.merged(prompt.definition.model.params)
    timeout = deps.settings.llm_timeout_s or prompt.definition.params.timeout or feature.timeout_s
    return Completion(
        messages=tuple(messages),
        model=model.provider_model,
        max_tokens=params.max_tokens or _DEFAULT_MAX_TOKENS,
        temperature=params.temperature,
        top_p=params.top_p,
        top_k=params.top_k,
        stop=prompt.definition.params.stop or params.stop or (),
        timeout_s=timeout,
        user_text=user_text(feature, record),
        turn=turn,
        endpoint=getattr(model, "base_url", None),
        api_key=getattr(model, "api_key", None),
        served_name=getattr(model, "served_name", False),
        tools=tools,
    )


class PromptRenders:
    """One request's prompts rendered with its variables, each prompt once: a chat turn renders them for the
    history's budget (`history_budget`), and its answer's model calls use the same texts."""

    __slots__ = ("variables", "_rendered")

    def __init__(self, variables: dict[str, object]) -> None:
        self.variables = variables
        self._rendered: dict[int, tuple[Prompt, list[tuple[Role, str]]]] = {}  # by id(prompt); the prompt kept alive

    def of(self, prompt: Prompt) -> list[tuple[Role, str]]:
        """`prompt`'s messages as (role, text), rendered at the first call."""
        found = self._rendered.get(id(prompt))
        if found is None:
            found = self._rendered[id(prompt)] = (prompt, list(prompt.render(self.variables)))
        return found[1]


def _prompt_messages(rendered_prompt: Sequence[tuple[Role, str]], history: Sequence[tuple[str, str]]) -> list[Message]:
    """The rendered prompt with the conversation's earlier turns between its system and user parts."""
    rendered = [Message(role, text) for role, text in rendered_prompt]
    past = [m for question, reply in history for m in (Message("user", question), Message("assistant", reply))]
    return [m for m in rendered if m.role == "system"] + past + [m for m in rendered if m.role != "system"]


def history_budget(
    deps: Deps, feature: Feature, models: Sequence[ModelDefinition], renders: PromptRenders, toolbox: Toolbox | None,
) -> int:
    """Tokens left for the conversation's history (SPEC §13.4): the smallest context window of the models
    that may answer, less their output budget, the rendered prompt, the tools' declarations and room for
    the agent's tool steps."""
    budget = None
    tools_size = estimate_tokens(orjson.dumps([s.input_schema for s in toolbox.specs]).decode()) if toolbox else 0
    for model in models:
        prompt = deps.catalogue.prompts.get(feature.prompt, model.family, feature.prompt_version)
        params = model.params.merged(prompt.definition.model.params)
        rendered = sum(estimate_tokens(text) for _, text in renders.of(prompt))
        room = model.max_context_tokens - (params.max_tokens or _DEFAULT_MAX_TOKENS) - rendered - tools_size
        room -= model.max_context_tokens // 5 if toolbox else 0  # tool results of this turn
        budget = room if budget is None else min(budget, room)
    return max(budget or 0, 0)


async def answer(
    deps: Deps, feature: Feature, record: ActionRecord, models: Sequence[ModelDefinition], variables: dict[str, object],
    state: Answer, *, attempt: int = 0, history: Sequence[tuple[str, str]] = (), toolbox: Toolbox | None = None,
    renders: PromptRenders | None = None,
) -> Answer:
    """Answer into `state`; returns it. Provider errors propagate (`worker.jobs` decides on retries). `renders`:
    the prompts rendered with `variables` already (a chat turn's), else they are rendered here."""
    if renders is None or renders.variables is not variables:
        renders = PromptRenders(variables)
    steps: list[Message] = []  # the agent's tool turns so far
    seen: set[bytes] = set()  # (tool, arguments) already called: the repeated-call guard
    prompts: dict[str, list[Message]] = {}  # per model, its prompt with the history: rendered once for all steps
    for step in range(MAX_STEPS if toolbox else 1):
        state.steps = step + 1
        candidates = models if state.model is None else [state.model]
        calls, text = await _first_answering(deps, feature, record, candidates, renders, history, prompts, steps,
                                             state, turn=attempt + step, toolbox=toolbox)
        if not calls:
            return state
        assert toolbox is not None  # models are offered no tools without one
        steps.append(Message("assistant", text, tool_calls=tuple(calls)))
        if len(calls) == 1:  # the usual step: its call run here, without a task
            results = [await _run(deps, feature, record, toolbox, calls[0], seen, state)]
        else:
            results = await asyncio.gather(*(_run(deps, feature, record, toolbox, call, seen, state) for call in calls))
        steps += [Message("tool", result.content, tool_call_id=call.id, name=call.name) for call, result in zip(calls, results, strict=True)]
    state.exhausted = True
    return state


async def _first_answering(
    deps: Deps, feature: Feature, record: ActionRecord, models: Sequence[ModelDefinition], renders: PromptRenders,
    history: Sequence[tuple[str, str]], prompts: dict[str, list[Message]], steps: list[Message], state: Answer, *,
    turn: int, toolbox: Toolbox | None,
) -> tuple[list[ToolCall], str]:
    """One step: stream from the first model that answers; a later model is tried only while nothing was
    streamed. When all fail, the first model's error propagates (its retry-after decides the backoff).
    `prompts` keeps each model's rendered prompt for the next steps."""
    first_error: ProviderError | None = None
    for index, model in enumerate(models):
        streamed = len(state.parts)
        prompt = deps.catalogue.prompts.get(feature.prompt, model.family, feature.prompt_version)
        rendered = prompts.get(model.identifier)
        if rendered is None:
            rendered = prompts[model.identifier] = _prompt_messages(renders.of(prompt), history)
        completion = build_completion(deps, feature, record, model, prompt, rendered + steps, turn=turn,
                                      tools=toolbox.specs if toolbox else ())
        try:
            calls = await _stream(deps, feature, record, model, prompt, completion, state)
            state.model = model
            return calls, "".join(state.parts[streamed:])
        except ProviderError as exc:
            if len(state.parts) > streamed or state.model is not None:
                raise
            first_error = first_error or exc
            if index + 1 < len(models):
                log.info("falling back", extra={"request_id": record.request_id, "feature": feature.key,
                                                "model": model.identifier, "fallback": models[index + 1].identifier})
    raise first_error or ProviderRejected("none", None, "no model to try")


async def _stream(
    deps: Deps, feature: Feature, record: ActionRecord, model: ModelDefinition, prompt: Prompt,
    completion: Completion, state: Answer,
) -> list[ToolCall]:
    """One model call: its deltas appended to `state.parts` and published as chunks; its tool calls returned."""
    client = deps.providers.client_for(model)
    chunk_routes = routes_of(record, feature).chunks()
    context = {"request_id": record.request_id, "feature": feature.key, "model": model.identifier,
               "provider": model.provider, "prompt": prompt.location, "try": completion.turn + 1}
    log.info("performing_request", extra={**context, **expanded(
        user_input=completion.user_text, prompt=completion.messages)})  # dataclasses: JSON objects
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    calls: list[ToolCall] = []
    text: list[str] = []
    usage: Usage | None = None
    try:
        with deps.circuits.for_model(model.identifier, model.provider).guard():
            try:
                async with asyncio.timeout(completion.timeout_s) as deadline, aclosing(client.stream(completion)) as events:
                    async for event in events:
                        deadline.reschedule(loop.time() + completion.timeout_s)
                        if isinstance(event, Usage):
                            usage = event
                        elif isinstance(event, ToolCall):
                            calls.append(event)
                        else:
                            text.append(event)
                            await _chunk(deps, record, feature, state, event, chunk_routes, context)
            except TimeoutError as exc:
                raise ProviderTimeout(model.provider, f"no chunk within {completion.timeout_s} s") from exc
    except ProviderError as exc:
        exc.model = exc.model or model.identifier  # for the failure record (`worker.jobs`)
        record_provider_request(model.provider, model.identifier, type(exc).__name__, time.perf_counter() - started)
        log.warning("error_response_received", extra={**context, "error": type(exc).__name__, "status": exc.status,
                                                        "detail": exc.loggable_detail, "chunks": len(state.parts),
                                                        **expanded(provider_detail=exc.detail)})
        raise
    await _chunks_sent(state, context)
    usage = usage or estimated_usage(completion, "".join(text))
    state.input_tokens += usage.input_tokens
    state.output_tokens += usage.output_tokens
    state.estimated = state.estimated or usage.estimated
    duration_s = time.perf_counter() - started
    record_provider_request(model.provider, model.identifier, "success", duration_s)
    log.info("response_received", extra={**context, "duration_s": round(duration_s, 4), "chunks": len(text),
                                          "tool_calls": [call.name for call in calls],
                                          **expanded(response="".join(text))})
    return calls


async def _chunk(
    deps: Deps, record: ActionRecord, feature: Feature, state: Answer, delta: str, routes: list[str],
    context: dict[str, object],
) -> None:
    state.parts.append(delta)
    if state.first_chunk_s is None:
        state.first_chunk_s = round(time.perf_counter() - state.started, 4)
        FIRST_CHUNK_SECONDS.labels(feature.key).observe(state.first_chunk_s)
    if not routes or not state.publish:
        return
    if state.chunks is None:
        state.chunks = deps.publisher.chunks(routes)
    await state.chunks.send(
        AiMessage(record.request_id, "assistant", content=delta, chunk_id=len(state.parts), thread_id=record.thread_id)
    )


async def _chunks_sent(state: Answer, context: dict[str, object]) -> None:
    """Wait until the model call's chunks are published; a loss is logged once (the final message carries the
    whole answer)."""
    if state.chunks is None:
        return
    await state.chunks.drain()
    if state.chunks.lost is not None and not state.chunks_lost:
        state.chunks_lost = True
        log.warning("chunks_not_published",
                    extra={**context, "error": type(state.chunks.lost).__name__, "chunks": len(state.parts)})


async def _run(
    deps: Deps, feature: Feature, record: ActionRecord, toolbox: Toolbox, call: ToolCall, seen: set[bytes],
    state: Answer,
) -> ToolResult:
    """One tool call, announced before and after on the request's routes (best effort: progress is no
    answer), with the repeated-call guard."""
    tool = toolbox.known.get(call.name)
    signature = orjson.dumps([call.name, call.arguments], option=orjson.OPT_SORT_KEYS)
    entry: dict[str, object] = {"name": call.name, "input": dict(call.arguments), "status": "STARTED"}
    summary = progress_text(tool, call.arguments) if tool else f"Using {call.name}"
    if state.publish:
        await _progress(deps, record, feature, summary, entry)
    started = time.perf_counter()
    if tool is None:
        offered = ", ".join(t.name for t in toolbox.offered)
        result = ToolResult(f"There is no tool named {call.name}. Use one of: {offered}.", "FAILED")
    elif signature in seen:
        result = ToolResult(TOOL_REPEATED.format(tool=call.name), "FINISHED")
    else:
        seen.add(signature)
        try:
            async with asyncio.timeout(_TOOL_TIMEOUT_S):
                result = await run_tool(toolbox.context, tool, call.arguments)
        except TimeoutError:
            result = ToolResult(f"The {call.name} tool did not answer in time.", "FAILED")
    entry = {**entry, "status": result.status, "durationMs": round((time.perf_counter() - started) * 1000)}
    state.tool_calls.append(entry)
    state.sources += [source for source in result.sources if source not in state.sources]
    log.info("tool_called", extra={"request_id": record.request_id, "tool": call.name, "status": result.status,
                                   "duration_ms": entry["durationMs"], **expanded(tool_input=dict(call.arguments))})
    if state.publish:
        await _progress(deps, record, feature, summary, entry)
    return result


async def _progress(
    deps: Deps, record: ActionRecord, feature: Feature, summary: str, entry: dict[str, object]
) -> None:
    message = AiMessage(record.request_id, "system", content=summary, type="tool", extras={"tool_calls": [entry]},
                        thread_id=record.thread_id)
    try:
        await deps.publisher.publish(message, routes_of(record, feature).final())
    except REDIS_UNAVAILABLE as exc:
        log.warning("tool_progress_not_published", extra={"request_id": record.request_id, "error": type(exc).__name__})
