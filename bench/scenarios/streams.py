"""Scenario 3, streams: one worker holding ≥ 1,000 concurrent model streams (mock `latency_ms=2000`,
20 chunks 100 ms apart), chunk delivery p99 ≤ 50 ms (SPEC §12).

Each of the 1,000 requests has its own `clientSubscriptionId`, subscribed on 10 websockets × 100. Two
variants, each on a fresh stack: the requests sent as `aiAction` mutations (end to end; the web process's
mutation rate decides how many streams overlap), and the same action records enqueued straight onto the
queue with `core.redis.enqueue_action` (what `aiAction` does once its checks pass), so that all 1,000 reach
the worker within a fraction of the 2 s latency and the worker really holds them at once.
Delivery delay = arrival at the client − the chunk's `timestamp` (set by the worker when it created the
chunk; same machine, same clock). Schedule lag = arrival − (POST sent + 2,000 ms + 100 ms × (chunkId − 1)),
which adds the job's start delay and the worker's timer drift.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import psutil
from redis.asyncio import Redis

from bench.client import (
    GraphQLHttp,
    HttpError,
    chat_body,
    close_all,
    open_sockets,
    parse_timestamp,
    request_id_of,
    subscription_query,
    wall_time,
)
from bench.meters import CpuMeter, RedisCalls
from bench.report import Result, percentiles
from bench.stack import HOST, Stack
from core.actions import ActionRecord
from core.redis import connect, enqueue_action

__all__ = ["run"]

WORDS = [f"w{k}" for k in range(1, 21)]
CONTENT = '<response latency_ms="2000" chunk_delay_ms="100">' + " ".join(WORDS) + "</response>"
EXPECTED = " ".join(WORDS)
PER_SOCKET = 100


async def run(quick: bool) -> Result:
    result = Result("streams")
    streams = 1000  # the target itself; --quick keeps it (it takes seconds) so the smoke run exercises it
    for direct in (True, False):
        with Stack() as stack:
            async with asyncio.timeout(120):
                await _measure(stack, streams, result, direct=direct)
    return result


def _sender(
    stack: Stack, direct: bool, refused: list[int]
) -> tuple[Callable[[str], Awaitable[None]], Callable[[], Awaitable[None]]]:
    """(send one request for a subscription id, close). A mutation refused with 503 (SQLite's single writer
    busy while 1,000 streams write their answers) is sent again after its Retry-After, as a client does;
    `refused[0]` counts them."""
    if direct:
        arq = connect(stack.redis_url, max_connections=64)
        user_id = stack.seed["users"]["alice"]["id"]

        async def enqueue(sub_id: str) -> None:
            record = ActionRecord(request_id=str(uuid.uuid4()), feature="chat", user_id=user_id,
                                  inputs={"content": CONTENT}, client_subscription_id=f"stream-{sub_id}")
            await enqueue_action(arq, record)

        return enqueue, arq.aclose
    http = GraphQLHttp(HOST, stack.web_port, stack.token(), size=64)

    async def post(sub_id: str) -> None:
        for _ in range(20):
            try:
                request_id_of(await http.post(chat_body(CONTENT, f"stream-{sub_id}")))
                return
            except HttpError as exc:
                if exc.status != 503:
                    raise
                refused[0] += 1
                await asyncio.sleep(exc.retry_after_s or 1.0)  # the server's Retry-After, as a client honours it
        raise RuntimeError(f"stream-{sub_id}: refused 20 times")

    return post, http.close


class _Tracker:
    def __init__(self) -> None:
        self.delays_ms: list[float] = []  # chunks: arrival − timestamp
        self.final_delays_ms: list[float] = []  # final messages: arrival − timestamp
        self.publish_ms: list[float] = []  # chunks: Redis entry time (cursor) − timestamp: the worker's part
        self.fanout_ms: list[float] = []  # chunks: arrival − Redis entry time: the web process's part
        self.first = self.last = 0.0  # perf_counter of the first and last message received
        self.arrivals: dict[str, list[tuple[int, float]]] = {}  # sub id → (chunkId, arrival perf)
        self.finals: dict[str, str] = {}  # sub id → final content
        self.errors = 0
        self.all_done = asyncio.Event()
        self.expected = 0

    def on_message(self, sub_id: str, data: dict, arrived: float) -> None:
        if data.get("role") != "ASSISTANT":
            return
        if data.get("errors"):
            self.errors += 1
        self.first = self.first or arrived
        self.last = arrived
        chunk = data.get("chunkId")
        created, now = parse_timestamp(data["timestamp"]), wall_time(arrived)
        delay_ms = (now - created) * 1000
        (self.final_delays_ms if chunk is None else self.delays_ms).append(delay_ms)
        if chunk is not None and data.get("cursor"):
            in_redis = int(data["cursor"].partition("-")[0]) / 1000  # the stream entry ID: Redis's ms clock
            self.publish_ms.append((in_redis - created) * 1000)
            self.fanout_ms.append((now - in_redis) * 1000)
        if chunk is None:
            self.finals[sub_id] = data.get("content") or ""
            if len(self.finals) >= self.expected:
                self.all_done.set()
        else:
            self.arrivals.setdefault(sub_id, []).append((chunk, arrived))


async def _sample_jobs(redis: Redis, peaks: dict[str, float], stop: asyncio.Event, stack: Stack) -> None:
    """Peaks of running jobs, queued jobs, and web / worker CPU (% of one core over 0.5 s)."""
    procs = {name: psutil.Process(stack.pid(name)) for name in ("web", "worker")}
    last = {name: (time.perf_counter(), sum(p.cpu_times()[:2])) for name, p in procs.items()}
    while not stop.is_set():
        for name, process in procs.items():
            t, cpu = time.perf_counter(), sum(process.cpu_times()[:2])
            if t - last[name][0] >= 0.5:
                share = 100 * (cpu - last[name][1]) / (t - last[name][0])
                peaks[f"{name}_cpu_percent"] = round(max(peaks.get(f"{name}_cpu_percent", 0), share), 1)
                last[name] = (t, cpu)
        in_progress = len(await redis.keys("arq:in-progress:*"))
        queued = await redis.zcard("switchboard:queue")
        peaks["in_progress"] = max(peaks.get("in_progress", 0), in_progress)
        peaks["queue"] = max(peaks.get("queue", 0), queued)
        try:
            await asyncio.wait_for(stop.wait(), 0.1)
        except TimeoutError:
            pass


async def _measure(stack: Stack, streams: int, result: Result, *, direct: bool) -> None:
    tracker = _Tracker()
    tracker.expected = streams
    sub_ids = [str(i) for i in range(streams)]
    sockets = await open_sockets(stack.ws_url, stack.token(), tracker.on_message, -(-streams // PER_SOCKET))
    refused = [0]
    send_one, close_sender = _sender(stack, direct, refused)
    redis = Redis.from_url(stack.redis_url)
    stop = asyncio.Event()
    peaks: dict[str, float] = {}
    sent: dict[str, float] = {}
    try:
        for n, socket in enumerate(sockets):
            chunk = sub_ids[n * PER_SOCKET:(n + 1) * PER_SOCKET]
            await socket.subscribe((s, subscription_query(stack.gid(), f"stream-{s}")) for s in chunk)
        await asyncio.sleep(1.0)
        sampler = asyncio.create_task(_sample_jobs(redis, peaks, stop, stack))
        meter, calls = CpuMeter(stack), RedisCalls(stack)
        meter.start()
        calls.start()
        gate = asyncio.Semaphore(64)

        async def send(sub_id: str) -> None:
            async with gate:
                sent[sub_id] = time.perf_counter()
                await send_one(sub_id)

        t0 = time.perf_counter()
        await asyncio.gather(*(send(s) for s in sub_ids))
        enqueue_s = time.perf_counter() - t0
        try:
            await asyncio.wait_for(tracker.all_done.wait(), 60)
        except TimeoutError:
            pass
        total_s = time.perf_counter() - t0
        cpu = meter.stop()
        redis_calls = calls.stop(per=streams)
        stop.set()
        await sampler
    finally:
        stop.set()
        await close_all(sockets)
        await close_sender()
        await redis.aclose()

    lags_ms = [
        (arrived - sent[s] - 2.0 - 0.1 * (chunk - 1)) * 1000
        for s, items in tracker.arrivals.items() for chunk, arrived in items
    ]
    complete = sum(1 for s in sub_ids if tracker.finals.get(s) == EXPECTED)
    chunks_ok = sum(1 for s in sub_ids if [c for c, _ in tracker.arrivals.get(s, [])] == list(range(1, 21)))
    delay = percentiles(tracker.delays_ms)
    lag = percentiles(lags_ms)
    chunks = sum(len(v) for v in tracker.arrivals.values())
    peak = peaks.get("in_progress", 0)
    label = "enqueued directly" if direct else "via aiAction"
    tag = f"[{label}] "
    result.add(tag + "peak arq:in-progress jobs (sampled every 0.1 s)", peak, "", "≥ 1,000", peak >= 1000)
    result.add(tag + f"time to {'enqueue' if direct else 'POST'} all {streams:,} requests", enqueue_s * 1000, "ms")
    if not direct:
        result.add(tag + "mutations refused with 503 (busy) and sent again after Retry-After", refused[0])
    result.add(tag + "chunk delivery delay p50 (arrival − timestamp)", delay.get("p50", 0.0), "ms")
    result.add(tag + "chunk delivery delay p99 (arrival − timestamp)", delay.get("p99", 0.0), "ms", "≤ 50 ms",
               delay.get("p99", 1e9) <= 50)
    result.add(tag + "chunk delivery delay max", delay.get("max", 0.0), "ms")
    publish, fanout = percentiles(tracker.publish_ms), percentiles(tracker.fanout_ms)
    result.add(tag + "  of which worker → Redis (cursor − timestamp) p50 / p99",
               f"{publish.get('p50', 0):.1f} / {publish.get('p99', 0):.1f}", "ms")
    result.add(tag + "  of which Redis → client (arrival − cursor) p50 / p99",
               f"{fanout.get('p50', 0):.1f} / {fanout.get('p99', 0):.1f}", "ms")
    result.add(tag + "schedule lag p50 (vs sent + 2 s + 100 ms·(k−1))", lag.get("p50", 0.0), "ms")
    result.add(tag + "schedule lag p99", lag.get("p99", 0.0), "ms")
    received = chunks + len(tracker.finals)
    rate = received / (tracker.last - tracker.first) if tracker.last > tracker.first else 0.0
    result.add(tag + "messages delivered / s (first to last arrival)", rate, "msg/s")
    result.add(tag + "peak CPU web / worker (0.5 s windows)",
               f"{peaks.get('web_cpu_percent', 0):.0f} / {peaks.get('worker_cpu_percent', 0):.0f}", "% of a core")
    web_s = meter.seconds.get("web", 0.0)
    result.add(tag + "web CPU per delivered message" + ("" if direct else " (its mutations included)"),
               1000 * web_s / received if received else 0.0, "ms")
    result.add_calls(tag + "Redis commands per stream (20 chunks + final)", redis_calls)
    result.add(tag + "chunks received / expected", f"{chunks:,} / {streams * 20:,}")
    ok = complete == streams and chunks_ok == streams
    result.add(tag + "finals with full content / chunks 1..20 in order", f"{complete:,} / {chunks_ok:,}", "",
               f"{streams:,} / {streams:,}", ok)
    result.details[label] = dict(
        streams=streams, delivery_delay_ms=delay, final_delivery_delay_ms=percentiles(tracker.final_delays_ms),
        schedule_lag_ms=lag, worker_to_redis_ms=publish, redis_to_client_ms=fanout, peak=peaks, chunks_received=chunks, finals_complete=complete, streams_in_order=chunks_ok,
        errors=tracker.errors, redis_calls_per_stream=redis_calls, send_s=round(enqueue_s, 3), total_s=round(total_s, 2), cpu_percent=cpu,
        socket_errors=[e for s in sockets for e in s.errors][:5],
    )
    result.details["method"] = (
        f"{streams} chat requests, each with its own clientSubscriptionId (10 websockets × 100 subscriptions), "
        "content " + CONTENT
    )
    result.details.setdefault("cpu_percent", {})
    result.details["cpu_percent"] = {**result.details["cpu_percent"], **{f"{k} ({label})": v for k, v in cpu.items()}}
