"""`switchboard run` (what `make run` starts): embedded Redis, SQLite, web and worker; Ctrl-C stops all."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from core.redis import embedded_redis_running
from tests._client import GraphQLSocket, post
from tests._redis import free_port

pytestmark = pytest.mark.timeout(90)


async def test_run_starts_everything_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(SWITCHBOARD_DATA_DIR=str(tmp_path), PYTHONUNBUFFERED="1")
    log = tmp_path / "run.log"
    process = await asyncio.to_thread(_start, ["run", "--port", str(port)], env, log)
    try:
        url = f"http://127.0.0.1:{port}"
        await _ready(url, process, log)
        output = log.read_text()
        token = re.search(r"^\s+alice\s+gid://gitlab/User/2\s+(glpat-\S+)$", output, re.M)
        assert token, output
        assert f"http://localhost:{port}/api/graphql" in output and embedded_redis_running(tmp_path)

        socket = await GraphQLSocket.connect(f"ws://127.0.0.1:{port}/api/graphql", token.group(1))
        op = await socket.subscribe({"userId": "gid://gitlab/User/2", "aiAction": "CHAT", "clientSubscriptionId": "run"})
        answer = await post(url, token.group(1), "mutation { aiAction(input: {chat: {content: \"hi there\"}, clientSubscriptionId: \"run\"}) { errors } }")
        assert answer["data"]["aiAction"]["errors"] == []
        assert (await socket.until_final(op))[-1]["content"] == "echo: hi there"
        await socket.close()
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code == 0, log.read_text()
    assert not embedded_redis_running(tmp_path)
    assert (tmp_path / "switchboard.db").exists()


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "cli.main", *args], env=env, stdout=out, stderr=subprocess.STDOUT)


async def _ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll readiness until the processes serve (90 s on a loaded host is a start-up, not a speed, bound)."""
    deadline = time.monotonic() + 90
    async with httpx.AsyncClient() as http:
        while True:
            assert process.poll() is None, await asyncio.to_thread(log.read_text)
            try:
                if (await http.get(f"{url}/-/readiness", timeout=1)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, await asyncio.to_thread(log.read_text)
            await asyncio.sleep(0.2)
