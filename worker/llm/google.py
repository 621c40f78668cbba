"""Gemini through google-genai, streaming: the Gemini API (API key) or Vertex AI (project and location).

One `genai.Client` per worker process, without SDK retries (the job retries); each call sets its own
timeout. SDK and transport exceptions become `core.errors` here and nowhere else.
"""

from __future__ import annotations

import json
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
from worker.llm.base import Completion, Usage

__all__ = ["GoogleModel", "build_google"]

_TIMEOUTS = (httpx.TimeoutException, httpx2.TimeoutException)
_TRANSPORT = (httpx.TransportError, httpx2.TransportError)


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

    async def stream(self, completion: Completion) -> AsyncGenerator[str | Usage, None]:
        usage: Usage | None = None
        finished = False
        try:
            chunks = await self._client.aio.models.generate_content_stream(
                model=completion.model, contents=_contents(completion), config=_config(completion)
            )
            async for chunk in chunks:
                for candidate in chunk.candidates or ():
                    for part in (candidate.content.parts if candidate.content else None) or ():
                        if part.text and not part.thought:
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

    async def close(self) -> None:
        await self._client.aio.aclose()
        self._client.close()


def _contents(completion: Completion) -> list[types.Content]:
    return [
        types.Content(role="model" if m.role == "assistant" else "user", parts=[types.Part(text=m.content)])
        for m in completion.conversation
    ]


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
    return types.GenerateContentConfig(**options)


def _usage(metadata: types.GenerateContentResponseUsageMetadata) -> Usage | None:
    if metadata.prompt_token_count is None and metadata.candidates_token_count is None:
        return None
    output = (metadata.candidates_token_count or 0) + (metadata.thoughts_token_count or 0)
    return Usage(metadata.prompt_token_count or 0, output)
