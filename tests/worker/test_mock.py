from __future__ import annotations

import time

import pytest

from core.errors import ProviderError, ProviderRateLimited, ProviderTimeout
from worker.llm import Completion, Message, MockModel
from worker.llm.mock import scripts_in


async def answer(text: str, turn: int = 0) -> list[str]:
    completion = Completion(messages=(Message("user", "a rendered prompt"),), user_text=text, turn=turn)
    return [chunk async for chunk in MockModel().stream(completion)]  # type: ignore[misc]


async def test_echoes_the_user_text_not_the_prompt_one_word_per_chunk_with_its_leading_whitespace() -> None:
    assert await answer("hello  big\nworld") == ["echo:", " hello", "  big", "\nworld"]


async def test_plays_scripted_responses_in_order_across_turns_and_repeats_the_last() -> None:
    text = 'first <response>one two</response> and <response latency_ms="1">three</response>'
    assert await answer(text, turn=0) == ["one", " two"]
    assert await answer(text, turn=1) == ["three"]
    assert await answer(text, turn=7) == ["three"]


async def test_latency_and_chunk_delay_are_honoured() -> None:
    started = time.perf_counter()
    chunks = await answer("<response latency_ms='100' chunk_delay_ms=50>a b c</response>")
    assert chunks == ["a", " b", " c"]
    assert time.perf_counter() - started >= 0.2


@pytest.mark.parametrize(
    ("error", "kind", "retryable"),
    [
        pytest.param("429", ProviderRateLimited, True, id="429"),
        pytest.param("529", ProviderRateLimited, True, id="529"),
        pytest.param("500", ProviderError, True, id="500"),
        pytest.param("400", ProviderError, False, id="400"),
        pytest.param("timeout", ProviderTimeout, False, id="timeout"),
    ],
)
async def test_scripted_errors_fail_the_call_like_a_provider(error: str, kind: type, retryable: bool) -> None:
    with pytest.raises(kind) as caught:
        await answer(f'<response error="{error}">never</response>')
    assert caught.value.retryable is retryable


def test_malformed_attributes_fall_back_to_no_delay() -> None:
    (script,) = scripts_in('<response latency_ms="soon" chunk_delay_ms=-5>x</response>')
    assert (script.latency_ms, script.chunk_delay_ms, script.text) == (0, 0, "x")
