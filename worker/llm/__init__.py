"""LLM provider clients. Provider SDK errors are translated into `core.errors.ProviderError` here only."""

from worker.llm.base import Completion, LLMClient
from worker.llm.mock import MockModel

__all__ = ["Completion", "LLMClient", "MockModel"]
