"""The arq worker: settings, start-up wiring, and two additions to arq for latency and recovery.

- **Wake-up.** arq polls its queue every `poll_delay`; an idle Switchboard worker instead blocks on
  `keys.WAKE` (pushed at every enqueue) for up to `poll_delay`, so a new job starts within a millisecond.
- **Job lease.** arq marks a running job with an in-progress key that lives for the job's whole timeout, so
  the job of a worker killed with SIGKILL would wait that long. Here the key lives `job_lease_s` and a
  heartbeat renews it every `job_lease_s / 3` while the job runs; when a worker dies, its jobs are free
  again after at most `job_lease_s` and the next poll of any worker restarts them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from arq import Worker, func
from arq.constants import in_progress_key_prefix

from core import keys
from core.redis import connect, redis_url
from core.settings import Settings
from worker.deps import build_deps
from worker.jobs import MAX_TRIES, run_action

__all__ = ["SwitchboardWorker", "build_worker"]

log = logging.getLogger(__name__)


class SwitchboardWorker(Worker):
    def __init__(self, *args: Any, job_lease_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.job_lease_s = job_lease_s
        self.in_progress_timeout_s = job_lease_s  # arq's in-progress key becomes a renewed lease

    async def main(self) -> None:
        heartbeat = asyncio.create_task(self._renew_leases(), name="switchboard-lease-heartbeat")
        try:
            await super().main()
        finally:
            heartbeat.cancel()
            try:
                await heartbeat
            except asyncio.CancelledError:
                pass

    async def _poll_iteration(self) -> None:
        """arq's poll, repeated each time an enqueue wakes us, until `poll_delay` has passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.poll_delay_s
        while True:
            await super()._poll_iteration()
            remaining = deadline - loop.time()
            if self.burst or self.job_counter >= self.max_jobs or remaining <= 0.001:
                return
            if await self.pool.blpop([keys.WAKE], timeout=remaining) is None:
                return

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """arq re-reads every queued id on each poll, running ones included; skip those it runs already
        (each would cost a WATCH/EXISTS/ZSCORE round trip to find out)."""
        await super().start_jobs([job_id for job_id in job_ids if job_id.decode() not in self.tasks])

    async def _renew_leases(self) -> None:
        interval = self.job_lease_s / 3
        lease_ms = int(self.job_lease_s * 1000)
        while True:
            await asyncio.sleep(interval)
            running = [job_id for job_id, task in self.tasks.items() if not task.done()]
            if not running or self._pool is None:
                continue
            try:
                async with self.pool.pipeline(transaction=False) as pipe:
                    for job_id in running:
                        pipe.pexpire(in_progress_key_prefix + job_id, lease_ms)
                    await pipe.execute()
            except Exception:  # a Redis hiccup must not kill the heartbeat; the next beat retries
                log.exception("could not renew job leases")


async def _startup(ctx: dict[str, Any]) -> None:
    ctx["deps"] = build_deps(ctx["settings"], ctx["redis"])


async def _shutdown(ctx: dict[str, Any]) -> None:
    deps = ctx.get("deps")
    if deps is not None:
        await deps.close()


def build_worker(settings: Settings, *, burst: bool = False, **overrides: Any) -> SwitchboardWorker:
    url = redis_url(settings.redis_url, settings.data_dir)
    options: dict[str, Any] = dict(
        functions=[func(run_action, name=keys.JOB_NAME, timeout=settings.job_timeout_s, max_tries=MAX_TRIES + 1)],
        queue_name=keys.QUEUE,
        redis_pool=connect(url, max_connections=settings.redis_max_connections),
        max_jobs=settings.worker_max_jobs,
        poll_delay=settings.poll_delay_s,
        keep_result=60,
        burst=burst,
        on_startup=_startup,
        on_shutdown=_shutdown,
        ctx={"settings": settings},
        job_lease_s=settings.job_lease_s,
    )
    options.update(overrides)
    return SwitchboardWorker(**options)
