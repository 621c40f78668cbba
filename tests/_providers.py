"""A fake LLM provider for tests (a pytest plugin): one local HTTP server that speaks the three wire formats
Switchboard's clients use, scriptable per test.

- Anthropic Messages, streaming (`POST /v1/messages`, and Claude on Vertex AI's
  `POST /v1/projects/<p>/locations/<l>/publishers/anthropic/models/<m>:streamRawPredict`);
- Gemini `POST /v1beta/models/<m>:streamGenerateContent?alt=sse` (Vertex AI's path too);
- OpenAI-compatible `POST /v1/chat/completions` with `stream: true`.

`fake_llm.script(Reply(...), ...)` sets what the next requests get, in order; the last reply repeats;
`fake_llm.fail_model(name)` makes every request for one provider model name fail whatever the script (a
new model that is broken, for guarded rollouts).
A reply streams `deltas` with `usage`, then the `tool_calls` it makes (`ToolUse`: its JSON arguments split
over several events, as each provider streams them: Anthropic `tool_use` blocks with `input_json_delta`s,
OpenAI `delta.tool_calls` fragments then `finish_reason: tool_calls`, Gemini `functionCall` parts), or fails
with `status` (and `headers` such as `retry-after`), and can
be slow before its first byte, slow between chunks, cut mid-way (the connection drops), end early without
the provider's stop event, carry a malformed event, or an in-stream error event. `fake_llm.requests` records
what was asked, and `fake_llm.peak_in_flight` the most requests it was answering at once. The server runs under uvicorn in a thread, on a free port of 127.0.0.1, once per session.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests._redis import free_port

__all__ = ["FakeLLM", "Reply", "Seen", "ToolUse", "fake_llm", "fake_llm_server"]


class CutConnection(Exception):
    """Raised inside a response stream to drop the connection without ending the HTTP body."""


@dataclass(frozen=True)
class ToolUse:
    """A tool call the fake model makes. `arguments` is sent as JSON text in `pieces` fragments (a string is
    sent as is: malformed arguments); `id` defaults to a provider-like one (Gemini: none, unless given), and
    `signature` is a Gemini thought signature (base64) on the part."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None
    pieces: int = 3
    signature: str | None = None

    @property
    def json(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)

    def fragments(self) -> list[str]:
        text, size = self.json, max(1, -(-len(self.json) // max(1, self.pieces)))
        return [text[start:start + size] for start in range(0, len(text), size)]


@dataclass(frozen=True)
class Reply:
    status: int = 200
    deltas: tuple[str, ...] = ("Hello", " from", " the", " fake.")
    usage: tuple[int, int] | None = (11, 7)  # input, output tokens
    headers: dict[str, str] = field(default_factory=dict)
    first_byte_delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    cut_after: int | None = None  # deltas sent before the connection drops
    end_after: int | None = None  # deltas sent before the body ends cleanly, without the stop event
    malformed_after: int | None = None  # deltas sent before an event that is not JSON
    error_event: str | None = None  # Anthropic in-stream error type sent after the deltas (overloaded_error…)
    error_message: str | None = None  # the error body's message (vLLM and LiteLLM echo the prompt in theirs)
    tool_calls: tuple[ToolUse, ...] = ()  # made after the deltas (pass `deltas=()` for tool calls alone)
    whole_tool_calls: bool = False  # OpenAI wire: each call whole in one fragment without an `index` (as Ollama)


@dataclass(frozen=True)
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class FakeLLM:
    def __init__(self) -> None:
        self.url = ""
        self._lock = threading.Lock()
        self._replies: list[Reply] = [Reply()]
        self._requests: list[Seen] = []
        self._failing: dict[str, int] = {}
        self._in_flight = 0
        self.peak_in_flight = 0

    def fail_model(self, name: str, status: int = 500) -> None:
        """Requests for the provider model `name` (the body's `model`, or in the path for Gemini and Vertex
        AI) get `status`."""
        with self._lock:
            self._failing[name] = status

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._replies = list(replies) or [Reply()]

    def reset(self) -> None:
        with self._lock:
            self._replies = [Reply()]
            self._requests = []
            self._failing = {}
            self.peak_in_flight = 0

    @property
    def requests(self) -> list[Seen]:
        with self._lock:
            return list(self._requests)

    def _next(self, seen: Seen) -> Reply:
        with self._lock:
            self._requests.append(seen)
            model = seen.body.get("model")
            for name, status in self._failing.items():
                if name == model or f"/models/{name}:" in seen.path:
                    return Reply(status=status)
            return self._replies.pop(0) if len(self._replies) > 1 else self._replies[0]

    def _count(self, change: int) -> None:
        with self._lock:
            self._in_flight += change
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)

    async def _tracked(self, events: AsyncIterator[str]) -> AsyncIterator[str]:
        try:
            async for event in events:
                yield event
        finally:
            self._count(-1)

    async def handle(self, request: Request) -> Response:
        self._count(1)
        try:
            response = await self._answer(request)
        except BaseException:
            self._count(-1)
            raise
        if isinstance(response, StreamingResponse):
            response.body_iterator = self._tracked(response.body_iterator)
        else:
            self._count(-1)
        return response

    async def _answer(self, request: Request) -> Response:
        path = request.url.path
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            body = {}
        reply = self._next(Seen(path, dict(request.headers), body))
        if reply.first_byte_delay_s:
            await asyncio.sleep(reply.first_byte_delay_s)
        if path.endswith("/v1/messages") or path.endswith(":streamRawPredict"):
            wire = _ANTHROPIC
        elif ":streamGenerateContent" in path:
            wire = _GEMINI
        elif path.endswith("/chat/completions"):
            wire = _OPENAI
        else:
            return JSONResponse({"error": f"unknown path {path}"}, status_code=404)
        if reply.status != 200:
            return JSONResponse(wire.error(reply.status, reply.error_message or f"fake {reply.status}"), status_code=reply.status,
                                headers=reply.headers)
        return StreamingResponse(_events(wire, reply), media_type="text/event-stream", headers=reply.headers)


class _Wire:
    """One provider's event format."""

    def start(self, reply: Reply) -> list[str]:
        return []

    def delta(self, text: str) -> str:
        raise NotImplementedError

    def tools(self, reply: Reply) -> list[str]:
        raise NotImplementedError

    def end(self, reply: Reply) -> list[str]:
        raise NotImplementedError

    def error(self, status: int, message: str) -> dict[str, Any]:
        raise NotImplementedError

    def malformed(self) -> str:
        return "data: {this is not json\n\n"


def _has_text(reply: Reply) -> bool:
    return bool(reply.deltas) or not reply.tool_calls


class _AnthropicWire(_Wire):
    _ERRORS = {429: "rate_limit_error", 529: "overloaded_error", 500: "api_error", 400: "invalid_request_error", 401: "authentication_error"}

    @staticmethod
    def _event(kind: str, data: dict[str, Any]) -> str:
        return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n"

    def start(self, reply: Reply) -> list[str]:
        tokens = {"input_tokens": reply.usage[0] if reply.usage else 0, "output_tokens": 1}
        message = {"id": "msg_fake", "type": "message", "role": "assistant", "content": [], "model": "fake",
                   "stop_reason": None, "stop_sequence": None, "usage": tokens}
        events = [self._event("message_start", {"message": message})]
        if _has_text(reply):
            events.append(self._event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}))
        return [*events, self._event("ping", {})]

    def delta(self, text: str) -> str:
        return self._event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": text}})

    def tools(self, reply: Reply) -> list[str]:
        events = []
        first = 0
        if reply.deltas:
            events.append(self._event("content_block_stop", {"index": 0}))
            first = 1
        for number, call in enumerate(reply.tool_calls):
            index = first + number
            block = {"type": "tool_use", "id": call.id or f"toolu_fake{number}", "name": call.name, "input": {}}
            events.append(self._event("content_block_start", {"index": index, "content_block": block}))
            for piece in ["", *call.fragments()]:  # Anthropic opens with an empty fragment
                events.append(self._event("content_block_delta", {"index": index, "delta": {"type": "input_json_delta",
                                                                                             "partial_json": piece}}))
            events.append(self._event("content_block_stop", {"index": index}))
        return events

    def end(self, reply: Reply) -> list[str]:
        events = [] if reply.tool_calls else [self._event("content_block_stop", {"index": 0})]
        return [
            *events,
            self._event("message_delta", {"delta": {"stop_reason": "tool_use" if reply.tool_calls else "end_turn", "stop_sequence": None},
                                          "usage": {"output_tokens": reply.usage[1] if reply.usage else 0}}),
            self._event("message_stop", {}),
        ]

    def error(self, status: int, message: str) -> dict[str, Any]:
        return {"type": "error", "error": {"type": self._ERRORS.get(status, "api_error"), "message": message}}

    def malformed(self) -> str:
        return "event: content_block_delta\ndata: {this is not json\n\n"

    def stream_error(self, kind: str) -> str:
        return self._event("error", {"error": {"type": kind, "message": "fake in-stream error"}})


class _GeminiWire(_Wire):
    _STATUS = {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 400: "INVALID_ARGUMENT"}

    @staticmethod
    def _chunk(parts: list[dict[str, Any]], finish: str | None = None, usage: tuple[int, int] | None = None) -> str:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        data: dict[str, Any] = {"candidates": [candidate], "modelVersion": "gemini-fake"}
        if usage:
            data["usageMetadata"] = {"promptTokenCount": usage[0], "candidatesTokenCount": usage[1],
                                     "totalTokenCount": sum(usage)}
        return f"data: {json.dumps(data)}\r\n\r\n"

    def delta(self, text: str) -> str:
        return self._chunk([{"text": text}])

    def tools(self, reply: Reply) -> list[str]:
        """Gemini streams each function call whole (`args` an object), parallel calls as parts of one chunk."""
        parts = []
        for call in reply.tool_calls:
            function: dict[str, Any] = {"name": call.name, "args": json.loads(call.json)}
            if call.id:
                function["id"] = call.id
            part: dict[str, Any] = {"functionCall": function}
            if call.signature:
                part["thoughtSignature"] = call.signature
            parts.append(part)
        return [self._chunk(parts)] if parts else []

    def end(self, reply: Reply) -> list[str]:
        return [self._chunk([{"text": ""}], finish="STOP", usage=reply.usage)]

    def error(self, status: int, message: str) -> dict[str, Any]:
        return {"error": {"code": status, "message": message, "status": self._STATUS.get(status, "UNKNOWN")}}


class _OpenAIWire(_Wire):
    @staticmethod
    def _chunk(choices: list[dict[str, Any]], usage: tuple[int, int] | None = None) -> str:
        data: dict[str, Any] = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
                                "model": "fake", "choices": choices}
        if usage:
            data["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}
        return f"data: {json.dumps(data)}\n\n"

    def _delta(self, delta: dict[str, Any], finish: str | None = None) -> str:
        return self._chunk([{"index": 0, "delta": delta, "finish_reason": finish}])

    def start(self, reply: Reply) -> list[str]:
        return [self._delta({"role": "assistant", "content": ""})]

    def delta(self, text: str) -> str:
        return self._delta({"content": text})

    def tools(self, reply: Reply) -> list[str]:
        if reply.whole_tool_calls:
            return [self._delta({"tool_calls": [{"id": call.id or f"call_fake{index}", "type": "function",
                                                 "function": {"name": call.name, "arguments": call.json}}]})
                    for index, call in enumerate(reply.tool_calls)]
        events = []
        for index, call in enumerate(reply.tool_calls):
            opening = {"index": index, "id": call.id or f"call_fake{index}", "type": "function",
                       "function": {"name": call.name, "arguments": ""}}
            events.append(self._delta({"tool_calls": [opening]}))
            events.extend(self._delta({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
                          for piece in call.fragments())
        return events

    def end(self, reply: Reply) -> list[str]:
        events = [self._delta({}, "tool_calls" if reply.tool_calls else "stop")]
        if reply.usage:
            events.append(self._chunk([], reply.usage))
        return [*events, "data: [DONE]\n\n"]

    def error(self, status: int, message: str) -> dict[str, Any]:
        return {"error": {"message": message, "type": "fake_error", "code": status}}


_ANTHROPIC, _GEMINI, _OPENAI = _AnthropicWire(), _GeminiWire(), _OpenAIWire()


async def _events(wire: _Wire, reply: Reply) -> AsyncIterator[str]:
    for event in wire.start(reply):
        yield event
    for index, text in enumerate(reply.deltas):
        if index == reply.cut_after:
            raise CutConnection()
        if index == reply.end_after:
            return
        if index == reply.malformed_after:
            yield wire.malformed()
            return
        if index and reply.chunk_delay_s:
            await asyncio.sleep(reply.chunk_delay_s)
        yield wire.delta(text)
    if reply.cut_after is not None and reply.cut_after >= len(reply.deltas):
        raise CutConnection()
    if reply.error_event and isinstance(wire, _AnthropicWire):
        yield wire.stream_error(reply.error_event)
        return
    for event in wire.tools(reply):
        yield event
    for event in wire.end(reply):
        yield event


@pytest.fixture(scope="session")
def fake_llm_server() -> Iterator[FakeLLM]:
    fake = FakeLLM()
    app = Starlette(routes=[Route("/{path:path}", fake.handle, methods=["POST"])])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="off",
                                           ws="none", access_log=False, timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, name="fake-llm", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the fake LLM server did not start")
        time.sleep(0.01)
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def fake_llm(fake_llm_server: FakeLLM) -> Iterator[FakeLLM]:
    """The session's fake provider, with a fresh script (the default reply) and no requests seen."""
    fake_llm_server.reset()
    yield fake_llm_server
    fake_llm_server.reset()
