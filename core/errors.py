"""The one error tree of Switchboard.

    SwitchboardError
      ├── InvalidInput(argument, reason)          bad user input, named when it has a name
      ├── AccessDenied(message, reason)          an authorization check said no; the message is GitLab's text,
      │                                          the reason (`extensions.reason`) ours, e.g. `insufficient_scope`
      ├── FeatureNotFound(key)                   not in the catalogue
      ├── CatalogueError(problems)               the catalogue's cross-references are broken
      ├── DatasetError(problems)                 an evaluation dataset is broken: `path:line: problem` each
      │                                          (also a ValueError)
      ├── ServiceUnavailable                     Redis is unreachable: try again (extensions code SERVICE_UNAVAILABLE)
      ├── Overloaded(message, retry_after_s)     too much work in progress, or no database connection in time:
      │                                          the web answers HTTP 503 with Retry-After
      ├── SubscriberOverflow                     a subscription fell too far behind its messages: resubscribe
      │                                          with `after`
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
    "DatasetError",
    "ServiceUnavailable",
    "Overloaded",
    "SubscriberOverflow",
    "ProviderError",
    "ProviderTimeout",
    "ProviderRateLimited",
    "ProviderRejected",
    "CircuitOpen",
    "MAX_RETRIES_EXCEEDED",
    "RESOURCE_NOT_AVAILABLE",
    "AI_NOT_PERMITTED",
    "THREAD_NOT_FOUND",
    "THREAD_NOT_DELETABLE",
    "AGENT_STEP_LIMIT",
    "TOOL_ITEM_UNAVAILABLE",
    "TOOL_NOT_IN_SUBSCRIPTION",
    "TOOL_REPEATED",
    "NO_DOCUMENTATION",
    "NO_COMMENTS",
    "NOT_A_VULNERABILITY_PAGE",
    "NO_CODE_FOR_COMMAND",
    "user_facing_text",
]

RESOURCE_NOT_AVAILABLE = (
    "The resource that you are attempting to access does not exist or you don't have permission to "
    "perform this action"
)
AI_NOT_PERMITTED = "AI features are not enabled or resource is not permitted to be sent."

# Duo Chat (SPEC §13), GitLab's texts and error codes (reference/duo-chat.md §3).
THREAD_NOT_FOUND = "Thread not found. It may have expired."
THREAD_NOT_DELETABLE = "User not authorized to delete thread"
AGENT_STEP_LIMIT = (
    "I'm sorry, Duo Chat agent reached the limit before finding an answer for your question. Please try a "
    "different prompt or clear your conversation history with /clear. Error code: A1006"
)
TOOL_ITEM_UNAVAILABLE = (
    "I'm sorry, I can't generate a response. You might want to try again. You could also be getting this error "
    "because the items you're asking about either don't exist, you don't have access to them, or your session "
    "has expired. Error code: M3003"
)
TOOL_NOT_IN_SUBSCRIPTION = (
    "I'm sorry, this question is not supported in your Duo Pro subscription. You might consider upgrading to "
    "Duo Enterprise. Error code: M3005"
)
TOOL_REPEATED = "You already have the answer from {tool} tool, read carefully."
NO_DOCUMENTATION = "I'm sorry, I couldn't find any documentation to answer your question. Error code: M2000"
NO_COMMENTS = "This resource has no comments to summarize. Error code: M4004"
NOT_A_VULNERABILITY_PAGE = (
    "This command is used for explaining vulnerabilities and can only be invoked from a vulnerability detail "
    "page. Error code: M4003"
)
# %-style placeholders as GitLab's: action ("explain"), human_name ("explain the code"), command ("/explain").
NO_CODE_FOR_COMMAND = (
    "Your request does not seem to contain code to {action}. To {human_name} select the lines of code in your "
    "editor and then type the command {command} in the chat. You may add additional instructions after this "
    "command. If you have no code to select, you can also simply add the code after the command."
)


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


class DatasetError(SwitchboardError, ValueError):
    """An evaluation dataset that cannot be used; `problems` has one `path:line: problem` line per defect."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems)
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(self.problems)


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


class SubscriberOverflow(SwitchboardError):
    """A subscriber fell too far behind; it should resubscribe with `after` set to its last cursor."""

    def __init__(self, message: str = "too many undelivered messages; resubscribe with `after`") -> None:
        super().__init__(message)


class ProviderError(SwitchboardError):
    """`detail` is for operators. When `quotes_provider` is set it is the provider's own error text, which
    may echo the prompt (vLLM, LiteLLM): it is logged only under `expanded_ai_logging`. `model` is the
    identifier of the model whose call failed, set by the worker's caller when the client did not."""

    def __init__(self, provider: str, status: int | None, detail: str = "", *, retryable: bool = False) -> None:
        super().__init__(provider, status, detail)
        self.provider = provider
        self.status = status
        self.detail = detail
        self.retryable = retryable
        self.quotes_provider = False
        self.model: str | None = None

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
