"""Claude through Anthropic's Messages API, streaming; the same client class serves Claude on Vertex AI.

One SDK client per worker process (`AsyncAnthropic`, or `AsyncAnthropicVertex` for the `vertex` provider),
with `max_retries=0`: the job retries. The Messages API takes no sampling parameters (temperature, top_p,
top_k): those of the catalogue apply to the other providers. Each call sets its own timeout (connect ≤ 5 s; the read timeout is
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
from worker.llm.base import Completion, Usage

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

    async def stream(self, completion: Completion) -> AsyncGenerator[str | Usage, None]:
        input_tokens = output_tokens = 0
        stopped = False
        try:
            events = await self._client.messages.create(**_request(completion), stream=True)
            async with events:
                async for event in events:
                    if event.type == "message_start":
                        input_tokens = event.message.usage.input_tokens or 0
                    elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                        if event.delta.text:
                            yield event.delta.text
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
        except (anthropic.APIResponseValidationError, json.JSONDecodeError, KeyError, AttributeError) as exc:
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


def _request(completion: Completion) -> dict[str, Any]:
    messages = [{"role": m.role, "content": m.content} for m in completion.conversation]
    request: dict[str, Any] = {
        "model": completion.model,
        "max_tokens": completion.max_tokens,
        "messages": messages,
        "timeout": anthropic.Timeout(completion.timeout_s, connect=min(_CONNECT_TIMEOUT_S, completion.timeout_s)),
    }
    if completion.system:
        request["system"] = completion.system
    if completion.stop:
        request["stop_sequences"] = list(completion.stop)
    return request
