"""A Redis restart under real processes (issue 6): a private redis-server is stopped and started again on
the same port; the web process and the worker keep running and serve requests again by themselves. Both
with a plain `redis://` URL and through Redis Sentinel (`redis+sentinel://`, a real sentinel process)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis import Redis as SyncRedis

from core.redis import redis_server_binary
from tests._client import GraphQLSocket, post
from tests._redis import free_port
from tests._stack import LEASE_S, _cli, _spawn, _stop, _wait_ready

pytestmark = pytest.mark.timeout(90)

ACTION = "mutation($input: AiActionInput!) { aiAction(input: $input) { requestId errors } }"


class PrivateRedis:
    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "3600 1",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
        )
        client = SyncRedis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # saves its data on the way out
            self.process.wait(10)

    def crash(self) -> None:
        """Die without saving: what was written since the last save (here: since the start) is lost."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def start_sentinel(directory: Path, master_port: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    config = directory / "sentinel.conf"
    config.write_text(f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
                      f"sentinel monitor switchboard 127.0.0.1 {master_port} 1\n"
                      "sentinel down-after-milliseconds switchboard 60000\n")
    process = subprocess.Popen([redis_server_binary(), str(config), "--sentinel"], stdout=subprocess.DEVNULL)
    client = SyncRedis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            if client.execute_command("SENTINEL", "get-master-addr-by-name", "switchboard"):
                break
        except Exception:
            pass
        assert time.monotonic() < deadline and process.poll() is None, "sentinel did not start"
        time.sleep(0.05)
    client.close()
    return process, f"redis+sentinel://127.0.0.1:{port}/switchboard/0"


@pytest.fixture(params=["redis", "sentinel"])
def small_stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict]:
    redis = PrivateRedis(tmp_path)
    redis.start()
    sentinel, url = start_sentinel(tmp_path, redis.port) if request.param == "sentinel" else (None, redis.url)
    port = free_port()
    env = {**os.environ, "REDIS_URL": url, "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'switchboard.db'}",
           "SWITCHBOARD_DATA_DIR": str(tmp_path), "SWITCHBOARD_MOCK_MODEL_RESPONSES": "true",
           "SWITCHBOARD_JOB_LEASE_S": str(LEASE_S), "SWITCHBOARD_AI_ACTION_RATE_LIMIT": "0", "PYTHONUNBUFFERED": "1",
           "SWITCHBOARD_WORKER_METRICS_PORT": "0"}
    seed = json.loads(_cli(["seed", "--json"], env))
    web = _spawn(["web", "--port", str(port)], env, tmp_path / "web.log")
    worker = _spawn(["worker"], env, tmp_path / "worker.log")
    try:
        _wait_ready(f"http://127.0.0.1:{port}", [web, worker], tmp_path)
        yield {"redis": redis, "url": f"http://127.0.0.1:{port}", "seed": seed, "web": web, "worker": worker}
    finally:
        _stop(worker)
        _stop(web)
        if sentinel is not None:
            _stop(sentinel)
        redis.stop()


async def answered(stack: dict, content: str) -> str:
    """One chat request through a fresh websocket subscription; the final answer's content."""
    user = stack["seed"]["users"]["alice"]
    sub = f"sub-{uuid.uuid4()}"
    socket = await GraphQLSocket.connect(stack["url"].replace("http", "ws") + "/api/graphql", user["token"])
    try:
        op = await socket.subscribe({"userId": user["gid"], "aiAction": "CHAT", "clientSubscriptionId": sub})
        result = await post(stack["url"], user["token"], ACTION, {"input": {"chat": {"content": content}, "clientSubscriptionId": sub}})
        assert result.get("data") and result["data"]["aiAction"]["errors"] == [], result
        messages = await socket.until_final(op, timeout=10)
        return messages[-1]["content"]
    finally:
        await socket.close()


async def test_web_and_worker_recover_from_a_redis_restart_by_themselves(small_stack: dict) -> None:
    assert await answered(small_stack, "before") == "echo: before"
    small_stack["redis"].stop()
    await asyncio.sleep(1.0)
    async with httpx.AsyncClient(timeout=5) as http:
        assert (await http.get(f"{small_stack['url']}/-/readiness")).status_code == 503
        user = small_stack["seed"]["users"]["alice"]
        refused = await post(small_stack["url"], user["token"], ACTION, {"input": {"chat": {"content": "while down"}}})
        assert [(e["message"], e["extensions"]) for e in refused["errors"]] == [
            ("The service is temporarily unavailable; try again.", {"code": "SERVICE_UNAVAILABLE"})
        ]
        small_stack["redis"].start()
        deadline = time.monotonic() + 20
        while (await http.get(f"{small_stack['url']}/-/readiness")).status_code != 200:
            assert time.monotonic() < deadline, "readiness did not recover"
            await asyncio.sleep(0.2)

    last_error: BaseException | None = None
    while time.monotonic() < deadline + 10:
        try:
            assert await answered(small_stack, "after") == "echo: after"
            break
        except (AssertionError, TimeoutError, OSError) as exc:  # the first tries may meet a stale connection
            last_error = exc
            await asyncio.sleep(0.5)
    else:
        raise AssertionError(f"no answer after the restart: {last_error!r}")
    assert small_stack["web"].poll() is None and small_stack["worker"].poll() is None  # never restarted


async def test_a_request_streaming_when_redis_crashes_gets_its_final_once_redis_is_back(small_stack: dict) -> None:
    """Redis dies mid-stream and loses everything (the job included): the worker keeps the answer and
    publishes the final message once Redis answers again; the subscriber receives it."""
    user = small_stack["seed"]["users"]["alice"]
    sub = f"sub-{uuid.uuid4()}"
    words = " ".join(f"w{i}" for i in range(1, 31))
    socket = await GraphQLSocket.connect(small_stack["url"].replace("http", "ws") + "/api/graphql", user["token"])
    try:
        op = await socket.subscribe({"userId": user["gid"], "aiAction": "CHAT", "clientSubscriptionId": sub})
        content = f'<response chunk_delay_ms="100">{words}</response>'
        result = await post(small_stack["url"], user["token"], ACTION, {"input": {"chat": {"content": content}, "clientSubscriptionId": sub}})
        assert result.get("data") and result["data"]["aiAction"]["errors"] == [], result
        first = await socket.message(op)
        assert first["chunkId"] == 1
        small_stack["redis"].crash()
        await asyncio.sleep(1.0)
        small_stack["redis"].start()
        messages = [first, *await socket.until_final(op, timeout=60)]
    finally:
        await socket.close()
    chunks, final = messages[:-1], messages[-1]
    assert [m["chunkId"] for m in chunks] == list(range(1, len(chunks) + 1))  # no gap: chunks stopped
    assert final["content"] == words and final["errors"] == []
