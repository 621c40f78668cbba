"""Scenario `soak` (named explicitly, not part of `all`): correctness over time. Every accepted action ends in
exactly one final message, no streamed chunk is lost, and memory stays flat while workers are killed, Redis
restarts and websockets drop.

`python -m bench soak [--minutes N]` (default 10; fractions allowed). One stack with a persistent Redis
(append-only file, fsync every second) and two workers. For N minutes:
- **load**: closed-loop clients, CLIENTS_PER_KIND per kind, each pausing THINK_S between actions:
  `explainCode` and `summarizeComments` on issue 1, chat with one `issue_reader` call (a new thread each), a
  chat answer streamed over 2 s (20 chunks: the jobs a worker kill interrupts) and a cancel (`aiActionCancel`
  after the first chunk of a slow 40-word answer). Every action is streamed
  (`clientSubscriptionId`). A mutation answered with an error (HTTP 503, a GraphQL error) or a lost
  connection is not accepted; the client tries again;
- **subscribers**: 1,000 subscriptions (10 websockets × 100), each on a route of its own
  (`clientSubscriptionId` soak-<i>; even i: issue 1's resource route, odd i: chat's), subscribed with
  `after: "0-0"` so that nothing published on the route is missed; each action picks one of them at random;
- **worker kills**: every period (max(15 s, N × 6 s)) one worker, in turn, is killed with SIGKILL and started
  again (its jobs come back when their lease, `SWITCHBOARD_JOB_LEASE_S`, runs out);
- **Redis restart**: once, at 55 % of the run, SHUTDOWN (writes the append-only file) and a new redis-server
  on the same port and directory; web and workers reconnect by themselves;
- **websocket drops**: every DROP_S one websocket, in turn, is closed and, OFFLINE_S later, reopened, its
  subscriptions resumed with `after` = the last cursor each had seen (likewise after a close by the server or a subscription error).
Then the load stops and the run drains: it waits (at most DRAIN_S) for every accepted request's final and
for the job queue to empty.

Checks: exactly one final per accepted request (none lost, none duplicated); chunk ids contiguous (1, 2, 3, …;
a job run again after a kill may restart at 1, SPEC §5.2); no chunk after the final; the chunks since the last
restart add up to the final's content (cancels excepted; a stream live during the Redis restart may stop early,
its chunks a prefix of the final: a worker stops streaming a request once a chunk could not be published); the web's RSS after the warm-up (20 % of the run) vs
at the end, and each worker process's over its life (lives of at least MIN_LIFE_S), grow ≤ 20 %.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from bench.client import FIELDS, GraphQLHttp, action_body, cancel_body, request_id_of
from bench.report import Result, percentiles
from bench.scenarios.resources import SLOW, TOOL_THEN_ANSWER
from bench.stack import HOST, Stack
from core import keys

__all__ = ["run"]

CLIENTS_PER_KIND = 3
THINK_S = 0.05  # a modest rate: the point is correctness over time, not peak throughput
SOCKETS, PER_SOCKET = 10, 100
DROP_S = 20.0
OFFLINE_S = 2.0  # a dropped websocket stays closed this long: what it misses must come from the replay
SAMPLE_S = 5.0
DRAIN_S = 60.0
POST_TIMEOUT_S = 30.0
MAX_GROWTH = 0.20
MIN_LIFE_S = 45.0
WARMUP = 0.2
# After Redis answers again, clients still find connections of the old server in their pools for a while.
OUTAGE_MARGIN_S = 15.0
CODE = "return a + b"
# A 2-second stream (20 chunks, 100 ms apart): a worker killed at any moment is mid-way through some of them.
LONG = '<response chunk_delay_ms="100">' + " ".join(f"s{i}" for i in range(1, 21)) + "</response>"
SUBSCRIPTION = (
    "subscription aiCompletionResponse($userId: UserID, $resourceId: AiModelID, $clientSubscriptionId: String,"
    " $aiAction: AiAction, $after: String) {"
    " aiCompletionResponse(userId: $userId, resourceId: $resourceId, aiAction: $aiAction,"
    f" clientSubscriptionId: $clientSubscriptionId, after: $after) {{ {FIELDS} }} }}"
)


@dataclass
class Stream:
    """What the subscribers saw of one request."""

    kind: str | None = None  # set when its mutation returned the request id
    accepted_at: float = 0.0  # monotonic
    cancel_sent: bool = False
    final_at: float = 0.0  # monotonic, the (first) final's arrival
    chunks: list[int] = field(default_factory=list)
    deltas: list[str] = field(default_factory=list)
    finals: int = 0
    final: dict = field(default_factory=dict)
    chunks_after_final: int = 0


class Ledger:
    """Every message of every subscription, by request id; events for the first chunk and the final."""

    def __init__(self) -> None:
        self.streams: dict[str, Stream] = {}
        self.cursors: dict[str, str] = {}  # subscription id -> last cursor seen
        self._events: dict[tuple[str, str], asyncio.Event] = {}
        self.outstanding: set[str] = set()  # accepted, no final yet
        self.drained = asyncio.Event()

    def event(self, request_id: str, what: str) -> asyncio.Event:
        return self._events.setdefault((request_id, what), asyncio.Event())

    def accept(self, request_id: str, kind: str) -> None:
        stream = self.streams.setdefault(request_id, Stream())
        stream.kind = kind
        stream.accepted_at = time.monotonic()
        if not stream.finals:
            self.outstanding.add(request_id)
            self.drained.clear()

    def on_message(self, sub_id: str, data: dict) -> None:
        if data.get("cursor"):
            self.cursors[sub_id] = data["cursor"]
        if data.get("role") != "ASSISTANT":
            return
        request_id = data["requestId"]
        stream = self.streams.setdefault(request_id, Stream())
        chunk = data.get("chunkId")
        if chunk is not None:
            stream.chunks_after_final += stream.finals > 0
            stream.chunks.append(chunk)
            stream.deltas.append(data.get("content") or "")
            if chunk == 1:
                self.event(request_id, "first").set()
            return
        stream.finals += 1
        stream.final = data
        stream.final_at = stream.final_at or time.monotonic()
        self.event(request_id, "final").set()
        self.outstanding.discard(request_id)
        if not self.outstanding:
            self.drained.set()

    async def wait(self, request_id: str, what: str, stop: asyncio.Event) -> bool:
        """Until the request's first chunk or final arrives (True), or the load stops (False)."""
        got = asyncio.ensure_future(self.event(request_id, what).wait())
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait((got, stopped), return_when=asyncio.FIRST_COMPLETED)
        finally:
            got.cancel()
            stopped.cancel()
        return self.event(request_id, what).is_set()


class Resumable:
    """One `graphql-transport-ws` connection with its subscriptions, reopened whenever it closes and every
    subscription resumed with `after` = its last cursor; a subscription ended by the server (error or
    complete) is subscribed again the same way."""

    def __init__(self, stack: Stack, ledger: Ledger, subscriptions: dict[str, dict]) -> None:
        self._url, self._token = stack.ws_url, stack.token()
        self._ledger = ledger
        self._subs = subscriptions  # subscription id -> variables (without `after`)
        self._ws: ClientConnection | None = None
        self._dropping = False
        self.opened = asyncio.Event()
        self.resumes = 0  # reopened after a close
        self.server_closes = 0
        self.resubscribes = 0  # single subscriptions ended by the server and subscribed again
        self.sub_errors: list[str] = []

    def _payload(self, sub_id: str) -> str:
        variables = {**self._subs[sub_id], "after": self._ledger.cursors.get(sub_id, "0-0")}
        return orjson.dumps({"id": sub_id, "type": "subscribe",
                             "payload": {"query": SUBSCRIPTION, "variables": variables}}).decode()

    async def run(self) -> None:
        first = True
        while True:
            try:
                async with connect(self._url, subprotocols=[Subprotocol("graphql-transport-ws")], compression=None,
                                   max_size=None, ping_interval=None, open_timeout=30, close_timeout=2,
                                   max_queue=None) as ws:
                    await ws.send(orjson.dumps({"type": "connection_init",
                                                "payload": {"Authorization": f"Bearer {self._token}"}}).decode())
                    ack = orjson.loads(await asyncio.wait_for(ws.recv(), 30))
                    if ack.get("type") != "connection_ack":
                        raise RuntimeError(f"no connection_ack: {ack}")
                    for sub_id in self._subs:
                        await ws.send(self._payload(sub_id))
                    self._ws = ws
                    self.resumes += not first
                    first = False
                    self.opened.set()
                    await self._read(ws)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # refused or cut: open again
                if not self._dropping:
                    self.sub_errors.append(f"socket: {type(exc).__name__}: {exc}"[:200])
                await asyncio.sleep(0.2)
            self._ws = None
            if self._dropping:
                await asyncio.sleep(OFFLINE_S)
            else:
                self.server_closes += 1
            self._dropping = False

    async def _read(self, ws: ClientConnection) -> None:
        async for raw in ws:
            msg = orjson.loads(raw)
            kind = msg.get("type")
            if kind == "next":
                data = (msg["payload"].get("data") or {}).get("aiCompletionResponse")
                if data is not None:
                    self._ledger.on_message(msg["id"], data)
                else:
                    self.sub_errors.append(str(msg)[:200])
            elif kind in ("error", "complete"):
                if kind == "error":
                    self.sub_errors.append(str(msg)[:200])
                self.resubscribes += 1
                asyncio.get_running_loop().call_later(0.5, self._resubscribe, ws, msg["id"])
            elif kind == "ping":
                await ws.send('{"type":"pong"}')

    def _resubscribe(self, ws: ClientConnection, sub_id: str) -> None:
        if ws is self._ws:  # else the whole socket is being reopened with every subscription
            asyncio.ensure_future(ws.send(self._payload(sub_id)))

    async def drop(self) -> None:
        if self._ws is not None:
            self._dropping = True
            await self._ws.close()


class Kind:
    def __init__(self, name: str, body: Callable[[str], bytes], resource: bool) -> None:
        self.name, self.body, self.resource = name, body, resource


@dataclass
class Chaos:
    """What was done to the stack, and when (monotonic seconds)."""

    kills: int = 0
    kill_times: list[float] = field(default_factory=list)
    redis_restarts: int = 0
    redis_outage: tuple[float, float] | None = None
    drops: int = 0
    rss: list[tuple[float, str, int, int]] = field(default_factory=list)  # (t, name, pid, KB)
    lives: dict[int, tuple[str, float]] = field(default_factory=dict)  # pid -> (name, started)


async def run(quick: bool, minutes: float = 10.0) -> Result:
    result = Result("soak")
    duration = minutes * 60
    period = max(15.0, duration / 10)
    with Stack(redis_persistent=True) as stack:
        issue = stack.seed["resources"]["issue"]
        chaos = Chaos()
        t_start = time.monotonic()
        for name in ("worker", "worker2"):
            if name not in stack.processes:
                stack.spawn(name, stack.worker_argv(name))
            chaos.lives[stack.pid(name)] = (name, t_start)
        ledger = Ledger()
        routes = {
            f"s{i}": {"userId": stack.gid(), "clientSubscriptionId": f"soak-{i}",
                      **({"resourceId": issue} if i % 2 == 0 else {"aiAction": "CHAT"})}
            for i in range(SOCKETS * PER_SOCKET)
        }
        ids = list(routes)
        sockets = [Resumable(stack, ledger, {s: routes[s] for s in ids[k * PER_SOCKET:(k + 1) * PER_SOCKET]})
                   for k in range(SOCKETS)]
        socket_tasks = [asyncio.create_task(s.run()) for s in sockets]
        try:
            async with asyncio.timeout(60):
                await asyncio.gather(*(s.opened.wait() for s in sockets))
            figures = await _soak(stack, ledger, sockets, chaos, _kinds(issue), routes, duration, period)
        finally:
            for task in socket_tasks:
                task.cancel()
            await asyncio.gather(*socket_tasks, return_exceptions=True)
    _report(result, ledger, sockets, chaos, figures, duration, period)
    return result


def _kinds(issue: str) -> list[Kind]:
    def chat(content: str) -> Callable[[str], bytes]:
        return lambda csid: action_body(
            {"chat": {"content": content}, "clientSubscriptionId": csid, "conversationType": "DUO_CHAT"})

    return [
        Kind("explainCode", lambda csid: action_body(
            {"explainCode": {"resourceId": issue, "code": CODE}, "clientSubscriptionId": csid}), resource=True),
        Kind("summarizeComments", lambda csid: action_body(
            {"summarizeComments": {"resourceId": issue}, "clientSubscriptionId": csid}), resource=True),
        Kind("chat, 1 tool call", chat(TOOL_THEN_ANSWER), resource=False),
        Kind("chat, 2 s stream", chat(LONG), resource=False),
        Kind("cancel", chat(SLOW), resource=False),
    ]


async def _soak(stack: Stack, ledger: Ledger, sockets: list[Resumable], chaos: Chaos, kinds: list[Kind],
                routes: dict[str, dict], duration: float, period: float) -> dict[str, Any]:
    stop = asyncio.Event()
    http = GraphQLHttp(HOST, stack.web_port, stack.token(), size=2 * CLIENTS_PER_KIND * len(kinds))
    pools = {resource: [v["clientSubscriptionId"] for v in routes.values() if ("resourceId" in v) == resource]
             for resource in (True, False)}
    rejected: list[tuple[float, str, str]] = []  # (t, kind, error)
    cancel_errors: list[tuple[float, str]] = []  # (t, error)
    latency: dict[str, list[float]] = {k.name: [] for k in kinds}

    async def post(body: bytes) -> dict:
        async with asyncio.timeout(POST_TIMEOUT_S):
            return await http.post(body)

    async def client(kind: Kind) -> None:
        while not stop.is_set():
            csid = random.choice(pools[kind.resource])
            t0 = time.perf_counter()
            try:
                request_id = request_id_of(await post(kind.body(csid)))
            except (RuntimeError, OSError, asyncio.IncompleteReadError, TimeoutError) as exc:  # not accepted
                rejected.append((time.monotonic(), kind.name, f"{type(exc).__name__}: {exc}"[:200]))
                await asyncio.sleep(0.2)
                continue
            ledger.accept(request_id, kind.name)
            if kind.name == "cancel" and await ledger.wait(request_id, "first", stop):
                ledger.streams[request_id].cancel_sent = True
                try:
                    response = await post(cancel_body(request_id))
                    if response.get("errors") or response["data"]["aiActionCancel"]["errors"]:
                        cancel_errors.append((time.monotonic(), str(response)[:200]))
                except (RuntimeError, OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                    cancel_errors.append((time.monotonic(), f"{type(exc).__name__}: {exc}"[:200]))
            if await ledger.wait(request_id, "final", stop):
                latency[kind.name].append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(THINK_S)

    async def every(seconds: float, action: Callable[[int], Any], first_after: float | None = None) -> None:
        n = 0
        delay = seconds if first_after is None else first_after
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), delay)
                return
            except TimeoutError:
                pass
            await action(n)
            n += 1
            delay = seconds

    async def kill(n: int) -> None:
        name = ("worker", "worker2")[n % 2]
        process = stack.processes[name]
        os.killpg(process.pid, signal.SIGKILL)
        await asyncio.to_thread(process.wait)
        chaos.kills += 1
        chaos.kill_times.append(time.monotonic())
        chaos.lives[stack.spawn(name, stack.worker_argv(name)).pid] = (name, time.monotonic())

    async def restart_redis(n: int) -> None:
        if n:
            return
        t0 = time.monotonic()
        await asyncio.to_thread(stack.restart_redis)
        chaos.redis_restarts += 1
        chaos.redis_outage = (t0, time.monotonic())

    async def drop(n: int) -> None:
        await sockets[n % len(sockets)].drop()
        chaos.drops += 1

    async def sample(_n: int) -> None:
        for name in ("web", "worker", "worker2"):
            try:
                chaos.rss.append((time.monotonic(), name, stack.pid(name), stack.rss_kb(name)))
            except (OSError, RuntimeError):  # a worker between its kill and its restart
                pass

    t0 = time.monotonic()
    await sample(0)
    clients = [asyncio.create_task(client(kind)) for kind in kinds for _ in range(CLIENTS_PER_KIND)]
    chaos_tasks = [
        asyncio.create_task(every(period, kill)),
        asyncio.create_task(every(duration, restart_redis, first_after=0.55 * duration)),
        asyncio.create_task(every(min(DROP_S, max(5.0, duration / 6)), drop)),
        asyncio.create_task(every(SAMPLE_S, sample)),
    ]
    try:
        await asyncio.sleep(duration)
        stop.set()
        t_load_end = time.monotonic()
        await asyncio.gather(*clients, *chaos_tasks)
        drained = True
        try:
            async with asyncio.timeout(DRAIN_S):
                if ledger.outstanding:
                    await ledger.drained.wait()
                await _queue_empty(stack)
        except TimeoutError:
            drained = False
        # Nothing announces "no more messages": once the queue is empty, give the last ones time to arrive.
        await asyncio.sleep(1.0)
        await sample(0)
    finally:
        for task in (*clients, *chaos_tasks):
            task.cancel()
        await asyncio.gather(*clients, *chaos_tasks, return_exceptions=True)
        await http.close()
    return {"t0": t0, "load_s": t_load_end - t0, "drain_s": time.monotonic() - t_load_end, "drained": drained,
            "rejected": rejected, "cancel_errors": cancel_errors, "latency": latency}


async def _queue_empty(stack: Stack) -> None:
    """Until no job is queued or running (arq removes a job from its queue when it ends)."""
    from redis.asyncio import Redis

    redis = Redis.from_url(stack.redis_url)
    try:
        while await redis.zcard(keys.QUEUE):  # noqa: ASYNC110 - nothing announces an empty arq queue
            await asyncio.sleep(0.5)
    finally:
        await redis.aclose()


def _check_streams(ledger: Ledger, outage: tuple[float, float] | None) -> dict[str, Any]:
    accepted = {rid: s for rid, s in ledger.streams.items() if s.kind is not None}
    out: dict[str, Any] = {
        "accepted": Counter(s.kind for s in accepted.values()),
        "finals": sum(min(s.finals, 1) for s in accepted.values()),
        "lost": [rid for rid, s in accepted.items() if s.finals == 0],
        "duplicated": [rid for rid, s in accepted.items() if s.finals > 1],
        # finals of requests whose mutation answered an error: error finals (a chat echoed, then not enqueued:
        # the web ends it) and answers (enqueued although the mutation failed)
        "unknown_finals": Counter("error" if s.final.get("errors") else "answer"
                                  for s in ledger.streams.values() if s.kind is None and s.finals),
        "gaps": [], "restarts": 0, "chunks_after_final": 0, "content_mismatches": [], "cut_by_outage": 0,
        "error_finals": [],
        "cancelled": 0, "cancels_sent": 0, "not_stopped_at": [],
    }
    for rid, s in accepted.items():
        out["chunks_after_final"] += s.chunks_after_final
        for before, after in zip([0, *s.chunks], s.chunks, strict=False):
            if after == 1 and before != 0:
                out["restarts"] += 1
            elif after != before + 1:
                out["gaps"].append(f"{rid}: {s.chunks[:60]}")
                break
        if s.final.get("errors"):
            out["error_finals"].append(f"{s.kind}: {s.final['errors']}")
        elif s.kind == "cancel":
            if not s.cancel_sent:  # the load stopped before its first chunk came
                continue
            out["cancels_sent"] += 1
            stopped = "w40" not in (s.final.get("content") or "")
            out["cancelled"] += stopped
            if not stopped:
                out["not_stopped_at"].append(s.accepted_at)
        elif s.finals and s.chunks:
            last = len(s.chunks) - 1 - s.chunks[::-1].index(1) if 1 in s.chunks else 0
            streamed, content = "".join(s.deltas[last:]), s.final.get("content") or ""
            if streamed == content:
                continue
            if outage and content.startswith(streamed) and s.accepted_at <= outage[1] + OUTAGE_MARGIN_S \
                    and s.final_at >= outage[0]:
                # A worker stops streaming a request once a chunk could not be published (worker/agent.py,
                # `chunks_lost`): no gap, and the final carries the whole answer.
                out["cut_by_outage"] += 1
            else:
                out["content_mismatches"].append({
                    "request_id": rid, "kind": s.kind, "accepted_at": s.accepted_at, "chunks": s.chunks,
                    "deltas": s.deltas, "final": s.final})
    return out


def _growth(samples: list[tuple[float, int]], warm_from: float) -> tuple[int, int, float] | None:
    """(warm KB, end KB, growth) of one process's samples: the first at or after `warm_from` vs the last."""
    warm = [kb for t, kb in samples if t >= warm_from]
    if len(warm) < 2:
        return None
    return warm[0], warm[-1], warm[-1] / warm[0] - 1


def _report(result: Result, ledger: Ledger, sockets: list[Resumable], chaos: Chaos, figures: dict,
            duration: float, period: float) -> None:
    checks = _check_streams(ledger, chaos.redis_outage)
    accepted = checks["accepted"]
    total = sum(accepted.values())
    outage = chaos.redis_outage
    near_outage = [r for r in figures["rejected"] if outage and outage[0] - 1 <= r[0] <= outage[1] + OUTAGE_MARGIN_S]
    elsewhere = [r for r in figures["rejected"] if r not in near_outage]
    result.add("run", f"{duration / 60:g} min of load + {figures['drain_s']:.1f} s drain; "
               f"{CLIENTS_PER_KIND * len(accepted or [0])} clients; {SOCKETS} websockets × {PER_SOCKET} subscriptions")
    result.add("accepted actions by kind", ", ".join(f"{k} {n:,}" for k, n in sorted(accepted.items())) + f"; total {total:,}")
    result.add("actions/s (accepted, over the load)", total / figures["load_s"], "actions/s")
    result.add("finals received for accepted actions", checks["finals"])
    result.add("lost finals (accepted, no final)", len(checks["lost"]), "", "0", not checks["lost"])
    result.add("duplicated finals (more than one)", len(checks["duplicated"]), "", "0", not checks["duplicated"])
    result.add("chunk gaps (streams with a non-contiguous chunkId)", len(checks["gaps"]), "", "0", not checks["gaps"])
    result.add("chunks after the final", checks["chunks_after_final"], "", "0", checks["chunks_after_final"] == 0)
    result.add("streams whose chunks ≠ the final's content (cancels and the Redis restart's excepted)", len(checks["content_mismatches"]),
               "", "0", not checks["content_mismatches"])
    result.add("streams ended early by the Redis restart (chunks a prefix of the final, which has it all)",
               checks["cut_by_outage"])
    result.add("streams restarted at chunk 1 (job run again)", checks["restarts"])
    result.add("error finals", len(checks["error_finals"]))
    result.add("cancels that stopped the answer", f"{checks['cancelled']:,} of {checks['cancels_sent']:,} sent")
    unknown = checks["unknown_finals"]
    result.add("finals of requests whose mutation failed: error finals / answers",
               f"{unknown['error']} / {unknown['answer']}")
    result.add("mutations not accepted: during the Redis restart (+15 s) / other times",
               f"{len(near_outage)} / {len(elsewhere)}", "", "other times 0", not elsewhere)
    result.add("aiActionCancel failures", len(figures["cancel_errors"]))
    result.add("worker kills (SIGKILL, restarted)", f"{chaos.kills}, every {period:.0f} s")
    result.add("Redis restarts", f"{chaos.redis_restarts} ({outage[1] - outage[0]:.1f} s without Redis)" if outage else "0",
               "", "1", chaos.redis_restarts == 1)
    resumes = sum(s.resumes for s in sockets)
    result.add("websocket resumes (dropped by the client / closed by the server); subscriptions re-sent",
               f"{resumes} ({chaos.drops} / {sum(s.server_closes for s in sockets)}); "
               f"{sum(s.resubscribes for s in sockets)}")
    result.add("drained (every final in and the queue empty within 60 s)", "yes" if figures["drained"] else "no",
               "", "yes", figures["drained"])
    for kind, values in sorted(figures["latency"].items()):
        p = percentiles(values)
        if p["count"]:
            result.add(f"{kind}: aiAction → final p50 / p99 / max",
                       f"{p['p50']:.0f} / {p['p99']:.0f} / {p['max']:,.0f} ms")
    memory_ok = _memory(result, chaos, figures["t0"], duration)
    for problem in ("lost", "duplicated", "gaps", "content_mismatches"):
        for item in checks[problem][:3]:
            print(f"bench: soak: {problem}: {str(item)[:1500]}", file=sys.stderr, flush=True)
    failed = [m.metric for m in result.metrics if m.met is False]
    if failed or not memory_ok:
        result.error = "soak checks failed: " + "; ".join(failed)
    result.details.update(
        minutes=duration / 60, period_s=period, lost=checks["lost"][:20], duplicated=checks["duplicated"][:20],
        gaps=checks["gaps"][:20], content_mismatches=[{**m, "accepted_at": round(m["accepted_at"] - figures["t0"], 1)}
                            for m in checks["content_mismatches"][:10]],
        error_finals=checks["error_finals"][:20], rejected=[(round(r[0] - figures["t0"], 1), *r[1:]) for r in figures["rejected"][:20]],
        cancel_errors=[(round(t - figures["t0"], 1), e) for t, e in figures["cancel_errors"][:10]], socket_errors=[e for s in sockets for e in s.sub_errors][:20],
        # when (s after the start) the cancels that did not stop their answer were sent, beside the chaos
        cancels_not_stopped_at=[round(t - figures["t0"], 1) for t in checks["not_stopped_at"]],
        kills_at=[round(t - figures["t0"], 1) for t in chaos.kill_times],
        redis_outage_at=[round(t - figures["t0"], 1) for t in outage] if outage else None,
        rss=[(round(t - figures["t0"], 1), name, pid, kb) for t, name, pid, kb in chaos.rss],
        method=(__doc__ or "").strip().split("\n\n")[0],
    )


def _memory(result: Result, chaos: Chaos, t0: float, duration: float) -> bool:
    by_pid: dict[int, list[tuple[float, int]]] = {}
    for t, _name, pid, kb in chaos.rss:
        by_pid.setdefault(pid, []).append((t, kb))
    web = next(pid for _t, name, pid, _kb in chaos.rss if name == "web")
    grown = _growth(by_pid[web], t0 + WARMUP * duration)
    ok = True
    if grown is not None:
        warm, end, growth = grown
        ok = growth <= MAX_GROWTH
        result.add("web RSS after warm-up (20 %) → end", f"{warm / 1024:.0f} → {end / 1024:.0f} MB ({growth:+.1%})",
                   "", f"≤ +{MAX_GROWTH:.0%}", ok)
    lives: list[tuple[str, float]] = []
    for pid, (name, started) in sorted(chaos.lives.items(), key=lambda item: item[1][1]):
        samples = by_pid.get(pid, [])
        life = samples[-1][0] - started if samples else 0.0
        grown = _growth(samples, started + WARMUP * life) if life >= MIN_LIFE_S else None
        if grown is not None:
            warm, end, growth = grown
            lives.append((f"{name} {warm / 1024:.0f} → {end / 1024:.0f} MB ({growth:+.1%}) over {life:.0f} s", growth))
    workers_ok = all(growth <= MAX_GROWTH for _text, growth in lives)
    result.add(f"worker RSS per process life (≥ {MIN_LIFE_S:.0f} s; after 20 % of it → end)",
               "; ".join(text for text, _growth in lives) or "no life long enough", "", f"≤ +{MAX_GROWTH:.0%}",
               workers_ok if lives else None)
    peaks = {name: max((kb for _t, n, _p, kb in chaos.rss if n == name), default=0) for name in ("worker", "worker2")}
    result.add("worker RSS peak", ", ".join(f"{n} {kb / 1024:.0f} MB" for n, kb in peaks.items()))
    return ok and workers_ok
