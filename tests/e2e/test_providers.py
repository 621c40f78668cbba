"""End to end with a real provider client: web and worker processes configured as a new user would
(`ANTHROPIC_API_KEY` and `ANTHROPIC_BASE_URL` pointing at a server that speaks Anthropic's Messages API, no
mock), a websocket subscriber, and the fake provider server of `tests._providers`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from redis import Redis as SyncRedis

from tests._client import GraphQLSocket, post
from tests._providers import FakeLLM, Reply
from tests._stack import Stack, provider_stack

pytestmark = pytest.mark.timeout(90)

ACTION = "mutation($input: AiActionInput!) { aiAction(input: $input) { requestId errors } }"


@pytest.fixture(scope="module")
def anthropic_stack(redis_server: str, fake_llm_server: FakeLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with provider_stack(redis_server, fake_llm_server.url, tmp_path_factory.mktemp("stack-anthropic"), redis_db=2) as stack:
        yield stack


async def ask(stack: Stack, input: dict) -> str:
    result = await post(stack.url, stack.token("alice"), ACTION, {"input": input})
    assert result["data"]["aiAction"]["errors"] == [], result
    return result["data"]["aiAction"]["requestId"]


async def test_chat_streams_the_providers_deltas_then_the_full_answer(anthropic_stack: Stack, fake_llm: FakeLLM) -> None:
    fake_llm.script(Reply(deltas=("Use", " `git", " rebase", " main`."), usage=(321, 9)))
    sub = f"sub-{uuid.uuid4()}"
    socket = await GraphQLSocket.connect(anthropic_stack.ws_url, anthropic_stack.token("alice"))
    op = await socket.subscribe({"userId": anthropic_stack.gid("alice"), "aiAction": "CHAT", "clientSubscriptionId": sub})
    request_id = await ask(anthropic_stack, {"chat": {"content": "secret-question: how do I rebase?"}, "clientSubscriptionId": sub})

    *chunks, final = await socket.until_final(op)
    await socket.close()
    assert [(m["chunkId"], m["content"]) for m in chunks] == [(1, "Use"), (2, " `git"), (3, " rebase"), (4, " main`.")]
    assert (final["content"], final["errors"], final["requestId"]) == ("Use `git rebase main`.", [], request_id)
    assert final["contentHtml"] == "<p>Use <code>git rebase main</code>.</p>\n"
    (seen,) = fake_llm.requests
    assert seen.path == "/v1/messages" and seen.headers["authorization"] == "Bearer sk-ant-e2e"
    assert seen.body["messages"][-1]["content"] == "secret-question: how do I rebase?"
    redis = SyncRedis.from_url(anthropic_stack.env["REDIS_URL"])
    for _ in range(50):  # the usage is written alongside the final message, not before it
        usage = redis.hgetall(f"switchboard:usage:{request_id}")
        if usage:
            break
        await asyncio.sleep(0.02)
    redis.close()
    assert usage[b"input_tokens"] == b"321" and usage[b"output_tokens"] == b"9" and usage[b"estimated"] == b"0"


async def test_a_merge_request_summary_reads_the_diff(anthropic_stack: Stack, fake_llm: FakeLLM) -> None:
    merge_request = anthropic_stack.seed["resources"]["merge_request"]
    fake_llm.script(Reply(deltas=("Declares", " redis.")))
    socket = await GraphQLSocket.connect(anthropic_stack.ws_url, anthropic_stack.token("alice"))
    op = await socket.subscribe({"userId": anthropic_stack.gid("alice"), "resourceId": merge_request, "clientSubscriptionId": "mr"})
    await ask(anthropic_stack, {"summarizeNewMergeRequest": {"resourceId": merge_request}, "clientSubscriptionId": "mr"})
    messages = await socket.until_final(op)
    await socket.close()
    assert [m["content"] for m in messages] == ["Declares", " redis.", "Declares redis."]
    assert "+    \"redis>=5.2\"," in fake_llm.requests[0].body["messages"][0]["content"]


async def test_two_rate_limits_then_success_still_answers(anthropic_stack: Stack, fake_llm: FakeLLM) -> None:
    fake_llm.script(Reply(status=429, headers={"retry-after": "0"}), Reply(status=429), Reply(deltas=("finally",)))
    sub = f"sub-{uuid.uuid4()}"
    socket = await GraphQLSocket.connect(anthropic_stack.ws_url, anthropic_stack.token("alice"))
    op = await socket.subscribe({"userId": anthropic_stack.gid("alice"), "aiAction": "CHAT", "clientSubscriptionId": sub})
    await ask(anthropic_stack, {"chat": {"content": "again?"}, "clientSubscriptionId": sub})
    final = (await socket.until_final(op))[-1]
    await socket.close()
    assert (final["content"], final["errors"]) == ("finally", [])
    assert len(fake_llm.requests) == 3


async def test_a_provider_that_keeps_failing_ends_each_request_once_and_opens_the_circuit(
    anthropic_stack: Stack, fake_llm: FakeLLM
) -> None:
    """Last in this module: it leaves the worker's circuit for the model open."""
    fake_llm.script(Reply(status=500))
    socket = await GraphQLSocket.connect(anthropic_stack.ws_url, anthropic_stack.token("alice"))
    calls = []
    for attempt in range(6):
        sub = f"fail-{attempt}-{uuid.uuid4()}"
        op = await socket.subscribe({"userId": anthropic_stack.gid("alice"), "aiAction": "CHAT", "clientSubscriptionId": sub}, settle_s=0.1)
        before = len(fake_llm.requests)
        await ask(anthropic_stack, {"chat": {"content": "are you up?"}, "clientSubscriptionId": sub})
        (final,) = await socket.until_final(op)  # no chunk: exactly one final message, with the error
        assert final["content"] is None
        assert final["errors"] == ["I'm sorry, I can't generate a response. Please try again. Error code: A9999"]
        calls.append(len(fake_llm.requests) - before)
        if calls[-1] == 0:
            break
    await socket.close()
    assert calls[0] == 4 and calls[-1] == 0, calls  # 1 + 3 retries at first; at the end the circuit fails fast
    worker_log = (anthropic_stack.logs / "worker.log").read_text()
    assert "circuit opened" in worker_log
    assert "are you up?" not in worker_log and "secret-question" not in worker_log
