"""Scenario 2, throughput: sustained end-to-end actions/s (SPEC §12: ≥ 500/s, goal 1,000), as a ratio to
bare arq no-op jobs/s measured in the same run on the same Redis.

64 closed-loop clients each send a chat mutation without `clientSubscriptionId` (final message only) and
wait for its final on a subscriber of `{userId, aiAction: CHAT}` before sending the next: 64 actions are in
flight all the time. actions/s = finals received in the window / window length (after a warm-up).
"""

from __future__ import annotations

import asyncio
import time

from bench.client import (
    GraphQLHttp,
    Socket,
    chat_body,
    request_id_of,
    subscription_query,
)
from bench.meters import CpuMeter, RedisCalls
from bench.report import Result, percentiles
from bench.scenarios import bare_arq
from bench.stack import HOST, Stack
from bench.waiters import Finals

__all__ = ["run"]

CLIENTS = 64
MAX_JOBS = 2000  # Switchboard's default SWITCHBOARD_WORKER_MAX_JOBS, also given to bare arq


async def run(quick: bool) -> Result:
    result = Result("throughput")
    duration = 3.0 if quick else 10.0
    with Stack() as stack:
        async with asyncio.timeout(duration + 60):
            await _switchboard(stack, duration, 0.5 if quick else 2.0, result)
        baselines = []
        for poll_delay in (0.5, 0.01):
            async with asyncio.timeout(duration + 60):
                jobs = 5_000 if quick else 30_000
                baselines.append(await bare_arq.measure(stack, poll_delay=poll_delay, jobs=jobs, max_s=duration, max_jobs=MAX_JOBS))
    rate = result.details["actions_per_s"]
    result.details["bare_arq"] = baselines
    for base in baselines:
        result.add(f"bare arq no-op jobs/s (poll_delay {base['poll_delay_s']} s)", base["jobs_per_s"], "jobs/s")
    for base in baselines:
        ratio = rate / base["jobs_per_s"] if base["jobs_per_s"] else 0.0
        result.add(f"ratio Switchboard / bare arq (poll_delay {base['poll_delay_s']} s)", ratio)
    return result


async def _switchboard(stack: Stack, duration: float, warmup: float, result: Result) -> None:
    finals = Finals()
    socket = await Socket(stack.ws_url, stack.token(), finals.on_message).open()
    http = GraphQLHttp(HOST, stack.web_port, stack.token(), size=CLIENTS)
    body = chat_body("ping")
    stop = asyncio.Event()
    done = 0
    missing = 0
    failures: list[str] = []  # mutations refused or failed, and finals carrying errors
    window: list[float] = []  # end-to-end ms of actions finished inside the measured window
    measuring = False

    async def client() -> None:
        nonlocal done, missing
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                request_id = request_id_of(await http.post(body))
                arrived, message = await finals.wait(request_id, timeout_s=30)
            except TimeoutError:
                missing += 1
                continue
            except Exception as exc:  # counted and shown; the load goes on
                failures.append(f"{type(exc).__name__}: {exc}"[:200])
                await asyncio.sleep(0.05)
                continue
            if message.get("errors"):
                failures.append(f"final with errors: {message['errors']}"[:200])
                continue
            done += 1
            if measuring:
                window.append((arrived - t0) * 1000)

    try:
        await socket.subscribe([("1", subscription_query(stack.gid()))])
        await asyncio.sleep(0.3)
        tasks = [asyncio.create_task(client()) for _ in range(CLIENTS)]
        try:
            await asyncio.sleep(warmup)
            meter, calls = CpuMeter(stack), RedisCalls(stack)
            meter.start()
            calls.start()
            measuring = True
            done_0, t0 = done, time.perf_counter()
            await asyncio.sleep(duration)
            done_1, t1 = done, time.perf_counter()
            measuring = False
            result.details["cpu_percent"] = meter.stop()
            result.details["redis_calls_per_action"] = calls.stop(per=done_1 - done_0)
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 40)
        finally:
            for task in tasks:
                task.cancel()
    finally:
        await socket.close()
        await http.close()

    elapsed = t1 - t0
    rate = (done_1 - done_0) / elapsed  # finals with an answer (not errors), received in the window
    latency = percentiles(window)
    result.details.update(
        actions_per_s=round(rate, 1), clients=CLIENTS, window_s=round(elapsed, 2), finals_in_window=done_1 - done_0,
        failures=len(failures), first_failures=failures[:5], end_to_end_ms_under_load=latency,
        finals_with_errors=finals.errors, missing=missing, socket_errors=socket.errors[:5],
        method="closed loop: each of 64 clients POSTs a chat mutation (no clientSubscriptionId) and waits for its final "
        "on a {userId, aiAction: CHAT} subscription before the next; bare arq: a pre-filled queue drained by an arq "
        "worker with a no-op job (max_jobs 2000).",
    )
    result.add(f"actions/s end to end ({CLIENTS} in flight, {elapsed:.0f} s)", rate, "actions/s", "≥ 500 (goal 1,000)", rate >= 500)
    result.add("end-to-end latency under load p50", latency.get("p50", 0.0), "ms")
    result.add("end-to-end latency under load p99", latency.get("p99", 0.0), "ms")
    result.add_calls("Redis commands per action", result.details["redis_calls_per_action"])
    result.add("finals missing, failed mutations, error finals", missing + len(failures), "", "0",
               missing + len(failures) == 0)
    if failures:
        result.add("first failure", failures[0])
