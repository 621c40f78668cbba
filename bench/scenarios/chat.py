"""Scenario `chat`: what a Duo Chat turn costs next to a plain chat action (SPEC §12: ≤ 2× in CPU per action
and Redis commands per action).

Two phases on one stack, each CLIENTS closed-loop clients for the window:
- **plain**: `aiAction(chat: "ping", conversationType: DUO_CHAT)` — a new, empty thread per question;
- **agent**: a question in a thread that already holds 40 messages (20 question/answer pairs), whose answer
  takes one tool call: the mock model is scripted to call `issue_reader` on `gitlab-duo/test#1`, then echoes
  the tool's result (the issue with its notes). Each request uses a thread of its own, prepared before the
  window, so every turn sees exactly 40 messages of history.
Both without `clientSubscriptionId` (the final only). CPU of web, worker and Redis and Redis commands are read
over each window and divided by the actions finished in it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy import insert

from bench.client import GraphQLHttp, Socket, request_id_of, subscription_query
from bench.meters import CpuMeter, RedisCalls
from bench.report import Result, percentiles
from bench.stack import HOST, Stack
from bench.waiters import Finals
from core.db import create_engine
from core.tables import ConversationMessage, ConversationThread

__all__ = ["run"]

CLIENTS = 16
HISTORY = 40
MUTATION = "mutation($input: AiActionInput!) { aiAction(input: $input) { requestId errors } }"
TOOL_TURN = '<response><tool_call name="issue_reader">{"reference": "gitlab-duo/test#1"}</tool_call></response>'


async def run(quick: bool) -> Result:
    result = Result("chat")
    duration = 3.0 if quick else 10.0
    with Stack() as stack:
        threads = await _prepare_threads(stack, count=400 if quick else 1500)
        async with asyncio.timeout(4 * duration + 120):
            plain = await _phase(stack, "plain", duration, lambda: _body({"conversationType": "DUO_CHAT"}, "ping"))
            agent = await _phase(stack, "agent", duration, lambda: _body({"threadId": threads.pop()}, TOOL_TURN))
    result.details.update(plain=plain, agent=agent, clients=CLIENTS, history_messages=HISTORY,
                          method=__doc__.strip().splitlines()[0] if __doc__ else "")
    for name, phase in (("plain chat", plain), ("chat turn: 40-message history + 1 tool call", agent)):
        result.add(f"{name}: actions/s ({CLIENTS} in flight)", phase["actions_per_s"], "actions/s")
        result.add(f"{name}: CPU per action (web + worker + Redis)", phase["cpu_ms_per_action"], "ms")
        result.add(f"{name}: Redis commands per action", phase["redis_calls_per_action"].get("total", 0.0))
        result.add(f"{name}: end-to-end p50 under load", phase["latency_ms"].get("p50", 0.0), "ms")
    cpu_ratio = agent["cpu_ms_per_action"] / plain["cpu_ms_per_action"] if plain["cpu_ms_per_action"] else 0.0
    calls_ratio = (agent["redis_calls_per_action"].get("total", 0.0) / plain["redis_calls_per_action"].get("total", 1.0))
    result.add("ratio chat turn / plain chat, CPU per action", cpu_ratio, "", "≤ 2", cpu_ratio <= 2)
    result.add("ratio chat turn / plain chat, Redis commands per action", calls_ratio, "", "≤ 2", calls_ratio <= 2)
    result.add_calls("chat turn: Redis commands per action", agent["redis_calls_per_action"])
    failures = plain["failures"] + agent["failures"]
    result.add("failed mutations, error finals, missing finals", failures, "", "0", failures == 0)
    return result


def _body(extra: dict[str, object], content: str) -> bytes:
    return orjson.dumps({"query": MUTATION, "variables": {"input": {"chat": {"content": content}, **extra}}})


async def _prepare_threads(stack: Stack, count: int) -> list[str]:
    """`count` threads of alice's with HISTORY messages each, written straight into the stack's database."""
    engine = create_engine(stack.env["DATABASE_URL"])
    user_id = int(stack.gid().rsplit("/", 1)[1])
    start = datetime.now(UTC) - timedelta(hours=1)
    try:
        async with engine.begin() as connection:
            ids = []
            for n in range(count):
                ids.append((await connection.execute(insert(ConversationThread).values(
                    user_id=user_id, conversation_type="duo_chat", title=f"bench {n}", created_at=start,
                    last_updated_at=start))).inserted_primary_key[0])
            rows = []
            for thread in ids:
                for turn in range(HISTORY // 2):
                    request_id = str(uuid.uuid4())
                    at = start + timedelta(seconds=turn)
                    for role, text in (("user", f"question {turn}: how do I cache dependencies in CI?"),
                                       ("assistant", f"answer {turn}: use the cache keyword with a key per lock file. " * 4)):
                        rows.append({"thread_id": thread, "user_id": user_id, "message_xid": str(uuid.uuid4()),
                                     "request_id": request_id, "role": role, "content": text, "created_at": at})
            await connection.execute(insert(ConversationMessage), rows)
    finally:
        await engine.dispose()
    return [f"gid://gitlab/Ai::Conversation::Thread/{thread}" for thread in ids]


async def _phase(stack: Stack, name: str, duration: float, body: object) -> dict:
    finals = Finals()
    socket = await Socket(stack.ws_url, stack.token(), finals.on_message).open()
    http = GraphQLHttp(HOST, stack.web_port, stack.token(), size=CLIENTS)
    stop = asyncio.Event()
    done = failures = 0
    window: list[float] = []
    measuring = False

    async def client() -> None:
        nonlocal done, failures
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                request_id = request_id_of(await http.post(body()))  # type: ignore[operator]
                arrived, message = await finals.wait(request_id, timeout_s=30)
            except Exception:  # counted; the load goes on
                failures += 1
                await asyncio.sleep(0.05)
                continue
            if message.get("errors"):
                failures += 1
                continue
            done += 1
            if measuring:
                window.append((arrived - t0) * 1000)

    try:
        await socket.subscribe([("1", subscription_query(stack.gid()))])
        await asyncio.sleep(0.3)
        tasks = [asyncio.create_task(client()) for _ in range(CLIENTS)]
        try:
            await asyncio.sleep(1.0)  # warm-up
            meter, calls = CpuMeter(stack), RedisCalls(stack)
            meter.start()
            calls.start()
            measuring = True
            done_0, t0 = done, time.perf_counter()
            await asyncio.sleep(duration)
            done_1, t1 = done, time.perf_counter()
            measuring = False
            cpu = meter.stop()
            redis_calls = calls.stop(per=done_1 - done_0)
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 40)
        finally:
            for task in tasks:
                task.cancel()
    finally:
        await socket.close()
        await http.close()
    actions = max(done_1 - done_0, 1)
    elapsed = t1 - t0
    server_cpu = sum(cpu.get(process, 0.0) for process in ("web", "worker", "redis"))  # % of a core
    return {
        "phase": name, "actions": done_1 - done_0, "actions_per_s": round(actions / elapsed, 1), "cpu_percent": cpu,
        "cpu_ms_per_action": round(server_cpu / 100 * elapsed * 1000 / actions, 3),
        "redis_calls_per_action": redis_calls, "latency_ms": percentiles(window), "failures": failures,
    }
