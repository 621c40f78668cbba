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
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy import insert

from bench.client import GraphQLHttp, Socket, subscription_query
from bench.load import closed_loop, round_trip_action
from bench.report import Result
from bench.stack import HOST, Stack
from bench.waiters import Finals
from core.db import create_engine
from core.tables import ConversationMessage, ConversationThread

__all__ = ["run", "prepare_threads", "TOOL_TURN", "HISTORY"]

CLIENTS = 16
HISTORY = 40
MUTATION = "mutation($input: AiActionInput!) { aiAction(input: $input) { requestId errors } }"
TOOL_TURN = '<response><tool_call name="issue_reader">{"reference": "gitlab-duo/test#1"}</tool_call></response>'


async def run(quick: bool) -> Result:
    result = Result("chat")
    duration = 3.0 if quick else 10.0
    with Stack() as stack:
        threads = await prepare_threads(stack, count=400 if quick else 1500)
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


async def prepare_threads(stack: Stack, count: int) -> list[str]:
    """`count` threads of alice's with HISTORY messages each, written straight into the stack's database."""
    engine = create_engine(stack.env["DATABASE_URL"])
    user_id = int(stack.gid().rsplit("/", 1)[1])
    start = datetime.now(UTC) - timedelta(hours=1)
    try:
        async with engine.begin() as connection:
            ids = (await connection.execute(insert(ConversationThread).returning(ConversationThread.id), [
                {"user_id": user_id, "conversation_type": "duo_chat", "title": f"bench {n}", "created_at": start,
                 "last_updated_at": start} for n in range(count)
            ])).scalars().all()
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


async def _phase(stack: Stack, name: str, duration: float, body: Callable[[], bytes]) -> dict:
    finals = Finals()
    socket = await Socket(stack.ws_url, stack.token(), finals.on_message).open()
    http = GraphQLHttp(HOST, stack.web_port, stack.token(), size=CLIENTS)
    try:
        await socket.subscribe([("1", subscription_query(stack.gid()))])
        await asyncio.sleep(0.3)
        phase = await closed_loop(stack, round_trip_action(http, finals, body), clients=CLIENTS, duration=duration,
                                  warmup=1.0)
    finally:
        await socket.close()
        await http.close()
    # The chat scenario's CPU per action counts Redis too (web + worker + Redis), as it always has.
    cpu_ms = phase["cpu_ms_per_action"]
    server = round(sum(cpu_ms.get(process, 0.0) for process in ("web", "worker", "redis")), 3)
    return {"phase": name, **phase, "cpu_ms_per_action": server, "cpu_ms_per_action_by_process": cpu_ms}
