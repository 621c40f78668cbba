"""Bare arq no-op jobs/s on the stack's Redis, the baseline of the throughput and resources scenarios.

The queue is filled first (the same keys `ArqRedis.enqueue_job` writes, pipelined so that filling takes a
fraction of a second), then a worker subprocess (`bench.arq_noop`) is started; the clock starts when it
reports ready and stops when the queue is empty or the time is up. jobs/s = jobs finished / elapsed.
Over the same span: CPU seconds of the arq worker and of Redis per job, and Redis commands and round trips
per job (they include this process's `ZCARD` every 10 ms, about 1 % of them).
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import job_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms
from psutil import Process

from bench.arq_noop import JOB_NAME
from bench.meters import RedisCalls, cpu_seconds
from bench.stack import Stack, stop_process

__all__ = ["measure"]


async def _fill(pool: ArqRedis, queue: str, jobs: int) -> None:
    for start in range(0, jobs, 1000):
        async with pool.pipeline(transaction=False) as pipe:
            now = timestamp_ms()
            for _ in range(min(1000, jobs - start)):
                job_id = uuid.uuid4().hex
                pipe.psetex(job_key_prefix + job_id, pool.expires_extra_ms, serialize_job(JOB_NAME, (), {}, None, now))
                pipe.zadd(queue, {job_id: now})
            await pipe.execute()


async def measure(stack: Stack, *, poll_delay: float, jobs: int, max_s: float, max_jobs: int) -> dict:
    queue = f"bench:arq:{poll_delay}"
    pool = await create_pool(RedisSettings.from_dsn(stack.redis_url))
    name = f"arq-noop-{poll_delay}"
    try:
        await pool.delete(queue, f"{queue}:ready")
        await _fill(pool, queue, jobs)
        process = stack.spawn(
            name, [sys.executable, "-m", "bench.arq_noop", stack.redis_url, queue, str(poll_delay), str(max_jobs)],
            env={**stack.env, "PYTHONPATH": str(_repo_root())},
        )
        deadline = time.perf_counter() + 30
        while not await pool.exists(f"{queue}:ready"):
            if process.poll() is not None or time.perf_counter() > deadline:
                raise RuntimeError(f"bare arq worker did not start (status {process.poll()})")
            await asyncio.sleep(0.005)
        worker, redis = Process(process.pid), Process(stack.pid("redis"))
        calls = RedisCalls(stack)
        calls.start()
        cpu_0 = cpu_seconds(worker), cpu_seconds(redis)
        started = time.perf_counter()
        remaining = jobs
        while remaining and time.perf_counter() - started < max_s:
            await asyncio.sleep(0.01)
            remaining = await pool.zcard(queue)
        elapsed = time.perf_counter() - started
        cpu_1 = cpu_seconds(worker), cpu_seconds(redis)
        done = jobs - remaining
        per = max(done, 1)
        redis_calls = calls.stop(per=per)
        return {
            "poll_delay_s": poll_delay, "max_jobs": max_jobs, "jobs_queued": jobs, "jobs_done": done,
            "elapsed_s": round(elapsed, 3), "jobs_per_s": round(done / elapsed, 1),
            "worker_cpu_ms_per_job": round(1000 * (cpu_1[0] - cpu_0[0]) / per, 4),
            "redis_cpu_ms_per_job": round(1000 * (cpu_1[1] - cpu_0[1]) / per, 4),
            "worker_cpu_percent": round(100 * (cpu_1[0] - cpu_0[0]) / elapsed, 1),
            "redis_calls_per_job": redis_calls,
            "redis_round_trips_per_job": None if calls.round_trips is None else round(calls.round_trips / per, 2),
        }
    finally:
        stop_process(stack.processes.get(name))
        await pool.delete(queue)
        await pool.aclose()


def _repo_root() -> str:
    from pathlib import Path

    return str(Path(__file__).resolve().parents[2])
