"""`switchboard run` (what `make run` starts): embedded Redis, SQLite, web and worker; Ctrl-C stops all. On a
terminal its processes log readable text lines; its banner names the pages with alice's token."""

from __future__ import annotations

import asyncio
import os
import pty
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from core.redis import embedded_redis_running
from tests._client import GraphQLSocket, post
from tests._redis import free_port

pytestmark = pytest.mark.timeout(90)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def test_run_starts_everything_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(SWITCHBOARD_DATA_DIR=str(tmp_path), PYTHONUNBUFFERED="1")
    log = tmp_path / "run.log"
    terminal = _Terminal()  # stderr: the processes' logs, as a person running `make run` sees them
    process = await asyncio.to_thread(_start, ["run", "--port", str(port)], env, log, terminal.slave)
    terminal.start()
    try:
        url = f"http://127.0.0.1:{port}"
        await _ready(url, process, log)
        output = await _banner(log, process)
        token = re.search(rf"^\s+Chat\s+http://localhost:{port}/chat#token=(glpat-\S+)$", output, re.M)
        assert token, output
        assert re.search(rf"^\s+alice\s+gid://gitlab/User/2\s+{token.group(1)}$", output, re.M), output
        assert f"http://localhost:{port}/api/graphql#token={token.group(1)}" in output
        assert f"http://localhost:{port}/admin" in output and embedded_redis_running(tmp_path)

        socket = await GraphQLSocket.connect(f"ws://127.0.0.1:{port}/api/graphql", token.group(1))
        op = await socket.subscribe({"userId": "gid://gitlab/User/2", "aiAction": "CHAT", "clientSubscriptionId": "run"})
        answer = await post(url, token.group(1), "mutation { aiAction(input: {chat: {content: \"hi there\"}, clientSubscriptionId: \"run\"}) { errors } }")
        assert answer["data"]["aiAction"]["errors"] == []
        assert (await socket.until_final(op))[-1]["content"] == "echo: hi there"
        await socket.close()
        await _walk_the_tour(url, token.group(1))
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
    logs = terminal.output()
    time_level = r"^\d\d:\d\d:\d\d INFO "
    assert re.search(time_level + r"ai_action_mutation request_id=\S+ feature=chat ", logs, re.M), logs
    assert re.search(time_level + r"completion_service_performed .*feature=chat .*model=\S+", logs, re.M), logs
    assert not re.search(r'^\{"time"', logs, re.M)  # no JSON line among them


async def _walk_the_tour(url: str, token: str) -> None:
    """The README's tour after `make run`: `/` leads to the chat page, and the clients of `examples/` stream
    an answer with the banner's token (Node's too, where Node is installed)."""
    async with httpx.AsyncClient() as http:
        home = await http.get(f"{url}/", follow_redirects=True)
    assert home.status_code == 200 and str(home.url).endswith("/chat") and 'id="' in home.text
    clients = [[sys.executable, str(EXAMPLES / "chat.py")]] + ([["node", str(EXAMPLES / "chat.mjs")]] if shutil.which("node") else [])
    env = {**os.environ, "SWITCHBOARD_URL": url, "SWITCHBOARD_TOKEN": token}
    for client in clients:
        done = await asyncio.to_thread(subprocess.run, [*client, "How do I revert a commit?"], env=env,
                                       capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (client, done.stdout, done.stderr)
        assert "echo: How do I revert a commit?" in done.stdout.replace("\n", " "), done.stdout


class _Terminal:
    """A pseudo-terminal for the processes' stderr, read until every process has closed it."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)

    def start(self) -> None:
        os.close(self.slave)  # the children hold it now
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the last holder of the other side closed it
                break
            if not chunk:
                break
            self._chunks.append(chunk)
        os.close(self.master)

    def output(self) -> str:
        self._reader.join()  # every process has exited: the read ends
        return b"".join(self._chunks).decode(errors="replace").replace("\r\n", "\n")


async def _banner(log: Path, process: subprocess.Popen[bytes]) -> str:
    """The output once the banner is complete (printed when the web process is ready)."""
    while True:
        output = await asyncio.to_thread(log.read_text)
        if "The switchboard command" in output or "Worker metrics" in output:
            return output
        assert process.poll() is None, output
        await asyncio.sleep(0.1)


def _start(args: list[str], env: dict[str, str], log: Path, stderr: int) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "cli.main", *args], env=env, stdout=out, stderr=stderr)


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
