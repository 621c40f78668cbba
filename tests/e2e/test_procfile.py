"""The Procfile way (foreman, honcho): each line's command run by a shell in a process group of its own,
with the Procfile's environment, stopped by a signal to its group. Nothing may be left running: no child
process, and not the embedded Redis the two processes shared."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from core.redis import embedded_redis_running
from tests._redis import free_port

pytestmark = pytest.mark.timeout(120)

PROCFILE = Path(__file__).resolve().parents[2] / "Procfile"


def procfile() -> dict[str, str]:
    """name → command, read the way foreman and honcho read it (other lines are comments)."""
    entries = (re.match(r"^([A-Za-z0-9_-]+):\s*(.+)$", line) for line in PROCFILE.read_text().splitlines())
    return {entry.group(1): entry.group(2) for entry in entries if entry}


def test_the_procfile_runs_web_on_port_and_a_worker() -> None:
    assert procfile() == {"web": "exec switchboard web --host 0.0.0.0 --port ${PORT:-8080}", "worker": "exec switchboard worker"}


def _wait_until_serving(url: str, processes: dict[str, subprocess.Popen[bytes]], logs: Path) -> None:
    deadline = time.monotonic() + 90  # a start-up on a loaded 2-core host; not a speed requirement
    while True:
        for name, process in processes.items():
            assert process.poll() is None, f"{name} exited: {(logs / f'{name}.log').read_text()[-3000:]}"
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "\n".join(p.read_text()[-2000:] for p in logs.glob("*.log"))
        time.sleep(0.2)


def _wait_until_worker_started(env: dict[str, str], processes: dict[str, subprocess.Popen[bytes]], logs: Path) -> None:
    """Until the worker polls its queue (its health key is written from the poll loop: start-up is over)."""
    deadline = time.monotonic() + 90
    while subprocess.run(["switchboard", "worker", "--check"], env=env, capture_output=True, timeout=60).returncode:
        for name, process in processes.items():
            assert process.poll() is None, f"{name} exited: {(logs / f'{name}.log').read_text()[-3000:]}"
        assert time.monotonic() < deadline, (logs / "worker.log").read_text()[-3000:]
        time.sleep(0.2)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_both_processes_and_leaves_nothing_behind(signum: int, tmp_path: Path) -> None:
    web_port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(PORT=str(web_port), SWITCHBOARD_WORKER_METRICS_PORT=str(metrics_port), SWITCHBOARD_DATA_DIR=str(tmp_path),
               PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}", PYTHONUNBUFFERED="1")
    subprocess.run(["switchboard", "db", "upgrade"], env=env, check=True, capture_output=True, timeout=120)
    processes = {}
    for name, command in procfile().items():
        with open(tmp_path / f"{name}.log", "wb") as log:
            processes[name] = subprocess.Popen(["/bin/sh", "-c", command], env=env, stdout=log, stderr=log,
                                               start_new_session=True)
    try:
        _wait_until_serving(f"http://127.0.0.1:{web_port}/-/readiness", processes, tmp_path)
        _wait_until_serving(f"http://127.0.0.1:{metrics_port}/metrics", processes, tmp_path)
        _wait_until_worker_started(env, processes, tmp_path)
        assert embedded_redis_running(tmp_path)
        redis_pid = int((tmp_path / "redis.pid").read_text())
        spawned = [psutil.Process(p.pid) for p in processes.values()]
        spawned += [child for process in list(spawned) for child in process.children(recursive=True)]
        for process in processes.values():
            os.killpg(process.pid, signum)  # foreman and honcho signal each process group
        codes = {name: process.wait(60) for name, process in processes.items()}
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    logs = "\n".join(p.read_text()[-2000:] for p in tmp_path.glob("*.log"))
    # a clean stop: 0, or the signal itself (uvicorn re-raises the one it handled once it has shut down)
    assert all(code in (0, -signum, 128 + signum) for code in codes.values()), (codes, logs)
    assert [p.pid for p in spawned if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == [], logs
    assert not embedded_redis_running(tmp_path), logs  # stopped by the last of the two...
    try:
        psutil.Process(redis_pid).wait(60)  # ...and gone once it has written its data
    except psutil.NoSuchProcess:
        pass


@pytest.mark.parametrize("attempt", range(3))
def test_a_worker_signalled_while_it_starts_stops(attempt: int, tmp_path: Path) -> None:
    """SIGTERM as soon as the worker serves /metrics, while its start-up and first polls run: it once lost
    the stop there now and then (a cancellation swallowed during a poll) and polled on for ever."""
    metrics_port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(SWITCHBOARD_WORKER_METRICS_PORT=str(metrics_port), SWITCHBOARD_DATA_DIR=str(tmp_path),
               PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")
    subprocess.run(["switchboard", "db", "upgrade"], env=env, check=True, capture_output=True, timeout=120)
    with open(tmp_path / "worker.log", "wb") as log:
        worker = subprocess.Popen(["/bin/sh", "-c", procfile()["worker"]], env=env, stdout=log, stderr=log,
                                  start_new_session=True)
    try:
        _wait_until_serving(f"http://127.0.0.1:{metrics_port}/metrics", {"worker": worker}, tmp_path)
        os.killpg(worker.pid, signal.SIGTERM)
        code = worker.wait(60)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    assert code == 0, (tmp_path / "worker.log").read_text()[-3000:]
    assert not embedded_redis_running(tmp_path)
