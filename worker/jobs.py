"""The arq job: the one place that decides retries, and that every accepted request ends in a final message.

Retried (up to 3 times, arq `Retry(defer=…)`): rate limits (429/529) with exponential backoff honouring the
provider's `retry-after`, and other retryable provider errors (5xx, a lost connection, a cut stream). Not
retried: time-outs (the user already waited the whole timeout), refusals, an open circuit. The last try's
error reaches the user as a text with GitLab's error code (`core.errors.user_facing_text`).

A job may run more than once (a retry, or another worker taking over from one that died): the final
message is guarded in Redis, so a second run after the final is a no-op, and a run that restarts a stream
restarts its chunks at 1.

Every request that ends here with its answer or its user-facing error is counted once, by the run that
published its final message: the completion SLI (`core.metrics.record_completion`) and the guarded
rollouts' cohort counters (`core.metrics.record_cohort`, in memory until the monitor's flush, with the
model the selection chose); refusals and cancels are not completions.

A request stopped by `aiActionCancel` (`worker.cancel`): a job that starts (or retries) after the cancel
runs no model and ends with an empty cancelled final; a running one stops its model call when the cancel
reaches this process's listener (`ctx["cancellations"]`; absent in inline execution).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from contextlib import AbstractAsyncContextManager
from typing import Any

from arq import Retry

from core.actions import ActionRecord
from core.errors import ProviderError, user_facing_text
from core.logs import EXPANDED_FLAG, expanded, expanded_logging
from core.metrics import Failure, record_cohort, record_completion, record_failure, record_refusal
from core.redis import record_owner
from worker.cancel import Cancellations, job_start, record_cancelled
from worker.deps import Deps, build_deps
from worker.pipeline import Measured, execute, publish_cancelled, publish_failure

__all__ = [
    "InlineRunner", "run_action", "run_inline", "MAX_TRIES", "ARQ_TRIES_MARGIN", "MAX_RETRY_DELAY_S", "JOB_TIMEOUT_MARGIN_S", "retry_delay",
]

log = logging.getLogger(__name__)

# Tries of the pipeline (1 + 3 retries). arq is given one more, so that a job whose last try died with its
# worker still gets a run that publishes the failure.
MAX_TRIES = 4


# A try past MAX_TRIES only publishes the final error. arq's own limit, which ends a job with no final at all,
# sits this many tries above it: for workers that die (SIGKILL, lost host) during those last tries.
ARQ_TRIES_MARGIN = 5

# A provider asking for a longer wait than this is not waited for longer.
MAX_RETRY_DELAY_S = 60.0

# A try's pipeline is bounded by `job_timeout_s` here; arq's own limit is this much longer, so that a try
# that runs out of time still publishes its time-out final (arq's limit would end it with no final at all).
JOB_TIMEOUT_MARGIN_S = 10.0


def retry_delay(job_try: int, retry_after: float | None, base_s: float = 1.0) -> float:
    """Exponential backoff: `base_s` (1 s), then ×2·(1+random); a provider's `retry-after` wins when longer."""
    delay = base_s
    for _ in range(job_try - 1):
        delay *= 2 * (1 + random.random())
    return min(max(delay, retry_after or 0.0), MAX_RETRY_DELAY_S)


async def run_action(ctx: dict[str, Any], record_json: str) -> str:
    deps: Deps = ctx["deps"]
    record = ActionRecord.model_validate_json(record_json)
    job_try: int = ctx.get("job_try", 1)
    async with _watch(ctx.get("cancellations"), record.request_id) as stop:
        start = await job_start(deps.redis, record.request_id)  # after the watch: no cancel falls in between
        if start.final_published:  # another run ended the request
            return "done before"
        if start.cancel_requested:  # cancelled while queued, or before this retry: no model call
            if not await publish_cancelled(deps, record, ""):
                return "done before"
            record_cancelled(record.request_id, record.feature, "queued", 0)
            return "cancelled"
        return await _run(deps, record, job_try, stop)


def _watch(cancellations: Cancellations | None, request_id: str) -> AbstractAsyncContextManager[asyncio.Event | None]:
    return cancellations.watch(request_id) if cancellations is not None else contextlib.nullcontext(None)


async def _run(deps: Deps, record: ActionRecord, job_try: int, stop: asyncio.Event | None) -> str:
    if job_try > MAX_TRIES:
        await _failed(deps, record, None, job_try - 1)
        return "gave up"
    measured = Measured()
    try:
        with expanded_logging(record.flags.get(EXPANDED_FLAG, False)):
            # Each chunk restarts a model call's own timeout, so a steady stream (or many agent steps) could
            # otherwise outlast the job's time.
            async with asyncio.timeout(deps.settings.job_timeout_s):
                outcome = await execute(deps, record, attempt=job_try - 1, stop=stop, measured=measured)
    except asyncio.CancelledError:
        raise
    except ProviderError as exc:
        if exc.retryable and job_try < MAX_TRIES:
            delay = retry_delay(job_try, getattr(exc, "retry_after", None), deps.settings.retry_base_delay_s)
            log.info("retrying_request", extra={"request_id": record.request_id, "feature": record.feature,
                                                "try": job_try, "delay_s": round(delay, 3), "error": type(exc).__name__})
            raise Retry(defer=delay) from exc
        log.warning("completion_failed", extra={  # the provider's own text only under expanded AI logging
            "request_id": record.request_id, "feature": record.feature, "try": job_try, "error": type(exc).__name__,
            "provider": exc.provider, "status": exc.status, "detail": exc.loggable_detail,
            **expanded(record.flags.get(EXPANDED_FLAG, False), provider_detail=exc.detail)})
        await _failed(deps, record, exc, job_try, measured)
        return "failed"
    except TimeoutError as exc:  # the try's whole time (`job_timeout_s`) is up: a time-out, not retried
        log.warning("job_timed_out", extra={"request_id": record.request_id, "feature": record.feature,
                                            "try": job_try, "timeout_s": deps.settings.job_timeout_s})
        await _failed(deps, record, exc, job_try, measured)
        return "failed"
    except Exception as exc:  # anything else ends the request with a user-facing error, never a raw one
        log.exception("completion failed", extra={"request_id": record.request_id})
        await _failed(deps, record, exc, job_try, measured)
        return "failed"
    if outcome == "refused":  # an answer, but no completion: the SLI does not count it
        record_refusal(record.feature)
    elif outcome == "answered":
        _ended(deps, record, measured, ok=True)
    return outcome


async def _failed(
    deps: Deps, record: ActionRecord, exc: Exception | None, tries: int, measured: Measured | None = None
) -> None:
    """End the request with its user-facing error, count it (unless another run had published its final), and keep it
    with its reason for `/admin` (`core.metrics.record_failure`). No `exc`: every try of the job ended
    without a result (workers died mid-job)."""
    text = user_facing_text(exc)
    if await publish_failure(deps, record, text):
        _ended(deps, record, measured, ok=False)
    provider = exc if isinstance(exc, ProviderError) else None
    await record_failure(deps.redis, Failure(
        at=time.time(), request_id=record.request_id, feature=record.feature, error=text,
        error_class=type(exc).__name__ if exc is not None else "TriesExhausted",
        model=provider.model if provider is not None else None, status=provider.status if provider is not None else None,
        tries=tries,
    ))


def _ended(deps: Deps, record: ActionRecord, measured: Measured | None, *, ok: bool) -> None:
    """The completion SLI and the cohort counters (`core.metrics`, counted in memory): once per request,
    when its final message went out (a refusal is not a completion, and a run that found the final
    published already counts nothing)."""
    seconds = time.time() - record.enqueued_at
    record_completion(record.feature, ok=ok, seconds=seconds)
    if measured is None or measured.cohort is None:  # no model was called
        return
    record_cohort(deps.cohorts, measured.cohort, ok=ok, seconds=seconds,
                  first_chunk_s=measured.answer.first_chunk_s if measured.answer else None)


async def run_inline(ctx: dict[str, Any], settings: Any, redis: Any, record_json: str) -> str:
    """Run one action in the calling process (`SWITCHBOARD_SYNC_EXECUTION`), retries included;
    `ctx` caches the deps between calls."""
    if "deps" not in ctx:
        ctx["deps"] = build_deps(settings, redis)
    for job_try in range(1, MAX_TRIES + 2):
        try:
            return await run_action({"deps": ctx["deps"], "job_try": job_try}, record_json)
        except Retry as retry:
            await asyncio.sleep((retry.defer_score or 0) / 1000)
    return "gave up"


class InlineRunner:
    """Runs actions in the web process (`SWITCHBOARD_SYNC_EXECUTION`, GitLab's `perform_inline`): the CLI
    hands one to `create_app`, so that `api` never imports the worker. The deps are built on first use."""

    def __init__(self, settings: Any) -> None:
        self._settings = settings
        self._ctx: dict[str, Any] = {}

    async def __call__(self, redis: Any, record_json: str) -> str:
        """Run the action; no cancel stops it midway (the caller has no request id yet), but its owner is
        recorded, so that a cancel afterwards finds a finished request."""
        await record_owner(redis, ActionRecord.model_validate_json(record_json))
        return await run_inline(self._ctx, self._settings, redis, record_json)

    async def close(self) -> None:
        deps = self._ctx.pop("deps", None)
        if deps is not None:
            await deps.close()
