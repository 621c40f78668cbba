"""Scenario 1, latency: one subscriber, N sequential chat mutations; time from just before the POST to the
request's final message on the websocket (SPEC §12: p50 ≤ 5 ms, p99 ≤ 20 ms)."""

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
from bench.stack import HOST, Stack
from bench.waiters import Finals

__all__ = ["run"]

WARMUP = 50
ROUTE = "bench-latency"


async def run(quick: bool) -> Result:
    result = Result("latency")
    count = 100 if quick else 1000
    with Stack() as stack:
        async with asyncio.timeout(60 + count * 0.5):
            await _measure(stack, count, result)
    return result


async def _measure(stack: Stack, count: int, result: Result) -> None:
    finals = Finals()
    socket = await Socket(stack.ws_url, stack.token(), finals.on_message).open()
    http = GraphQLHttp(HOST, stack.web_port, stack.token(), size=1)
    try:
        await socket.subscribe([("1", subscription_query(stack.gid(), ROUTE))])
        await asyncio.sleep(0.3)  # no ack for `subscribe`
        body = chat_body("ping", ROUTE)
        meter, calls = CpuMeter(stack), RedisCalls(stack)
        total_ms: list[float] = []
        http_ms: list[float] = []
        missing = 0
        started = 0.0
        for i in range(WARMUP + count):
            if i == WARMUP:
                meter.start()
                calls.start()
                started = time.perf_counter()
            t0 = time.perf_counter()
            response = await http.post(body)
            t1 = time.perf_counter()
            try:
                arrived, message = await finals.wait(request_id_of(response), timeout_s=10)
            except TimeoutError:
                missing += 1
                continue
            if i >= WARMUP:
                total_ms.append((arrived - t0) * 1000)
                http_ms.append((t1 - t0) * 1000)
            if message.get("content") != "echo: ping":
                raise RuntimeError(f"unexpected final message: {message}")
        elapsed = time.perf_counter() - started
        result.details["cpu_percent"] = meter.stop()
        result.details["redis_calls_per_request"] = calls.stop(per=count)
    finally:
        await socket.close()
        await http.close()

    total = percentiles(total_ms)
    mutation = percentiles(http_ms)
    result.add("requests measured (after 50 warm-up)", len(total_ms))
    result.add("aiAction → final p50", total["p50"], "ms", "≤ 5 ms", total["p50"] <= 5)
    result.add("aiAction → final p90", total["p90"], "ms")
    result.add("aiAction → final p99", total["p99"], "ms", "≤ 20 ms", total["p99"] <= 20)
    result.add("aiAction → final max", total["max"], "ms")
    result.add("of which HTTP mutation round trip p50", mutation["p50"], "ms")
    result.add("of which HTTP mutation round trip p99", mutation["p99"], "ms")
    result.add_calls("Redis commands per request", result.details["redis_calls_per_request"])
    result.add("finals missing (10 s timeout)", missing, "", "0", missing == 0)
    result.details.update(
        end_to_end_ms=total, mutation_ms=mutation, missing=missing, elapsed_s=round(elapsed, 2),
        method="one websocket subscribed on {userId, aiAction: CHAT, clientSubscriptionId}; sequential POSTs over "
        "one keep-alive HTTP/1.1 connection; time from just before the POST to the final message (chunkId null).",
    )
