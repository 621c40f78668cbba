"""Tool calling through each provider's real SDK against the fake servers (SPEC §13.3): calls parsed from
arguments streamed in pieces, parallel calls, text before a call, tool results sent back in the provider's
format, malformed arguments; the ReAct text format for models without native tool calling."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from catalogue.models import load_models
from core.errors import ProviderError
from tests._providers import FakeLLM, Reply, ToolUse
from tests.worker.test_providers import WIRES, build_client
from worker.llm import Completion, LLMClient, Message, Providers, ReactClient, ToolCall, ToolSpec, Usage
from worker.llm.openai_compatible import OpenAICompatibleModel

ISSUE_READER = ToolSpec(
    "issue_reader",
    "Reads an issue.",
    {"type": "object", "properties": {"reference": {"type": "string"}}, "required": ["reference"]},
)
SEARCH = ToolSpec(
    "documentation_search",
    "Searches the documentation.",
    {"type": "object", "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}}, "required": ["query"]},
)
ARGUMENTS = {"reference": "gitlab-org/gitlab#12", "options": {"notes": True, "limit": 3}}


@pytest.fixture(params=WIRES)
async def client(request: pytest.FixtureRequest, fake_llm: FakeLLM) -> AsyncIterator[LLMClient]:
    built = build_client(request.param, fake_llm.url)
    built.wire = request.param  # type: ignore[attr-defined]
    try:
        yield built
    finally:
        await built.close()  # type: ignore[attr-defined]


def completion(*messages: Message, tools: tuple[ToolSpec, ...] = (ISSUE_READER, SEARCH), turn: int = 0) -> Completion:
    conversation = messages or (Message("user", "What is issue #12 about?"),)
    return Completion(messages=(Message("system", "You are terse."), *conversation), model="fake-model", max_tokens=64,
                      timeout_s=5.0, tools=tools, turn=turn)


async def events(client: LLMClient, call: Completion) -> list[str | ToolCall | Usage]:
    return [event async for event in client.stream(call)]


def wire(client: LLMClient) -> str:
    return client.wire  # type: ignore[attr-defined, no-any-return]


async def test_a_tool_call_streamed_in_pieces_is_one_complete_call(client: LLMClient, fake_llm: FakeLLM) -> None:
    fake_llm.script(Reply(deltas=(), tool_calls=(ToolUse("issue_reader", ARGUMENTS, id="call-1", pieces=5),), usage=(30, 9)))
    got = await events(client, completion())
    assert got[0] == ToolCall("call-1", "issue_reader", ARGUMENTS)
    assert got[1:] == [Usage(30, 9)]
    (seen,) = fake_llm.requests
    assert _declared(wire(client), seen.body) == [
        ("issue_reader", "Reads an issue.", dict(ISSUE_READER.input_schema)),
        ("documentation_search", "Searches the documentation.", dict(SEARCH.input_schema)),
    ]


async def test_parallel_calls_come_in_order_after_the_text(client: LLMClient, fake_llm: FakeLLM) -> None:
    fake_llm.script(Reply(deltas=("Let me", " look."), tool_calls=(
        ToolUse("issue_reader", {"reference": "#12"}, id="call-a"),
        ToolUse("documentation_search", {"query": "caching", "limit": 2}, id="call-b", pieces=1),
    )))
    got = [event for event in await events(client, completion()) if not isinstance(event, Usage)]
    assert got == ["Let me", " look.", ToolCall("call-a", "issue_reader", {"reference": "#12"}),
                   ToolCall("call-b", "documentation_search", {"query": "caching", "limit": 2})]


async def test_openai_compatible_calls_sent_whole_without_an_index(fake_llm: FakeLLM) -> None:
    fake_llm.script(Reply(deltas=(), whole_tool_calls=True, tool_calls=(
        ToolUse("issue_reader", {"reference": "#12"}, id="call-a"), ToolUse("issue_reader", {"reference": "#13"}, id="call-b"))))
    client = build_client("openai_compatible", fake_llm.url)
    try:
        got = await events(client, completion())
    finally:
        await client.close()  # type: ignore[attr-defined]
    assert got[:2] == [ToolCall("call-a", "issue_reader", {"reference": "#12"}), ToolCall("call-b", "issue_reader", {"reference": "#13"})]


async def test_a_call_without_arguments_has_empty_ones(client: LLMClient, fake_llm: FakeLLM) -> None:
    fake_llm.script(Reply(deltas=(), tool_calls=(ToolUse("issue_reader", {}, id="call-0"),)))
    got = await events(client, completion())
    assert got[0] == ToolCall("call-0", "issue_reader", {})


async def test_tool_results_go_back_in_the_providers_format(client: LLMClient, fake_llm: FakeLLM) -> None:
    calls = (ToolCall("call-a", "issue_reader", {"reference": "#12"}), ToolCall("call-b", "documentation_search", {"query": "x"}))
    second = completion(
        Message("user", "What is issue #12 about?"),
        Message("assistant", "Let me look.", tool_calls=calls),
        Message("tool", "Issue #12: caching is slow.", tool_call_id="call-a", name="issue_reader"),
        Message("tool", "No documentation found.", tool_call_id="call-b", name="documentation_search"),
    )
    texts = [event for event in await events(client, second) if isinstance(event, str)]
    assert texts == ["Hello", " from", " the", " fake."]
    (seen,) = fake_llm.requests
    expected = {
        "anthropic": [
            {"role": "user", "content": "What is issue #12 about?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "call-a", "name": "issue_reader", "input": {"reference": "#12"}},
                {"type": "tool_use", "id": "call-b", "name": "documentation_search", "input": {"query": "x"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call-a", "content": "Issue #12: caching is slow."},
                {"type": "tool_result", "tool_use_id": "call-b", "content": "No documentation found."},
            ]},
        ],
        "google": [
            {"role": "user", "parts": [{"text": "What is issue #12 about?"}]},
            {"role": "model", "parts": [
                {"text": "Let me look."},
                {"functionCall": {"id": "call-a", "name": "issue_reader", "args": {"reference": "#12"}}},
                {"functionCall": {"id": "call-b", "name": "documentation_search", "args": {"query": "x"}}},
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"id": "call-a", "name": "issue_reader", "response": {"output": "Issue #12: caching is slow."}}},
                {"functionResponse": {"id": "call-b", "name": "documentation_search",
                                      "response": {"output": "No documentation found."}}},
            ]},
        ],
        "openai_compatible": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "What is issue #12 about?"},
            {"role": "assistant", "content": "Let me look.", "tool_calls": [
                {"id": "call-a", "type": "function", "function": {"name": "issue_reader", "arguments": '{"reference": "#12"}'}},
                {"id": "call-b", "type": "function", "function": {"name": "documentation_search", "arguments": '{"query": "x"}'}},
            ]},
            {"role": "tool", "tool_call_id": "call-a", "content": "Issue #12: caching is slow."},
            {"role": "tool", "tool_call_id": "call-b", "content": "No documentation found."},
        ],
    }
    kind = "anthropic" if wire(client) == "vertex" else wire(client)
    assert seen.body["contents" if kind == "google" else "messages"] == expected[kind]


@pytest.mark.parametrize("arguments", ['{"reference": "#12"', '["#12"]'], ids=["cut-json", "not-an-object"])
@pytest.mark.parametrize("wire_name", ["anthropic", "vertex", "openai_compatible"])
async def test_malformed_arguments_fail_the_call(fake_llm: FakeLLM, wire_name: str, arguments: str) -> None:
    fake_llm.script(Reply(deltas=("Let me look.",), tool_calls=(ToolUse("issue_reader", arguments),)))
    client = build_client(wire_name, fake_llm.url)
    seen: list[object] = []
    try:
        with pytest.raises(ProviderError) as caught:
            async for event in client.stream(completion()):
                seen.append(event)
    finally:
        await client.close()  # type: ignore[attr-defined]
    assert seen == ["Let me look."]  # the text that came before; no call
    assert caught.value.status is None and not caught.value.retryable and "malformed" in caught.value.detail


async def test_gemini_calls_without_ids_get_one_and_their_thought_signature_goes_back(fake_llm: FakeLLM) -> None:
    fake_llm.script(Reply(deltas=(), tool_calls=(ToolUse("issue_reader", {"reference": "#1"}, signature="c2lnbmF0dXJl"),
                                                 ToolUse("issue_reader", {"reference": "#2"}))))
    client = build_client("google", fake_llm.url)
    try:
        first, second, *_ = await events(client, completion())
        assert isinstance(first, ToolCall) and isinstance(second, ToolCall)
        assert first.id != second.id and (first.arguments, second.arguments) == ({"reference": "#1"}, {"reference": "#2"})
        fake_llm.script(Reply())
        await events(client, completion(
            Message("user", "Issues 1 and 2?"), Message("assistant", "", tool_calls=(first, second)),
            Message("tool", "one", tool_call_id=first.id, name="issue_reader"),
            Message("tool", "two", tool_call_id=second.id),  # the name is found from the call
        ))
    finally:
        await client.close()
    contents = fake_llm.requests[-1].body["contents"]
    assert contents[1] == {"role": "model", "parts": [
        {"functionCall": {"name": "issue_reader", "args": {"reference": "#1"}}, "thoughtSignature": "c2lnbmF0dXJl"},
        {"functionCall": {"name": "issue_reader", "args": {"reference": "#2"}}},
    ]}  # made-up ids are not Gemini's: never sent
    assert contents[2]["parts"][1] == {"functionResponse": {"name": "issue_reader", "response": {"output": "two"}}}


def _declared(wire_name: str, body: dict) -> list[tuple[str, str, dict]]:
    """The tools a request declares, as (name, description, JSON schema)."""
    if wire_name in ("anthropic", "vertex"):
        return [(t["name"], t["description"], t["input_schema"]) for t in body["tools"]]
    if wire_name == "google":
        (tool,) = body["tools"]
        # google-genai sends this field in proto JSON's snake_case spelling, which the API accepts too
        return [(f["name"], f["description"], f.get("parametersJsonSchema", f.get("parameters_json_schema")))
                for f in tool["functionDeclarations"]]
    assert all(t["type"] == "function" for t in body["tools"])
    return [(t["function"]["name"], t["function"]["description"], t["function"]["parameters"]) for t in body["tools"]]


# ReAct: a model without native tool calling, here behind the fake OpenAI-compatible server.

@pytest.fixture
async def react(fake_llm: FakeLLM) -> AsyncIterator[ReactClient]:
    inner = OpenAICompatibleModel(httpx.AsyncClient(), base_url=f"{fake_llm.url}/v1", api_key=None)
    try:
        yield ReactClient(inner)
    finally:
        await inner.close()


async def test_react_an_action_becomes_a_tool_call_and_the_thought_is_not_streamed(react: ReactClient, fake_llm: FakeLLM) -> None:
    fake_llm.script(Reply(deltas=("Thought: I need", " the issue.\nAc", "tion: issue_reader\nAction In",
                                  'put: {"reference": ', '"#12"}\n'), usage=(50, 20)))
    assert await events(react, completion(turn=3)) == [ToolCall("react_3_0", "issue_reader", {"reference": "#12"}), Usage(50, 20)]
    (seen,) = fake_llm.requests
    assert "tools" not in seen.body and seen.body["stop"] == ["Observation:"]
    system = seen.body["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("You are terse.\n\nYou can use these tools:")
    assert "- issue_reader: Reads an issue." in system["content"] and '"required": ["reference"]' in system["content"]
    assert "Action: the tool to use, one of [issue_reader, documentation_search]" in system["content"]
    assert "Final Answer:" in system["content"]


async def test_react_the_final_answer_streams_without_the_thought(react: ReactClient, fake_llm: FakeLLM) -> None:
    fake_llm.script(Reply(deltas=("Thought: I know this.\nAction: DirectAnswer\nFinal Ans", "wer:", " The issue", " is about",
                                  " caching.\nAction: not a call")))
    got = [event for event in await events(react, completion()) if not isinstance(event, Usage)]
    assert got == ["The issue", " is about", " caching.\nAction: not a call"]


@pytest.mark.parametrize(
    ("deltas", "expected"),
    [
        pytest.param(("Issue #12", " is about caching."), ["Issue #12 is about caching."], id="plain-text"),
        pytest.param(("Thought: It is about caching.",), ["It is about caching."], id="thought-only"),
        pytest.param(("Thought: no tool needed\nAction: DirectAnswer\n",), ["no tool needed"],
                     id="direct-answer-without-final-answer"),
    ],
)
async def test_react_text_with_neither_is_the_answer(react: ReactClient, fake_llm: FakeLLM, deltas: tuple[str, ...],
                                                     expected: list[str]) -> None:
    fake_llm.script(Reply(deltas=deltas))
    assert [event for event in await events(react, completion()) if not isinstance(event, Usage)] == expected


@pytest.mark.parametrize(
    ("said", "call"),
    [
        pytest.param("Action: issue_reader\nAction Input: #12", ToolCall("react_0_0", "issue_reader", {"reference": "#12"}),
                     id="bare-value-for-a-one-property-tool"),
        pytest.param('Action: `documentation_search`\nAction Input: ```json\n{"query": "ci"}\n```\nObservation: made up',
                     ToolCall("react_0_0", "documentation_search", {"query": "ci"}), id="fenced-json"),
        pytest.param("Thought: read it\nAction: issue_reader\n", ToolCall("react_0_0", "issue_reader", {}), id="no-input"),
    ],
)
async def test_react_action_inputs_models_write(react: ReactClient, fake_llm: FakeLLM, said: str, call: ToolCall) -> None:
    fake_llm.script(Reply(deltas=(said,)))
    assert (await events(react, completion()))[0] == call


async def test_react_an_input_that_is_not_an_object_fails_the_call(react: ReactClient, fake_llm: FakeLLM) -> None:
    fake_llm.script(Reply(deltas=("Action: documentation_search\nAction Input: caching in CI",)))
    with pytest.raises(ProviderError, match="Action Input is not a JSON object") as caught:
        await events(react, completion())
    assert not caught.value.retryable


async def test_react_past_calls_and_results_are_text_turns(react: ReactClient, fake_llm: FakeLLM) -> None:
    call = ToolCall("react_0_0", "issue_reader", {"reference": "#12"})
    await events(react, completion(
        Message("user", "Earlier question"), Message("assistant", "Earlier answer"),
        Message("user", "What is issue #12 about?"), Message("assistant", "", tool_calls=(call,)),
        Message("tool", "Issue #12: caching is slow.", tool_call_id="react_0_0", name="issue_reader"),
    ))
    (seen,) = fake_llm.requests
    assert seen.body["messages"][1:] == [
        {"role": "user", "content": "Earlier question"},
        {"role": "assistant", "content": "Final Answer: Earlier answer"},
        {"role": "user", "content": "What is issue #12 about?"},
        {"role": "assistant", "content": 'Action: issue_reader\nAction Input: {"reference": "#12"}'},
        {"role": "user", "content": "Observation: Issue #12: caching is slow."},
    ]


async def test_react_without_tools_is_the_inner_call_unchanged(react: ReactClient, fake_llm: FakeLLM) -> None:
    got = await events(react, completion(tools=()))
    assert [event for event in got if isinstance(event, str)] == ["Hello", " from", " the", " fake."]
    (seen,) = fake_llm.requests
    assert seen.body["messages"][0] == {"role": "system", "content": "You are terse."} and "stop" not in seen.body


async def test_models_without_native_tool_calling_get_one_react_client_per_provider(fake_llm: FakeLLM) -> None:
    problems: list[str] = []
    models = load_models(Path(__file__).parents[2] / "catalogue" / "models.yml", problems)
    assert not problems and models["mistral"].tool_calling == "react" and models["llama3"].tool_calling == "native"
    inner = OpenAICompatibleModel(httpx.AsyncClient(), base_url=f"{fake_llm.url}/v1", api_key=None)
    providers = Providers({"openai_compatible": inner}, openai_base_url=f"{fake_llm.url}/v1")
    try:
        wrapped = providers.client_for(models["mistral"])
        assert isinstance(wrapped, ReactClient) and wrapped.inner is inner and wrapped.name == "openai_compatible"
        assert providers.client_for(models["mistral"]) is wrapped
        assert providers.client_for(models["llama3"]) is inner
    finally:
        await providers.close()
