"""The mock model (SPEC §8.3): deterministic answers for development, tests and benchmarks.

It answers `echo: <user text>` whatever the prompt says (it reads `Completion.user_text`, not the rendered
messages), and reports no usage, so the pipeline estimates it. When the user text holds `<response ...>...</response>` tags it plays them
instead, one per call of the request (the last one repeats), honouring `latency_ms` (before the first
chunk), `chunk_delay_ms` (between chunks) and `error` (`429`, `529`, `500`, `timeout`). It streams one chunk
per word, each with the whitespace before it.

Tool calls (the chat agent's, SPEC §13.3): when the completion offers tools, a response whose body holds
`<tool_call name="TOOL">{JSON arguments}</tool_call>` elements answers with those calls (several: parallel
calls; ids `mock_call_<turn>_<n>`) after any text around them. When the responses are used up and the last
message is a tool result, the answer is `echo: ` and that result, so that black-box tests see what the tool
read.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from core.errors import ProviderError, ProviderRateLimited, ProviderTimeout
from worker.llm.base import Completion, ToolCall, Usage

__all__ = ["MockModel", "Script", "scripts_in", "tool_calls_in"]

_TAG = re.compile(r"<response(?P<attrs>(?:\s+[a-z_]+\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>]+))*)\s*>(?P<body>.*?)</response>", re.S)
_ATTR = re.compile(r"([a-z_]+)\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>]+))")
_WORD = re.compile(r"\s*\S+")
_TOOL_CALL = re.compile(r"<tool_call\s+name\s*=\s*(?:\"([^\"]*)\"|'([^']*)')\s*>(.*?)</tool_call>", re.S)


@dataclass(frozen=True, slots=True)
class Script:
    text: str
    latency_ms: int = 0
    chunk_delay_ms: int = 0
    error: str | None = None


def scripts_in(user_text: str) -> list[Script]:
    scripts = []
    for tag in _TAG.finditer(user_text):
        attrs = {m.group(1): next(g for g in m.groups()[1:] if g is not None) for m in _ATTR.finditer(tag["attrs"])}
        scripts.append(
            Script(
                text=tag["body"],
                latency_ms=_non_negative_int(attrs.get("latency_ms")),
                chunk_delay_ms=_non_negative_int(attrs.get("chunk_delay_ms")),
                error=attrs.get("error"),
            )
        )
    return scripts


def _non_negative_int(value: str | None) -> int:
    try:
        return max(0, int(value)) if value is not None else 0
    except ValueError:
        return 0


class MockModel:
    name = "mock"

    async def stream(self, completion: Completion) -> AsyncGenerator[str | ToolCall | Usage, None]:
        scripts = scripts_in(completion.user_text)
        last = completion.messages[-1] if completion.messages else None
        scripted = False  # only a <response> of the user's may call tools, never an echo of some text
        if completion.turn >= len(scripts) and last is not None and last.role == "tool":
            script = Script(f"echo: {last.content}")
        elif scripts:
            script, scripted = scripts[min(completion.turn, len(scripts) - 1)], True
        else:
            script = Script(f"echo: {completion.user_text}")
        if script.latency_ms:
            await asyncio.sleep(script.latency_ms / 1000)
        _raise_scripted(script.error)
        text, calls = script.text, []
        if scripted and completion.tools and _TOOL_CALL.search(text):
            calls = tool_calls_in(text, completion.turn)
            text = _TOOL_CALL.sub("", text).strip()
        for index, word in enumerate(_WORD.findall(text)):
            if index and script.chunk_delay_ms:
                await asyncio.sleep(script.chunk_delay_ms / 1000)
            yield word
        for call in calls:
            yield call


def tool_calls_in(text: str, turn: int) -> list[ToolCall]:
    """The calls of a response's `<tool_call>` elements; arguments that are not a JSON object fail the call."""
    calls = []
    for number, element in enumerate(_TOOL_CALL.finditer(text)):
        name, body = element[1] if element[1] is not None else element[2], element[3].strip()
        try:
            arguments = json.loads(body) if body else {}
        except json.JSONDecodeError as exc:
            raise ProviderError("mock", None, f"tool_call {number}: its arguments are not valid JSON ({exc})") from exc
        if not isinstance(arguments, dict):
            raise ProviderError("mock", None, f"tool_call {number}: its arguments are not a JSON object")
        calls.append(ToolCall(f"mock_call_{turn}_{number}", name, arguments))
    return calls


def _raise_scripted(error: str | None) -> None:
    match error:
        case None | "":
            return
        case "429" | "529":
            raise ProviderRateLimited("mock", int(error))
        case "timeout":
            raise ProviderTimeout("mock")
        case _ if error.isdigit():
            status = int(error)
            raise ProviderError("mock", status, "scripted error", retryable=status >= 500)
        case _:
            raise ProviderError("mock", None, f"scripted error {error!r}")
