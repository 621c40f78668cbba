"""Scenario `scale`: a paper model of horizontal scale, checked on one machine.

Phase A: one web and one worker process. Phase B: four of each on the same Redis (web2..4 and worker2..4
added to the stack with the same CLI command). The same closed loop in both (32 clients, streamed `chat
"ping one two three"` in a new thread: a USER echo, 5 chunks and the final), spread round-robin over the
web processes, each web with one websocket subscribed to a route of its own (`clientSubscriptionId`).

Per action in each phase: Redis CPU, Redis commands (`INFO commandstats`, with their `usec`), round trips
(redis-server read() calls), bytes out and in (`INFO stats total_net_output_bytes / total_net_input_bytes`),
firehose entries (`XINFO STREAM entries-added`), actions/s.

The model, fitted on phase A only: bytes out per action = n + p·m + W·f, where m = firehose entries per
action and f = m·e + x·h the bytes one web process reads of them (e = an entry as XREAD returns it, measured
on the stream's last entries; x = XREADs per action of one hub, h = the reply's header); every web process
reads every entry. Redis CPU per action = Σ command usec + c × round trips, c fitted on A; adding W−1 webs
adds (W−1)·x XREAD calls and round trips. Phase B is predicted from that and compared with what it measured.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from functools import partial
from statistics import mean
from typing import Any, cast

import httpx
import psutil
from redis import Redis

from bench.client import GraphQLHttp, Socket, action_body, subscription_query
from bench.load import closed_loop, round_trip_action
from bench.meters import cpu_seconds
from bench.report import Result
from bench.stack import HOST, Stack, free_port
from bench.waiters import Finals
from core import keys

__all__ = ["run"]

CLIENTS = 32
SCALED = 4  # web and worker processes in phase B
QUESTION = "ping one two three"  # "echo: ping one two three": 5 chunks
_READY_TIMEOUT_S = 90.0
# The workers' job claims and polls (`SwitchboardWorker.start_jobs`): one pipelined EXISTS per id seen running at
# the previous poll, then one claim script per poll whose ZSCORE and SET NX run once per id it tries (a claim
# lost to another worker ends there); ZRANGEBYSCORE and BLPOP are round trips of their own. ZSCORE runs nowhere
# else, so its calls per action are the claims tried per action.
CLAIM_COMMANDS = ("exists", "zscore", "set", "zrangebyscore", "blpop")
_PIPELINED = ("exists", "zscore", "set")
CAVEAT = ("one 2-core machine: 8 server processes plus the load generator saturate it, so CPU figures are "
          "±20 % and phase B's actions/s says nothing about a real fleet's")


async def run(quick: bool) -> Result:
    result = Result("scale")
    duration = 3.0 if quick else 10.0
    warmup = 1.0 if quick else 2.0
    with Stack() as stack:
        ports = {"web": stack.web_port}
        async with asyncio.timeout(duration + warmup + 120):
            a = await _phase(stack, ports, ("worker",), duration, warmup)
        entry = _entry_sizes(stack)
        ports.update(_scale_out(stack))
        workers = ("worker", *(f"worker{i}" for i in range(2, SCALED + 1)))
        async with asyncio.timeout(duration + 2 * warmup + 120):
            b = await _phase(stack, ports, workers, duration, 2 * warmup)
        reads = _read_cost(stack, 0.5 if quick else 2.0)
    model = _model(a, b, entry, SCALED)
    model["xread_usec_per_entry_by_batch"] = reads
    result.details.update(phase_a=a, phase_b=b, firehose_entry=entry, model=model, clients=CLIENTS,
                          processes_b=SCALED, caveat=CAVEAT, method=(__doc__ or "").strip().split("\n\n")[0])
    result.details["cpu_percent"] = b["cpu_percent"]
    _report(result, a, b, model)
    return result


# -- the stack ---------------------------------------------------------------------------------------------
def _scale_out(stack: Stack) -> dict[str, int]:
    """Start web2..N and worker2..N as Stack starts its own; wait for every web's readiness and every worker's
    heartbeat. Returns the new webs' ports."""
    ports = {}
    for i in range(2, SCALED + 1):
        port = free_port()
        ports[f"web{i}"] = port
        stack.spawn(f"web{i}", stack.web_argv(f"web{i}", port))
        stack.spawn(f"worker{i}", stack.worker_argv(f"worker{i}"))
    redis = Redis.from_url(stack.redis_url)
    pending = dict(ports)
    deadline = time.monotonic() + _READY_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            for name, process in stack.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with status {process.returncode} during start-up")
            for name, port in list(pending.items()):
                try:
                    if httpx.get(f"http://{HOST}:{port}/-/readiness", timeout=2).status_code == 200:
                        del pending[name]
                except httpx.HTTPError:
                    pass
            if not pending and cast(int, redis.hlen(keys.WORKERS)) >= SCALED:  # each worker beats once it has started
                return ports
            time.sleep(0.2)
    finally:
        redis.close()
    raise RuntimeError(f"scaled-out processes not ready within {_READY_TIMEOUT_S:.0f} s (webs waiting: {sorted(pending)})")


def _probe(stack: Stack) -> Any:
    """What closed_loop reads at the window's edges: bytes in/out, usec per command, firehose entries."""
    redis = Redis.from_url(stack.redis_url)

    def probe() -> dict[str, float]:
        stats = cast(dict, redis.info("stats"))
        out = {"bytes_in": float(stats["total_net_input_bytes"]), "bytes_out": float(stats["total_net_output_bytes"])}
        for name, value in cast(dict, redis.info("commandstats")).items():
            out["usec:" + name.removeprefix("cmdstat_")] = float(value["usec"])
        exists = redis.exists(keys.FIREHOSE)  # not before the first message
        out["firehose_entries"] = float(cast(dict, redis.xinfo_stream(keys.FIREHOSE))["entries-added"]) if exists else 0.0
        return out

    return probe


async def _phase(stack: Stack, ports: dict[str, int], workers: tuple[str, ...], duration: float, warmup: float) -> dict:
    """The closed loop over every web in `ports`, each with its own subscribed websocket and HTTP pool."""
    finals = Finals()
    sockets: list[Socket] = []
    pools: list[GraphQLHttp] = []
    acts = []
    try:
        for name, port in ports.items():
            csid = f"bench-scale-{name}"
            socket = await Socket(f"ws://{HOST}:{port}/api/graphql", stack.token(), finals.on_message).open()
            sockets.append(socket)
            await socket.subscribe([("1", subscription_query(stack.gid(), csid))])
            http = GraphQLHttp(HOST, port, stack.token(), size=CLIENTS)
            pools.append(http)
            body = action_body({"chat": {"content": QUESTION}, "clientSubscriptionId": csid,
                                "conversationType": "DUO_CHAT"})
            acts.append(round_trip_action(http, finals, partial(bytes, body)))
        await asyncio.sleep(0.3)  # no ack for `subscribe`
        turn = itertools.cycle(acts)

        async def act() -> float:
            return await next(turn)()

        names = (*ports, *workers, "redis")
        phase = await closed_loop(stack, act, clients=CLIENTS, duration=duration, warmup=warmup, names=names,
                                  probe=_probe(stack))
    finally:
        for socket in sockets:
            await socket.close()
        for http in pools:
            await http.close()
    cpu = phase["cpu_ms_per_action"]
    phase["webs"], phase["workers"] = len(ports), len(workers)
    phase["cpu_ms_webs"] = round(sum(cpu.get(n, 0.0) for n in ports), 3)
    phase["cpu_ms_workers"] = round(sum(cpu.get(n, 0.0) for n in workers), 3)
    phase["socket_errors"] = [e for s in sockets for e in s.errors][:5]
    print(f"bench: scale: {len(ports)} web + {len(workers)} worker: {phase['actions_per_s']} actions/s, Redis "
          f"{cpu.get('redis', 0):.3f} ms CPU per action", flush=True)
    return phase


def _read_cost(stack: Stack, seconds: float) -> dict[int, float]:
    """Redis CPU µs per firehose entry read with XREAD COUNT 1, 10 and 100 (non-blocking, one client, the
    stack idle): what a hub's reads cost Redis as its batches grow."""
    redis = Redis.from_url(stack.redis_url)
    process = psutil.Process(stack.pid("redis"))
    out = {}
    try:
        for count in (1, 10, 100):
            entries, last = 0, "0-0"
            cpu_0, end = cpu_seconds(process), time.perf_counter() + seconds
            while time.perf_counter() < end:
                response = cast(list, redis.xread({keys.FIREHOSE: last}, count=count))
                got = response[0][1] if response else []
                entries += len(got)
                last = got[-1][0] if got else "0-0"
            out[count] = round(1e6 * (cpu_seconds(process) - cpu_0) / max(entries, 1), 2)
    finally:
        redis.close()
    return out


# -- sizes on the wire (RESP2, as redis-py speaks it) -------------------------------------------------------
def _bulk(value: bytes) -> int:
    return len(b"$%d\r\n" % len(value)) + len(value) + 2


def _array(items: list[bytes]) -> int:
    return len(b"*%d\r\n" % len(items)) + sum(_bulk(i) for i in items)


def _entry_sizes(stack: Stack) -> dict[str, float]:
    """e: the mean size of the firehose's last entries as one entry of an XREAD reply; h: the reply's
    header (one stream, its name, the entries array); the hub's XREAD command itself."""
    redis = Redis.from_url(stack.redis_url)
    try:
        entries = cast(list, redis.xrevrange(keys.FIREHOSE, count=7 * 100))
    finally:
        redis.close()
    sizes = [len(b"*2\r\n") + _bulk(entry_id) + _array([x for kv in fields.items() for x in kv])
             for entry_id, fields in entries]
    stream = keys.FIREHOSE.encode()
    last_id = entries[0][0] if entries else b"1764640000000-0"
    header = len(b"*1\r\n*2\r\n") + _bulk(stream) + len(b"*10\r\n")
    command = _array([b"XREAD", b"COUNT", b"1000", b"BLOCK", b"5000", b"STREAMS", stream, last_id])
    return {"entries_sampled": len(sizes), "entry_bytes": round(mean(sizes), 1) if sizes else 0.0,
            "entry_bytes_min": min(sizes, default=0), "entry_bytes_max": max(sizes, default=0),
            "reply_header_bytes": header, "xread_command_bytes": command}


# -- the model ---------------------------------------------------------------------------------------------
def _figures(phase: dict) -> dict[str, float]:
    probe = phase["probe_per_action"]
    calls = phase["redis_calls_per_action"]
    return {
        "actions_per_s": phase["actions_per_s"],
        "redis_cpu_ms": phase["cpu_ms_per_action"].get("redis", 0.0),
        "commands": phase["redis_commands_processed_per_action"],
        "round_trips": phase["redis_round_trips_per_action"] or 0.0,
        "bytes_out": probe.get("bytes_out", 0.0),
        "bytes_in": probe.get("bytes_in", 0.0),
        "firehose_entries": probe.get("firehose_entries", 0.0),
        "xread": calls.get("xread", 0.0),
        "xread_usec": probe.get("usec:xread", 0.0),
        # evalsha's usec includes the commands its script runs, which count under their own names too: drop
        # XADD's (only the publish script runs it), the bulk of them.
        "command_usec": sum(v for k, v in probe.items() if k.startswith("usec:") and k != "usec:xadd"),
        "claims": calls.get("zscore", 0.0),
        **{f"calls:{name}": calls.get(name, 0.0) for name in CLAIM_COMMANDS},
        **{f"usec:{name}": probe.get(f"usec:{name}", 0.0) for name in CLAIM_COMMANDS},
    }


def _claims(a: dict[str, float], b: dict[str, float], c: float) -> dict[str, float]:
    """What B's extra claims and polls cost per action (B − A of CLAIM_COMMANDS), costed like the model: A's µs
    per call of each command plus c per round trip. Bytes: a lost claim's keys and id in a claim script's call
    and its empty reply (uuid job ids), a poll's reply as the ids of CLIENTS jobs (the queue holds those in
    flight)."""
    extra = {name: b[f"calls:{name}"] - a[f"calls:{name}"] for name in CLAIM_COMMANDS}
    usec = 0.0
    for name, more in extra.items():
        per_call = a[f"usec:{name}"] / a[f"calls:{name}"] if a[f"calls:{name}"] else 0.0
        usec += more * per_call
    round_trips = sum(more for name, more in extra.items() if name not in _PIPELINED)
    job = b"0" * 36
    claim_in = sum(_bulk(key) for key in (b"arq:in-progress:" + job, b"arq:job:" + job, b"arq:retry:" + job, job))
    claim_out = len(b"*0\r\n")
    poll_out = len(b"*32\r\n") + CLIENTS * _bulk(job)
    lost = max(0.0, extra["zscore"])
    return {"commands": sum(extra.values()), "round_trips": round_trips, "redis_cpu_ms": (usec + round_trips * c) / 1000,
            "lost_claims": lost, "bytes_in": lost * claim_in,
            "bytes_out": lost * claim_out + max(0.0, extra["zrangebyscore"]) * poll_out}


def _error(predicted: float, measured: float) -> float:
    return round(100 * (predicted - measured) / measured, 1) if measured else 0.0


def _model(phase_a: dict, phase_b: dict, entry: dict[str, float], webs: int) -> dict[str, Any]:
    a, b = _figures(phase_a), _figures(phase_b)
    m = a["firehose_entries"]
    x = a["xread"]  # XREADs per action of one hub
    u_xread = a["xread_usec"] / x if x else 0.0  # µs per XREAD call
    per_web = m * entry["entry_bytes"] + x * entry["reply_header_bytes"]  # f: bytes one hub reads per action
    rest = a["bytes_out"] - per_web  # n + p·m
    c = (1000 * a["redis_cpu_ms"] - a["command_usec"]) / a["round_trips"] if a["round_trips"] else 0.0
    c_b = (1000 * b["redis_cpu_ms"] - b["command_usec"]) / b["round_trips"] if b["round_trips"] else 0.0
    more = (webs - 1) * x  # XREAD calls (and round trips) the other webs add per action
    predicted = {
        "bytes_out": rest + webs * per_web,
        "bytes_in": a["bytes_in"] + more * entry["xread_command_bytes"],
        "commands": a["commands"] + more,
        "round_trips": a["round_trips"] + more,
        "redis_cpu_ms": a["redis_cpu_ms"] + more * (u_xread + c) / 1000,
    }
    claims = _claims(a, b, c)
    with_claims = {key: value + claims.get(key, 0.0) for key, value in predicted.items()}
    # One entry read by one hub, in µs of Redis, at A's batching (m / x entries per XREAD).
    read_us = x * (u_xread + c) / m if m else 0.0
    base_us = 1000 * a["redis_cpu_ms"] - m * read_us  # an action's Redis time without any hub's reads
    capacity = {w: round(1e6 / (base_us + w * m * read_us)) if base_us + w * m * read_us > 0 else 0
                for w in (1, 2, 4, 8, 16, 32, 64)}
    web_worker_ms = phase_a["cpu_ms_per_action"].get("web + worker", 0.0)
    return {
        "a": a, "b": b, "m": m, "x": x, "xread_usec_per_call": round(u_xread, 2), "c_usec_per_round_trip": round(c, 2),
        "c_usec_per_round_trip_fitted_on_b": round(c_b, 2),
        "round_trips_per_s": {"a": round(a["round_trips"] * a["actions_per_s"]), "b": round(b["round_trips"] * b["actions_per_s"])},
        "bytes_per_web": round(per_web, 1), "bytes_rest": round(rest, 1),
        "predicted_b": {k: round(v, 3) for k, v in predicted.items()},
        "error_percent": {k: _error(v, b[k]) for k, v in predicted.items()},
        "claims_b_minus_a": {k: round(v, 3) for k, v in claims.items()},
        "predicted_b_with_claims": {k: round(v, 3) for k, v in with_claims.items()},
        "error_percent_with_claims": {k: _error(v, b[k]) for k, v in with_claims.items()},
        "entry_read_usec_model": round(read_us, 3),
        "entry_reads_per_s_per_core": round(1e6 / read_us) if read_us else 0,
        "action_base_usec": round(base_us, 1),
        "actions_per_s_per_redis_core_a": round(1000 / a["redis_cpu_ms"]) if a["redis_cpu_ms"] else 0,
        "actions_per_s_per_redis_core_b": round(1000 / b["redis_cpu_ms"]) if b["redis_cpu_ms"] else 0,
        "actions_per_s_per_redis_core_by_webs": capacity,
        "webs_where_reads_equal_the_rest": round(base_us / (m * read_us), 1) if m and read_us else 0,
        "web_worker_cores_per_redis_core": round(web_worker_ms / a["redis_cpu_ms"], 1) if a["redis_cpu_ms"] else 0,
        "claims_per_action": {"a": a["claims"], "b": b["claims"]},
    }


def _report(result: Result, phase_a: dict, phase_b: dict, model: dict[str, Any]) -> None:
    a, b, pred, err = model["a"], model["b"], model["predicted_b"], model["error_percent"]
    pred_c, err_c = model["predicted_b_with_claims"], model["error_percent_with_claims"]
    result.add("caveat", CAVEAT)
    for label, phase in (("A: 1 web + 1 worker", phase_a), (f"B: {SCALED} web + {SCALED} worker", phase_b)):
        cpu = phase["cpu_ms_per_action"]
        result.add(f"{label}: actions/s, {CLIENTS} clients; CPU ms per action webs / workers / Redis",
                   f"{phase['actions_per_s']:,.1f}/s; {phase['cpu_ms_webs']:.2f} / {phase['cpu_ms_workers']:.2f} / "
                   f"{cpu.get('redis', 0):.3f} ms; other processes {phase['cpu_percent'].get('other processes', 0):g} %")
        result.add_calls(f"{label}: Redis commands per action", phase["redis_calls_per_action"], top=8)
    rows = (("Redis CPU per action (ms)", "redis_cpu_ms", "{:.3f}"), ("Redis commands per action", "commands", "{:.1f}"),
            ("Redis round trips per action", "round_trips", "{:.1f}"), ("bytes out per action", "bytes_out", "{:,.0f}"),
            ("bytes in per action", "bytes_in", "{:,.0f}"))
    for label, key, fmt in rows:
        result.add(f"{label}: A / B measured / B predicted (error) / B predicted + extra claims (error)",
                   f"{fmt.format(a[key])} / {fmt.format(b[key])} / {fmt.format(pred[key])} ({err[key]:+.1f} %) / "
                   f"{fmt.format(pred_c[key])} ({err_c[key]:+.1f} %)")
    result.add("firehose entries per action m; XREADs per action per hub x (A; B ÷ W)",
               f"m = {model['m']:.2f}; x = {model['x']:.2f}; {b['xread'] / SCALED:.2f}")
    result.add("model fitted on A: e (bytes per firehose entry read), n + p·m, c (µs per round trip), XREAD µs",
               f"e = {result.details['firehose_entry']['entry_bytes']:.0f} B; n + p·m = {model['bytes_rest']:,.0f} B; "
               f"c = {model['c_usec_per_round_trip']:.1f} µs; XREAD {model['xread_usec_per_call']:.1f} µs per call")
    rts = model["round_trips_per_s"]
    result.add("c (Redis µs per round trip besides command time) fitted on A / on B, at round trips/s",
               f"{model['c_usec_per_round_trip']:.1f} / {model['c_usec_per_round_trip_fitted_on_b']:.1f} µs at "
               f"{rts['a']:,} / {rts['b']:,} per s (a busier Redis serves more sockets per event-loop turn)")
    claims = model["claims_b_minus_a"]
    result.add("job claims tried per action (ZSCORE; > 1 = workers losing the race for the same job)",
               f"A {a['claims']:.2f}, B {b['claims']:.2f}: B's extra claims and polls cost {claims['commands']:.1f} "
               f"commands, {claims['round_trips']:.1f} round trips, {claims['redis_cpu_ms']:.3f} ms Redis CPU, "
               f"≈ {claims['bytes_in']:,.0f} bytes in and {claims['bytes_out']:,.0f} out per action")
    result.add("five-chunk actions/s one Redis core serves (1000 / Redis CPU ms per action)",
               f"A {model['actions_per_s_per_redis_core_a']:,}, B {model['actions_per_s_per_redis_core_b']:,}")
    result.add("Redis µs per firehose entry read by one hub, model at A's batching (x·(XREAD µs + c) / m)",
               f"{model['entry_read_usec_model']:.2f} µs ({model['m'] / model['x'] if model['x'] else 0:.1f} entries "
               f"per XREAD) → {model['entry_reads_per_s_per_core']:,} entry-reads/s per core")
    batches = model["xread_usec_per_entry_by_batch"]
    result.add("Redis µs per entry read with XREAD COUNT 1 / 10 / 100 (one client, stack idle) → entry-reads/s per core",
               " / ".join(f"{batches[n]:.2f}" for n in (1, 10, 100)) + " µs → "
               + " / ".join(f"{1e6 / batches[n]:,.0f}" if batches[n] else "–" for n in (1, 10, 100)))
    capacity = ", ".join(f"W={w}: {n:,}" for w, n in model["actions_per_s_per_redis_core_by_webs"].items())
    result.add("model: actions/s one Redis core serves with W web processes reading the firehose", capacity)
    result.add("model: W at which the hubs' reads cost Redis as much as the rest of an action",
               model["webs_where_reads_equal_the_rest"])
    result.add("web + worker cores kept busy per Redis core (A's CPU per action)", model["web_worker_cores_per_redis_core"])
    failures = phase_a["failures"] + phase_b["failures"]
    if failures:
        first = (phase_a["first_failures"] or phase_b["first_failures"] or [""])[0]
        result.add("failures (first)", f"{failures} ({first})", "", "0", False)
