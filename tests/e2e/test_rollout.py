"""Guarded rollouts end to end (SPEC §9.1): a web process and two worker processes, not in mock mode, against
the fake Anthropic server of `tests._providers`; the rollout controller runs in the workers (one leads), with
a check every half second. A rollout to a model that fails rolls back by itself while other actors keep
the old model throughout; a healthy rollout survives the SIGKILL of the leading worker. The healthy rollout
comes first: the failing model's calls open its circuit breaker in the workers.

Until the operator's `switchboard models migrate` exists, a rollout is started as it leaves one: its row,
its first step's gates (`access.admin.rollouts.apply_step`) and its `started` event."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from redis import Redis as SyncRedis
from sqlalchemy import select

from access.flags import CACHE_TTL_S as FLAG_CACHE_S
from catalogue.selection_store import CACHE_TTL_S as SELECTION_CACHE_S
from core import keys
from core.db import create_engine, session_factory
from core.tables import Rollout, RolloutEvent
from tests._client import GraphQLSocket, post
from tests._providers import FakeLLM
from tests._stack import Stack, provider_stack

pytestmark = pytest.mark.timeout(120)

ACTION = "mutation($input: AiActionInput!) { aiAction(input: $input) { requestId errors } }"
SONNET, HAIKU = "claude_sonnet_4_6", "claude_haiku_4_5_20251001"
SONNET_API, HAIKU_API = "claude-sonnet-4-6", "claude-haiku-4-5-20251001"  # their provider model names


@pytest.fixture(scope="module")
def rollout_stack(redis_server: str, fake_llm_server: FakeLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp("stack-rollout")
    with provider_stack(redis_server, fake_llm_server.url, data, redis_db=4, workers=2, SWITCHBOARD_ROLLOUT_CHECK_S="0.5",
                        SWITCHBOARD_JOB_LEASE_S="2", SWITCHBOARD_WORKER_METRICS_PORT="0") as stack:
        yield stack


@pytest.fixture
async def sessions(rollout_stack: Stack) -> AsyncIterator[Any]:
    engine = create_engine(rollout_stack.env["DATABASE_URL"])
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


async def start_rollout(stack: Stack, sessions: Any, setting: str, steps: list[str], config: dict[str, Any]) -> int:
    """Start it as an operator does: `switchboard models migrate SETTING --to HAIKU --force ...`."""
    options = [f"--{name.replace('_', '-')}={value}" for name, value in config.items() if name != "step_time_s"]
    stack.cli("models", "migrate", setting, "--to", HAIKU, "--force", "--steps", ",".join(steps),
              "--step-time", f"{config.get('step_time_s', 600)}s", *options)
    async with sessions() as session:
        found = await session.scalar(select(Rollout.id).where(Rollout.subject == setting, Rollout.state == "running"))
        assert found is not None
        return found


async def rollout_row(sessions: Any, rollout_id: int) -> Rollout:
    async with sessions() as session:
        found = await session.get(Rollout, rollout_id)
        assert found is not None
        return found


class User:
    """One user's websocket and actions; `ask` returns the final message of one action."""

    def __init__(self, stack: Stack, name: str, socket: GraphQLSocket) -> None:
        self.stack, self.name, self.socket = stack, name, socket

    @classmethod
    async def connect(cls, stack: Stack, name: str) -> User:
        return cls(stack, name, await GraphQLSocket.connect(stack.ws_url, stack.token(name)))

    async def ask(self, input: dict[str, Any], route: dict[str, Any]) -> dict[str, Any]:
        sub = f"sub-{uuid.uuid4()}"
        op = await self.socket.subscribe({"userId": self.stack.gid(self.name), "clientSubscriptionId": sub, **route},
                                         settle_s=0.05)
        result = await post(self.stack.url, self.stack.token(self.name), ACTION, {"input": {**input, "clientSubscriptionId": sub}})
        assert result["data"]["aiAction"]["errors"] == [], result
        return (await self.socket.until_final(op))[-1]

    async def explain(self, marker: str) -> dict[str, Any]:
        issue = self.stack.seed["resources"]["issue"]
        return await self.ask({"explainCode": {"resourceId": issue, "code": f"print('{marker}')"}}, {"resourceId": issue})

    async def chat(self, text: str) -> dict[str, Any]:
        return await self.ask({"chat": {"content": text}}, {"aiAction": "CHAT"})


def models_asked(fake: FakeLLM, marker: str) -> set[str]:
    """The provider models the fake server was asked for a request carrying `marker`."""
    return {seen.body.get("model", "") for seen in fake.requests if marker in json.dumps(seen.body)}


async def test_the_controller_survives_the_death_of_the_leading_worker(
    rollout_stack: Stack, fake_llm: FakeLLM, sessions: Any
) -> None:
    # A step outlasts the flag cache time: alice's first requests may still see the flag as it was.
    # Two requests are too few to judge the time to first chunk on a busy host: its limit is off here.
    rollout_id = await start_rollout(rollout_stack, sessions, "duo_chat", ["user:alice", "100"],
                                     {"min_requests": 2, "step_time_s": 6, "max_ttfc_ratio": 1000})
    alice, bob = await User.connect(rollout_stack, "alice"), await User.connect(rollout_stack, "bob")
    redis = SyncRedis.from_url(rollout_stack.env["REDIS_URL"])
    async with asyncio.timeout(30):
        while (row := await rollout_row(sessions, rollout_id)).step_index == 0 and row.state == "running":
            assert (await alice.chat("hello from alice"))["errors"] == []
            assert (await bob.chat("hello from bob"))["errors"] == []
    assert (row.state, row.step_index) == ("running", 1), row.reason
    leader_pid = int(redis.get(keys.ROLLOUT_LEADER).split(b":")[1])
    workers = {process.pid: process for process in [rollout_stack.worker, *rollout_stack.extra]}
    assert leader_pid in workers
    os.kill(leader_pid, signal.SIGKILL)
    workers[leader_pid].wait(10)
    rollout_stack.start_worker("worker-restarted")  # the killed worker comes back (as a supervisor restarts it)
    async with asyncio.timeout(30):
        while (rollout := await rollout_row(sessions, rollout_id)).state == "running":
            assert (await alice.chat("hello again"))["errors"] == []
    assert (rollout.state, rollout.step_index) == ("completed", 1)  # carried on from the step the dead leader left
    survivor = int(redis.get(keys.ROLLOUT_LEADER).split(b":")[1])
    assert survivor != leader_pid and survivor in workers
    async with sessions() as session:
        kinds = list((await session.scalars(select(RolloutEvent.kind).where(RolloutEvent.rollout_id == rollout_id)
                                            .order_by(RolloutEvent.id))).all())
    assert kinds.count("step") == 1 and kinds[-1] == "completed"
    await alice.socket.close()
    await bob.socket.close()
    redis.close()


async def test_a_rollout_to_a_failing_model_rolls_back_by_itself_and_others_keep_the_old_model(
    rollout_stack: Stack, fake_llm: FakeLLM, sessions: Any
) -> None:
    fake_llm.fail_model(HAIKU_API)
    setting = "duo_chat_explain_code"
    rollout_id = await start_rollout(rollout_stack, sessions, setting, ["user:alice", "100"],  # the hard error ratio decides
                                     {"min_requests": 3, "step_time_s": 600, "failure_limit": 100})
    alice, bob = await User.connect(rollout_stack, "alice"), await User.connect(rollout_stack, "bob")
    bobs: list[str] = []
    alices: list[str] = []
    async with asyncio.timeout(60):
        while (await rollout_row(sessions, rollout_id)).state == "running":  # alice's requests fail, bob's answer
            bobs.append(f"bob-{uuid.uuid4().hex[:8]}")
            assert (await bob.explain(bobs[-1]))["errors"] == []
            alices.append(f"alice-{uuid.uuid4().hex[:8]}")
            await alice.explain(alices[-1])
    rollout = await rollout_row(sessions, rollout_id)
    assert rollout.state == "rolled_back" and rollout.reason is not None
    assert rollout.reason.startswith("error_ratio: new 1.0000 (") and "reached the hard error ratio 0.2" in rollout.reason
    assert any(models_asked(fake_llm, marker) == {HAIKU_API} for marker in alices)  # alice was in the new cohort
    # The rollback is in force everywhere within the flag and selection cache time (SPEC §9.1: ≤ 5 s).
    assert rollout.finished_at is not None
    await asyncio.sleep(max(0.0, rollout.finished_at.timestamp() + max(FLAG_CACHE_S, SELECTION_CACHE_S) - time.time()))
    for _ in range(3):  # alice is back on the old model, whichever worker takes her request
        alices.append(f"alice-{uuid.uuid4().hex[:8]}")
        assert (await alice.explain(alices[-1]))["errors"] == []
        assert models_asked(fake_llm, alices[-1]) == {SONNET_API}
    assert all(models_asked(fake_llm, marker) == {SONNET_API} for marker in bobs)  # bob kept the old model throughout
    await alice.socket.close()
    await bob.socket.close()
    async with sessions() as session:
        kinds = list((await session.scalars(select(RolloutEvent.kind).where(RolloutEvent.rollout_id == rollout_id)
                                            .order_by(RolloutEvent.id))).all())
    assert kinds[0] == "started" and kinds[-1] == "rolled_back"
    logs = "".join(path.read_text() for path in rollout_stack.logs.glob("worker*.log"))
    assert '"rollout_rolled_back"' in logs and "print(" not in logs  # an operator-facing event, no user input
