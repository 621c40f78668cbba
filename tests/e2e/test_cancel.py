"""Stop (SPEC §13.5) over real processes: a web process, worker processes, Redis, websocket clients.

A cancel goes from the web process to whichever worker runs the job (the web process does not know which).
Times from the cancel to the final message are recorded for the report (the test's `user_properties`, and
printed: `pytest -rP`), never asserted.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from redis import Redis as SyncRedis

from core import keys
from core.errors import RESOURCE_NOT_AVAILABLE
from tests._client import GraphQLSocket, post
from tests._stack import Stack

pytestmark = pytest.mark.timeout(90)

ACTION = "mutation($input: AiActionInput!) { aiAction(input: $input) { requestId errors } }"
CANCEL = "mutation($input: AiActionCancelInput!) { aiActionCancel(input: $input) { errors } }"
SUBSCRIPTION = """
subscription($userId: UserID, $aiAction: AiAction, $clientSubscriptionId: String) {
  aiCompletionResponse(userId: $userId, aiAction: $aiAction, clientSubscriptionId: $clientSubscriptionId) {
    requestId content role chunkId errors extras { cancelled }
  }
}"""
WORDS = " ".join(f"w{i}" for i in range(1, 31))
SLOW = f'<response chunk_delay_ms="200">{WORDS}</response>'


async def ask(stack: Stack, content: str, sub: str, user: str = "alice") -> str:
    result = await post(stack.url, stack.token(user), ACTION, {"input": {"chat": {"content": content}, "clientSubscriptionId": sub}})
    assert result["data"]["aiAction"]["errors"] == [], result
    return result["data"]["aiAction"]["requestId"]


async def cancel(stack: Stack, request_id: str, user: str = "alice") -> list[str]:
    result = await post(stack.url, stack.token(user), CANCEL, {"input": {"requestId": request_id}})
    assert "errors" not in result, result
    return result["data"]["aiActionCancel"]["errors"]


def csid() -> str:
    return f"sub-{uuid.uuid4()}"


async def subscribe(socket: GraphQLSocket, stack: Stack, sub: str | None) -> str:
    variables: dict[str, Any] = {"userId": stack.gid("alice"), "aiAction": "CHAT"}
    if sub:
        variables["clientSubscriptionId"] = sub
    return await socket.subscribe(variables, SUBSCRIPTION)


async def until(socket: GraphQLSocket, op: str, request_id: str) -> list[dict]:
    """The messages of `op` up to the final message of `request_id` (which must be the first final)."""
    messages = []
    while True:
        message = await socket.message(op, timeout=30)
        messages.append(message)
        if message["chunkId"] is None and message["role"] != "USER":
            assert message["requestId"] == request_id, messages
            return messages


def log_lines(stack: Stack, event: str, request_id: str) -> list[tuple[str, dict]]:
    """(log file name, entry) of every `event` logged about `request_id` by any process of the stack."""
    found = []
    for path in stack.logs.glob("*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if request_id in line and event in line:
                entry = json.loads(line)
                if entry.get("message") == event and entry.get("request_id") == request_id:
                    found.append((path.name, entry))
    return found


def logged(stack: Stack, event: str, request_id: str, timeout_s: float = 15) -> list[tuple[str, dict]]:
    """Wait until some process logged `event` about the request (a worker logs right after publishing)."""
    deadline = time.monotonic() + timeout_s
    while not (found := log_lines(stack, event, request_id)):
        assert time.monotonic() < deadline, f"no {event} for {request_id}"
        time.sleep(0.05)
    return found


def wait_for_worker(stack: Stack, process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    """Until the worker's first heartbeat: it has started (its cancel listener included) and polls."""
    redis = SyncRedis.from_url(stack.env["REDIS_URL"])
    deadline = time.monotonic() + timeout_s
    try:
        while not any(json.loads(beat).get("pid") == process.pid for beat in redis.hvals(keys.WORKERS)):
            assert process.poll() is None and time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.1)
    finally:
        redis.close()


@contextmanager
def paused(*processes: subprocess.Popen[bytes]) -> Iterator[None]:
    for process in processes:
        os.kill(process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for process in processes:
            os.kill(process.pid, signal.SIGCONT)


async def stop_mid_stream(stack: Stack, request: pytest.FixtureRequest) -> tuple[str, list[dict], dict]:
    """Ask a slow chat question, cancel (twice) after two chunks; (request id, chunks, final)."""
    sub = csid()
    socket = await GraphQLSocket.connect(stack.ws_url, stack.token("alice"))
    own = await subscribe(socket, stack, sub)
    request_id = await ask(stack, SLOW, sub)
    first = [await socket.message(own, timeout=30) for _ in range(2)]
    assert [m["chunkId"] for m in first] == [1, 2]
    cancelled_at = time.monotonic()
    assert await asyncio.gather(cancel(stack, request_id), cancel(stack, request_id)) == [[], []]
    rest = await until(socket, own, request_id)
    elapsed = round(time.monotonic() - cancelled_at, 3)
    request.node.user_properties.append(("cancel_to_final_s", elapsed))
    print(f"cancel to final: {elapsed} s after {len(first + rest) - 1} chunks")
    messages = first + rest
    chunks, final = messages[:-1], messages[-1]
    # Nothing after the final: a second request on the same subscription comes next, and only it.
    follow_up = await ask(stack, "after the stop", sub)
    assert {m["requestId"] for m in await until(socket, own, follow_up)} == {follow_up}
    await socket.close()
    return request_id, chunks, final


async def test_a_running_chat_answer_stops_with_what_was_streamed(stack: Stack, request: pytest.FixtureRequest) -> None:
    tabs = await GraphQLSocket.connect(stack.ws_url, stack.token("alice"))
    broadcast = await subscribe(tabs, stack, None)  # another tab: the echo and the final only
    request_id, chunks, final = await stop_mid_stream(stack, request)

    assert [m["chunkId"] for m in chunks] == list(range(1, len(chunks) + 1)) and len(chunks) < 30
    assert all(m["requestId"] == request_id and m["role"] == "ASSISTANT" for m in chunks)
    assert (final["chunkId"], final["errors"], final["extras"]) == (None, [], {"cancelled": True})
    assert final["content"] == "".join(m["content"] for m in chunks)
    (_, line), = logged(stack, "request_cancelled", request_id)
    assert (line["stage"], line["chunks"], line["feature"]) == ("running", len(chunks), "chat")

    echo, answer = await tabs.message(broadcast), await tabs.message(broadcast)
    assert (echo["role"], echo["requestId"]) == ("USER", request_id)
    assert (answer["requestId"], answer["content"], answer["extras"]) == (request_id, final["content"], {"cancelled": True})
    next_echo = await tabs.message(broadcast)  # the follow-up question: no second final of the stopped one
    assert (next_echo["role"], next_echo["content"]) == ("USER", "after the stop")
    await tabs.close()
    assert await cancel(stack, request_id) == []  # after the final: nothing changes
    assert len(log_lines(stack, "request_cancelled", request_id)) == 1


@pytest.mark.sqlite_stack  # independent of the database backend
async def test_a_queued_request_is_cancelled_before_any_model_call(stack: Stack) -> None:
    """No worker runs while the request is queued (they are paused); the cancel comes first."""
    sub = csid()
    socket = await GraphQLSocket.connect(stack.ws_url, stack.token("alice"))
    own = await subscribe(socket, stack, sub)
    with paused(stack.worker, *[p for p in stack.extra if p.poll() is None]):
        request_id = await ask(stack, SLOW, sub)
        assert await cancel(stack, request_id) == []
    (final,) = await until(socket, own, request_id)
    assert (final["content"], final["errors"], final["extras"]) == ("", [], {"cancelled": True})
    (_, line), = logged(stack, "request_cancelled", request_id)
    assert (line["stage"], line["chunks"]) == ("queued", 0)
    assert log_lines(stack, "performing_request", request_id) == []  # the model was never called
    await socket.close()


@pytest.mark.sqlite_stack  # independent of the database backend
async def test_a_cancel_reaches_the_job_on_another_worker_process(stack: Stack, request: pytest.FixtureRequest) -> None:
    """Two workers: the job runs on the second (the first is paused), which the web process knows nothing of."""
    second = stack.start_worker("second-worker")
    try:
        wait_for_worker(stack, second)
        with paused(stack.worker):
            request_id, chunks, final = await stop_mid_stream(stack, request)
        assert final["extras"] == {"cancelled": True} and final["content"] == "".join(m["content"] for m in chunks)
        (where, line), = logged(stack, "request_cancelled", request_id)
        assert (where, line["stage"]) == ("second-worker.log", "running")
    finally:
        stack.stop(second)


@pytest.mark.sqlite_stack  # independent of the database backend
async def test_another_users_cancel_is_refused_and_the_answer_goes_on(stack: Stack) -> None:
    sub = csid()
    socket = await GraphQLSocket.connect(stack.ws_url, stack.token("alice"))
    own = await subscribe(socket, stack, sub)
    request_id = await ask(stack, '<response chunk_delay_ms="20">one two three four</response>', sub)
    assert await cancel(stack, request_id, user="bob") == [RESOURCE_NOT_AVAILABLE]
    assert await cancel(stack, str(uuid.uuid4())) == [RESOURCE_NOT_AVAILABLE]  # unknown
    messages = await until(socket, own, request_id)
    assert (messages[-1]["content"], messages[-1]["extras"]) == ("one two three four", None)
    assert log_lines(stack, "request_cancelled", request_id) == []
    await socket.close()
