"""The closed-loop load every scenario under sustained load shares, and what it measures over its window.

`closed_loop` runs `clients` tasks, each repeating `act()` (one user action, start to final) for a warm-up,
then a measured window, then until told to stop. Over the window it reads the CPU of web, worker and Redis
(and of this client), Redis commands (`INFO commandstats`, Lua-internal ones included) and round trips, and
divides them by the actions finished in the window.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.client import GraphQLHttp, request_id_of
from bench.meters import CpuMeter, RedisCalls
from bench.report import percentiles
from bench.stack import Stack
from bench.waiters import Finals

__all__ = ["Act", "closed_loop", "round_trip_action", "SERVER"]

SERVER = ("web", "worker")  # SPEC §12's CPU per action: web + worker; Redis is reported apart

# One action: returns its latency in ms (what the scenario times); raises on failure.
Act = Callable[[], Awaitable[float]]


def round_trip_action(http: GraphQLHttp, finals: Finals, body: Callable[[], bytes], *, timeout_s: float = 30) -> Act:
    """POST an `aiAction` mutation and wait for its final message; the time from just before the POST to the
    final's arrival. A final carrying errors is a failure."""

    async def act() -> float:
        t0 = time.perf_counter()
        request_id = request_id_of(await http.post(body()))
        arrived, message = await finals.wait(request_id, timeout_s=timeout_s)
        if message.get("errors"):
            raise RuntimeError(f"final with errors: {message['errors']}")
        return (arrived - t0) * 1000

    return act


async def closed_loop(stack: Stack, act: Act, *, clients: int, duration: float, warmup: float,
                      names: tuple[str, ...] | None = None,
                      probe: Callable[[], dict[str, float]] | None = None) -> dict[str, Any]:
    """Run the load; figures of the measured window (per action: CPU ms per process, Redis commands and
    round trips; actions/s; latency percentiles in ms; failures with the first few texts).

    `names`: the stack's processes whose CPU is metered (default web, worker, redis). `probe`: read at the
    window's start and end; its deltas per action are returned under "probe_per_action"."""
    stop = asyncio.Event()
    done = 0
    failures: list[str] = []
    window: list[float] = []
    measuring = False

    async def client() -> None:
        nonlocal done
        while not stop.is_set():
            try:
                latency_ms = await act()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # counted and shown; the load goes on
                failures.append(f"{type(exc).__name__}: {exc}"[:200])
                await asyncio.sleep(0.05)
                continue
            done += 1
            if measuring:
                window.append(latency_ms)

    tasks = [asyncio.create_task(client()) for _ in range(clients)]
    try:
        await asyncio.sleep(warmup)
        meter, calls = CpuMeter(stack, names), RedisCalls(stack)
        probed = probe() if probe else {}
        meter.start()
        calls.start()
        measuring = True
        done_0, failed_0, t0 = done, len(failures), time.perf_counter()
        await asyncio.sleep(duration)
        done_1, failed_1, t1 = done, len(failures), time.perf_counter()
        measuring = False
        cpu_percent = meter.stop()
        actions = done_1 - done_0
        redis_calls = calls.stop(per=actions)
        probed = {key: value - probed.get(key, 0) for key, value in probe().items()} if probe else {}
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = t1 - t0
    per = max(actions, 1)
    cpu_ms = {name: round(1000 * seconds / per, 3) for name, seconds in meter.seconds.items()}
    cpu_ms["web + worker"] = round(sum(cpu_ms.get(name, 0.0) for name in SERVER), 3)
    return {
        "clients": clients,
        "window_s": round(elapsed, 2),
        "actions": actions,
        "actions_per_s": round(actions / elapsed, 1),
        "cpu_percent": cpu_percent,
        "cpu_ms_per_action": cpu_ms,
        "redis_calls_per_action": redis_calls,
        "redis_commands_processed_per_action": round(calls.commands_processed / per, 1),
        "redis_round_trips_per_action": None if calls.round_trips is None else round(calls.round_trips / per, 1),
        "probe_per_action": {key: value / per for key, value in probed.items()},
        "latency_ms": percentiles(window),
        "failures_in_window": failed_1 - failed_0,
        "failures": len(failures),
        "first_failures": failures[:5],
    }
