"""A worker's monitoring timer: its Prometheus `/metrics` port, queue sampling, the per-minute counters of
the `/admin` page and of the rollouts' cohorts, and a heartbeat that tells web processes (and operators) which workers are alive.

All of it runs every `INTERVAL_S` on one pipeline or two; nothing here runs per job.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import Any

import orjson
from arq.constants import health_check_key_suffix
from prometheus_client import start_http_server
from redis.exceptions import RedisError

from core import keys
from core.metrics import STATS, sample_queue
from core.redis import connect, embedded_redis_running, embedded_socket_url, honour_cancel
from core.settings import Settings

__all__ = ["Monitor", "INTERVAL_S", "HEALTH_CHECK_INTERVAL_S", "serve_metrics", "check_health"]

log = logging.getLogger(__name__)

INTERVAL_S = 2.0
# arq's health-check key is rewritten this often (and lives one second longer).
HEALTH_CHECK_INTERVAL_S = 10
_PORT_ATTEMPTS = 32


def serve_metrics(port: int) -> int | None:
    """Serve `/metrics` on `port`, or the next free port above it; the port used, None when none was free."""
    for candidate in range(port, port + _PORT_ATTEMPTS):
        try:
            start_http_server(candidate, addr="0.0.0.0")
        except OSError:
            continue
        return candidate
    log.warning("no free port in %d-%d for the worker's /metrics", port, port + _PORT_ATTEMPTS - 1)
    return None


class Monitor:
    def __init__(self, worker: Any, metrics_port: int) -> None:
        self.worker = worker
        self.metrics_port = metrics_port
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.handed_back = 0

    async def run(self) -> None:
        if self.metrics_port:
            port = await asyncio.to_thread(serve_metrics, self.metrics_port)
            if port is not None:
                log.info("worker metrics on http://0.0.0.0:%d/metrics", port, extra={"metrics_port": port})
        while True:
            try:
                await self.beat()
            except Exception as exc:  # Redis away: the next beat tries again
                log.debug("monitor beat failed: %s", exc)
            honour_cancel()  # a stop that redis-py swallowed during the beat
            await asyncio.sleep(INTERVAL_S)

    async def beat(self) -> None:
        redis = self.worker.pool
        depth, _age = await sample_queue(redis)
        await self._flush(redis)
        beat = orjson.dumps({"beat": time.time(), "jobs": self.worker.running_jobs(), "pid": os.getpid()})
        async with redis.pipeline(transaction=False) as pipe:
            pipe.hset(keys.stats(int(time.time() // 60)), "depth", depth)
            pipe.hset(keys.WORKERS, self.worker_id, beat)
            pipe.expire(keys.WORKERS, keys.STATS_TTL_S)
            await pipe.execute()

    async def _flush(self, redis: Any) -> None:
        """The counters of this process: `/admin`'s and the rollouts' cohorts (`Deps.cohorts`)."""
        await STATS.flush(redis)
        deps = self.worker.ctx.get("deps")
        if deps is not None:
            await deps.cohorts.flush(redis)

    async def stopped(self) -> None:
        """On the way out: flush the counters, leave the heartbeat hash, and wake another worker for the
        handed-back jobs."""
        redis = self.worker.pool
        try:
            await self._flush(redis)
            async with redis.pipeline(transaction=False) as pipe:
                pipe.hdel(keys.WORKERS, self.worker_id)
                if self.handed_back:
                    for _ in range(min(self.handed_back, keys.WAKE_MAXLEN)):
                        pipe.lpush(keys.WAKE, b"1")
                    pipe.ltrim(keys.WAKE, 0, keys.WAKE_MAXLEN - 1)
                await pipe.execute()
        except Exception as exc:
            log.warning("could not record the worker's stop: %s", exc)
        if self.handed_back:
            log.info("handed back %d jobs", self.handed_back)


async def check_health(settings: Settings) -> tuple[bool, str]:
    """arq's health-check key of the queue (written by a live worker every `HEALTH_CHECK_INTERVAL_S`)."""
    if settings.redis_url is None and not embedded_redis_running(settings.data_dir):
        return False, f"the embedded Redis under {settings.data_dir} is not running"
    redis = connect(settings.redis_url or embedded_socket_url(settings.data_dir), max_connections=1)
    try:
        value = await redis.get(keys.QUEUE + health_check_key_suffix)
    except (OSError, RedisError) as exc:
        return False, f"Redis is unreachable: {exc}"
    finally:
        await redis.aclose()
    if value is None:
        return False, "no worker recorded its health in the last check interval"
    return True, value.decode()
