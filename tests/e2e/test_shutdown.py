"""Graceful shutdown over real processes (issue 6): SIGTERM on a worker under load loses no request and
answers none twice; SIGTERM on a web process closes its websockets with 1012 (service restart) and the
subscriber resumes elsewhere with `after`, without a gap."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import uuid

import pytest
from redis import Redis as SyncRedis

from core import keys
from tests._client import GraphQLSocket, post
from tests._redis import free_port
from tests._stack import Stack, _spawn, _stop, _wait_ready

# Operations do not depend on the database backend: the SQLite stack only, to keep the suite fast.
pytestmark = [pytest.mark.timeout(60), pytest.mark.sqlite_stack]

ACTION = "mutation($input: AiActionInput!) { aiAction(input: $input) { requestId errors } }"


def slow(words: int, delay_ms: int) -> tuple[str, str]:
    text = " ".join(f"w{i}" for i in range(1, words + 1))
    return f'<response chunk_delay_ms="{delay_ms}">{text}</response>', text


async def ask(stack: Stack, content: str, sub: str) -> str:
    result = await post(stack.url, stack.token("alice"), ACTION, {"input": {"chat": {"content": content}, "clientSubscriptionId": sub}})
    assert result["data"]["aiAction"]["errors"] == [], result
    return result["data"]["aiAction"]["requestId"]


def wait_for_worker(stack: Stack, process: subprocess.Popen[bytes], timeout_s: float = 15) -> None:
    """Until the worker's monitor wrote its first heartbeat (it polls the queue from then on)."""
    redis = SyncRedis.from_url(stack.env["REDIS_URL"])
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            beats = [json.loads(value) for value in redis.hvals(keys.WORKERS)]
            if any(beat.get("pid") == process.pid for beat in beats):
                return
            assert process.poll() is None, "the worker exited"
            time.sleep(0.1)
    finally:
        redis.close()
    raise AssertionError("the worker did not start")


async def test_a_worker_stopped_with_sigterm_under_load_finishes_or_hands_back_every_job(stack: Stack) -> None:
    os.kill(stack.worker.pid, signal.SIGSTOP)  # the stopping worker alone takes the load
    try:
        stopping = stack.start_worker("stopping", SWITCHBOARD_SHUTDOWN_GRACE_S="0.5")
        wait_for_worker(stack, stopping)
        socket = await GraphQLSocket.connect(stack.ws_url, stack.token("alice"))
        requests = []  # (operation, expected answer, request id)
        for index in range(24):
            content, text = slow(4, 50) if index % 2 else slow(8, 200)  # ~0.2 s or ~1.6 s: longer than the grace
            sub = f"sub-{uuid.uuid4()}"
            op = await socket.subscribe({"userId": stack.gid("alice"), "aiAction": "CHAT", "clientSubscriptionId": sub}, settle_s=0)
            requests.append((op, text, sub, content))
        await asyncio.sleep(0.3)
        ids = await asyncio.gather(*(ask(stack, content, sub) for _op, _text, sub, content in requests))
        await asyncio.sleep(0.5)
        stopping.send_signal(signal.SIGTERM)
    finally:
        os.kill(stack.worker.pid, signal.SIGCONT)
    assert await asyncio.to_thread(stopping.wait, 15) == 0  # the grace, not the answers, decides when it exits

    for (op, text, _sub, _content), request_id in zip(requests, ids, strict=True):
        messages = await socket.until_final(op, timeout=20)
        final = messages[-1]
        assert (final["requestId"], final["content"], final["errors"]) == (request_id, text, [])
    await asyncio.sleep(1.0)
    assert all(socket.pending(op) == 0 for op, *_ in requests)  # exactly one final each
    await socket.close()
    log = (stack.logs / "stopping.log").read_text()
    assert "handing back" in log  # the long answers outlived the grace and were restarted elsewhere


async def test_a_web_process_stopped_with_sigterm_closes_websockets_with_1012_and_clients_resume(stack: Stack) -> None:
    port = free_port()
    web = _spawn(["web", "--port", str(port)], stack.env, stack.logs / "web-stopping.log")
    try:
        _wait_ready(f"http://127.0.0.1:{port}", [web], stack.logs)
        sub = f"sub-{uuid.uuid4()}"
        variables = {"userId": stack.gid("alice"), "aiAction": "CHAT", "clientSubscriptionId": sub}
        socket = await GraphQLSocket.connect(f"ws://127.0.0.1:{port}/api/graphql", stack.token("alice"))
        op = await socket.subscribe(variables)
        content, text = slow(16, 100)
        await ask(stack, content, sub)
        seen = [await socket.message(op) for _ in range(3)]
        web.send_signal(signal.SIGTERM)
        await asyncio.wait_for(socket.ws.wait_closed(), 10)
        assert socket.ws.close_code == 1012  # service restart: clients reconnect
        await asyncio.wait([socket._reader], timeout=5)
        assert socket._reader.done() and socket._reader.exception() is not None  # the reader saw the close
        # uvicorn re-raises the signal once it has shut down cleanly
        assert await asyncio.to_thread(web.wait, 15) in (0, -signal.SIGTERM)
        assert "Finished server process" in (stack.logs / "web-stopping.log").read_text()
    finally:
        _stop(web)

    resumed = await GraphQLSocket.connect(stack.ws_url, stack.token("alice"))
    op = await resumed.subscribe({**variables, "after": seen[-1]["cursor"]}, settle_s=0)
    rest = await resumed.until_final(op)
    chunks = [m for m in seen + rest if m["chunkId"] is not None]
    assert [m["chunkId"] for m in chunks] == list(range(1, 17))
    assert rest[-1]["content"] == text
    await resumed.close()
