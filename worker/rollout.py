"""The guarded rollouts' controller (SPEC §9.1): a timer in every worker process, one of which leads.

Every `SWITCHBOARD_ROLLOUT_CHECK_S` (10 s) each worker tries to hold the leader lock (`keys.ROLLOUT_LEADER`:
`SET NX PX` with a token of its own, renewed by compare-and-set, lease three checks long, so a dead leader is
replaced within about three checks). The leader checks every `running` rollout: it reads the cohort
counters of the step's window (`core.metrics.read_cohorts`, both cohorts over the same minutes) and, for a
model rollout, the feedback per model from the database; `worker.cohorts` compares and decides; the
controller then rolls back (`access.admin.rollouts.roll_back`), moves to the next step
(`apply_step`), completes, extends the step once, or pauses. It writes `Rollout.last_check` at every check
and a `check` event when the decision changes.

Its whole state is the rollout's row: a restarted or new leader carries on where the last one stopped. Two
leaders never act on the same check: besides the lock, every action is taken in a transaction that first
claims the row with a guarded `UPDATE … WHERE state = 'running' AND step_index = … AND updated_at = …` (the
values the check read); a row changed meanwhile (by an operator, or by a leader that lost its lock while
slow) is left alone until the next check.

The cohorts: for a model rollout, the requests of the feature setting whose selected model was `to_ref`
(new) and `from_ref` (old); for a prompt rollout, the feature setting's requests with the prompt version
`to_ref` (new) and `from_ref` (old) on the models that served the new one. At a step of 100 % nobody is left
in the old cohort, so its baseline is then its counts since the rollout started (as far back as the
counters live, 2 h), and passing needs the new cohort's requests only.

Log events (operator-facing): `rollout_leader_acquired`, `rollout_leader_lost`, `rollout_check` (when the
decision changes), `rollout_step`, `rollout_extended`, `rollout_paused`, `rollout_completed`,
`rollout_rolled_back` (from `roll_back`), `rollout_check_failed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from redis.asyncio import Redis
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from access.admin.model_settings import audit
from access.admin.rollouts import RolloutConfig, apply_step, gates_at, record_event, roll_back, target_of
from catalogue import get_feature
from chat.conversations import feedback_counts
from core import keys
from core.metrics import CohortCounts, read_cohorts
from core.tables import Rollout, utcnow
from worker.cohorts import Decision, compare, decide

__all__ = ["AUTHOR", "LEASE_CHECKS", "Check", "Controller", "Leadership"]

log = logging.getLogger(__name__)

AUTHOR = "controller"  # the author of the controller's audit entries
LEASE_CHECKS = 3  # the leader lock lives this many check intervals unless renewed

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Leadership:
    """The leader lock: at most one holder; `hold()` renews it or takes it when free."""

    def __init__(self, redis: Redis, lease_s: float, token: str | None = None) -> None:
        self.redis = redis
        self.lease_ms = max(1, int(lease_s * 1000))
        self.token = token or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.leading = False

    async def hold(self) -> bool:
        """True while this process leads: renewed when held, taken when free."""
        if self.leading:
            if await self._script(_RENEW, self.lease_ms):
                return True
            self.leading = False
            log.warning("rollout_leader_lost", extra={"token": self.token})
        if await self.redis.set(keys.ROLLOUT_LEADER, self.token, nx=True, px=self.lease_ms):
            self.leading = True
            log.info("rollout_leader_acquired", extra={"token": self.token})
        return self.leading

    async def release(self) -> None:
        if self.leading:
            self.leading = False
            await self._script(_RELEASE)

    async def _script(self, script: str, *args: int) -> int:
        result = self.redis.eval(script, 1, keys.ROLLOUT_LEADER, self.token, *(str(arg) for arg in args))
        return int(await cast("Awaitable[Any]", result))


@dataclass(frozen=True)
class Check:
    """One rollout's check, measured and decided: what `act` applies if the row is still as it was read
    (`step`, `updated_at`), and the record written to `Rollout.last_check`."""

    rollout_id: int
    step: int
    updated_at: datetime
    decision: Decision
    record: dict[str, Any]
    changed: bool  # the decision differs from the last check's
    at: float


class Controller:
    """Checks the running rollouts while this process leads. `clock` (unix seconds) is injectable."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], redis: Redis, *, interval_s: float,
        clock: Callable[[], float] = time.time, token: str | None = None,
    ) -> None:
        self.sessions = sessions
        self.redis = redis
        self.interval_s = interval_s
        self.clock = clock
        self.leadership = Leadership(redis, LEASE_CHECKS * interval_s, token)

    async def run(self) -> None:
        """The timer: a check every `interval_s` until cancelled; the lock is released on the way out. The
        first check waits one interval: a worker stopped while it starts (a deploy, a crash loop) has then
        touched neither the lock nor the database."""
        try:
            while True:
                await asyncio.sleep(self.interval_s)
                try:
                    await self.tick()
                except Exception as exc:  # Redis or the database away: the next check tries again
                    log.warning("rollout_check_failed", extra={"error": type(exc).__name__, "detail": str(exc)[:200]})
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.leadership.release(), 2)

    async def tick(self) -> list[Check]:
        """One check of every running rollout, when this process leads (else nothing)."""
        if not await self.leadership.hold():
            return []
        async with self.sessions() as session:
            ids = (await session.scalars(select(Rollout.id).where(Rollout.state == "running").order_by(Rollout.id))).all()
        checks = []
        for rollout_id in ids:
            try:
                check = await self.measure(rollout_id)
                if check is not None and await self.act(check):
                    checks.append(check)
            except Exception:
                log.exception("rollout_check_failed", extra={"rollout": rollout_id})
        return checks

    async def measure(self, rollout_id: int) -> Check | None:
        """Measure and decide one rollout's check (no change made); None when it is no longer running."""
        now = self.clock()
        async with self.sessions() as session:
            rollout = await session.get(Rollout, rollout_id)
            if rollout is None or rollout.state != "running":
                return None
            thresholds = RolloutConfig.from_json(rollout.config)
            _named, percentage = gates_at(rollout.steps, rollout.step_index)
            step_start = rollout.step_started_at.timestamp()
            new, old = await self._cohorts(rollout, step_start, now)
            at_full = percentage >= 100
            if at_full:  # the old cohort gets no more traffic: its counts since the rollout started
                _, old = await self._cohorts(rollout, rollout.created_at.timestamp(), now)
            feedback = await self._feedback(session, rollout, step_start, now) if rollout.kind == "model" else None
            metrics = compare(new, old, thresholds, feedback)
            decision = decide(metrics, new, old, thresholds, elapsed_s=now - step_start, failures=rollout.failures,
                              extended=rollout.extended, needs_old=not at_full)
            previous = (rollout.last_check or {}).get("decision")
        record = {
            "at": datetime.fromtimestamp(now, UTC).isoformat(), "step": rollout.step_index, "percentage": percentage,
            "decision": decision.decision, "failures": decision.failures, "reason": decision.reason,
            "metrics": [metric.as_dict() for metric in metrics],
            "cohorts": {"new": {"ref": rollout.to_ref, **new.as_dict()}, "old": {"ref": rollout.from_ref, **old.as_dict()}},
        }
        return Check(rollout_id, rollout.step_index, rollout.updated_at, decision, record,
                     previous != decision.decision, now)

    async def _cohorts(self, rollout: Rollout, since: float, until: float) -> tuple[CohortCounts, CohortCounts]:
        """(new, old) counts of the window."""
        setting = rollout.subject if rollout.kind == "model" else get_feature(rollout.subject).feature_setting
        counts = await read_cohorts(self.redis, setting, since, until)
        new = old = CohortCounts()
        if rollout.kind == "model":
            for (model, _version), tally in counts.items():
                if model == rollout.to_ref:
                    new += tally
                elif model == rollout.from_ref:
                    old += tally
            return new, old
        models = {model for (model, version) in counts if version == rollout.to_ref}
        for (model, version), tally in counts.items():
            if version == rollout.to_ref:
                new += tally
            elif version == rollout.from_ref and (model in models or not models):
                old += tally
        return new, old

    @staticmethod
    async def _feedback(
        session: AsyncSession, rollout: Rollout, since: float, until: float
    ) -> tuple[tuple[int, int], tuple[int, int]]:
        counts = await feedback_counts(session, since=datetime.fromtimestamp(since, UTC),
                                       until=datetime.fromtimestamp(until, UTC))
        new, old = counts.get(rollout.to_ref), counts.get(rollout.from_ref)
        return ((new.negative, new.total) if new else (0, 0)), ((old.negative, old.total) if old else (0, 0))

    async def act(self, check: Check) -> bool:
        """Apply the check's decision in one transaction that first claims the row as it was measured; False
        (nothing done) when it changed meanwhile."""
        rollout_id, decision, record, now = check.rollout_id, check.decision, check.record, check.at
        async with self.sessions() as session, session.begin():
            claimed = await session.execute(
                update(Rollout)
                .where(Rollout.id == rollout_id, Rollout.state == "running", Rollout.step_index == check.step,
                       Rollout.updated_at == check.updated_at)
                .values(updated_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            if cast("Any", claimed).rowcount != 1:
                log.info("rollout_check_skipped", extra={"rollout": rollout_id, "why": "changed meanwhile"})
                return False
            rollout = await session.get(Rollout, rollout_id, populate_existing=True)
            assert rollout is not None
            rollout.last_check = record
            rollout.failures = decision.failures
            context = _context(rollout)
            if check.changed:
                await record_event(session, rollout, "check", record)
                log.info("rollout_check", extra={**context, "decision": decision.decision, "reason": decision.reason})
            detail = {"metrics": record["metrics"], "cohorts": record["cohorts"]}
            if decision.action == "roll_back":
                await roll_back(session, rollout, decision.reason or "failed", detail, author=AUTHOR)
            elif decision.action == "advance":
                await self._advance(session, rollout, now)
            elif decision.action == "extend":
                rollout.extended = True
                rollout.step_started_at = datetime.fromtimestamp(now, UTC)
                await record_event(session, rollout, "extended", {"reason": decision.reason})
                log.info("rollout_extended", extra={**context, "reason": decision.reason})
            elif decision.action == "pause":
                await self._pause(session, rollout, decision.reason or "inconclusive")
        return True

    async def _advance(self, session: AsyncSession, rollout: Rollout, now: float) -> None:
        """The step passed: the next step's gates, or `completed` after the last."""
        before = {"state": rollout.state, "step": rollout.step_index}
        if rollout.step_index + 1 >= len(rollout.steps):
            rollout.state = "completed"
            await record_event(session, rollout, "completed", {"step": rollout.step_index})
            await audit(session, AUTHOR, "rollout_completed", target_of(rollout), before, {"state": "completed"})
            log.info("rollout_completed", extra=_context(rollout))
            return
        rollout.step_index += 1
        rollout.step_started_at = datetime.fromtimestamp(now, UTC)
        rollout.extended = False
        rollout.failures = 0
        try:
            gates = await apply_step(session, rollout)
        except LookupError as exc:  # a named actor of the step is gone
            await self._pause(session, rollout, f"step {rollout.steps[rollout.step_index]!r}: {exc}")
            return
        await record_event(session, rollout, "step", {"step": rollout.step_index, "gates": gates})
        await audit(session, AUTHOR, "rollout_step", target_of(rollout), before,
                    {"state": rollout.state, "step": rollout.step_index, "gates": gates})
        log.info("rollout_step", extra={**_context(rollout), "gates": gates})

    async def _pause(self, session: AsyncSession, rollout: Rollout, reason: str) -> None:
        before = {"state": rollout.state, "step": rollout.step_index}
        rollout.state = "paused"
        rollout.reason = reason
        await record_event(session, rollout, "paused", {"reason": reason})
        await audit(session, AUTHOR, "rollout_paused", target_of(rollout), before, {"state": "paused", "reason": reason})
        log.warning("rollout_paused", extra={**_context(rollout), "reason": reason})


def _context(rollout: Rollout) -> Mapping[str, Any]:
    return {"rollout": rollout.id, "kind": rollout.kind, "subject": rollout.subject, "from": rollout.from_ref,
            "to": rollout.to_ref, "step": rollout.step_index, "steps": list(rollout.steps)}
