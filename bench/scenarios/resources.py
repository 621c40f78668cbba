"""Scenario `resources`: what the actions users do cost, each as a ratio to yardsticks measured in the same
run (SPEC §12), beside the absolute figures.

One stack (one web, one worker, mock model). The actions, each answered as a stream (the request carries a
`clientSubscriptionId`; one subscription per phase on that route receives chunks and finals):
- **chat ping**: `chat "ping one two three"` in a new `DUO_CHAT` thread (5 chunks: SPEC's "streamed chat
  answer of 5 chunks");
- **explainCode**: `explainCode` on issue 1 of `gitlab-duo/test` (which has notes), code `return a + b`;
- **summarizeComments**: on issue 1 (its three human notes);
- **chat, 40-message history**: the same question in a thread already holding 40 messages (written straight
  into the database before the run; one thread per request so that every turn sees exactly 40);
- **chat, 1 tool call**: a new thread, the mock model scripted to call `issue_reader` on `gitlab-duo/test#1`
  (which reads the issue and its notes), then to answer in 5 chunks like chat ping;
- **chat, 40-message history + 1 tool call**: both (SPEC §12's chat target, against chat ping);
- **cancel**: a slow streamed answer (40 words, 50 ms apart) cancelled with `aiActionCancel` after its first
  chunk; the time is from the cancel's POST to the final message (`extras.cancelled`).

Under sustained load (closed loop, bench/load.py), per action: CPU of web, worker and Redis, Redis commands
(`INFO commandstats`, Lua-internal ones included) and round trips (redis-server read() calls), actions/s,
latency. At low load (one at a time on one keep-alive HTTP connection, each action preceded by an
authenticated `currentUser` query on the same connection): aiAction → final p50/p99 and the query's p50.
Then bare arq on the same Redis: no-op jobs/s and CPU per job. Every SPEC §12 figure is given as a ratio.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from bench.client import (
    CURRENT_USER_BODY,
    GraphQLHttp,
    Socket,
    action_body,
    cancel_body,
    request_id_of,
    subscription_query,
)
from bench.load import Act, closed_loop, round_trip_action
from bench.report import Result, percentiles
from bench.scenarios import bare_arq
from bench.scenarios.chat import HISTORY, TOOL_TURN, prepare_threads
from bench.stack import HOST, Stack
from bench.waiters import Finals

__all__ = ["run"]

CLIENTS = 32
CANCEL_CLIENTS = 16  # each holds a stream open for ~50 ms before its cancel
MAX_JOBS = 2000  # Switchboard's default SWITCHBOARD_WORKER_MAX_JOBS, also given to bare arq
ARQ_POLL_DELAY_S = 0.5  # Switchboard's default SWITCHBOARD_POLL_DELAY_S (and arq's)
# Chat actions in a 40-message thread per second that the prepared threads last for (≈ 2.5× what a 2-core
# machine did in 2026-12; 4,000 threads take ~3 s to write).
THREAD_RATE = 500
QUESTION = "ping one two three"  # "echo: ping one two three": 5 chunks
CODE = "return a + b"  # "echo: return a + b": 5 chunks
# One issue_reader call, then a 5-chunk answer like chat ping's, so that the comparison is about the turn,
# not the answer's length (the mock's default after a tool would echo the whole issue: ~100 chunks).
TOOL_THEN_ANSWER = TOOL_TURN + "<response>echo: ping one two three</response>"
SLOW = '<response chunk_delay_ms="50">' + " ".join(f"w{i}" for i in range(1, 41)) + "</response>"


class Kind:
    """One kind of action: its name, its route and a factory of request bodies."""

    def __init__(self, name: str, body: Callable[[str], bytes], resource: str | None = None, ratio_target: bool = True):
        self.name = name
        self.body = body  # clientSubscriptionId -> aiAction body
        self.resource = resource  # the route: {userId, resourceId, csid} for resource actions, else chat's
        self.ratio_target = ratio_target  # SPEC §12 names targets for these


async def run(quick: bool) -> Result:
    result = Result("resources")
    duration = 3.0 if quick else 10.0
    warmup = 1.0 if quick else 2.0
    samples = 30 if quick else 200  # per kind at low load
    with Stack() as stack:
        issue = stack.seed["resources"]["issue"]
        # Each chat in a thread takes a fresh 40-message one: enough for both history kinds at THREAD_RATE
        # through the whole phase (a fixed 1,000 ran out on a faster machine), and for the low-load samples.
        threads = await prepare_threads(stack, count=2 * THREAD_RATE * int(duration + warmup) + 2 * (samples + 10))
        kinds = _kinds(issue, threads)
        phases: dict[str, dict[str, Any]] = {}
        async with asyncio.timeout(len(kinds) * (duration + warmup + 60) + 120):
            for kind in kinds:
                phases[kind.name] = await _under_load(stack, kind, duration, warmup)
            phases["cancel"] = await _under_load(stack, _cancel_kind(), duration, warmup, cancel=True)
        async with asyncio.timeout(samples * 10 + 120):
            low = await _low_load(stack, [*(k for k in kinds if k.name != "chat, 1 tool call"), _cancel_kind()], samples)
        async with asyncio.timeout(duration + 90):
            arq = await bare_arq.measure(stack, poll_delay=ARQ_POLL_DELAY_S, jobs=5_000 if quick else 30_000,
                                         max_s=duration, max_jobs=MAX_JOBS)
    result.details.update(phases=phases, low_load=low, bare_arq=arq, clients=CLIENTS, cancel_clients=CANCEL_CLIENTS,
                          history_messages=HISTORY, samples_per_kind_at_low_load=samples,
                          method=(__doc__ or "").strip().split("\n\n")[0])
    result.details["cpu_percent"] = phases["explainCode"]["cpu_percent"]
    _report(result, kinds, phases, low, arq)
    return result


def _kinds(issue: str, threads: list[str]) -> list[Kind]:
    def chat(content: str, *, history: bool) -> Callable[[str], bytes]:
        def body(csid: str) -> bytes:
            if history and not threads:
                raise RuntimeError(f"the prepared 40-message threads ran out: raise THREAD_RATE ({THREAD_RATE}/s)")
            where: dict[str, object] = {"threadId": threads.pop()} if history else {"conversationType": "DUO_CHAT"}
            return action_body({"chat": {"content": content}, "clientSubscriptionId": csid, **where})
        return body

    return [
        Kind("chat ping", chat(QUESTION, history=False)),
        Kind("explainCode", lambda csid: action_body(
            {"explainCode": {"resourceId": issue, "code": CODE}, "clientSubscriptionId": csid}), resource=issue),
        Kind("summarizeComments", lambda csid: action_body(
            {"summarizeComments": {"resourceId": issue}, "clientSubscriptionId": csid}), resource=issue),
        Kind(f"chat, {HISTORY}-message history", chat(QUESTION, history=True)),
        Kind("chat, 1 tool call", chat(TOOL_THEN_ANSWER, history=False)),
        Kind(f"chat, {HISTORY}-message history + 1 tool call", chat(TOOL_THEN_ANSWER, history=True)),
    ]


def _cancel_kind() -> Kind:
    return Kind("cancel", lambda csid: action_body(
        {"chat": {"content": SLOW}, "clientSubscriptionId": csid, "conversationType": "DUO_CHAT"}), ratio_target=False)


def _cancel_action(http: GraphQLHttp, finals: Finals, body: Callable[[], bytes]) -> Act:
    """Ask for the slow answer, cancel it after its first chunk; the time from the cancel to the final."""

    async def act() -> float:
        request_id = request_id_of(await http.post(body()))
        await finals.first_chunk(request_id, timeout_s=30)
        t0 = time.perf_counter()
        response = await http.post(cancel_body(request_id))
        if response.get("errors") or response["data"]["aiActionCancel"]["errors"]:
            raise RuntimeError(f"aiActionCancel failed: {str(response)[:300]}")
        arrived, message = await finals.wait(request_id, timeout_s=30)
        if message.get("errors") or "w40" in message.get("content", ""):  # not stopped: the whole answer
            raise RuntimeError(f"unexpected final after cancel: {str(message)[:300]}")
        return (arrived - t0) * 1000

    return act


async def _open(stack: Stack, kind: Kind, finals: Finals) -> tuple[Socket, str]:
    csid = "bench-" + re.sub(r"\W+", "-", kind.name)
    socket = await Socket(stack.ws_url, stack.token(), finals.on_message).open()
    await socket.subscribe([("1", subscription_query(stack.gid(), csid, resource_id=kind.resource))])
    await asyncio.sleep(0.3)  # no ack for `subscribe`
    return socket, csid


async def _under_load(stack: Stack, kind: Kind, duration: float, warmup: float, *, cancel: bool = False) -> dict:
    finals = Finals()
    socket, csid = await _open(stack, kind, finals)
    clients = CANCEL_CLIENTS if cancel else CLIENTS
    http = GraphQLHttp(HOST, stack.web_port, stack.token(), size=2 * clients if cancel else clients)
    chunks_0 = 0
    try:
        build = _cancel_action if cancel else round_trip_action
        act = build(http, finals, partial(kind.body, csid))
        chunks_0 = finals.chunks
        phase = await closed_loop(stack, act, clients=clients, duration=duration, warmup=warmup)
    finally:
        await socket.close()
        await http.close()
    phase["chunks_per_action"] = round((finals.chunks - chunks_0) / max(finals.count, 1), 1)
    phase["socket_errors"] = socket.errors[:5]
    print(f"bench: resources: {kind.name}: {phase['actions_per_s']} actions/s, web + worker "
          f"{phase['cpu_ms_per_action']['web + worker']} ms CPU per action", flush=True)
    return phase


async def _low_load(stack: Stack, kinds: list[Kind], samples: int) -> dict[str, Any]:
    """One request at a time on one keep-alive connection: `currentUser`, then the action, `samples` times per
    kind (after 5 warm-up rounds); all kinds share the connection, so the query's p50 is theirs."""
    finals = Finals()
    sockets = []
    http = GraphQLHttp(HOST, stack.web_port, stack.token(), size=1)
    query_ms: list[float] = []
    action_ms: dict[str, list[float]] = {}
    try:
        for kind in kinds:
            socket, csid = await _open(stack, kind, finals)
            sockets.append(socket)
            act = (_cancel_action if kind.name == "cancel" else round_trip_action)(http, finals, partial(kind.body, csid))
            times = action_ms[kind.name] = []
            for i in range(5 + samples):
                t0 = time.perf_counter()
                response = await http.post(CURRENT_USER_BODY)
                elapsed = (time.perf_counter() - t0) * 1000
                if not (response.get("data") or {}).get("currentUser"):
                    raise RuntimeError(f"currentUser failed: {str(response)[:300]}")
                took = await act()
                if i >= 5:
                    query_ms.append(elapsed)
                    times.append(took)
    finally:
        for socket in sockets:
            await socket.close()
        await http.close()
    return {"current_user_ms": percentiles(query_ms),
            "actions_ms": {name: percentiles(values) for name, values in action_ms.items()}}


def _ratio(value: float, base: float) -> float:
    return value / base if base else 0.0


def _report(result: Result, kinds: list[Kind], phases: dict[str, dict], low: dict, arq: dict) -> None:
    arq_rate, arq_cpu = arq["jobs_per_s"], arq["worker_cpu_ms_per_job"]
    query_p50 = low["current_user_ms"].get("p50", 0.0)
    result.add("bare arq no-op jobs/s (same Redis, same run)", arq_rate, "jobs/s")
    result.add("bare arq CPU per job: arq worker / Redis",
               f"{arq_cpu:.3f} / {arq['redis_cpu_ms_per_job']:.3f} ms; Redis commands per job "
               f"{arq['redis_calls_per_job'].get('total', 0):g}, round trips {arq['redis_round_trips_per_job']}")
    result.add("currentUser p50 (one keep-alive connection, between the low-load actions)", query_p50, "ms")
    busy = ", ".join(f"{name} {phase['cpu_percent'].get('other processes', 0):g}" for name, phase in phases.items())
    result.add("other processes on the machine during each phase (% of a core; near 0 = undisturbed)", busy)
    for kind in [*kinds, _cancel_kind()]:
        phase = phases[kind.name]
        name = kind.name
        cpu = phase["cpu_ms_per_action"]
        rate = phase["actions_per_s"]
        rate_ratio = _ratio(rate, arq_rate)
        cpu_ratio = _ratio(cpu["web + worker"], arq_cpu)
        redis_ms = cpu.get("redis", 0.0)
        fleet = 1000 / redis_ms if redis_ms else 0.0
        calls = phase["redis_calls_per_action"]
        target = kind.ratio_target
        result.add(f"{name}: actions/s, {phase['clients']} in flight",
                   f"{rate:,.1f} actions/s = {rate_ratio:.3f} × bare arq", "",
                   "≥ 0.5× (goal 1×)" if target else "", rate_ratio >= 0.5 if target else None)
        result.add(f"{name}: CPU per action, web + worker",
                   f"{cpu['web + worker']:.2f} ms (web {cpu.get('web', 0):.2f}, worker {cpu.get('worker', 0):.2f}) "
                   f"= {cpu_ratio:.1f} × bare arq's per job", "",
                   "≤ 3× (goal 2×)" if target else "", cpu_ratio <= 3 if target else None)
        result.add(f"{name}: Redis CPU per action", f"{redis_ms:.3f} ms: one Redis core serves {fleet:,.0f} actions/s",
                   "", "≥ 4,000/s" if target else "", fleet >= 4000 if target else None)
        head = ", ".join(f"{cmd} {n:g}" for cmd, n in list(calls.items())[:6] if cmd != "total")
        result.add(f"{name}: Redis commands per action (Lua-internal included)", f"{calls.get('total', 0):g} ({head})",
                   "", "≤ 20" if target else "", calls.get("total", 0) <= 20 if target else None)
        result.add(f"{name}: Redis round trips per action (redis-server reads)",
                   f"{phase['redis_round_trips_per_action']}; chunks per action {phase['chunks_per_action']:g}")
        under = phase["latency_ms"]
        what = "cancel → final" if name == "cancel" else "aiAction → final"
        result.add(f"{name}: {what} under load p50 / p99",
                   f"{under.get('p50', 0):.1f} / {under.get('p99', 0):.1f} ms")
        lat = low["actions_ms"].get(name)
        if lat:
            p50_ratio, p99_ratio = _ratio(lat["p50"], query_p50), _ratio(lat["p99"], query_p50)
            result.add(f"{name}: {what} p50 at low load", f"{lat['p50']:.1f} ms = {p50_ratio:.1f} × currentUser p50",
                       "", "≤ 3×" if target else "", p50_ratio <= 3 if target else None)
            result.add(f"{name}: {what} p99 at low load", f"{lat['p99']:.1f} ms = {p99_ratio:.1f} × currentUser p50",
                       "", "≤ 5×" if target else "", p99_ratio <= 5 if target else None)
        if phase["failures"]:
            result.add(f"{name}: failures (first)", f"{phase['failures']} ({phase['first_failures'][0]})", "", "0", False)
    plain = phases["chat ping"]["cpu_ms_per_action"]["web + worker"]
    turn = phases[f"chat, {HISTORY}-message history + 1 tool call"]["cpu_ms_per_action"]["web + worker"]
    turn_ratio = _ratio(turn, plain)
    result.add(f"chat turn ({HISTORY}-message history + 1 tool call) / chat ping, CPU per action (web + worker)",
               turn_ratio, "", "≤ 2", turn_ratio <= 2)
