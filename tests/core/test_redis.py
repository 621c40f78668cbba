from __future__ import annotations

from pathlib import Path

from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus

from core import keys
from core.actions import ActionRecord
from core.redis import (
    embedded_redis_running,
    embedded_redis_url,
    enqueue_action,
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
        stop_embedded_redis(tmp_path)
    assert not embedded_redis_running(tmp_path)
