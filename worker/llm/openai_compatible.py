"""Self-hosted models behind an OpenAI-compatible chat-completions API (vLLM, Ollama, LiteLLM), over httpx.

`POST <base_url>/chat/completions` with `stream: true`; the answer arrives as server-sent events
(`data: {"choices": [{"delta": {"content": "..."}}]}` … `data: [DONE]`), usage in a last chunk when the
server honours `stream_options.include_usage`. Tools are declared as `tools: [{type: function, ...}]`; a
call streams as `delta.tool_calls` fragments (its `arguments` a JSON text cut anywhere), gathered per
`index` and emitted once the choice finishes (`finish_reason: tool_calls`, or `[DONE]`). The base URL is the model's own (`base_url` in models.yml,
later a registered self-hosted model's endpoint) or `SWITCHBOARD_OPENAI_COMPATIBLE_BASE_URL`, and usually
ends in `/v1`. One httpx client per worker process; errors become `core.errors` here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import httpx

from core.errors import ProviderRejected, ProviderTimeout
from worker.llm._status import (
    connection_lost,
    incomplete,
    malformed,
    short,
    status_error,
)
from worker.llm.base import Completion, Message, ToolCall, Usage

__all__ = ["OpenAICompatibleModel", "sse_data"]

_CONNECT_TIMEOUT_S = 5.0


async def sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The `data` of each server-sent event (multi-line data joined with newlines; comments skipped)."""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield "\n".join(data)


class OpenAICompatibleModel:
    name = "openai_compatible"

    def __init__(self, http: httpx.AsyncClient, *, base_url: str | None, api_key: str | None, model: str | None = None) -> None:
        self._http = http
        self._base_url = base_url
        self._api_key = api_key
        self._model = model  # the served model name, when it differs from the catalogue's

    async def stream(self, completion: Completion) -> AsyncGenerator[str | ToolCall | Usage, None]:
        base_url = completion.endpoint or self._base_url
        if not base_url:
            raise ProviderRejected(self.name, None, "no base URL: set SWITCHBOARD_OPENAI_COMPATIBLE_BASE_URL")
        timeout = httpx.Timeout(completion.timeout_s, connect=min(_CONNECT_TIMEOUT_S, completion.timeout_s))
        api_key = completion.api_key or self._api_key
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        usage: Usage | None = None
        done = False
        calls: dict[int, _PartialCall] = {}
        try:
            async with self._http.stream(
                "POST", f"{base_url.rstrip('/')}/chat/completions", json=self._body(completion), headers=headers, timeout=timeout
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise status_error(self.name, response.status_code, _error_text(response), response.headers)
                async for data in sse_data(response.aiter_lines()):
                    if data.strip() == "[DONE]":
                        done = True
                        break
                    event = json.loads(data)
                    if event.get("error"):
                        raise status_error(self.name, _error_status(event["error"]), short(event["error"]))
                    for choice in event.get("choices") or ():
                        delta = choice.get("delta") or {}
                        if delta.get("content"):
                            yield delta["content"]
                        for fragment in delta.get("tool_calls") or ():
                            calls.setdefault(_index(fragment, calls), _PartialCall()).add(fragment)
                        if choice.get("finish_reason"):
                            done = True
                            for call in _finished(calls):
                                yield call
                    if event.get("usage"):
                        usage = Usage(int(event["usage"].get("prompt_tokens") or 0), int(event["usage"].get("completion_tokens") or 0))
        except httpx.TimeoutException as exc:
            raise ProviderTimeout(self.name) from exc
        except httpx.TransportError as exc:
            raise connection_lost(self.name, exc) from exc
        except (json.JSONDecodeError, AttributeError, TypeError, ValueError) as exc:
            raise malformed(self.name, exc) from exc
        if not done:
            raise incomplete(self.name)
        try:
            for call in _finished(calls):  # a server that sent [DONE] without a finish_reason
                yield call
        except ValueError as exc:
            raise malformed(self.name, exc) from exc
        if usage is not None:
            yield usage

    def _body(self, completion: Completion) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": completion.model if completion.served_name else self._model or completion.model,
            "messages": [_message(m) for m in completion.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": completion.max_tokens,
        }
        if completion.temperature is not None:
            body["temperature"] = completion.temperature
        if completion.top_p is not None:
            body["top_p"] = completion.top_p
        if completion.stop:
            body["stop"] = list(completion.stop)
        if completion.tools:
            body["tools"] = [
                {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": dict(t.input_schema)}}
                for t in completion.tools
            ]
        return body

    async def close(self) -> None:
        await self._http.aclose()


class _PartialCall:
    """One tool call of the stream, gathered from its `delta.tool_calls` fragments."""

    __slots__ = ("id", "name", "arguments")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.arguments: list[str] = []

    def add(self, fragment: dict[str, Any]) -> None:
        self.id = fragment.get("id") or self.id
        function = fragment.get("function") or {}
        self.name = function.get("name") or self.name
        if function.get("arguments"):
            self.arguments.append(function["arguments"])

    def call(self, index: int) -> ToolCall:
        arguments = json.loads("".join(self.arguments) or "{}")
        if not isinstance(arguments, dict) or not self.name:
            raise ValueError("a tool call without a name or whose arguments are not a JSON object")
        return ToolCall(self.id or f"call_{index}", self.name, arguments)


def _index(fragment: dict[str, Any], calls: dict[int, _PartialCall]) -> int:
    """Which call a fragment belongs to: its `index`; without one (Ollama sends whole calls), a fragment
    with a new id starts a call and one without continues the last."""
    if fragment.get("index") is not None:
        return int(fragment["index"])
    last = max(calls, default=-1)
    if last < 0 or (fragment.get("id") and fragment["id"] != calls[last].id):
        return last + 1
    return last


def _finished(calls: dict[int, _PartialCall]) -> list[ToolCall]:
    """The gathered calls in index order (raising ValueError on malformed arguments), forgetting them."""
    finished = [calls[index].call(index) for index in sorted(calls)]
    calls.clear()
    return finished


def _message(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    if message.role == "assistant" and message.tool_calls:
        return {
            "role": "assistant",
            "content": message.content or None,
            "tool_calls": [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(dict(c.arguments))}}
                for c in message.tool_calls
            ],
        }
    return {"role": message.role, "content": message.content}


def _error_text(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return short(response.text)
    return short(error.get("message") if isinstance(error, dict) else error)


def _error_status(error: object) -> int:
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, int) and 400 <= code < 600 else 500
