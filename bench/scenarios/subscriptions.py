"""Scenario 4, subscriptions: one web process holding 10,000 concurrent subscriptions at ≤ 20 KB each when
clients multiplex and ≤ 30 KB with one websocket per subscription,
with a constant number of Redis connections (SPEC §12).

Two layouts, each on a fresh stack: 100 websockets × 100 subscriptions (10,000; quick 10 × 100), and one
websocket per subscription (2,000; quick 500). Every subscription has its own `clientSubscriptionId` route.
KB per subscription = (web VmRSS with the subscriptions open − VmRSS before) / subscriptions. Redis
connections of the web process are counted by the kernel (psutil), and `CLIENT LIST` is counted in total.
Finally a chat mutation is sent to each route of a sample, and delivery of its final is checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

from redis.asyncio import Redis

from bench.client import (
    GraphQLHttp,
    Socket,
    chat_body,
    close_all,
    open_sockets,
    request_id_of,
    subscription_query,
)
from bench.meters import CpuMeter
from bench.report import Result, percentiles
from bench.stack import HOST, Stack, raise_fd_limit

__all__ = ["run"]

SAMPLE = 50


async def run(quick: bool) -> Result:
    result = Result("subscriptions")
    result.details["fd_limit"] = raise_fd_limit()
    layouts = [("100 subs/websocket", 1_000 if quick else 10_000, 100), ("1 sub/websocket", 500 if quick else 2_000, 1)]
    for label, total, per_socket in layouts:
        with Stack() as stack:
            async with asyncio.timeout(300):
                await _measure(stack, label, total, per_socket, result)
    return result


async def _client_count(redis: Redis) -> int:
    return len(await redis.client_list())


async def _settled_rss(stack: Stack, max_s: float = 10.0) -> int:
    """The web process's RSS once it stops growing (subscriptions register after the last `subscribe`)."""
    previous = stack.rss_kb("web")
    deadline = time.monotonic() + max_s
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        current = stack.rss_kb("web")
        if abs(current - previous) < max(256, previous // 500):
            return current
        previous = current
    return previous


async def _warm_up(stack: Stack, http: GraphQLHttp) -> None:
    """Exercise every code path once so that lazy imports and caches do not count as subscription memory."""
    got = asyncio.Event()
    socket = await Socket(stack.ws_url, stack.token(), lambda s, d, t: got.set() if d.get("chunkId") is None else None).open()
    await socket.subscribe([("w", subscription_query(stack.gid(), "warm-up"))])
    await asyncio.sleep(0.3)
    request_id_of(await http.post(chat_body("hello", "warm-up")))
    await asyncio.wait_for(got.wait(), 10)
    await socket.close()
    await asyncio.sleep(0.5)


async def _measure(stack: Stack, label: str, total: int, per_socket: int, result: Result) -> None:
    finals: dict[str, tuple[float, str]] = {}
    final_arrived = asyncio.Event()

    def on_message(sub_id: str, data: dict, arrived: float) -> None:
        if data.get("chunkId") is None and data.get("role") == "ASSISTANT":
            finals[sub_id] = (arrived, data.get("content") or "")
            final_arrived.set()

    http = GraphQLHttp(HOST, stack.web_port, stack.token(), size=16)
    redis = Redis.from_url(stack.redis_url)
    sockets: list[Socket] = []
    try:
        await _warm_up(stack, http)
        rss_before = await _settled_rss(stack, 3)
        conns_before, clients_before = stack.redis_connections("web"), await _client_count(redis)
        meter = CpuMeter(stack)
        meter.start()
        t0 = time.perf_counter()
        sockets = await open_sockets(stack.ws_url, stack.token(), on_message, total // per_socket)
        for n, socket in enumerate(sockets):
            ids = range(n * per_socket, (n + 1) * per_socket)
            await socket.subscribe((str(i), subscription_query(stack.gid(), f"sub-{i}")) for i in ids)
        subscribe_s = time.perf_counter() - t0
        rss_after = await _settled_rss(stack)
        cpu = meter.stop()
        conns_after, clients_after = stack.redis_connections("web"), await _client_count(redis)

        sample = sorted(random.Random(7).sample(range(total), min(SAMPLE, total)))
        sent: dict[str, float] = {}
        for i in sample:  # one at a time, so that each delivery time is a latency, not a queue
            sent[str(i)] = time.perf_counter()
            request_id_of(await http.post(chat_body("hello", f"sub-{i}")))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    while str(i) not in finals:
                        final_arrived.clear()
                        await final_arrived.wait()
        await asyncio.sleep(0.5)  # anything stray arrives
        delivered = [s for s in sent if finals.get(s, (0, ""))[1] == "echo: hello"]
        latency = percentiles([(finals[s][0] - sent[s]) * 1000 for s in delivered])
        stray = sorted(set(finals) - set(sent))
        socket_errors = [e for s in sockets for e in s.errors]
    finally:
        await close_all(sockets)
        await http.close()
        await redis.aclose()

    per_sub_kb = (rss_after - rss_before) / total
    tag = f"[{label}] "
    full = total >= 10_000
    result.add(tag + "concurrent subscriptions", total, "", "10,000" if per_socket > 1 else "", full if per_socket > 1 and full else None)
    result.add(tag + "websockets", len(sockets))
    result.add(tag + "web RSS before → with subscriptions", f"{rss_before / 1024:,.1f} → {rss_after / 1024:,.1f}", "MB")
    limit_kb = 20 if per_socket > 1 else 30  # SPEC §12: multiplexed, and one websocket per subscription
    result.add(tag + "memory per subscription", per_sub_kb, "KB", f"≤ {limit_kb} KB", per_sub_kb <= limit_kb)
    result.add(tag + "web process Redis connections before → after", f"{conns_before} → {conns_after}", "", "constant",
               conns_after == conns_before)
    result.add(tag + "Redis CLIENT LIST (all processes) before → after", f"{clients_before} → {clients_after}", "",
               "constant", clients_after == clients_before)
    result.add(tag + "client: time to open websockets and send all subscribes", subscribe_s * 1000, "ms")
    ok = len(delivered) == len(sample) and not stray and not socket_errors
    result.add(tag + "sample routes delivered (final only to its own route)", f"{len(delivered)} / {len(sample)}",
               "", "all", ok)
    result.add(tag + "sample delivery aiAction → final p50", latency.get("p50", 0.0), "ms")
    result.add(tag + "sample delivery aiAction → final max", latency.get("max", 0.0), "ms")
    result.details[label] = {
        "subscriptions": total, "websockets": len(sockets), "rss_before_kb": rss_before, "rss_after_kb": rss_after,
        "kb_per_subscription": round(per_sub_kb, 2), "web_redis_connections": [conns_before, conns_after],
        "redis_client_list": [clients_before, clients_after], "subscribe_s": round(subscribe_s, 2),
        "sample": len(sample), "delivered": len(delivered), "stray_deliveries": stray[:10],
        "delivery_ms": latency, "socket_errors": socket_errors[:5], "cpu_percent_while_subscribing": cpu,
    }
