"""How every provider client maps an HTTP failure onto `core.errors`, so that all providers retry alike.

| status                | error                                   | retried by the job | counts against the circuit |
|-----------------------|-----------------------------------------|--------------------|----------------------------|
| 429, 529              | ProviderRateLimited(retry_after)        | yes, with backoff  | 529 only                   |
| 408                   | ProviderTimeout                         | no                 | yes                        |
| other 5xx             | ProviderError(retryable)                | yes                | yes                        |
| other 4xx             | ProviderRejected                        | no                 | no                         |
| connection lost, cut  | ProviderError(status None, retryable)   | yes                | yes                        |
| malformed event       | ProviderError(status None)              | no                 | yes                        |
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping

from core.errors import (
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
)

__all__ = ["status_error", "retry_after", "connection_lost", "malformed", "incomplete", "short"]

_DETAIL_MAX = 200


def short(text: object) -> str:
    """A provider's message, on one line and bounded (it goes to logs, never to users)."""
    return " ".join(str(text).split())[:_DETAIL_MAX]


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from `retry-after-ms` or `retry-after` (seconds or an HTTP date); None if absent."""
    if not headers:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def status_error(provider: str, status: int, detail: str, headers: Mapping[str, str] | None = None) -> ProviderError:
    """The error for an HTTP failure; its `detail` quotes the provider, so it is logged only under expanded
    AI logging (vLLM and LiteLLM echo prompts in their error bodies)."""
    error = _status_error(provider, status, detail, headers)
    error.quotes_provider = True
    return error


def _status_error(provider: str, status: int, detail: str, headers: Mapping[str, str] | None) -> ProviderError:
    if status in (429, 529):
        return ProviderRateLimited(provider, status, retry_after(headers))
    if status == 408:
        return ProviderTimeout(provider, f"408: {short(detail)}")
    if status >= 500:
        return ProviderError(provider, status, short(detail), retryable=True)
    return ProviderRejected(provider, status, short(detail))


def connection_lost(provider: str, exc: BaseException) -> ProviderError:
    return ProviderError(provider, None, f"connection lost: {type(exc).__name__}", retryable=True)


def incomplete(provider: str) -> ProviderError:
    return ProviderError(provider, None, "the stream ended before the answer was complete", retryable=True)


def malformed(provider: str, exc: BaseException) -> ProviderError:
    return ProviderError(provider, None, f"malformed event: {type(exc).__name__}")
