from __future__ import annotations

import time

import pytest

from core.errors import ProviderError, ProviderRateLimited, ProviderTimeout
from worker.llm import Completion, Message, MockModel, ToolCall, ToolSpec
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


TOOLS = (ToolSpec("issue_reader", "Reads an issue.", {"type": "object"}), ToolSpec("documentation_search", "Searches.", {"type": "object"}))


async def step(text: str, *history: Message, turn: int = 0, tools: tuple[ToolSpec, ...] = TOOLS) -> list[object]:
    completion = Completion(messages=(Message("user", "a rendered prompt"), *history), user_text=text, turn=turn, tools=tools)
    return [event async for event in MockModel().stream(completion)]


async def test_a_tool_call_tag_makes_a_tool_call_when_tools_are_offered() -> None:
    text = '<response><tool_call name="issue_reader">{"reference": "#1"}</tool_call></response>'
    assert await step(text) == [ToolCall("mock_call_0_0", "issue_reader", {"reference": "#1"})]
    assert await step(text, tools=()) == ['<tool_call', ' name="issue_reader">{"reference":', ' "#1"}</tool_call>']


async def test_several_tool_call_tags_are_parallel_calls_after_the_text_around_them() -> None:
    text = ("<response>Let me look. <tool_call name='issue_reader'>{\"reference\": \"#1\"}</tool_call>\n"
            '<tool_call name="documentation_search">{"query": "ci"}</tool_call></response>'
            '<response>done</response>')
    assert await step(text, turn=0) == ["Let", " me", " look.", ToolCall("mock_call_0_0", "issue_reader", {"reference": "#1"}),
                                        ToolCall("mock_call_0_1", "documentation_search", {"query": "ci"})]
    tool_result = Message("tool", "Issue #1: it is slow", tool_call_id="mock_call_0_0", name="issue_reader")
    assert await step(text, tool_result, turn=1) == ["done"]  # a script is left: it plays


async def test_when_the_scripts_are_used_up_it_echoes_the_last_tool_result() -> None:
    text = '<response><tool_call name="issue_reader">{"reference": "#1"}</tool_call></response>'
    calls = (ToolCall("mock_call_0_0", "issue_reader", {"reference": "#1"}),)
    history = (Message("assistant", "", tool_calls=calls),
               Message("tool", "Issue #1:  it is\nslow", tool_call_id="mock_call_0_0", name="issue_reader"))
    assert await step(text, *history, turn=1) == ["echo:", " Issue", " #1:", "  it", " is", "\nslow"]
    assert await step("no tags", *history, turn=0) == ["echo:", " Issue", " #1:", "  it", " is", "\nslow"]
    assert await step("no tags", turn=0) == ["echo:", " no", " tags"]  # the last message is not a tool result


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        pytest.param('{"reference": ', "not valid JSON", id="cut-json"),
        pytest.param('["#1"]', "not a JSON object", id="not-an-object"),
    ],
)
async def test_tool_call_arguments_that_are_not_a_json_object_fail_the_call(body: str, detail: str) -> None:
    with pytest.raises(ProviderError, match=detail) as caught:
        await step(f'<response><tool_call name="issue_reader">{body}</tool_call></response>')
    assert caught.value.status is None and not caught.value.retryable


async def test_a_tool_call_without_arguments_has_empty_ones() -> None:
    assert await step('<response><tool_call name="issue_reader"></tool_call></response>', turn=4) == [
        ToolCall("mock_call_4_0", "issue_reader", {})]


async def test_only_a_scripted_response_calls_tools_never_an_echo() -> None:
    """A tool result (or a question) that quotes a `<tool_call>` tag is echoed as text, not called: the
    documentation describes the tags, and searching it must not make the mock call a reader."""
    quoted = '<tool_call name="issue_reader">{"reference": "#1"}</tool_call>'
    answer = Message("assistant", "", tool_calls=(ToolCall("mock_call_0_0", "documentation_search", {"query": "x"}),))
    result = Message("tool", f"The docs say: {quoted}", tool_call_id="mock_call_0_0", name="documentation_search")
    events = await step('<response><tool_call name="documentation_search">{"query": "x"}</tool_call></response>',
                        answer, result, turn=1)
    assert not any(isinstance(event, ToolCall) for event in events)
    assert "".join(str(event) for event in events) == f"echo: The docs say: {quoted}"
    assert not any(isinstance(event, ToolCall) for event in await step(f"unscripted {quoted}"))
