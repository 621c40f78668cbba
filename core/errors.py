"""The one error tree of Switchboard.

    SwitchboardError
      ├── InvalidInput(argument, reason)          bad user input, named when it has a name
      ├── AccessDenied(message)                  an authorization check said no; the message is GitLab's text
      ├── FeatureNotFound(key)                   not in the catalogue
      ├── CatalogueError(problems)               the catalogue's cross-references are broken
      └── ProviderError(provider, status, retryable)
            ├── ProviderTimeout                  no answer in time (retryable)
            ├── ProviderRateLimited(retry_after) 429 / 529 (retryable)
            └── ProviderRejected                 any other refusal (not retryable)

User-facing texts for failed completions live here too, with GitLab's error codes.
"""

from __future__ import annotations

__all__ = [
    "SwitchboardError",
    "InvalidInput",
    "AccessDenied",
    "FeatureNotFound",
    "CatalogueError",
    "ProviderError",
    "ProviderTimeout",
    "ProviderRateLimited",
    "ProviderRejected",
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
    def __init__(self, message: str = RESOURCE_NOT_AVAILABLE) -> None:
        super().__init__(message)
        self.message = message

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


class ProviderError(SwitchboardError):
    def __init__(self, provider: str, status: int | None, detail: str = "", *, retryable: bool = False) -> None:
        super().__init__(provider, status, detail)
        self.provider = provider
        self.status = status
        self.detail = detail
        self.retryable = retryable

    def __str__(self) -> str:
        return f"{self.provider} failed ({self.status or 'no status'}): {self.detail}"


class ProviderTimeout(ProviderError):
    def __init__(self, provider: str, detail: str = "timed out") -> None:
        super().__init__(provider, None, detail, retryable=True)


class ProviderRateLimited(ProviderError):
    def __init__(self, provider: str, status: int = 429, retry_after: float | None = None) -> None:
        super().__init__(provider, status, "rate limited", retryable=True)
        self.retry_after = retry_after


class ProviderRejected(ProviderError):
    pass


_DEFAULT_TEXT = "I'm sorry, I can't generate a response. Please try again."
_TIMEOUT_TEXT = "I'm sorry, I couldn't respond in time. Please try again."


def user_facing_text(exc: BaseException | None) -> str:
    """The text a user sees for a failed completion, with GitLab's error code; never the raw exception."""
    if isinstance(exc, ProviderTimeout | TimeoutError):
        return f"{_TIMEOUT_TEXT} Error code: A1000"
    if isinstance(exc, AccessDenied):
        return AI_NOT_PERMITTED
    return f"{_DEFAULT_TEXT} Error code: A9999"
