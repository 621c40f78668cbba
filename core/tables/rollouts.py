"""Guarded rollouts (SPEC §9.1): a migration of a feature setting to a new model, or of a feature to a new
prompt version, raised step by step by the controller in the workers and rolled back by it when the new
cohort does worse than the old one.

A rollout drives one pushed flag (`model_migration_<setting>` or `prompt_migration_<feature>`): its gates
follow `steps` (named actors `user:alice` / `group:gitlab-duo`, then percentages of actors), and the
resolution sends the actors the flag holds to `to_ref`. Its whole state is here, so that it survives a
restart of every process; `RolloutEvent` is its history (every step, check, pause and decision).

States: `running` (the controller checks it), `paused` (by an operator, or after an inconclusive step
that was already extended once), `completed` (the last step passed; `promote` makes it the default),
and the ends `rolled_back`, `aborted`, `promoted`. At most one rollout per (kind, subject) is not ended.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from core.tables.base import Base, UTCDateTime, created_at, utcnow

__all__ = ["ACTIVE_STATES", "ENDED_STATES", "ROLLOUT_KINDS", "ROLLOUT_STATES", "Rollout", "RolloutEvent"]

ROLLOUT_KINDS = ("model", "prompt")
ACTIVE_STATES = ("running", "paused", "completed")  # the flag holds actors: the resolution follows it
ENDED_STATES = ("rolled_back", "aborted", "promoted")
ROLLOUT_STATES = ACTIVE_STATES + ENDED_STATES


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Rollout(Base):
    __tablename__ = "ai_rollouts"
    __table_args__ = (
        CheckConstraint(_in("kind", ROLLOUT_KINDS), name="kind"),
        CheckConstraint(_in("state", ROLLOUT_STATES), name="state"),
        # One rollout per subject that has not ended, even when two operators start one at the same moment.
        Index("uq_ai_rollouts_active_subject", "kind", "subject", unique=True,
              sqlite_where=text(_in("state", ACTIVE_STATES)), postgresql_where=text(_in("state", ACTIVE_STATES))),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(64), index=True)  # feature setting (model) or feature key (prompt)
    flag: Mapped[str] = mapped_column(String(255))
    from_ref: Mapped[str] = mapped_column(String(255))  # model ref or prompt version served before
    to_ref: Mapped[str] = mapped_column(String(255))
    eval_run_id: Mapped[str | None] = mapped_column(String(36))  # the evaluation run that cleared it (§15)
    forced: Mapped[bool] = mapped_column(Boolean, default=False)  # started over a failed pre-gate
    steps: Mapped[list[str]] = mapped_column(JSON)
    step_index: Mapped[int] = mapped_column(Integer, default=0)
    step_started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    extended: Mapped[bool] = mapped_column(Boolean, default=False)  # the current step was extended once
    failures: Mapped[int] = mapped_column(Integer, default=0)  # failing checks in a row
    config: Mapped[dict[str, Any]] = mapped_column(JSON)  # step time, minimum requests, thresholds
    state: Mapped[str] = mapped_column(String(16), default="running", index=True)
    reason: Mapped[str | None] = mapped_column(Text)  # why it paused, rolled back or was aborted
    last_check: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RolloutEvent(Base):
    """One entry of a rollout's history: `started`, `step`, `check`, `extended`, `paused`, `resumed`,
    `completed`, `rolled_back`, `aborted`, `promoted`; `detail` holds the figures behind it."""

    __tablename__ = "ai_rollout_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rollout_id: Mapped[int] = mapped_column(ForeignKey("ai_rollouts.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = created_at()
