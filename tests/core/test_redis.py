from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix
from arq.jobs import Job, JobStatus, deserialize_job_raw
from arq.utils import timestamp_ms

from core import keys
from core.actions import ActionRecord
from core.redis import (
    LuaScript,
    bundled_redis_server,
    claim_jobs,
    embedded_redis_running,
    embedded_redis_url,
    enqueue_action,
    finish_job,
    release_embedded_redis,
    stop_embedded_redis,
)


def record(request_id: str = "req-1") -> ActionRecord:
    return ActionRecord(request_id=request_id, feature="chat", user_id=2, inputs={"content": "hi"})


async def test_enqueue_stores_an_arq_job_once_and_wakes_a_worker(redis: ArqRedis) -> None:
    action = record()
    before = await redis.info("commandstats")
    assert await enqueue_action(redis, action)
    assert await _calls(redis, before, "evalsha", "set", "zadd", "lpush", "exists", "psetex") == (1, 2, 1, 1, 0, 0)
    assert not await enqueue_action(redis, record())  # the same request id: still one job
    assert await redis.zrange(keys.QUEUE, 0, -1) == [b"req-1"]
    assert await redis.lrange(keys.WAKE, 0, -1) == [b"1"] and await redis.ttl(keys.WAKE) == -1  # bounded, not expired
    job = Job("req-1", redis, _queue_name=keys.QUEUE)
    assert await job.status() == JobStatus.queued
    info = await job.info()
    assert info is not None and info.function == keys.JOB_NAME and info.args == (action.model_dump_json(),)


async def _calls(redis: ArqRedis, before: dict, *names: str) -> tuple[int, ...]:
    after = await redis.info("commandstats")
    return tuple(after.get(f"cmdstat_{n}", {}).get("calls", 0) - before.get(f"cmdstat_{n}", {}).get("calls", 0) for n in names)


async def test_a_poll_claims_its_jobs_in_one_round_trip_once_each(redis: ArqRedis) -> None:
    records = {request_id: record(request_id) for request_id in ("a", "b", "c")}
    for action in records.values():
        await enqueue_action(redis, action)
    await redis.zadd(keys.QUEUE, {"c": timestamp_ms() + 60_000})  # deferred (a retry's backoff): not yet due
    before = await redis.info("commandstats")
    a, b, c = await claim_jobs(redis, keys.QUEUE, ["a", "b", "c"], 5_000)
    assert await _calls(redis, before, "evalsha", "watch", "multi") == (1, 0, 0)
    assert await _calls(redis, before, "set", "incr", "expire") == (4, 0, 0)  # a lease and a counter per first try
    assert c is None and a is not None and b is not None
    assert (a.job_try, b.job_try) == (1, 1) and a.job is not None
    assert deserialize_job_raw(a.job)[1] == (records["a"].model_dump_json(),)
    assert 0 < await redis.pttl(in_progress_key_prefix + "a") <= 5_000  # the lease, not the job's timeout
    assert await redis.ttl(retry_key_prefix + "a") > 86_400
    assert await claim_jobs(redis, keys.QUEUE, ["a", "b"], 5_000) == [None, None]  # held: no second claim


async def test_a_finished_job_leaves_nothing_and_a_deferred_one_comes_back_as_its_next_try(redis: ArqRedis) -> None:
    for request_id in ("done", "again"):
        await enqueue_action(redis, record(request_id))
    await claim_jobs(redis, keys.QUEUE, ["done", "again"], 5_000)
    await finish_job(redis, keys.QUEUE, "done", done=True)
    assert await redis.keys("arq:*done") == [] and await redis.zscore(keys.QUEUE, "done") is None
    due = timestamp_ms() + 60_000
    await finish_job(redis, keys.QUEUE, "again", done=False, defer_to_ms=due)
    assert await redis.zscore(keys.QUEUE, "again") == due and not await redis.exists(in_progress_key_prefix + "again")
    assert await claim_jobs(redis, keys.QUEUE, ["again"], 5_000) == [None]  # not due yet
    await redis.zadd(keys.QUEUE, {"again": timestamp_ms()})
    (claim,) = await claim_jobs(redis, keys.QUEUE, ["again"], 5_000)
    assert claim is not None and claim.job_try == 2 and await redis.exists(job_key_prefix + "again")
    assert await redis.ttl(retry_key_prefix + "again") > 86_400  # the counter keeps its expiry


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
