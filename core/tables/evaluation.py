"""Evaluation (SPEC §15): the runs of `switchboard eval run`, their results per item, arm and epoch, and the
cache of model answers and judgements.

A run compares a candidate (`model` at `prompt_version`) with an optional baseline on one dataset; its
`summary` holds, per metric, `{candidate, baseline, difference, low, high, verdict, ...}` and `gate` the
verdict of `switchboard eval gate` at the run's end (`pass`, `regression`, `error`). A result keeps a
snapshot of its item (the dataset file may change later), the answer or its error, timings, tokens, the
deterministic scores and the judge's grade (and, on candidate rows, the pairwise preference).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.tables.base import Base, UTCDateTime, created_at

__all__ = ["EVAL_ARMS", "EVAL_GATES", "EVAL_STATUSES", "EvalCacheEntry", "EvalResult", "EvalRun"]

EVAL_STATUSES = ("running", "finished", "failed")
EVAL_GATES = ("pass", "regression", "error")
EVAL_ARMS = ("candidate", "baseline")


class EvalRun(Base):
    __tablename__ = "ai_eval_runs"
    __table_args__ = (
        CheckConstraint("status IN ('running', 'finished', 'failed')", name="status"),
        CheckConstraint("gate IN ('pass', 'regression', 'error')", name="gate"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    dataset: Mapped[str] = mapped_column(String(255))
    dataset_sha256: Mapped[str] = mapped_column(String(64))
    feature: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(255))
    baseline: Mapped[str | None] = mapped_column(String(255))
    prompt_version: Mapped[str] = mapped_column(String(64))
    baseline_prompt_version: Mapped[str | None] = mapped_column(String(64))
    judge: Mapped[str | None] = mapped_column(String(255))
    repeat: Mapped[int] = mapped_column(Integer, default=1)
    mock: Mapped[bool] = mapped_column(Boolean, default=False)  # every call went to the mock model
    status: Mapped[str] = mapped_column(String(16), default="running")
    gate: Mapped[str | None] = mapped_column(String(16))
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    cache_hits: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)  # why a failed run failed
    created_at: Mapped[datetime] = created_at()
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class EvalResult(Base):
    __tablename__ = "ai_eval_results"
    __table_args__ = (
        UniqueConstraint("run_id", "item_id", "arm", "epoch"),
        CheckConstraint("arm IN ('candidate', 'baseline')", name="arm"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("ai_eval_runs.id", ondelete="CASCADE"))
    item_id: Mapped[str] = mapped_column(String(255))
    arm: Mapped[str] = mapped_column(String(16))
    epoch: Mapped[int] = mapped_column(Integer)
    item: Mapped[dict[str, Any]] = mapped_column(JSON)
    text: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    ttfc_ms: Mapped[float | None] = mapped_column(Float)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    scores: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    judge: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    prompt: Mapped[str | None] = mapped_column(String(255))  # the prompt file: chat/base/1.1.0.yml
    answered_by: Mapped[str | None] = mapped_column(String(255))  # the model that answered (the mock in mock mode)
    cached: Mapped[bool] = mapped_column(Boolean, default=False)


class EvalCacheEntry(Base):
    """A cached answer or judgement (`evaluation.cache`); errors are never cached."""

    __tablename__ = "ai_eval_cache"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = created_at()
