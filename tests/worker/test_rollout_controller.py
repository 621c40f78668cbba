"""`worker.rollout`: the controller's checks driven one by one with an injected clock, against a real Redis
(the cohort counters written by `core.metrics.record_cohort`, the leader lock) and a real database (the
rollout's row, its flag, history and audit entries)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from arq.connections import ArqRedis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from access.admin.rollouts import apply_step, record_event
from access.flags import load_state
from catalogue.flags import model_migration_flag, prompt_migration_flag
from core import keys
from core.db import create_engine, session_factory
from core.metrics import Cohort, MinuteStats, read_cohorts, record_cohort
from core.tables import ModelSelectionAuditEvent, Rollout, RolloutEvent
from worker.rollout import Controller

SETTING = "duo_chat_explain_code"
SONNET, HAIKU = "claude_sonnet_4_6", "claude_haiku_4_5_20251001"
VERSION = "^1.0.0"
T0 = 1_800_000_000 - 1_800_000_000 % 60  # the start of a minute


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def sessions(database_url: str, seeded: dict) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


async def start(
    sessions: async_sessionmaker[AsyncSession], steps: list[str], config: dict[str, Any], *, kind: str = "model",
    subject: str = SETTING, from_ref: str = SONNET, to_ref: str = HAIKU,
) -> int:
    """A running rollout at its first step, as the operator's `migrate` leaves it."""
    at = datetime.fromtimestamp(T0, UTC)
    flag = model_migration_flag(subject) if kind == "model" else prompt_migration_flag(subject)
    async with sessions() as session, session.begin():
        rollout = Rollout(kind=kind, subject=subject, flag=flag, from_ref=from_ref, to_ref=to_ref, steps=steps,
                          step_index=0, step_started_at=at, created_at=at, config=config, state="running",
                          created_by="test")
        session.add(rollout)
        await session.flush()
        await apply_step(session, rollout)
        await record_event(session, rollout, "started")
        return rollout.id


async def count(redis: ArqRedis, model: str, at: float, *, ok: int = 0, errors: int = 0, version: str = VERSION,
                ttfc_s: float = 0.4, seconds: float = 1.0) -> None:
    counts = MinuteStats()  # a worker's, flushed as its monitor does
    for index in range(ok + errors):
        record_cohort(counts, Cohort(SETTING, model, version), ok=index < ok, seconds=seconds,
                      first_chunk_s=ttfc_s if index < ok else None, now=at)
    await counts.flush(redis)


async def rollout_of(sessions: async_sessionmaker[AsyncSession], rollout_id: int) -> Rollout:
    async with sessions() as session:
        found = await session.get(Rollout, rollout_id)
        assert found is not None
        return found


async def events(sessions: async_sessionmaker[AsyncSession], rollout_id: int) -> list[str]:
    async with sessions() as session:
        return list((await session.scalars(select(RolloutEvent.kind).where(RolloutEvent.rollout_id == rollout_id)
                                           .order_by(RolloutEvent.id))).all())


async def flag_of(sessions: async_sessionmaker[AsyncSession], name: str) -> tuple[float, list[str]]:
    async with sessions() as session:
        state = await load_state(session, name)
    assert state is not None
    return state.percentage_of_actors, sorted(state.actors)


async def tick(controller: Controller, at: float) -> list[str]:
    controller.clock.now = at  # type: ignore[attr-defined]
    return [check.decision.decision for check in await controller.tick()]


def controller(sessions: async_sessionmaker[AsyncSession], redis: ArqRedis, *, token: str = "one",
               interval_s: float = 10) -> Controller:
    return Controller(sessions, redis, interval_s=interval_s, clock=Clock(T0), token=token)


async def test_the_counters_sum_a_window_by_selected_model_and_prompt_version(redis: ArqRedis) -> None:
    await count(redis, HAIKU, T0 + 5, ok=2, errors=1, ttfc_s=0.3)
    await count(redis, HAIKU, T0 + 65, ok=1, seconds=45.0, ttfc_s=3.0)  # answered, too slow for apdex
    await count(redis, SONNET, T0 + 65, ok=1, version="1.1.0")
    await count(redis, HAIKU, T0 + 200, ok=5)  # after the window
    counts = await read_cohorts(redis, SETTING, T0, T0 + 119)
    haiku = counts[(HAIKU, VERSION)]
    assert (haiku.requests, haiku.errors, haiku.apdex_ok, haiku.ttfc_ms, haiku.ttfc_count) == (4, 1, 2, 3600, 3)
    assert haiku.ttfc_buckets == (2, 0, 0, 1, 0, 0) and haiku.ttfc_p95_ms() == 5000
    assert counts[(SONNET, "1.1.0")].requests == 1 and set(counts) == {(HAIKU, VERSION), (SONNET, "1.1.0")}
    assert 0 < await redis.ttl(keys.cohort(SETTING, T0 // 60)) <= keys.COHORT_TTL_S


async def test_a_healthy_rollout_advances_step_by_step_then_completes(
    sessions: async_sessionmaker[AsyncSession], redis: ArqRedis, seeded: dict
) -> None:
    rollout_id = await start(sessions, ["user:alice", "50", "100"], {"step_time_s": 60, "min_requests": 5})
    flag = model_migration_flag(SETTING)
    assert await flag_of(sessions, flag) == (0, [f"User:{seeded['users']['alice']['id']}"])
    ctl = controller(sessions, redis)
    assert await tick(ctl, T0 + 10) == ["waiting"]
    await count(redis, HAIKU, T0 + 20, ok=5)
    await count(redis, SONNET, T0 + 20, ok=5)
    assert await tick(ctl, T0 + 30) == ["waiting"]  # enough requests, not yet the step time
    assert await tick(ctl, T0 + 60) == ["pass"]
    rollout = await rollout_of(sessions, rollout_id)
    assert (rollout.step_index, rollout.step_started_at.timestamp(), rollout.state) == (1, T0 + 60, "running")
    assert (await flag_of(sessions, flag))[0] == 50
    assert await tick(ctl, T0 + 120) == ["inconclusive"]  # the new step's window (from T0 + 60) had no request
    rollout = await rollout_of(sessions, rollout_id)
    assert rollout.extended and rollout.step_started_at.timestamp() == T0 + 120
    await count(redis, HAIKU, T0 + 130, ok=5)
    await count(redis, SONNET, T0 + 130, ok=6)
    assert await tick(ctl, T0 + 180) == ["pass"]
    assert (await flag_of(sessions, flag))[0] == 100
    await count(redis, HAIKU, T0 + 200, ok=5)  # at 100 % the old cohort's baseline is the whole rollout's
    assert await tick(ctl, T0 + 240) == ["pass"]
    rollout = await rollout_of(sessions, rollout_id)
    assert (rollout.state, rollout.step_index, rollout.failures) == ("completed", 2, 0)
    assert rollout.last_check is not None and rollout.last_check["decision"] == "pass"
    assert rollout.last_check["cohorts"]["new"]["requests"] == 5 and rollout.last_check["cohorts"]["old"]["requests"] == 11
    assert await events(sessions, rollout_id) == [
        "started", "check", "check", "step", "check", "extended", "check", "step", "completed"]
    assert await tick(ctl, T0 + 300) == []  # a completed rollout is not checked any more
    async with sessions() as session:
        actions = (await session.scalars(select(ModelSelectionAuditEvent.action).order_by(ModelSelectionAuditEvent.id))).all()
    assert list(actions) == ["rollout_step", "rollout_step", "rollout_completed"]


async def test_a_failing_new_model_is_rolled_back_at_once_past_the_hard_error_ratio(
    sessions: async_sessionmaker[AsyncSession], redis: ArqRedis
) -> None:
    rollout_id = await start(sessions, ["user:alice", "100"], {"min_requests": 50})
    await count(redis, HAIKU, T0 + 5, ok=7, errors=3)
    await count(redis, SONNET, T0 + 5, ok=20)
    assert await tick(controller(sessions, redis), T0 + 10) == ["fail"]
    rollout = await rollout_of(sessions, rollout_id)
    assert rollout.state == "rolled_back" and rollout.finished_at is not None
    assert rollout.reason == ("error_ratio: new 0.3000 (3/10) reached the hard error ratio 0.2; old 0.0000 (0/20)")
    assert await flag_of(sessions, model_migration_flag(SETTING)) == (0, [])
    assert await events(sessions, rollout_id) == ["started", "check", "rolled_back"]
    async with sessions() as session:
        event = await session.scalar(select(RolloutEvent).where(RolloutEvent.kind == "rolled_back"))
        audit = await session.scalar(select(ModelSelectionAuditEvent))
    assert event is not None and event.detail is not None and event.detail["cohorts"]["new"]["errors"] == 3
    assert audit is not None and (audit.action, audit.author_name) == ("rollout_rolled_back", "controller")


async def test_a_softer_significant_regression_is_rolled_back_after_the_failure_limit(
    sessions: async_sessionmaker[AsyncSession], redis: ArqRedis
) -> None:
    rollout_id = await start(sessions, ["25"], {"min_requests": 50, "failure_limit": 2})
    await count(redis, HAIKU, T0 + 5, ok=85, errors=15)  # 15 %: under the hard ratio
    await count(redis, SONNET, T0 + 5, ok=297, errors=3)
    ctl = controller(sessions, redis)
    assert await tick(ctl, T0 + 10) == ["fail"]
    rollout = await rollout_of(sessions, rollout_id)
    assert (rollout.state, rollout.failures) == ("running", 1)
    error = rollout.last_check["metrics"][0] if rollout.last_check else {}
    assert error["name"] == "error_ratio" and error["verdict"] == "worse" and error["low"] > 0.02
    assert await tick(ctl, T0 + 20) == ["fail"]
    rollout = await rollout_of(sessions, rollout_id)
    assert rollout.state == "rolled_back" and rollout.reason is not None
    assert rollout.reason.startswith("error_ratio: new 0.1500, old 0.0100, difference +0.1400 (95 % interval +0.")
    assert rollout.reason.endswith("for 2 checks in a row")
    assert await events(sessions, rollout_id) == ["started", "check", "rolled_back"]  # one check event per change


async def test_too_few_requests_extend_the_step_once_then_pause(
    sessions: async_sessionmaker[AsyncSession], redis: ArqRedis
) -> None:
    rollout_id = await start(sessions, ["5", "100"], {"step_time_s": 60, "min_requests": 50})
    await count(redis, HAIKU, T0 + 5, ok=3)
    await count(redis, SONNET, T0 + 5, ok=40)
    ctl = controller(sessions, redis)
    assert await tick(ctl, T0 + 60) == ["inconclusive"]
    rollout = await rollout_of(sessions, rollout_id)
    assert (rollout.state, rollout.extended, rollout.step_index) == ("running", True, 0)
    assert await tick(ctl, T0 + 90) == ["waiting"]  # the extension restarted the step's clock
    assert await tick(ctl, T0 + 120) == ["inconclusive"]
    rollout = await rollout_of(sessions, rollout_id)
    assert rollout.state == "paused" and rollout.reason is not None and rollout.reason.startswith("inconclusive: ")
    assert await events(sessions, rollout_id) == ["started", "check", "extended", "check", "check", "paused"]
    assert await tick(ctl, T0 + 180) == []  # paused: left alone


async def test_a_prompt_rollout_compares_the_versions_on_the_same_model(
    sessions: async_sessionmaker[AsyncSession], redis: ArqRedis
) -> None:
    rollout_id = await start(sessions, ["100"], {"min_requests": 50}, kind="prompt", subject="explain_code",
                             from_ref=VERSION, to_ref="1.1.0")
    await count(redis, SONNET, T0 + 5, ok=5, errors=5, version="1.1.0")
    await count(redis, SONNET, T0 + 5, ok=30, version=VERSION)
    await count(redis, HAIKU, T0 + 5, errors=30, version=VERSION)  # another model: not the comparison
    assert await tick(controller(sessions, redis), T0 + 10) == ["fail"]
    rollout = await rollout_of(sessions, rollout_id)
    assert rollout.state == "rolled_back" and rollout.reason is not None and "old 0.0000 (0/30)" in rollout.reason


async def test_one_leader_at_a_time_and_another_takes_over_when_its_lock_expires(
    sessions: async_sessionmaker[AsyncSession], redis: ArqRedis
) -> None:
    await start(sessions, ["user:alice", "100"], {"step_time_s": 60, "min_requests": 1})
    first = controller(sessions, redis, token="first", interval_s=0.1)  # a 300 ms lease
    second = controller(sessions, redis, token="second", interval_s=0.1)
    assert await tick(first, T0 + 10) == ["waiting"]
    assert await tick(second, T0 + 10) == [] and not second.leadership.leading
    assert await tick(first, T0 + 20) == ["waiting"]  # renewed
    assert await redis.get(keys.ROLLOUT_LEADER) == b"first"
    lease_left_ms = await redis.pttl(keys.ROLLOUT_LEADER)
    assert 0 < lease_left_ms <= 300
    await asyncio.sleep(lease_left_ms / 1000 + 0.01)  # the first stops checking (as a killed worker): its lease runs out
    assert await tick(second, T0 + 30) == ["waiting"] and second.leadership.leading
    assert await tick(first, T0 + 40) == [] and not first.leadership.leading  # lost; the second holds it
    await second.leadership.release()
    assert not await redis.exists(keys.ROLLOUT_LEADER)


async def test_two_controllers_never_act_on_the_same_check(
    sessions: async_sessionmaker[AsyncSession], redis: ArqRedis
) -> None:
    """A leader that lost its lock while slow measured the same row as the new leader: one acts."""
    rollout_id = await start(sessions, ["user:alice", "50", "100"], {"step_time_s": 60, "min_requests": 1})
    await count(redis, HAIKU, T0 + 5, ok=2)
    await count(redis, SONNET, T0 + 5, ok=2)
    slow, fast = controller(sessions, redis, token="slow"), controller(sessions, redis, token="fast")
    slow.clock.now = fast.clock.now = T0 + 60  # type: ignore[attr-defined]
    stale, fresh = await slow.measure(rollout_id), await fast.measure(rollout_id)
    assert stale is not None and fresh is not None and stale.decision.action == fresh.decision.action == "advance"
    assert await fast.act(fresh)
    assert not await slow.act(stale)
    rollout = await rollout_of(sessions, rollout_id)
    assert rollout.step_index == 1
    assert (await events(sessions, rollout_id)).count("step") == 1


async def test_an_operator_change_between_measure_and_act_wins(
    sessions: async_sessionmaker[AsyncSession], redis: ArqRedis
) -> None:
    rollout_id = await start(sessions, ["50"], {"min_requests": 50})
    await count(redis, HAIKU, T0 + 5, errors=10)
    ctl = controller(sessions, redis)
    ctl.clock.now = T0 + 10  # type: ignore[attr-defined]
    check = await ctl.measure(rollout_id)
    assert check is not None and check.decision.action == "roll_back"
    async with sessions() as session, session.begin():  # an operator pauses it meanwhile
        rollout = await session.get(Rollout, rollout_id)
        assert rollout is not None
        rollout.state = "paused"
    assert not await ctl.act(check)
    assert (await rollout_of(sessions, rollout_id)).state == "paused"
