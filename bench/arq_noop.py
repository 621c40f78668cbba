"""A bare arq worker with a no-op job: the baseline that Switchboard's throughput is compared with.

    python -m bench.arq_noop REDIS_URL QUEUE_NAME POLL_DELAY_S MAX_JOBS

It sets `<QUEUE_NAME>:ready` in Redis once started, so the bench knows when its clock may start.
Like Switchboard's worker, it keeps results 60 s and logs arq at WARNING (no per-job log lines).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from arq import Worker, func
from arq.connections import RedisSettings

__all__ = ["noop", "JOB_NAME", "build"]

JOB_NAME = "noop"


async def noop(ctx: dict[str, Any]) -> None:
    return None


def build(redis_url: str, queue: str, poll_delay: float, max_jobs: int) -> Worker:
    async def startup(ctx: dict[str, Any]) -> None:
        await ctx["redis"].set(f"{queue}:ready", b"1")

    return Worker(
        functions=[func(noop, name=JOB_NAME)],
        redis_settings=RedisSettings.from_dsn(redis_url),
        queue_name=queue,
        poll_delay=poll_delay,
        max_jobs=max_jobs,
        keep_result=60,
        on_startup=startup,
        handle_signals=True,
    )


def main(argv: list[str]) -> None:
    redis_url, queue, poll_delay, max_jobs = argv
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("arq").setLevel(logging.WARNING)
    build(redis_url, queue, float(poll_delay), int(max_jobs)).run()


if __name__ == "__main__":
    main(sys.argv[1:])
