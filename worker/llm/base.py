"""What the pipeline needs from a model: a stream of text deltas (then the usage) for one completion."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Literal, Protocol

__all__ = ["Completion", "LLMClient", "Message", "Usage", "estimate_tokens"]


@dataclass(frozen=True, slots=True)
class Message:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one model call; `estimated` when the provider did not say (about 4 characters a token)."""

    input_tokens: int
    output_tokens: int
    estimated: bool = False


def estimate_tokens(text: str) -> int:
    """GitLab's estimate: a token is about four characters."""
    return (len(text) + 3) // 4


@dataclass(frozen=True, slots=True)
class Completion:
    """One model call: the rendered messages and the call's parameters.

    `user_text` is the user's own text for the action (the mock model plays its `<response>` tags), and
    `turn` which call of the request this is (0 = first try). `endpoint` is the base URL of a model that
    has its own (self-hosted models), `api_key` its own token.
    """

    messages: tuple[Message, ...]
    model: str = ""
    max_tokens: int = 2048
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: tuple[str, ...] = ()
    timeout_s: float = 30.0
    user_text: str = ""
    turn: int = 0
    endpoint: str | None = None
    api_key: str | None = field(default=None, repr=False)  # a registered self-hosted model's own token: never in a repr
    served_name: bool = False  # `model` is the server's own name for it (registered self-hosted models)

    @property
    def system(self) -> str:
        return "\n\n".join(m.content for m in self.messages if m.role == "system")

    @property
    def conversation(self) -> tuple[Message, ...]:
        """The messages other than system ones, in order."""
        return tuple(m for m in self.messages if m.role != "system")


class LLMClient(Protocol):
    name: str

    def stream(self, completion: Completion) -> AsyncGenerator[str | Usage, None]:
        """Yield the answer's text deltas, then at most one Usage; raise `core.errors.ProviderError`
        subclasses on failure (never an SDK's own exception)."""
        ...
