"""A real Switchboard for end-to-end tests (a pytest plugin): migrated and seeded through the CLI, one web
process and one worker process as separate OS processes, on the test Redis (its own database number) and
on SQLite, then PostgreSQL when `TEST_DATABASE_URL` is set (a database of its own, `<name>_e2e`).

`stack` is session-scoped and parametrized by backend; tests must not depend on each other's messages
(use fresh `clientSubscriptionId`s).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from redis import Redis as SyncRedis
from sqlalchemy import text
from sqlalchemy.engine import make_url

from core.db import create_engine
from tests._redis import free_port, redis_db_url

__all__ = ["PROVIDER_ENV", "Stack", "provider_stack", "stack"]

_POSTGRES = os.environ.get("TEST_DATABASE_URL") or None
_BACKENDS = ["sqlite", "postgresql"] if _POSTGRES else ["sqlite"]
LEASE_S = 2.0
# What a developer's shell may set that would send a test's processes to real providers or another Redis.
PROVIDER_ENV = (
    "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_CLOUD_PROJECT", "ANTHROPIC_VERTEX_BASE_URL", "SWITCHBOARD_OPENAI_COMPATIBLE_BASE_URL",
    "SWITCHBOARD_DEFAULT_MODEL", "SWITCHBOARD_MOCK_MODEL_RESPONSES", "SWITCHBOARD_GOOGLE_BASE_URL", "REDIS_URL",
)


@dataclass
class Stack:
    url: str
    ws_url: str
    env: dict[str, str]
    seed: dict
    logs: Path
    web: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes]
    extra: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def token(self, user: str) -> str:
        return self.seed["users"][user]["token"]

    def gid(self, user: str) -> str:
        return self.seed["users"][user]["gid"]

    def start_worker(self, name: str, **env: str) -> subprocess.Popen[bytes]:
        process = _spawn(["worker"], {**self.env, **env}, self.logs / f"{name}.log")
        self.extra.append(process)
        return process

    def start_web(self, name: str, **env: str) -> tuple[subprocess.Popen[bytes], str]:
        """Another web process on the same Redis and database (own settings in `env`); returns it and its URL."""
        port = free_port()
        process = _spawn(["web", "--port", str(port)], {**self.env, **env}, self.logs / f"{name}.log")
        self.extra.append(process)
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, [process], self.logs)
        return process, url

    @staticmethod
    def stop(process: subprocess.Popen[bytes]) -> None:
        _stop(process)

    def cli(self, *args: str) -> str:
        """`switchboard ARGS` against this stack; its stdout."""
        return _cli(list(args), self.env)


@contextmanager
def provider_stack(
    redis_server: str, anthropic_url: str, data: Path, *, redis_db: int, workers: int = 1, **env: str
) -> Iterator[Stack]:
    """A web and `workers` worker processes on SQLite with the mock model off, talking to a fake Anthropic
    server at `anthropic_url` (tests/_providers.py); `env` adds settings."""
    redis_url = redis_db_url(redis_server, redis_db)
    SyncRedis.from_url(redis_url).flushdb()
    full = {k: v for k, v in os.environ.items() if k not in PROVIDER_ENV}
    full.update(
        REDIS_URL=redis_url,
        DATABASE_URL=f"sqlite+aiosqlite:///{data / 'switchboard.db'}",
        SWITCHBOARD_DATA_DIR=str(data),
        SWITCHBOARD_AI_ACTION_RATE_LIMIT="0",
        SWITCHBOARD_RETRY_BASE_DELAY_S="0.01",
        SWITCHBOARD_POLL_DELAY_S="0.05",  # a deferred retry is picked up at the next poll
        PYTHONUNBUFFERED="1",
        ANTHROPIC_API_KEY="sk-ant-e2e",
        ANTHROPIC_BASE_URL=anthropic_url,
        **env,
    )
    _cli(["db", "upgrade"], full)
    seed = json.loads(_cli(["seed", "--json"], full))
    port = free_port()
    web = _spawn(["web", "--port", str(port)], full, data / "web.log")
    worker = _spawn(["worker"], full, data / "worker.log")
    stack = Stack(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/api/graphql", full, seed, data, web, worker)
    for number in range(2, workers + 1):
        stack.start_worker(f"worker-{number}")
    try:
        _wait_ready(stack.url, [web, worker, *stack.extra], data)
        yield stack
    finally:
        for process in [*stack.extra, worker, web]:
            _stop(process)


def _cli(args: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", *args], env=env, capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise RuntimeError(f"switchboard {' '.join(args)} failed: {result.stderr[-2000:]}")
    return result.stdout


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "cli.main", *args], env=env, stdout=out, stderr=out)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGCONT)
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _fresh_postgres(base: str) -> str:
    url = make_url(base)
    name = f"{url.database}_e2e"

    async def create() -> None:
        engine = create_engine(base, pooled=False).execution_options(isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as connection:
                await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                await connection.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            await engine.dispose()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, create()).result()
    return url.set(database=name).render_as_string(hide_password=False)


def _wait_ready(url: str, processes: list[subprocess.Popen[bytes]], logs: Path) -> None:
    deadline = time.monotonic() + 90  # a start-up on a loaded 2-core host; not a speed requirement
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes):
            break
        try:
            if httpx.get(f"{url}/-/readiness", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    tails = "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in logs.glob("*.log"))
    raise RuntimeError(f"the Switchboard stack did not become ready\n{tails}")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_stack: run this end-to-end test on the SQLite stack only")


@pytest.hookimpl(tryfirst=True)  # before pytest groups tests by stack, so these join the SQLite group
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `sqlite_stack` (independent of the database backend) skip the PostgreSQL stack; they
    share the SQLite stack with every other test."""
    keep, drop = [], []
    for item in items:
        backend = getattr(item, "callspec", None) and item.callspec.params.get("stack")
        (drop if backend == "postgresql" and item.get_closest_marker("sqlite_stack") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session", params=_BACKENDS)
def stack(request: pytest.FixtureRequest, redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp(f"stack-{request.param}")
    redis_url = redis_db_url(redis_server, 1)
    SyncRedis.from_url(redis_url).flushdb()
    database = _fresh_postgres(_POSTGRES) if request.param == "postgresql" and _POSTGRES else f"sqlite+aiosqlite:///{data / 'switchboard.db'}"
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": database,
        "SWITCHBOARD_DATA_DIR": str(data),
        "SWITCHBOARD_MOCK_MODEL_RESPONSES": "true",
        "SWITCHBOARD_JOB_LEASE_S": str(LEASE_S),
        "SWITCHBOARD_AI_ACTION_RATE_LIMIT": "0",
        "SWITCHBOARD_RETRY_BASE_DELAY_S": "0.01",  # a failing model's retries (the mock's error="500") end soon
        "PYTHONUNBUFFERED": "1",
        "SWITCHBOARD_WORKER_METRICS_PORT": str(free_port()),
    }
    _cli(["db", "upgrade"], env)
    seed = json.loads(_cli(["seed", "--json"], env))
    web = _spawn(["web", "--port", str(port)], env, data / "web.log")
    worker = _spawn(["worker"], env, data / "worker.log")
    url = f"http://127.0.0.1:{port}"
    stack = Stack(url, f"ws://127.0.0.1:{port}/api/graphql", env, seed, data, web, worker)
    try:
        _wait_ready(url, [web, worker], data)
        yield stack
    finally:
        for process in [*stack.extra, worker, web]:
            _stop(process)
