"""End to end over real processes: a web process, a worker process, Redis, a websocket client."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis as SyncRedis

from core import keys
from subscriptions.messages import AiMessage, route_id
from tests._client import GraphQLSocket, post
from tests._stack import LEASE_S, Stack

pytestmark = pytest.mark.timeout(60)

ACTION = "mutation($input: AiActionInput!) { aiAction(input: $input) { requestId errors clientMutationId } }"


async def ask(stack: Stack, user: str, input: dict) -> str:
    result = await post(stack.url, stack.token(user), ACTION, {"input": input})
    assert "errors" not in result, result
    payload = result["data"]["aiAction"]
    assert payload["errors"] == []
    uuid.UUID(payload["requestId"], version=4)
    return payload["requestId"]


def csid() -> str:
    return f"sub-{uuid.uuid4()}"


async def test_chat_streams_chunks_in_order_then_the_final_answer(stack: Stack) -> None:
    sub = csid()
    socket = await GraphQLSocket.connect(stack.ws_url, stack.token("alice"))
    op = await socket.subscribe({"userId": stack.gid("alice"), "aiAction": "CHAT", "clientSubscriptionId": sub})
    request_id = await ask(stack, "alice", {"chat": {"content": "how do I rebase a *branch*?"}, "clientSubscriptionId": sub})

    messages = await socket.until_final(op)
    chunks, final = messages[:-1], messages[-1]
    assert [m["chunkId"] for m in chunks] == list(range(1, len(chunks) + 1))
    assert [m["content"] for m in chunks] == ["echo:", " how", " do", " I", " rebase", " a", " *branch*?"]
    assert all(m["requestId"] == request_id and m["role"] == "ASSISTANT" and m["contentHtml"] is None for m in chunks)
    assert final["content"] == "".join(m["content"] for m in chunks) == "echo: how do I rebase a *branch*?"
    assert final["contentHtml"] == "<p>echo: how do I rebase a <em>branch</em>?</p>\n"
    assert final["requestId"] == request_id and final["errors"] == []
    await socket.close()


async def test_routing_is_exact_and_scoped_to_the_user(stack: Stack) -> None:
    sub = csid()
    alice = await GraphQLSocket.connect(stack.ws_url, stack.token("alice"))
    bob = await GraphQLSocket.connect(stack.ws_url, stack.token("bob"))
    own = await alice.subscribe({"userId": stack.gid("alice"), "aiAction": "CHAT", "clientSubscriptionId": sub}, settle_s=0)
    tabs = await alice.subscribe({"userId": stack.gid("alice"), "aiAction": "CHAT"}, settle_s=0)
    other_sub = await alice.subscribe({"userId": stack.gid("alice"), "aiAction": "CHAT", "clientSubscriptionId": csid()}, settle_s=0)
    bobs = await bob.subscribe({"userId": stack.gid("bob"), "aiAction": "CHAT", "clientSubscriptionId": sub}, settle_s=0)
    bobs_tabs = await bob.subscribe({"userId": stack.gid("bob"), "aiAction": "CHAT"})

    request_id = await ask(stack, "alice", {"chat": {"content": "one two three"}, "clientSubscriptionId": sub})
    streamed = await alice.until_final(own)
    assert len(streamed) == 5 and streamed[-1]["content"] == "echo: one two three"

    # Other tabs (no clientSubscriptionId): the user's own message, then the final answer, never chunks.
    echo, broadcast = await alice.message(tabs), await alice.message(tabs)
    assert (echo["role"], echo["content"], echo["requestId"]) == ("USER", "one two three", request_id)
    assert (broadcast["role"], broadcast["chunkId"], broadcast["content"]) == ("ASSISTANT", None, "echo: one two three")
    await asyncio.sleep(0.3)
    assert alice.pending(tabs) == 0
    assert alice.pending(other_sub) == 0  # another clientSubscriptionId
    assert bob.pending(bobs) == 0 and bob.pending(bobs_tabs) == 0  # same clientSubscriptionId, other user
    await alice.close()
    await bob.close()


@pytest.mark.parametrize(
    "variables",
    [
        pytest.param({"userId": "ALICE", "aiAction": "CHAT"}, id="someone-else"),
        pytest.param({"aiAction": "CHAT"}, id="no-user"),
        pytest.param({"userId": "SELF", "resourceId": "gid://gitlab/Issue/2"}, id="unreadable-confidential-issue"),
        pytest.param({"userId": "SELF", "resourceId": "gid://gitlab/Issue/999"}, id="missing-resource"),
        pytest.param({"userId": "SELF", "resourceId": "not-a-gid"}, id="malformed-resource"),
        pytest.param({"userId": "SELF", "aiAction": "CHAT", "after": "nope"}, id="malformed-cursor"),
    ],
)
async def test_a_refused_subscription_gets_an_error_and_nothing_else(stack: Stack, variables: dict) -> None:
    variables = {k: stack.gid("alice") if v == "ALICE" else stack.gid("mallory") if v == "SELF" else v for k, v in variables.items()}
    socket = await GraphQLSocket.connect(stack.ws_url, stack.token("mallory"))
    op = await socket.subscribe(variables, settle_s=0)
    frame = await socket.next(op)
    assert frame["type"] in ("error", "next"), frame
    errors = frame["payload"] if frame["type"] == "error" else frame["payload"]["errors"]
    assert errors and "Traceback" not in str(errors)
    await socket.close()


async def test_resource_route_receives_the_final_of_a_resource_action(stack: Stack) -> None:
    issue = stack.seed["resources"]["issue"]
    socket = await GraphQLSocket.connect(stack.ws_url, stack.token("alice"))
    op = await socket.subscribe({"userId": stack.gid("alice"), "resourceId": issue})
    request_id = await ask(stack, "alice", {"summarizeComments": {"resourceId": issue}})
    final = await socket.message(op)
    assert (final["requestId"], final["chunkId"], final["content"]) == (request_id, None, "echo: Summarize comments")
    await socket.close()


async def test_the_legacy_graphql_ws_protocol_and_a_header_token_work(stack: Stack) -> None:
    sub = csid()
    socket = await GraphQLSocket.connect(stack.ws_url, None, protocol="graphql-ws", header_token=stack.token("alice"))
    op = await socket.subscribe({"userId": stack.gid("alice"), "aiAction": "CHAT", "clientSubscriptionId": sub})
    await ask(stack, "alice", {"chat": {"content": "legacy"}, "clientSubscriptionId": sub})
    messages = await socket.until_final(op)
    assert messages[-1]["content"] == "echo: legacy"
    await socket.close()


# The chat page's selection. Both protocols send its events without executing them
# (subscriptions.execution.EVENT_SINK); with an inline fragment it is executed event by event.
CHAT_PAGE_FIELDS = """__typename id requestId content contentHtml role errors timestamp chunkId type threadId cursor
    extras { sources hasFeedback toolCalls cancelled }"""
CHAT_PAGE_SUBSCRIPTION = """subscription($userId: UserID, $clientSubscriptionId: String, $aiAction: AiAction) {
  aiCompletionResponse(userId: $userId, aiAction: $aiAction, clientSubscriptionId: $clientSubscriptionId) { %s } }"""


def delivered_events(stack: Stack) -> dict[str, float]:
    """The web process's `switchboard_subscription_events_total` by delivery (`sent`, `executed`)."""
    found = {"sent": 0.0, "executed": 0.0}
    for family in text_string_to_metric_families(httpx.get(f"{stack.url}/metrics", timeout=5).text):
        for sample in family.samples:
            if sample.name == "switchboard_subscription_events_total":
                found[sample.labels["delivery"]] = sample.value
    return found


async def test_sent_and_executed_events_of_a_chat_turn_with_a_tool_are_the_same(stack: Stack) -> None:
    sub = csid()
    variables = {"userId": stack.gid("alice"), "aiAction": "CHAT", "clientSubscriptionId": sub}
    current = await GraphQLSocket.connect(stack.ws_url, stack.token("alice"))
    legacy = await GraphQLSocket.connect(stack.ws_url, stack.token("alice"), protocol="graphql-ws")
    plain = CHAT_PAGE_SUBSCRIPTION % CHAT_PAGE_FIELDS
    fragment = CHAT_PAGE_SUBSCRIPTION % f"... on AiMessage {{ {CHAT_PAGE_FIELDS} }}"
    subscribed = [(current, await current.subscribe(variables, plain, settle_s=0)),
                  (legacy, await legacy.subscribe(variables, plain, settle_s=0)),
                  (current, await current.subscribe(variables, fragment))]
    before = delivered_events(stack)
    content = '<response><tool_call name="issue_reader">{"reference": "gitlab-duo/test#1"}</tool_call></response>'
    await ask(stack, "alice", {"chat": {"content": content}, "clientSubscriptionId": sub})
    delivered = [await socket.until_final(op) for socket, op in subscribed]
    assert delivered[0] == delivered[1] == delivered[2]
    assert any(m["type"] == "TOOL" and m["extras"]["toolCalls"] for m in delivered[0])  # a nested selection, filled
    assert {m["__typename"] for m in delivered[0]} == {"AiMessage"}
    after = delivered_events(stack)
    n = len(delivered[0])
    assert (after["sent"] - before["sent"], after["executed"] - before["executed"]) == (2 * n, n)
    for socket in (current, legacy):
        await socket.close()


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
@pytest.mark.parametrize("token", [None, "glpat-wrong"], ids=["missing", "invalid"])
async def test_a_websocket_without_a_valid_token_is_closed_with_4403(stack: Stack, protocol: str, token: str | None) -> None:
    import websockets

    with pytest.raises((ConnectionError, websockets.ConnectionClosed)) as caught:
        await GraphQLSocket.connect(stack.ws_url, token, protocol=protocol)
    assert isinstance(caught.value, websockets.ConnectionClosed) and caught.value.rcvd is not None
    assert caught.value.rcvd.code == 4403


async def test_a_dropped_websocket_resumes_with_after_without_gap_or_duplicate(stack: Stack) -> None:
    sub = csid()
    words = " ".join(f"w{i}" for i in range(1, 13))
    variables = {"userId": stack.gid("alice"), "aiAction": "CHAT", "clientSubscriptionId": sub}
    first = await GraphQLSocket.connect(stack.ws_url, stack.token("alice"))
    op = await first.subscribe(variables)
    await ask(stack, "alice", {"chat": {"content": f'<response chunk_delay_ms="80">{words}</response>'}, "clientSubscriptionId": sub})
    seen = [await first.message(op) for _ in range(3)]
    await first.close()  # the connection drops; chunks go on being published
    await asyncio.sleep(0.4)

    second = await GraphQLSocket.connect(stack.ws_url, stack.token("alice"))
    op = await second.subscribe({**variables, "after": seen[-1]["cursor"]}, settle_s=0)
    rest = await second.until_final(op)
    chunks = [m for m in seen + rest if m["chunkId"] is not None]
    assert [m["chunkId"] for m in chunks] == list(range(1, 13))
    assert rest[-1]["content"] == "".join(m["content"] for m in chunks) == words
    cursors = [m["cursor"] for m in seen + rest]
    assert len(set(cursors)) == len(cursors)
    await second.close()


async def test_a_worker_killed_mid_stream_is_replaced_and_the_request_still_ends_once(stack: Stack) -> None:
    sub = csid()
    words = " ".join(f"w{i}" for i in range(1, 21))
    socket = await GraphQLSocket.connect(stack.ws_url, stack.token("alice"))
    op = await socket.subscribe({"userId": stack.gid("alice"), "aiAction": "CHAT", "clientSubscriptionId": sub})
    os.kill(stack.worker.pid, signal.SIGSTOP)  # the default worker sleeps; the doomed one takes the job
    doomed = stack.start_worker("doomed")
    try:
        await asyncio.sleep(2.0)  # let it start
        await ask(stack, "alice", {"chat": {"content": f'<response chunk_delay_ms="100">{words}</response>'}, "clientSubscriptionId": sub})
        before = [await socket.message(op) for _ in range(3)]
        doomed.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
    finally:
        os.kill(stack.worker.pid, signal.SIGCONT)
    after = await socket.until_final(op, timeout=LEASE_S + 15)
    recovered_in = time.monotonic() - killed_at
    assert [m["chunkId"] for m in before] == [1, 2, 3]
    restarted = [m["chunkId"] for m in after[:-1]]
    assert restarted[-20:] == list(range(1, 21))  # the retry restarts its stream at 1
    assert after[-1]["content"] == words and after[-1]["errors"] == []
    assert recovered_in < 30
    await asyncio.sleep(1.0)
    assert socket.pending(op) == 0  # exactly one final message
    await socket.close()


async def test_malformed_entries_on_the_shared_stream_do_not_silence_subscribers(stack: Stack) -> None:
    """Entries the hub cannot read (a newer worker's during a rolling deploy, or garbage) are skipped and
    counted; the web process's other subscribers go on receiving, and it stays ready."""
    sub, other = csid(), csid()
    socket = await GraphQLSocket.connect(stack.ws_url, stack.token("alice"))
    op = await socket.subscribe({"userId": stack.gid("alice"), "aiAction": "CHAT", "clientSubscriptionId": sub}, settle_s=0)
    watcher = await socket.subscribe({"userId": stack.gid("alice"), "aiAction": "CHAT", "clientSubscriptionId": other})
    routes = ",".join(route_id(stack.gid("alice"), ai_action="chat", client_subscription_id=s) for s in (sub, other))
    redis = SyncRedis.from_url(stack.env["REDIS_URL"])
    try:
        for bad in ({"r": routes, "m": b"{not json"}, {"r": routes, "m": b'{"role": "assistant"}'}, {"r": routes}):
            redis.xadd(keys.FIREHOSE, bad)
        newer = {**AiMessage("from-a-newer-worker", "assistant", content="hello").to_wire(), "new_field": 1}
        redis.xadd(keys.FIREHOSE, {"r": routes, "m": orjson.dumps(newer)})
    finally:
        redis.close()
    assert (await socket.message(watcher))["requestId"] == "from-a-newer-worker"  # unknown fields are ignored
    assert (await socket.message(op))["content"] == "hello"

    await ask(stack, "alice", {"chat": {"content": "still there"}, "clientSubscriptionId": sub})
    assert (await socket.until_final(op))[-1]["content"] == "echo: still there"
    async with httpx.AsyncClient(base_url=stack.url, timeout=5) as http:
        assert (await http.get("/-/readiness")).json()["checks"]["hub"] == "ok"
        metrics = (await http.get("/metrics")).text
    skipped = [line for line in metrics.splitlines() if line.startswith("switchboard_hub_bad_entries_total ")]
    assert skipped and float(skipped[0].split()[1]) >= 3
    await socket.close()


async def test_websockets_are_not_compressed_by_default(stack: Stack) -> None:
    import websockets

    async with websockets.connect(stack.ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # offers deflate
        assert ws.response is not None and "Sec-WebSocket-Extensions" not in ws.response.headers
