"""Gemini through google-genai, streaming: the Gemini API (API key) or Vertex AI (project and location).

One `genai.Client` per worker process, without SDK retries (the job retries); each call sets its own
timeout. SDK and transport exceptions become `core.errors` here and nowhere else.

Tools are Gemini function calling: `function_declarations`, answered by whole `function_call` parts (a
ToolCall each, its id generated when Gemini gives none), whose results go back as `function_response`
parts of a user turn. Gemini's thought signature of a call is kept (per process, bounded) and sent back
with it, as Gemini 3 requires within an agent loop.
"""

from __future__ import annotations

import json
import secrets
from collections import OrderedDict
from collections.abc import AsyncGenerator
from typing import Any

import httpx
import httpx2
from google import genai
from google.auth.exceptions import GoogleAuthError
from google.genai import errors as genai_errors
from google.genai import types

from core.errors import ProviderRejected, ProviderTimeout
from worker.llm._status import connection_lost, incomplete, malformed, status_error
from worker.llm.base import Completion, Message, ToolCall, Usage

__all__ = ["GoogleModel", "build_google"]

_TIMEOUTS = (httpx.TimeoutException, httpx2.TimeoutException)
_TRANSPORT = (httpx.TransportError, httpx2.TransportError)
_GENERATED = "sb_call_"  # ids Switchboard made up for calls Gemini gave none: never sent back to Gemini
_SIGNATURES_KEPT = 4096


def build_google(
    api_key: str | None,
    base_url: str | None,
    *,
    vertexai: bool = False,
    project: str | None = None,
    location: str | None = None,
) -> genai.Client:
    """The process's google-genai client: Vertex AI when `vertexai`, else the Gemini API with `api_key`."""
    http_options = types.HttpOptions(base_url=base_url) if base_url else None
    if vertexai:
        return genai.Client(vertexai=True, project=project, location=location, http_options=http_options)
    return genai.Client(vertexai=False, api_key=api_key, http_options=http_options)


class GoogleModel:
    name = "google"

    def __init__(self, client: genai.Client) -> None:
        self._client = client
        self._signatures: OrderedDict[str, bytes] = OrderedDict()  # tool call id -> Gemini's thought signature

    async def stream(self, completion: Completion) -> AsyncGenerator[str | ToolCall | Usage, None]:
        usage: Usage | None = None
        finished = False
        try:
            chunks = await self._client.aio.models.generate_content_stream(
                model=completion.model, contents=self._contents(completion), config=_config(completion)
            )
            async for chunk in chunks:
                for candidate in chunk.candidates or ():
                    for part in (candidate.content.parts if candidate.content else None) or ():
                        if part.function_call is not None:
                            yield self._tool_call(part)
                        elif part.text and not part.thought:
                            yield part.text
                    finished = finished or candidate.finish_reason is not None
                if chunk.usage_metadata is not None:
                    usage = _usage(chunk.usage_metadata) or usage
        except genai_errors.APIError as exc:
            headers = exc.response.headers if exc.response is not None else None
            raise status_error(self.name, exc.code or 500, exc.message or exc.status or "", headers) from exc
        except _TIMEOUTS as exc:
            raise ProviderTimeout(self.name) from exc
        except _TRANSPORT as exc:
            raise connection_lost(self.name, exc) from exc
        except GoogleAuthError as exc:  # Vertex AI: no usable Google credentials
            raise ProviderRejected(self.name, None, f"Google credentials: {type(exc).__name__}") from exc
        except (genai_errors.UnknownApiResponseError, json.JSONDecodeError, ValueError) as exc:
            raise malformed(self.name, exc) from exc
        if not finished:
            raise incomplete(self.name)
        if usage is not None:
            yield usage

    def _tool_call(self, part: types.Part) -> ToolCall:
        call = part.function_call
        if call is None or not call.name:
            raise ValueError("a function call without a name")
        id = call.id or f"{_GENERATED}{secrets.token_hex(8)}"
        if part.thought_signature:
            self._signatures[id] = part.thought_signature
            while len(self._signatures) > _SIGNATURES_KEPT:
                self._signatures.popitem(last=False)
        return ToolCall(id, call.name, dict(call.args or {}))

    def _contents(self, completion: Completion) -> list[types.Content]:
        """Gemini turns: an assistant's calls as `function_call` parts after its text; consecutive tool
        results as `function_response` parts of one user turn (named after their tool)."""
        names = {c.id: c.name for m in completion.conversation for c in m.tool_calls}
        contents: list[types.Content] = []
        for m in completion.conversation:
            if m.role == "tool":
                response = types.FunctionResponse(id=_provider_id(m.tool_call_id), name=m.name or names.get(m.tool_call_id or ""),
                                                  response={"output": m.content})
                if contents and contents[-1].role == "user" and _are_responses(contents[-1]):
                    contents[-1].parts = [*(contents[-1].parts or ()), types.Part(function_response=response)]
                else:
                    contents.append(types.Content(role="user", parts=[types.Part(function_response=response)]))
            elif m.role == "assistant":
                contents.append(types.Content(role="model", parts=self._model_parts(m)))
            else:
                contents.append(types.Content(role="user", parts=[types.Part(text=m.content)]))
        return contents

    def _model_parts(self, message: Message) -> list[types.Part]:
        parts = [types.Part(text=message.content)] if message.content or not message.tool_calls else []
        for c in message.tool_calls:
            call = types.FunctionCall(id=_provider_id(c.id), name=c.name, args=dict(c.arguments))
            parts.append(types.Part(function_call=call, thought_signature=self._signatures.get(c.id)))
        return parts

    async def close(self) -> None:
        await self._client.aio.aclose()
        self._client.close()


def _provider_id(id: str | None) -> str | None:
    return None if id is None or id.startswith(_GENERATED) else id


def _are_responses(content: types.Content) -> bool:
    return bool(content.parts) and all(part.function_response is not None for part in content.parts or ())


def _config(completion: Completion) -> types.GenerateContentConfig:
    options: dict[str, Any] = {
        "max_output_tokens": completion.max_tokens,
        "http_options": types.HttpOptions(timeout=int(completion.timeout_s * 1000)),
    }
    if completion.system:
        options["system_instruction"] = completion.system
    if completion.temperature is not None:
        options["temperature"] = completion.temperature
    if completion.top_p is not None:
        options["top_p"] = completion.top_p
    if completion.top_k is not None:
        options["top_k"] = completion.top_k
    if completion.stop:
        options["stop_sequences"] = list(completion.stop)
    if completion.tools:
        declarations = [
            types.FunctionDeclaration(name=t.name, description=t.description, parameters_json_schema=dict(t.input_schema))
            for t in completion.tools
        ]
        options["tools"] = [types.Tool(function_declarations=declarations)]
        options["automatic_function_calling"] = types.AutomaticFunctionCallingConfig(disable=True)
    return types.GenerateContentConfig(**options)


def _usage(metadata: types.GenerateContentResponseUsageMetadata) -> Usage | None:
    if metadata.prompt_token_count is None and metadata.candidates_token_count is None:
        return None
    output = (metadata.candidates_token_count or 0) + (metadata.thoughts_token_count or 0)
    return Usage(metadata.prompt_token_count or 0, output)
