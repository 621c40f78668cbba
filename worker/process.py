"""The arq worker: settings, start-up wiring, and what it does differently from arq, for cost, latency and
recovery.

- **Claim and finish.** An action job is claimed and loaded, for all the jobs a poll can take, by one Lua call
  (`core.redis.claim_jobs`) and finished by one pipelined round trip (`core.redis.finish_job`), with no result
  kept: arq's claim, load and finish cost 17 commands in 6 round trips per job. Cron jobs run through arq.

- **Wake-up.** arq polls its queue every `poll_delay`; an idle Switchboard worker instead blocks on
  `keys.WAKE` (pushed at every enqueue) for up to `poll_delay`, so a new job starts within a millisecond.
- **Job lease.** arq marks a running job with an in-progress key that lives for the job's whole timeout, so
  the job of a worker killed with SIGKILL would wait that long. Here the key lives `job_lease_s` and a
  heartbeat renews it every `job_lease_s / 3` while the job runs; when a worker dies, its jobs are free
  again after at most `job_lease_s` and the next poll of any worker restarts them.
- **Graceful stop.** On SIGTERM (or SIGINT) the worker takes no new job and lets its running jobs finish
  for up to `shutdown_grace_s`; the rest are cancelled and handed back: arq releases their in-progress key
  and leaves them queued, and a wake-up makes another worker restart them at once. Their final message is
  guarded in Redis (`subscriptions.streams.Publisher`), so a job that got its final out is not answered twice.
- **Redis outages.** A lost connection during a poll is logged and retried with backoff; the worker keeps
  running and resumes by itself when Redis is back.
- **Cancels** (`worker.cancel`): one pub/sub connection per process, started with the worker, tells its
  running jobs that `aiActionCancel` stopped them.
- **Guarded rollouts** (`worker.rollout`): the rollout controller's timer, every
  `SWITCHBOARD_ROLLOUT_CHECK_S`; one worker process leads at a time (not in burst mode).
- **Monitoring** (`worker.monitor`): Prometheus `/metrics` on its own port, queue sampling, the per-minute
  counters of `/admin`, a heartbeat in `keys.WORKERS`, and arq's health-check key (`switchboard worker --check`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, cast

from arq import Retry, Worker, cron, func
from arq.constants import in_progress_key_prefix
from arq.jobs import deserialize_job_raw
from arq.utils import ms_to_datetime, timestamp_ms
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from chat.conversations import delete_expired
from core import keys
from core.metrics import JOBS_HANDED_BACK, JOBS_IN_FLIGHT
from core.redis import SOCKET_TIMEOUT_S, Claim, claim_jobs, connect, finish_job, honour_cancel, redis_url
from core.settings import Settings
from core.tables import utcnow
from worker.cancel import Cancellations
from worker.deps import build_deps
from worker.jobs import ARQ_TRIES_MARGIN, JOB_TIMEOUT_MARGIN_S, MAX_TRIES, run_action
from worker.monitor import HEALTH_CHECK_INTERVAL_S, Monitor
from worker.rollout import Controller

__all__ = ["SwitchboardWorker", "build_worker", "expire_chat_threads"]

log = logging.getLogger(__name__)

# arq's cron jobs (`cron:<name>:<run time>`) run through arq; everything else in the queue is an action.
_CRON_PREFIX = b"cron:"


class SwitchboardWorker(Worker):
    def __init__(self, *args: Any, job_lease_s: float, metrics_port: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.job_lease_s = job_lease_s
        self.in_progress_timeout_s = job_lease_s  # arq's in-progress key becomes a renewed lease
        self.monitor = Monitor(self, metrics_port)
        self._redis_backoff_s = 0.1
        self.stop_requested = False  # set with the main task's cancel: a swallowed cancel still stops the polls
        self._polled: set[bytes] = set()  # the ids `start_jobs` was given at the last poll, less this worker's
        JOBS_IN_FLIGHT.set_function(self.running_jobs)

    def running_jobs(self) -> int:
        return sum(not task.done() for task in self.tasks.values())

    async def main(self) -> None:
        timers = [
            asyncio.create_task(self._renew_leases(), name="switchboard-lease-heartbeat"),
            asyncio.create_task(self.monitor.run(), name="switchboard-monitor"),
        ]
        try:
            await super().main()
        finally:
            for timer in timers:
                timer.cancel()
            await asyncio.gather(*timers, return_exceptions=True)

    async def _poll_iteration(self) -> None:
        try:
            await self._poll_and_wait()
            self._redis_backoff_s = 0.1
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            honour_cancel()
            log.warning("worker lost Redis (%s); retrying in %.1f s", exc, self._redis_backoff_s)
            await asyncio.sleep(self._redis_backoff_s)
            self._redis_backoff_s = min(self._redis_backoff_s * 2, 5.0)
        if self.stop_requested:
            # The stop's cancellation of the main task was swallowed during the poll (seen when SIGTERM comes
            # at a Redis command's reply: the worker then polled on forever): honour it now.
            raise asyncio.CancelledError()
        honour_cancel()

    async def _poll_and_wait(self) -> None:
        """arq's poll, repeated each time an enqueue wakes us, until `poll_delay` has passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.poll_delay_s
        while True:
            await super()._poll_iteration()
            if not self.allow_pick_jobs:  # stopping: leave the wake-ups to the other workers
                return
            remaining = deadline - loop.time()
            if self.burst or self.job_counter >= self.max_jobs or remaining <= 0.001:
                return
            if await cast("Awaitable[Any]", self.pool.blpop([keys.WAKE], timeout=remaining)) is None:  # type: ignore[arg-type]  # redis-py types the timeout int; BLPOP takes seconds as a float
                return

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """arq re-reads every queued id on each poll, running ones included, and spends four round trips
        (WATCH, EXISTS, ZSCORE, UNWATCH) on each to find out that it runs. Skip the ids this worker runs; of
        the others, those seen at the previous poll too are most likely running on another worker: one
        pipelined EXISTS of their in-progress keys finds out. Actions are then claimed and run here
        (`_start_actions`); cron jobs go through arq."""
        candidates = [job_id for job_id in job_ids if job_id.decode() not in self.tasks]
        seen, self._polled = self._polled, set(candidates)
        again = [job_id for job_id in candidates if job_id in seen]
        if again:
            async with self.pool.pipeline(transaction=False) as pipe:
                for job_id in again:
                    pipe.exists(in_progress_key_prefix + job_id.decode())
                held = {job_id for job_id, exists in zip(again, await pipe.execute(), strict=True) if exists}
            candidates = [job_id for job_id in candidates if job_id not in held]
        await super().start_jobs([job_id for job_id in candidates if job_id.startswith(_CRON_PREFIX)])
        await self._start_actions([job_id.decode() for job_id in candidates if not job_id.startswith(_CRON_PREFIX)])

    async def _start_actions(self, job_ids: list[str]) -> None:
        """Claim as many of `job_ids` as there are free places (waiting for the first one, as arq does) in one
        round trip (`core.redis.claim_jobs`: arq's claim and load cost 11 commands in 5 round trips per job),
        and run each claimed job in a task of its own."""
        while job_ids:
            await self.sem.acquire()
            places = 1
            while places < len(job_ids) and not self.sem.locked():
                await self.sem.acquire()  # free: returns at once
                places += 1
            batch, job_ids = job_ids[:places], job_ids[places:]
            self.job_counter += places
            try:
                claims = await claim_jobs(self.pool, self.queue_name, batch, int(self.job_lease_s * 1000))
            except BaseException:
                for _ in batch:
                    self._release_sem_dec_counter_on_complete()
                raise
            for job_id, claim in zip(batch, claims, strict=True):
                if claim is None:  # running elsewhere, finished, or deferred meanwhile
                    self._release_sem_dec_counter_on_complete()
                    continue
                task = asyncio.create_task(self._run_action(job_id, claim))
                task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
                self.tasks[job_id] = task

    async def _run_action(self, job_id: str, claim: Claim) -> None:
        """Run a claimed action job as arq's `run_job` would (its timeout, `Retry`, a stop hands it back),
        then finish it in one round trip. No result is stored: the request's final message is its outcome."""
        function = self.functions[keys.JOB_NAME]
        done, defer_to_ms = True, None
        try:
            if claim.job is None:
                log.warning("job_expired", extra={"job_id": job_id})
                self.jobs_failed += 1
                return
            _, args, kwargs, _, enqueue_time_ms = deserialize_job_raw(claim.job, deserializer=self.job_deserializer)
            if claim.job_try > cast("int", function.max_tries):
                log.warning("job_tries_exhausted", extra={"job_id": job_id, "try": claim.job_try})
                self.jobs_failed += 1
                return
            ctx = {**self.ctx, "job_id": job_id, "job_try": claim.job_try, "score": claim.score,
                   "enqueue_time": ms_to_datetime(enqueue_time_ms)}
            async with asyncio.timeout(function.timeout_s):
                await function.coroutine(ctx, *args, **kwargs)
            self.jobs_complete += 1
        except Retry as retry:
            self.jobs_retried += 1
            done, defer_to_ms = False, timestamp_ms() + retry.defer_score if retry.defer_score else None
        except asyncio.CancelledError:
            # handed back (`_hand_back`): the job stays queued for another worker. The task ends here, as
            # arq's does: the poll loop reads every finished task's result, and the stop is already under way.
            self.jobs_retried += 1
            done = False
        except Exception:
            log.exception("job_failed", extra={"job_id": job_id, "try": claim.job_try})
            self.jobs_failed += 1
        finally:
            await asyncio.shield(finish_job(self.pool, self.queue_name, job_id, done=done, defer_to_ms=defer_to_ms))

    async def _wait_for_tasks_to_complete(self, signum: Any) -> None:
        """After SIGTERM: give running jobs `shutdown_grace_s`, then hand the rest back (replaces arq's)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._job_completion_wait
        log.info("stopping: no new jobs; %d running get up to %.1f s", self.running_jobs(), self._job_completion_wait)
        running = [task for task in self.tasks.values() if not task.done()]
        if running:
            await asyncio.wait(running, timeout=max(0.0, deadline - loop.time()))
        self._hand_back()
        self.stop_requested = True
        self.main_task and self.main_task.cancel()
        self.on_stop and self.on_stop(signum)

    def handle_sig(self, signum: Any) -> None:
        """Immediate stop (no grace): every running job is handed back."""
        self.allow_pick_jobs = False
        self._hand_back()
        self.stop_requested = True
        self.main_task and self.main_task.cancel()
        self.on_stop and self.on_stop(signum)

    def _hand_back(self) -> None:
        """Cancel the running jobs: arq releases their in-progress keys and leaves them queued."""
        running = [task for task in self.tasks.values() if not task.done()]
        if running:
            log.warning("handing back %d running jobs to the queue", len(running))
            JOBS_HANDED_BACK.inc(len(running))
            self.monitor.handed_back += len(running)
        for task in running:
            task.cancel()

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
            honour_cancel()  # a stop that redis-py swallowed during the renewal


async def expire_chat_threads(ctx: dict[str, Any]) -> int:
    """The hourly cron job: delete chat threads not updated for `SWITCHBOARD_CHAT_THREAD_EXPIRY_DAYS`. arq
    enqueues it once per run time whatever the number of workers; a second run would delete nothing."""
    deps = ctx["deps"]
    deleted = await delete_expired(deps.sessions, deps.settings.chat_thread_expiry_days, utcnow())
    log.info("chat_threads_expired", extra={"threads": deleted})
    return deleted


async def _startup(ctx: dict[str, Any]) -> None:
    deps = ctx["deps"] = build_deps(ctx["settings"], ctx["redis"])
    cancellations = Cancellations(ctx["redis"])
    await cancellations.start()
    ctx["cancellations"] = cancellations
    worker: SwitchboardWorker | None = ctx.get("worker")
    if worker is not None and not worker.burst and worker.allow_pick_jobs:  # not a burst worker, nor one stopping
        controller = Controller(deps.sessions, deps.redis, interval_s=deps.settings.rollout_check_s)
        ctx["rollouts"] = asyncio.create_task(controller.run(), name="switchboard-rollout-controller")


async def _shutdown(ctx: dict[str, Any]) -> None:
    rollouts: asyncio.Task[None] | None = ctx.pop("rollouts", None)
    if rollouts is not None:
        rollouts.cancel()
        await asyncio.gather(rollouts, return_exceptions=True)
    worker: SwitchboardWorker | None = ctx.get("worker")
    if worker is not None:
        await worker.monitor.stopped()
    cancellations: Cancellations | None = ctx.pop("cancellations", None)
    if cancellations is not None:
        await cancellations.close()
    deps = ctx.get("deps")
    if deps is not None:
        await deps.close()


def build_worker(settings: Settings, *, burst: bool = False, **overrides: Any) -> SwitchboardWorker:
    """The worker of `switchboard worker`; `metrics_port=settings.worker_metrics_port` serves `/metrics`
    (the command line passes it; in-process workers of tests serve none)."""
    url = redis_url(settings.redis_url, settings.data_dir)
    options: dict[str, Any] = dict(
        functions=[func(run_action, name=keys.JOB_NAME, timeout=settings.job_timeout_s + JOB_TIMEOUT_MARGIN_S,
                        max_tries=MAX_TRIES + 1 + ARQ_TRIES_MARGIN)],
        cron_jobs=[cron(expire_chat_threads, minute=17, timeout=300)],
        queue_name=keys.QUEUE,
        # the idle worker's BLPOP on the wake-up list blocks for up to `poll_delay_s` on this pool
        redis_pool=connect(url, max_connections=settings.redis_max_connections,
                           socket_timeout=SOCKET_TIMEOUT_S + settings.poll_delay_s),
        max_jobs=settings.worker_max_jobs,
        poll_delay=settings.poll_delay_s,
        keep_result=60,
        burst=burst,
        on_startup=_startup,
        on_shutdown=_shutdown,
        ctx={"settings": settings},
        job_lease_s=settings.job_lease_s,
        job_completion_wait=settings.shutdown_grace_s,
        health_check_interval=HEALTH_CHECK_INTERVAL_S,
    )
    options.update(overrides)
    worker = SwitchboardWorker(**options)
    worker.ctx["worker"] = worker
    return worker
