"""What the pipeline needs from a model: a stream of text deltas (then the usage) for one completion."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

__all__ = ["Completion", "LLMClient", "Message", "ToolCall", "ToolSpec", "Usage", "estimate_tokens"]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool the model may call (the chat agent's, SPEC §13.3): its input is described by a JSON schema."""

    name: str
    description: str
    input_schema: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The model asks for one call of a tool. `id` is the provider's id for it (Anthropic `tool_use.id`,
    OpenAI `tool_calls[].id`; generated where the provider has none, as Gemini); a tool result answers it."""

    id: str
    name: str
    arguments: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class Message:
    """One message of the conversation sent to the model.

    An assistant message may carry the tool calls it made (`tool_calls`, with its text, possibly empty);
    a `tool` message is the result of one call (`tool_call_id`, `name` of the tool, `content` the result).
    """

    role: Literal["system", "user", "assistant", "tool"]
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None


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
    tools: tuple[ToolSpec, ...] = ()  # offered to the model; it may answer with ToolCall events

    @property
    def system(self) -> str:
        return "\n\n".join(m.content for m in self.messages if m.role == "system")

    @property
    def conversation(self) -> tuple[Message, ...]:
        """The messages other than system ones, in order."""
        return tuple(m for m in self.messages if m.role != "system")


class LLMClient(Protocol):
    name: str

    def stream(self, completion: Completion) -> AsyncGenerator[str | ToolCall | Usage, None]:
        """Yield the answer's text deltas and the tool calls it makes (only when `completion.tools` is not
        empty; each complete, after its arguments have streamed), then at most one Usage; raise
        `core.errors.ProviderError` subclasses on failure (never an SDK's own exception)."""
        ...
