"""Duo Chat end to end (SPEC §13) over real web and worker processes, Redis, the database and websockets:
the conversation's history in the prompt and `/reset`, tool progress and sources on the wire, a guest's
confidential issue, and a worker killed during an agent step."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid

import pytest

from access.admin.seed import _CONFIDENTIAL_ISSUE
from core.errors import TOOL_ITEM_UNAVAILABLE
from tests._client import GraphQLSocket, post
from tests._stack import LEASE_S, Stack
from tests.e2e.test_observability import set_expanded_logging

pytestmark = pytest.mark.timeout(90)

ACTION = "mutation($input: AiActionInput!) { aiAction(input: $input) { requestId errors threadId } }"
SUBSCRIPTION = """subscription($userId: UserID, $aiAction: AiAction, $clientSubscriptionId: String) {
  aiCompletionResponse(userId: $userId, aiAction: $aiAction, clientSubscriptionId: $clientSubscriptionId) {
    id requestId content role chunkId errors type threadId
    extras { sources toolCalls cancelled }
  }
}"""


async def ask(stack: Stack, user: str, input: dict) -> dict:
    result = await post(stack.url, stack.token(user), ACTION, {"input": input})
    assert "errors" not in result, result
    payload = result["data"]["aiAction"]
    assert payload["errors"] == [], payload
    return payload


async def conversation(stack: Stack, user: str) -> tuple[GraphQLSocket, str, str]:
    sub = f"sub-{uuid.uuid4()}"
    socket = await GraphQLSocket.connect(stack.ws_url, stack.token(user))
    op = await socket.subscribe({"userId": stack.gid(user), "aiAction": "CHAT", "clientSubscriptionId": sub},
                                query=SUBSCRIPTION)
    return socket, op, sub


def prompts_of(stack: Stack, request_id: str) -> list[list[dict]]:
    """The prompts the worker logged for a request (`performing_request`, under expanded AI logging)."""
    found = []
    for line in (stack.logs / "worker.log").read_text().splitlines():
        if line.startswith("{") and request_id in line:
            entry = json.loads(line)
            if entry["message"] == "performing_request":
                found.append(entry["prompt"])
    return found


async def turn(stack: Stack, socket: GraphQLSocket, op: str, sub: str, user: str, content: str, thread: str | None) -> tuple[dict, list[dict]]:
    payload = await ask(stack, user, {"chat": {"content": content}, "clientSubscriptionId": sub,
                                      **({"threadId": thread} if thread else {"conversationType": "DUO_CHAT"})})
    return payload, await socket.until_final(op)


async def test_history_reaches_the_prompt_and_reset_cuts_it(stack: Stack) -> None:
    socket, op, sub = await conversation(stack, "bob")
    await set_expanded_logging(stack, "bob", True)
    try:
        first, _ = await turn(stack, socket, op, sub, "bob", "alpha question", None)
        thread = first["threadId"]
        assert thread and thread.startswith("gid://gitlab/Ai::Conversation::Thread/")
        second, messages = await turn(stack, socket, op, sub, "bob", "beta question", thread)
        assert second["threadId"] == thread and messages[-1]["content"] == "echo: beta question"
        reset, messages = await turn(stack, socket, op, sub, "bob", "/reset", thread)
        assert messages[-1]["errors"] == [] and reset["threadId"] == thread
        third, _ = await turn(stack, socket, op, sub, "bob", "gamma question", thread)
    finally:
        await set_expanded_logging(stack, "bob", False)
    await socket.close()

    (second_prompt,) = prompts_of(stack, second["requestId"])
    said = [(m["role"], m["content"]) for m in second_prompt if m["role"] != "system"]
    assert said == [("user", "alpha question"), ("assistant", "echo: alpha question"), ("user", "beta question")]
    assert prompts_of(stack, reset["requestId"]) == []  # /reset calls no model
    (third_prompt,) = prompts_of(stack, third["requestId"])
    assert [m["content"] for m in third_prompt if m["role"] != "system"] == ["gamma question"]


async def test_tool_progress_and_sources_reach_the_subscriber(stack: Stack) -> None:
    socket, op, sub = await conversation(stack, "alice")
    script = '<response><tool_call name="issue_reader">{"reference": "gitlab-duo/test#1"}</tool_call></response>'
    payload, messages = await turn(stack, socket, op, sub, "alice", script, None)
    progress = [m for m in messages if m["type"] == "TOOL"]
    assert [(m["role"], m["extras"]["toolCalls"][0]["status"]) for m in progress] == [("SYSTEM", "STARTED"), ("SYSTEM", "FINISHED")]
    assert "gitlab-duo/test#1" in progress[0]["content"]
    final = messages[-1]
    assert final["requestId"] == payload["requestId"] and final["type"] is None
    assert [call["name"] for call in final["extras"]["toolCalls"]] == ["issue_reader"]
    assert any("/gitlab-duo/test/-/issues/1" in source["url"] for source in final["extras"]["sources"])
    await socket.close()


async def test_a_guest_with_an_enterprise_seat_gets_m3003_for_a_confidential_issue(stack: Stack) -> None:
    name = f"guest{uuid.uuid4().hex[:8]}"
    gid = stack.cli("users", "create", name).strip()
    stack.cli("members", "add", name, "--group", "gitlab-duo", "--access-level", "guest")
    stack.cli("seats", "assign", name, "duo_enterprise")
    stack.seed["users"][name] = {"gid": gid, "token": stack.cli("tokens", "create", name, "--scopes", "api,ai_features").strip()}
    socket, op, sub = await conversation(stack, name)
    script = '<response><tool_call name="issue_reader">{"reference": "gitlab-duo/test#2"}</tool_call></response>'
    _, messages = await turn(stack, socket, op, sub, name, script, None)
    final = messages[-1]
    assert TOOL_ITEM_UNAVAILABLE in final["content"]
    assert "sources" not in json.dumps(final["extras"]) or not final["extras"]["sources"]
    title, description = _CONFIDENTIAL_ISSUE
    assert title not in final["content"] and description[:40] not in final["content"]
    await socket.close()


async def test_a_worker_killed_during_an_agent_step_still_ends_the_request_once(stack: Stack) -> None:
    socket, op, sub = await conversation(stack, "alice")
    script = ('<response><tool_call name="documentation_search">{"query": "worker"}</tool_call></response>'
              '<response latency_ms="3000">never finished here</response>')
    os.kill(stack.worker.pid, signal.SIGSTOP)  # the default worker sleeps; the doomed one takes the job
    doomed = stack.start_worker("doomed-agent")
    try:
        await asyncio.sleep(2.0)  # let it start
        await ask(stack, "alice", {"chat": {"content": script}, "clientSubscriptionId": sub})
        while True:  # the tool step is done: the second model call is under way
            message = await socket.message(op, timeout=60)  # the doomed worker may still be starting
            if message["type"] == "TOOL" and message["extras"]["toolCalls"][0]["status"] == "FINISHED":
                break
    finally:
        doomed.send_signal(signal.SIGKILL)
        os.kill(stack.worker.pid, signal.SIGCONT)
    messages = await socket.until_final(op, timeout=LEASE_S + 30)
    assert messages[-1]["errors"] == [] and messages[-1]["content"]
    await asyncio.sleep(1.0)
    assert socket.pending(op) == 0  # exactly one final message
    await socket.close()


async def test_another_user_can_neither_read_write_delete_nor_rate_a_thread_and_new_starts_one(stack: Stack) -> None:
    socket, op, sub = await conversation(stack, "alice")
    payload, messages = await turn(stack, socket, op, sub, "alice", "private thoughts", None)
    thread, answer_id = payload["threadId"], messages[-1]["id"]
    # the answer is saved before its final goes out: a tab that reloads the thread at once finds it
    saved = await post(stack.url, stack.token("alice"), 'query($r: [String!]) { aiMessages(requestIds: $r) { nodes { id role } } }',
                       {"r": [payload["requestId"]]})
    assert answer_id in [m["id"] for m in saved["data"]["aiMessages"]["nodes"] if m["role"] == "ASSISTANT"]
    fresh, _ = await turn(stack, socket, op, sub, "alice", "/new", thread)
    assert fresh["threadId"] != thread
    await socket.close()

    read = await post(stack.url, stack.token("bob"), 'query($t: AiConversationThreadID) { aiMessages(threadId: $t) { nodes { content } } }', {"t": thread})
    assert read["errors"][0]["message"] == f"Thread {thread} is not found."
    write = await post(stack.url, stack.token("bob"), ACTION, {"input": {"chat": {"content": "hi"}, "threadId": thread}})
    assert write["data"]["aiAction"]["errors"] == ["Thread not found. It may have expired."]
    delete = await post(stack.url, stack.token("bob"), "mutation($t: AiConversationThreadID!) { deleteConversationThread(input: {threadId: $t}) { success errors } }", {"t": thread})
    assert delete["data"]["deleteConversationThread"] == {"success": False, "errors": ["User not authorized to delete thread"]}
    rate = await post(stack.url, stack.token("bob"), 'mutation($id: String!) { duoUserFeedback(input: {aiMessageId: $id, trackingEvent: {category: "c", action: "a", property: "negative"}}) { errors } }', {"id": answer_id})
    assert rate.get("errors") or rate["data"]["duoUserFeedback"]["errors"]

    own = await post(stack.url, stack.token("alice"), 'query($t: AiConversationThreadID) { aiMessages(threadId: $t) { nodes { role content extras { hasFeedback } } } }', {"t": thread})
    assert [(m["role"], m["content"]) for m in own["data"]["aiMessages"]["nodes"]] == [("USER", "private thoughts"), ("ASSISTANT", "echo: private thoughts")]
    assert own["data"]["aiMessages"]["nodes"][1]["extras"] in (None, {"hasFeedback": None}, {"hasFeedback": False})
    threads = await post(stack.url, stack.token("alice"), "{ aiConversationThreads { nodes { id title } } }", {})
    ids = [t["id"] for t in threads["data"]["aiConversationThreads"]["nodes"]]
    assert fresh["threadId"] in ids and thread in ids  # the old thread stays listed
