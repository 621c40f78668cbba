from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus

from core import keys
from core.actions import ActionRecord
from core.redis import (
    LuaScript,
    bundled_redis_server,
    embedded_redis_running,
    embedded_redis_url,
    enqueue_action,
    release_embedded_redis,
    stop_embedded_redis,
)


def record(request_id: str = "req-1") -> ActionRecord:
    return ActionRecord(request_id=request_id, feature="chat", user_id=2, inputs={"content": "hi"})


async def test_enqueue_stores_an_arq_job_once_and_wakes_a_worker(redis: ArqRedis) -> None:
    action = record()
    assert await enqueue_action(redis, action)
    assert not await enqueue_action(redis, record())  # the same request id: still one job
    assert await redis.zrange(keys.QUEUE, 0, -1) == [b"req-1"]
    assert await redis.lrange(keys.WAKE, 0, -1) == [b"1"] and 0 < await redis.ttl(keys.WAKE) <= keys.WAKE_TTL_S
    job = Job("req-1", redis, _queue_name=keys.QUEUE)
    assert await job.status() == JobStatus.queued
    info = await job.info()
    assert info is not None and info.function == keys.JOB_NAME and info.args == (action.model_dump_json(),)


async def test_the_wake_list_stays_short(redis: ArqRedis) -> None:
    for i in range(keys.WAKE_MAXLEN * 2):
        await enqueue_action(redis, record(f"req-{i}"))
    assert await redis.llen(keys.WAKE) == keys.WAKE_MAXLEN


def test_the_embedded_redis_starts_once_and_stops(tmp_path: Path) -> None:
    url = embedded_redis_url(tmp_path)
    try:
        assert url == f"unix://{tmp_path.resolve() / 'redis.sock'}"
        assert embedded_redis_running(tmp_path)
        assert embedded_redis_url(tmp_path) == url  # the second caller reuses the running server
    finally:
        assert release_embedded_redis(tmp_path)  # this process was its only user
    assert not embedded_redis_running(tmp_path)


def _fake_server(directory: Path, body: str) -> Path:
    directory.mkdir()
    server = directory / "redis-server"
    server.write_text(f"#!/bin/sh\n{body}\n")
    server.chmod(0o755)
    return server


def test_the_embedded_redis_ignores_the_redis_server_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An activated virtualenv (or none) changes the first `redis-server` on PATH; the data dir must not care."""
    _fake_server(tmp_path / "bin", "exit 1")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    data = tmp_path / "data"
    try:
        embedded_redis_url(data)
        assert (data / "redis.binary").read_text().strip() == str(Path(bundled_redis_server()).resolve())
    finally:
        release_embedded_redis(data)


def test_a_data_dir_keeps_the_redis_server_that_created_it(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    server = _fake_server(tmp_path / "bin", f'echo start >> {starts}\nexec {bundled_redis_server()} "$@"')
    data = tmp_path / "data"
    try:
        embedded_redis_url(data, binary=str(server))
        assert release_embedded_redis(data)
        embedded_redis_url(data)  # later starts, with no binary named, use the recorded one
        assert starts.read_text().count("start") == 2
    finally:
        release_embedded_redis(data)
    server.unlink()
    with pytest.raises(RuntimeError, match="was written by"):
        embedded_redis_url(data)
    release_embedded_redis(data)


_USER = """
import sys
from pathlib import Path
from core.redis import redis_url
redis_url(None, Path(sys.argv[1]))
print("up", flush=True)
sys.stdin.readline()
"""


@pytest.mark.timeout(60)
def test_the_last_process_using_the_embedded_redis_stops_it(tmp_path: Path) -> None:
    """As with `honcho start` and the Procfile: web and worker each start or join the embedded Redis."""
    users = [subprocess.Popen([sys.executable, "-c", _USER, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE) for _ in range(2)]
    try:
        for user in users:
            assert user.stdout is not None and user.stdout.readline() == b"up\n"
        assert embedded_redis_running(tmp_path)
        for index, user in enumerate(users):
            assert user.stdin is not None
            user.stdin.close()  # the process exits normally
            assert user.wait(30) == 0
            assert embedded_redis_running(tmp_path) == (index == 0)  # the first one leaves it to the second
    finally:
        for user in users:
            user.kill()
            user.wait()
            user.stdout and user.stdout.close()
        stop_embedded_redis(tmp_path)


async def test_a_lua_script_runs_after_the_server_forgot_it(redis: ArqRedis) -> None:
    script = LuaScript("return redis.call('INCR', KEYS[1])")
    assert await script(redis, keys=["n"]) == 1
    await redis.script_flush()  # as after a restart of Redis
    assert await script(redis, keys=["n"]) == 2
    assert await redis.script_exists(script.sha) == [True]  # the EVAL fallback cached it again
