"""The arq job: the one place that decides retries, and that every accepted request ends in a final message.

A job may run more than once (a retry, or another worker taking over from one that died): the final
message is guarded in Redis, so a second run after the final is a no-op, and a run that restarts a stream
restarts its chunks at 1.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from arq import Retry

from core.actions import ActionRecord
from core.errors import ProviderError, user_facing_text
from worker.deps import Deps, build_deps
from worker.pipeline import execute, publish_failure

__all__ = ["run_action", "run_inline", "MAX_TRIES", "retry_delay"]

log = logging.getLogger(__name__)

# Tries of the pipeline (1 + 3 retries). arq is given one more, so that a job whose last try died with its
# worker still gets a run that publishes the failure.
MAX_TRIES = 4


def retry_delay(job_try: int, retry_after: float | None) -> float:
    """Exponential backoff: 1 s, then ×2·(1+random); a provider's `retry-after` wins when longer."""
    delay = 1.0
    for _ in range(job_try - 1):
        delay *= 2 * (1 + random.random())
    return max(delay, retry_after or 0.0)


async def run_action(ctx: dict[str, Any], record_json: str) -> str:
    deps: Deps = ctx["deps"]
    record = ActionRecord.model_validate_json(record_json)
    job_try: int = ctx.get("job_try", 1)
    if await deps.publisher.has_final(record.request_id):
        return "done before"
    if job_try > MAX_TRIES:
        await publish_failure(deps, record, user_facing_text(None))
        return "gave up"
    try:
        await execute(deps, record, attempt=job_try - 1)
    except asyncio.CancelledError:
        raise
    except ProviderError as exc:
        if exc.retryable and job_try < MAX_TRIES:
            delay = retry_delay(job_try, getattr(exc, "retry_after", None))
            log.info("retrying_request", extra={"request_id": record.request_id, "try": job_try, "delay_s": delay})
            raise Retry(defer=delay) from exc
        log.warning("error_response_received", extra={"request_id": record.request_id, "error": str(exc)})
        await publish_failure(deps, record, user_facing_text(exc))
        return "failed"
    except Exception as exc:  # anything else ends the request with a user-facing error, never a raw one
        log.exception("completion failed", extra={"request_id": record.request_id})
        await publish_failure(deps, record, user_facing_text(exc))
        return "failed"
    return "answered"


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
