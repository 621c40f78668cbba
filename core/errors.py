"""The one error tree of Switchboard.

    SwitchboardError
      ├── InvalidInput(argument, reason)          bad user input, named when it has a name
      ├── AccessDenied(message, reason)          an authorization check said no; the message is GitLab's text,
      │                                          the reason (`extensions.reason`) ours, e.g. `insufficient_scope`
      ├── FeatureNotFound(key)                   not in the catalogue
      ├── CatalogueError(problems)               the catalogue's cross-references are broken
      ├── ServiceUnavailable                     Redis is unreachable: try again (extensions code SERVICE_UNAVAILABLE)
      ├── Overloaded(message, retry_after_s)     too much work in progress, or no database connection in time:
      │                                          the web answers HTTP 503 with Retry-After
      └── ProviderError(provider, status, retryable)   5xx, connection lost, stream cut (retryable)
            ├── ProviderTimeout                  no answer in time (not retried: the user waited already)
            ├── ProviderRateLimited(retry_after) 429 / 529 (retryable, honouring retry-after)
            ├── ProviderRejected                 any other refusal, or a provider not configured (not retryable)
            └── CircuitOpen                      the model's circuit breaker is open: failed fast (not retryable)

User-facing texts for failed completions live here too, with GitLab's error codes.
"""

from __future__ import annotations

__all__ = [
    "SwitchboardError",
    "InvalidInput",
    "AccessDenied",
    "FeatureNotFound",
    "CatalogueError",
    "ServiceUnavailable",
    "Overloaded",
    "ProviderError",
    "ProviderTimeout",
    "ProviderRateLimited",
    "ProviderRejected",
    "CircuitOpen",
    "MAX_RETRIES_EXCEEDED",
    "RESOURCE_NOT_AVAILABLE",
    "AI_NOT_PERMITTED",
    "user_facing_text",
]

RESOURCE_NOT_AVAILABLE = (
    "The resource that you are attempting to access does not exist or you don't have permission to "
    "perform this action"
)
AI_NOT_PERMITTED = "AI features are not enabled or resource is not permitted to be sent."


class SwitchboardError(Exception):
    """Base of every error Switchboard raises on purpose."""


class InvalidInput(SwitchboardError):
    """`argument` names the offending input; None for a request-level problem shown as the bare reason."""

    def __init__(self, argument: str | None, reason: str) -> None:
        super().__init__(argument, reason)
        self.argument = argument
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.argument}: {self.reason}" if self.argument else self.reason


class AccessDenied(SwitchboardError):
    def __init__(self, message: str = RESOURCE_NOT_AVAILABLE, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        # graphql-core copies an original error's `extensions` into the GraphQL error it reports
        self.extensions = {"reason": reason} if reason else None

    def __str__(self) -> str:
        return self.message


class FeatureNotFound(SwitchboardError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:
        return f"Unknown feature {self.key!r}"


class CatalogueError(SwitchboardError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems)
        self.problems = problems

    def __str__(self) -> str:
        return "catalogue is invalid:\n" + "\n".join(f"- {p}" for p in self.problems)


class ServiceUnavailable(SwitchboardError):
    """A dependency (Redis) is unreachable; the request did nothing and may be sent again."""

    def __init__(self, message: str = "The service is temporarily unavailable; try again.") -> None:
        super().__init__(message)
        self.message = message
        self.extensions = {"code": "SERVICE_UNAVAILABLE"}  # GraphQL error extensions
class Overloaded(SwitchboardError):
    """The process or its database cannot take more work now; the client should retry after `retry_after_s`."""

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message, retry_after_s)
        self.message = message
        self.retry_after_s = retry_after_s

    def __str__(self) -> str:
        return self.message


class ProviderError(SwitchboardError):
    """`detail` is for operators. When `quotes_provider` is set it is the provider's own error text, which
    may echo the prompt (vLLM, LiteLLM): it is logged only under `expanded_ai_logging`."""

    def __init__(self, provider: str, status: int | None, detail: str = "", *, retryable: bool = False) -> None:
        super().__init__(provider, status, detail)
        self.provider = provider
        self.status = status
        self.detail = detail
        self.retryable = retryable
        self.quotes_provider = False

    @property
    def loggable_detail(self) -> str | None:
        """`detail` when it is ours (no provider text), else None."""
        return None if self.quotes_provider else self.detail

    def __str__(self) -> str:
        return f"{self.provider} failed ({self.status or 'no status'}): {self.detail}"


class ProviderTimeout(ProviderError):
    def __init__(self, provider: str, detail: str = "timed out") -> None:
        super().__init__(provider, None, detail, retryable=False)


class ProviderRateLimited(ProviderError):
    def __init__(self, provider: str, status: int = 429, retry_after: float | None = None) -> None:
        super().__init__(provider, status, "rate limited", retryable=True)
        self.retry_after = retry_after


class ProviderRejected(ProviderError):
    pass


class CircuitOpen(ProviderError):
    def __init__(self, provider: str, model: str) -> None:
        super().__init__(provider, None, f"circuit open for {model}", retryable=False)
        self.model = model


_DEFAULT_TEXT = "I'm sorry, I can't generate a response. Please try again."
# GitLab's RateLimitError text, once the retries of a rate-limited call are used up.
MAX_RETRIES_EXCEEDED = "Maximum number of retries (3) exceeded."
_TIMEOUT_TEXT = "I'm sorry, I couldn't respond in time. Please try again."


def user_facing_text(exc: BaseException | None) -> str:
    """The text a user sees for a failed completion, with GitLab's error code; never the raw exception."""
    if isinstance(exc, ProviderTimeout | TimeoutError):
        return f"{_TIMEOUT_TEXT} Error code: A1000"
    if isinstance(exc, AccessDenied):
        return AI_NOT_PERMITTED
    if isinstance(exc, ProviderRateLimited):  # only reaches the user after the last retry
        return MAX_RETRIES_EXCEEDED
    return f"{_DEFAULT_TEXT} Error code: A9999"
