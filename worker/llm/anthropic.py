"""Claude through Anthropic's Messages API, streaming; the same client class serves Claude on Vertex AI.

One SDK client per worker process (`AsyncAnthropic`, or `AsyncAnthropicVertex` for the `vertex` provider),
with `max_retries=0`: the job retries. The Messages API takes no sampling parameters (temperature, top_p,
top_k): those of the catalogue apply to the other providers. Tools are Anthropic tool use: a `tool_use`
content block streams its input as `input_json_delta` fragments, parsed into a ToolCall at its
`content_block_stop`; tool results go back as `tool_result` blocks of a user message. Each call sets its own timeout (connect ≤ 5 s; the read timeout is
the call's, so a slow first byte fails with ProviderTimeout). SDK and transport exceptions become
`core.errors` here and nowhere else.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator
from typing import Any

import anthropic
import httpx2
from google.auth.exceptions import GoogleAuthError

from core.errors import ProviderError, ProviderRejected, ProviderTimeout
from worker.llm._status import connection_lost, incomplete, malformed, status_error
from worker.llm.base import Completion, Message, ToolCall, Usage

__all__ = ["AnthropicModel", "build_anthropic", "build_anthropic_vertex"]

log = logging.getLogger(__name__)

_CONNECT_TIMEOUT_S = 5.0
# Error types Anthropic sends in an `error` event of a stream that had started with status 200.
_STREAM_ERROR_STATUS = {
    "overloaded_error": 529,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 408,
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
}


def build_anthropic(api_key: str | None, base_url: str | None) -> anthropic.AsyncAnthropic:
    """The process's Anthropic client. Without a key (a proxy at ANTHROPIC_BASE_URL) a placeholder is sent."""
    return anthropic.AsyncAnthropic(api_key=api_key or "unset", base_url=base_url, max_retries=0)


def build_anthropic_vertex(
    project: str | None, region: str | None, base_url: str | None, access_token: str | None = None
) -> anthropic.AsyncAnthropicVertex:
    """Claude on Vertex AI with Google's application default credentials (or a given access token)."""
    return anthropic.AsyncAnthropicVertex(
        project_id=project if project is not None else anthropic.NOT_GIVEN, region=region or "global", base_url=base_url, access_token=access_token, max_retries=0
    )


class AnthropicModel:
    """Streams one Messages API call; `provider` is `anthropic` or `vertex`."""

    def __init__(self, client: anthropic.AsyncAnthropic | anthropic.AsyncAnthropicVertex, provider: str = "anthropic") -> None:
        self._client = client
        self.name = provider

    async def stream(self, completion: Completion) -> AsyncGenerator[str | ToolCall | Usage, None]:
        input_tokens = output_tokens = 0
        stopped = False
        tool_uses: dict[int, tuple[str, str, list[str]]] = {}  # block index -> id, name, input fragments
        try:
            events = await self._client.messages.create(**_request(completion), stream=True)
            async with events:
                async for event in events:
                    if event.type == "message_start":
                        input_tokens = event.message.usage.input_tokens or 0
                    elif event.type == "content_block_start" and event.content_block.type == "tool_use":
                        tool_uses[event.index] = (event.content_block.id, event.content_block.name, [])
                    elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                        if event.delta.text:
                            yield event.delta.text
                    elif event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                        tool_uses[event.index][2].append(event.delta.partial_json)
                    elif event.type == "content_block_stop" and event.index in tool_uses:
                        yield _tool_call(*tool_uses.pop(event.index))
                    elif event.type == "message_delta":
                        output_tokens = event.usage.output_tokens or output_tokens
                    elif event.type == "message_stop":
                        stopped = True
        except anthropic.APIStatusError as exc:
            raise self._status_error(exc) from exc
        except (anthropic.APITimeoutError, httpx2.TimeoutException) as exc:
            raise ProviderTimeout(self.name) from exc
        except (anthropic.APIConnectionError, httpx2.TransportError) as exc:
            raise connection_lost(self.name, exc) from exc
        except (anthropic.APIResponseValidationError, KeyError, AttributeError, ValueError) as exc:  # JSONDecodeError too
            raise malformed(self.name, exc) from exc
        except GoogleAuthError as exc:  # Claude on Vertex AI: no usable Google credentials
            raise ProviderRejected(self.name, None, f"Google credentials: {type(exc).__name__}") from exc
        if not stopped:
            raise incomplete(self.name)
        yield Usage(input_tokens, output_tokens)

    def _status_error(self, exc: anthropic.APIStatusError) -> ProviderError:
        status = exc.status_code
        if status < 400:  # an `error` event inside a stream that had started fine
            status = _STREAM_ERROR_STATUS.get(exc.type or "", 500)
        return status_error(self.name, status, exc.api_message or exc.type or "", exc.response.headers)

    async def close(self) -> None:
        await self._client.close()


def _tool_call(id: str, name: str, fragments: list[str]) -> ToolCall:
    """The call of a finished `tool_use` block; its input must be a JSON object (ValueError otherwise)."""
    arguments = json.loads("".join(fragments) or "{}")
    if not isinstance(arguments, dict):
        raise ValueError("tool input is not a JSON object")
    return ToolCall(id, name, arguments)


def _request(completion: Completion) -> dict[str, Any]:
    request: dict[str, Any] = {
        "model": completion.model,
        "max_tokens": completion.max_tokens,
        "messages": _messages(completion.conversation),
        "timeout": anthropic.Timeout(completion.timeout_s, connect=min(_CONNECT_TIMEOUT_S, completion.timeout_s)),
    }
    if completion.system:
        request["system"] = completion.system
    if completion.stop:
        request["stop_sequences"] = list(completion.stop)
    if completion.tools:
        request["tools"] = [{"name": t.name, "description": t.description, "input_schema": dict(t.input_schema)}
                            for t in completion.tools]
    return request


def _messages(conversation: tuple[Message, ...]) -> list[dict[str, Any]]:
    """Messages API turns: an assistant's tool calls as `tool_use` blocks after its text, and consecutive
    tool results as `tool_result` blocks of one user message."""
    messages: list[dict[str, Any]] = []
    for m in conversation:
        if m.role == "tool":
            result = {"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content}
            if messages and messages[-1]["role"] == "user" and _is_tool_results(messages[-1]["content"]):
                messages[-1]["content"].append(result)
            else:
                messages.append({"role": "user", "content": [result]})
        elif m.role == "assistant" and m.tool_calls:
            blocks: list[dict[str, Any]] = [{"type": "text", "text": m.content}] if m.content.strip() else []
            blocks.extend({"type": "tool_use", "id": c.id, "name": c.name, "input": dict(c.arguments)} for c in m.tool_calls)
            messages.append({"role": "assistant", "content": blocks})
        else:
            messages.append({"role": m.role, "content": m.content})
    return messages


def _is_tool_results(content: object) -> bool:
    return isinstance(content, list) and all(block.get("type") == "tool_result" for block in content)
