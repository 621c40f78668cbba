"""Scenario 2, throughput: sustained end-to-end actions/s (SPEC §12: ≥ 500/s, goal 1,000), as a ratio to
bare arq no-op jobs/s measured in the same run on the same Redis.

64 closed-loop clients each send a chat mutation without `clientSubscriptionId` (final message only) and
wait for its final on a subscriber of `{userId, aiAction: CHAT}` before sending the next: 64 actions are in
flight all the time. actions/s = finals received in the window / window length (after a warm-up).
"""

from __future__ import annotations

import asyncio

from bench.client import GraphQLHttp, Socket, chat_body, subscription_query
from bench.load import closed_loop, round_trip_action
from bench.report import Result
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
    try:
        await socket.subscribe([("1", subscription_query(stack.gid()))])
        await asyncio.sleep(0.3)
        phase = await closed_loop(stack, round_trip_action(http, finals, lambda: body), clients=CLIENTS,
                                  duration=duration, warmup=warmup)
    finally:
        await socket.close()
        await http.close()

    rate, failures = phase["actions_per_s"], phase["failures"]
    result.details["cpu_percent"] = phase["cpu_percent"]
    result.details["redis_calls_per_action"] = phase["redis_calls_per_action"]
    result.details.update(
        actions_per_s=rate, clients=CLIENTS, window_s=phase["window_s"], finals_in_window=phase["actions"],
        failures=failures, first_failures=phase["first_failures"], end_to_end_ms_under_load=phase["latency_ms"],
        finals_with_errors=finals.errors, socket_errors=socket.errors[:5], phase=phase,
        method="closed loop (bench/load.py): each of 64 clients POSTs a chat mutation (no clientSubscriptionId) and "
        "waits for its final on a {userId, aiAction: CHAT} subscription before the next; bare arq: a pre-filled queue "
        "drained by an arq worker with a no-op job (max_jobs 2000).",
    )
    result.add(f"actions/s end to end ({CLIENTS} in flight, {phase['window_s']:.0f} s)", rate, "actions/s",
               "≥ 500 (goal 1,000)", rate >= 500)
    result.add("end-to-end latency under load p50", phase["latency_ms"].get("p50", 0.0), "ms")
    result.add("end-to-end latency under load p99", phase["latency_ms"].get("p99", 0.0), "ms")
    result.add_calls("Redis commands per action", phase["redis_calls_per_action"])
    result.add("finals missing (30 s timeout), failed mutations, error finals", failures, "", "0", failures == 0)
    if phase["first_failures"]:
        result.add("first failure", phase["first_failures"][0])
