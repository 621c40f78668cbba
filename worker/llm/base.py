"""What the pipeline needs from a model: a stream of text deltas for one completion."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Completion", "LLMClient"]


@dataclass(frozen=True, slots=True)
class Completion:
    """One model call: the rendered messages, and which call of the request this is (0 = first)."""

    system: str
    user: str
    turn: int = 0
    max_output_tokens: int = 2048


class LLMClient(Protocol):
    name: str

    def stream(self, completion: Completion) -> AsyncIterator[str]:
        """Yield the answer's text deltas; raise `core.errors.ProviderError` subclasses on failure."""
        ...
