"""LLM provider clients. Provider SDK errors are translated into `core.errors.ProviderError` here only."""

from worker.llm.base import Completion, LLMClient, Message, ToolCall, ToolSpec, Usage, estimate_tokens
from worker.llm.circuit import CircuitBreaker, Circuits
from worker.llm.mock import MockModel
from worker.llm.providers import Providers, build_providers
from worker.llm.react import ReactClient

__all__ = [
    "CircuitBreaker",
    "Circuits",
    "Completion",
    "LLMClient",
    "Message",
    "MockModel",
    "Providers",
    "ReactClient",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "build_providers",
    "estimate_tokens",
]
