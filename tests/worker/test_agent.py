"""The chat agent run by the real worker (burst mode) with the mock model's scripted tool calls (SPEC §8.3,
§13.3), against real Redis and a seeded database: each reader, authorization inside the tools (M3003,
M3005), progress messages, sources, the repeated-call guard, the step limit, and the slash commands."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from access.admin.seed import seed
from chat import conversations
from core import keys
from core.actions import ActionRecord
from core.db import create_engine, session_factory
from core.errors import (
    AGENT_STEP_LIMIT,
    NO_COMMENTS,
    NOT_A_VULNERABILITY_PAGE,
    TOOL_ITEM_UNAVAILABLE,
    TOOL_NOT_IN_SUBSCRIPTION,
)
from core.ids import new_request_id
from core.metrics import CHAT_QUESTION_CATEGORIES
from core.redis import connect, enqueue_action
from core.settings import Settings
from subscriptions.messages import AiMessage, route_id
from subscriptions.streams import replay
from tests._providers import FakeLLM, Reply, ToolUse
from tests._services import run_worker
from worker.conversation import record_category
from worker.llm import estimate_tokens
from worker.process import build_worker

ALICE, BOB = 2, 3


def call(tool: str, **arguments: object) -> str:
    return f'<response><tool_call name="{tool}">{json.dumps(arguments)}</tool_call></response>'


def chat(content: str, *, user: int = ALICE, resource: str | None = None, sub: str | None = "tab",
         project_id: str | None = None) -> ActionRecord:
    return ActionRecord(request_id=new_request_id(), feature="chat", user_id=user, resource=resource,
                        inputs={"content": content}, client_subscription_id=sub, project_id=project_id)


async def streamed(settings: Settings, record: ActionRecord) -> list[AiMessage]:
    route = route_id(f"gid://gitlab/User/{record.user_id}", ai_action="chat",
                     client_subscription_id=record.client_subscription_id)
    redis = connect(settings.redis_url or "")
    try:
        return [m for m in await replay(redis, route, (0, 0)) if m.request_id == record.request_id]
    finally:
        await redis.aclose()


async def ask(settings: Settings, record: ActionRecord) -> tuple[list[AiMessage], AiMessage]:
    await run_worker(settings, record)
    messages = await streamed(settings, record)
    finals = [m for m in messages if m.final]
    assert len(finals) == 1, messages
    return messages, finals[0]


@pytest.mark.parametrize(
    ("tool", "arguments", "resource", "expected"),
    [
        ("issue_reader", {"reference": "gitlab-duo/test#1"}, None, "issue"),
        ("issue_reader", {"reference": "current"}, "issue", "issue"),
        ("merge_request_reader", {"reference": "gitlab-duo/test!1"}, None, "merge_request"),
        ("epic_reader", {"reference": "gitlab-duo&1"}, None, "epic"),
        ("vulnerability_reader", {"reference": "current"}, "vulnerability", "vulnerability"),
    ],
)
async def test_each_reader_reads_the_item_for_the_model(
    settings: Settings, seeded: dict, tool: str, arguments: dict, resource: str | None, expected: str
) -> None:
    record = chat(call(tool, **arguments), resource=seeded["resources"][resource] if resource else None)
    messages, final = await ask(settings, record)

    progress = [m for m in messages if m.type == "tool"]
    assert [m.role for m in progress] == ["system", "system"]
    assert [m.extras["tool_calls"][0]["status"] for m in progress] == ["STARTED", "FINISHED"]  # type: ignore[index]
    assert all(m.chunk_id is None for m in progress)
    # With the tags used up, the mock echoes the last tool result: what the tool read reaches the model.
    assert final.content and final.content.startswith("echo: ") and final.errors == ()
    (entry,) = final.extras["tool_calls"]  # type: ignore[index]
    assert (entry["name"], entry["input"], entry["status"]) == (tool, arguments, "FINISHED")
    assert isinstance(entry["durationMs"], int)
    sources = final.extras["sources"]  # type: ignore[index]
    assert sources and all(set(source) >= {"title", "url", "type"} for source in sources)
    # The chunks of all steps concatenate to the final answer.
    chunks = [m for m in messages if m.chunk_id is not None]
    assert "".join(m.content or "" for m in chunks) == final.content
    assert [m.chunk_id for m in chunks] == list(range(1, len(chunks) + 1))


async def test_the_issue_reader_reads_the_title_and_notes(settings: Settings, seeded: dict) -> None:
    _, final = await ask(settings, chat(call("issue_reader", reference="gitlab-duo/test#1")))
    assert "gitlab-duo/test#1" in (final.content or "")


async def test_documentation_search_finds_a_passage_of_the_readme(settings: Settings, seeded: dict) -> None:
    # no clientSubscriptionId: the echo of five passages is thousands of chunks
    _, final = await ask(settings, chat(call("documentation_search", query="slash commands"), sub=None))
    assert final.errors == () and final.extras and final.extras["sources"]
    assert all(source["type"] == "documentation" for source in final.extras["sources"])  # type: ignore[attr-defined,index]


async def test_a_duo_pro_user_is_refused_the_issue_reader_with_m3005(settings: Settings, seeded: dict) -> None:
    _, final = await ask(settings, chat(call("issue_reader", reference="gitlab-duo/test#1"), user=BOB))
    assert TOOL_NOT_IN_SUBSCRIPTION in (final.content or "")
    assert final.extras["tool_calls"][0]["status"] == "FAILED"  # type: ignore[index]
    assert "sources" not in final.extras  # type: ignore[operator]


async def test_a_missing_item_is_m3003(settings: Settings, seeded: dict) -> None:
    _, final = await ask(settings, chat(call("issue_reader", reference="gitlab-duo/test#999")))
    assert TOOL_ITEM_UNAVAILABLE in (final.content or "")
    assert final.extras["tool_calls"][0]["status"] == "FAILED"  # type: ignore[index]


async def test_a_repeated_identical_call_is_answered_from_the_guard(settings: Settings, seeded: dict) -> None:
    twice = call("issue_reader", reference="gitlab-duo/test#1") * 2
    messages, final = await ask(settings, chat(twice))
    assert final.content == "echo: You already have the answer from issue_reader tool, read carefully."
    assert [entry["status"] for entry in final.extras["tool_calls"]] == ["FINISHED", "FINISHED"]  # type: ignore[index]


async def test_parallel_calls_run_in_one_step(settings: Settings, seeded: dict) -> None:
    both = ('<response><tool_call name="issue_reader">{"reference": "gitlab-duo/test#1"}</tool_call>'
            '<tool_call name="epic_reader">{"reference": "gitlab-duo&1"}</tool_call></response>')
    _, final = await ask(settings, chat(both))
    assert sorted(entry["name"] for entry in final.extras["tool_calls"]) == ["epic_reader", "issue_reader"]  # type: ignore[index]


async def test_the_agent_stops_after_ten_steps_with_a1006(settings: Settings, seeded: dict) -> None:
    steps = "".join(call("documentation_search", query=f"question {n}") for n in range(12))
    _, final = await ask(settings, chat(steps))
    assert final.errors == (AGENT_STEP_LIMIT,)
    assert len(final.extras["tool_calls"]) == 10  # type: ignore[index]


async def test_help_answers_without_the_model_and_lists_the_commands(settings: Settings, seeded: dict) -> None:
    _, final = await ask(settings, chat("/help"))
    assert final.content and "/reset" in final.content and "/explain" in final.content and "echo" not in final.content


async def test_explain_without_code_gets_gitlabs_text_and_no_model_call(settings: Settings, seeded: dict) -> None:
    _, final = await ask(settings, chat("/explain"))
    assert final.content and final.content.startswith("Your request does not seem to contain code to explain.")


async def test_explain_acts_on_the_code_after_the_command(settings: Settings, seeded: dict) -> None:
    _, final = await ask(settings, chat("/explain def f(): return 1"))
    assert final.content == "echo: /explain def f(): return 1"  # the mock echoes the user's own text


async def test_summarize_comments_needs_a_resource_with_comments(settings: Settings, seeded: dict) -> None:
    _, final = await ask(settings, chat("/summarize_comments"))
    assert final.content == NO_COMMENTS
    _, final = await ask(settings, chat("/summarize_comments", resource=seeded["resources"]["issue"]))
    assert final.content and final.content.startswith("echo: ")


async def test_vulnerability_explain_only_on_a_vulnerability(settings: Settings, seeded: dict) -> None:
    _, final = await ask(settings, chat("/vulnerability_explain", resource=seeded["resources"]["issue"]))
    assert final.content == NOT_A_VULNERABILITY_PAGE


async def test_an_unknown_command_is_an_ordinary_question(settings: Settings, seeded: dict) -> None:
    _, final = await ask(settings, chat("/weather in Paris"))
    assert final.content == "echo: /weather in Paris"


# -- through a real provider SDK, the conversation's history, the categorization ---------------------------


@pytest.fixture
def provider_settings(settings: Settings, fake_llm: FakeLLM) -> Settings:
    """Mock mode off, Anthropic at the fake server."""
    return settings.model_copy(update={"mock_model_responses": None, "anthropic_api_key": SecretStr("sk-ant-test"),
                                       "anthropic_base_url": fake_llm.url, "retry_base_delay_s": 0.01})


async def test_a_native_tool_call_goes_through_anthropics_wire_format(
    provider_settings: Settings, seeded: dict, fake_llm: FakeLLM
) -> None:
    fake_llm.script(
        Reply(deltas=("Let me read it.",), tool_calls=(ToolUse("issue_reader", {"reference": "gitlab-duo/test#1"}),)),
        Reply(deltas=("It", " is", " about", " CI.")),
    )
    messages, final = await ask(provider_settings, chat("What is issue #1 about?", project_id=seeded["projects"]["gitlab-duo/test"]))
    assert final.content == "Let me read it.It is about CI." and final.errors == ()
    assert "".join(m.content or "" for m in messages if m.chunk_id is not None) == final.content
    first, second = fake_llm.requests
    assert {tool["name"] for tool in first.body["tools"]} >= {"issue_reader", "documentation_search"}
    (use,) = [block for block in second.body["messages"][-2]["content"] if block["type"] == "tool_use"]
    (result,) = second.body["messages"][-1]["content"]
    assert result["type"] == "tool_result" and result["tool_use_id"] == use["id"]
    assert "gitlab-duo/test#1" in str(result["content"])
    assert final.extras["sources"][0]["url"] == "/gitlab-duo/test/-/issues/1"  # type: ignore[index]


async def test_a_two_hundred_message_thread_still_answers_within_the_context_window(
    provider_settings: Settings, seeded: dict, fake_llm: FakeLLM, settings: Settings
) -> None:
    """200 messages of ~20,000 characters (about a million tokens in all) against a 200,000-token model:
    the oldest turns are left out, the newest kept, and the call fits."""
    engine = create_engine(settings.database)
    try:
        sessions = session_factory(engine)
        async with sessions() as session, session.begin():
            thread = await conversations.resolve_thread(session, ALICE, thread_id=None, conversation_type="duo_chat",
                                                        content="first")
            asked = [AiMessage(new_request_id(), "user", content=f"question {n} " + "q" * 19_000) for n in range(100)]
            for question in asked:
                await conversations.save_user_message(session, ALICE, thread, question)
        for n, question in enumerate(asked):
            answer = AiMessage(question.request_id, "assistant", content=f"answer {n} " + "a" * 19_000)
            assert await conversations.save_answer(engine, ALICE, thread, answer, "claude_sonnet_4_6")
    finally:
        await engine.dispose()
    record = chat("and now?").model_copy(update={"thread_id": conversations.thread_gid(thread)})
    _, final = await ask(provider_settings, record)
    assert final.content == "Hello from the fake." and final.errors == ()
    (seen,) = fake_llm.requests
    said = [m["content"] if isinstance(m["content"], str) else str(m["content"]) for m in seen.body["messages"]]
    assert said[-1].strip().endswith("and now?") and said[-2].startswith("answer 99 ")
    assert not any(text.startswith("question 0 ") for text in said)
    assert sum(estimate_tokens(text) for text in said) + estimate_tokens(str(seen.body.get("system", ""))) < 200_000


async def test_the_categorization_is_enqueued_after_the_answer_on_saas(settings: Settings, database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session, session.begin():
            await seed(session, mode="saas")
    finally:
        await engine.dispose()
    saas = settings.model_copy(update={"mode": "saas"})
    redis = connect(saas.redis_url or "")
    try:
        record = chat("How do I write a CI job?")
        await enqueue_action(redis, record)
        worker = build_worker(saas, burst=True, handle_signals=False, poll_delay=0.01, max_burst_jobs=1)
        try:
            await worker.main()
        finally:
            await worker.close()
        queued = [ActionRecord.model_validate_json(job.args[0]) for job in await redis.queued_jobs(queue_name=keys.QUEUE)]
    finally:
        await redis.aclose()
    assert [(job.feature, job.inputs) for job in queued] == [("categorize_question", {"question": "How do I write a CI job?"})]


def test_a_categorization_is_counted_by_its_category() -> None:
    before = CHAT_QUESTION_CATEGORIES.labels("Debugging")._value.get()
    record_category('{"category": "Debugging", "detailed_category": "CI"}')
    record_category("not json")
    assert CHAT_QUESTION_CATEGORIES.labels("Debugging")._value.get() == before + 1
