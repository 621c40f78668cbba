"""Runs in the database (tables `ai_eval_runs`, `ai_eval_results`): created when a run starts, finished with
its results, summary and gate, or marked failed; loaded back as a `RunReport` (`evaluation.comparison`); and
`gate_result`, the gate of a stored run, which `switchboard eval gate` prints and a migration's pre-gate
(SPEC §9.1) asks.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.tables import EvalResult, EvalRun, utcnow
from evaluation.comparison import ItemResult, RunInfo, RunReport, build_report, gate

__all__ = ["Answered", "GateResult", "GateStatus", "create_run", "fail_run", "finish_run", "gate_result", "info_of",
           "load_report", "load_results", "load_run"]

GateStatus = Literal["pass", "regression", "error"]


@dataclass(frozen=True)
class Answered:
    """One result of a run with how it was made: the arm, the prompt file rendered (`chat/base/1.1.0.yml`;
    None when no model was asked), the model that answered (the mock in mock mode), and whether the answer
    came from the cache."""

    arm: Literal["candidate", "baseline"]
    result: ItemResult
    prompt: str | None = None
    answered_by: str | None = None
    cached: bool = False


@dataclass(frozen=True)
class GateResult:
    """The gate of a run: `pass`, `regression` (a gating metric is worse than the baseline) or `error` (the
    run did not finish), with its reasons, and what was compared."""

    status: GateStatus
    reasons: tuple[str, ...]
    feature: str
    model: str
    baseline: str | None
    prompt_version: str
    baseline_prompt_version: str | None


async def create_run(
    session: AsyncSession, *, dataset: str, dataset_sha256: str, feature: str, model: str, baseline: str | None,
    prompt_version: str, baseline_prompt_version: str | None, judge: str | None, repeat: int, mock: bool,
) -> str:
    """A new run, `running`; returns its id."""
    run = EvalRun(id=str(uuid.uuid4()), dataset=dataset, dataset_sha256=dataset_sha256, feature=feature, model=model,
                  baseline=baseline, prompt_version=prompt_version, baseline_prompt_version=baseline_prompt_version,
                  judge=judge, repeat=repeat, mock=mock, status="running", cache_hits=0)
    session.add(run)
    await session.flush()
    return run.id


async def load_run(session: AsyncSession, run_id: str) -> EvalRun:
    run = await session.get(EvalRun, run_id)
    if run is None:
        raise LookupError(f"no evaluation run {run_id!r}")
    return run


def info_of(run: EvalRun) -> RunInfo:
    return RunInfo(dataset=run.dataset, dataset_sha256=run.dataset_sha256, feature=run.feature, model=run.model,
                   prompt_version=run.prompt_version, created_at=run.created_at.isoformat(), baseline=run.baseline,
                   baseline_prompt_version=run.baseline_prompt_version, judge=run.judge, repeat=run.repeat)


def _row(run_id: str, found: Answered) -> EvalResult:
    result, output = found.result, found.result.output
    judge: dict[str, Any] | None = None
    if result.grade is not None or result.preference is not None or result.judge_error is not None:
        judge = {"grade": asdict(result.grade) if result.grade else None,
                 "preference": asdict(result.preference) if result.preference else None,
                 "judge_error": result.judge_error}
    return EvalResult(
        run_id=run_id, item_id=result.item.id, arm=found.arm, epoch=result.epoch,
        item=result.item.model_dump(mode="json"), text=output.text, error=output.error,
        latency_ms=output.latency_ms, ttfc_ms=output.ttfc_ms, input_tokens=output.input_tokens,
        output_tokens=output.output_tokens, scores=dict(result.scores), judge=judge, prompt=found.prompt,
        answered_by=found.answered_by, cached=found.cached,
    )


async def finish_run(
    session: AsyncSession, run_id: str, results: Sequence[Answered], summary: Mapping[str, Any], *,
    gate: GateStatus, cache_hits: int,
) -> None:
    run = await load_run(session, run_id)
    session.add_all(_row(run_id, found) for found in results)
    run.summary, run.gate, run.cache_hits = dict(summary), gate, cache_hits
    run.status, run.finished_at = "finished", utcnow()
    await session.flush()


async def fail_run(session: AsyncSession, run_id: str, error: str) -> None:
    run = await load_run(session, run_id)
    run.status, run.gate, run.error, run.finished_at = "failed", "error", error[:2000], utcnow()
    await session.flush()


def _answered(row: EvalResult) -> Answered:
    judge = row.judge or {}
    result = ItemResult.from_json({
        "item": row.item, "epoch": row.epoch, "scores": row.scores, "grade": judge.get("grade"),
        "preference": judge.get("preference"), "judge_error": judge.get("judge_error"),
        "output": {"text": row.text, "error": row.error, "latency_ms": row.latency_ms, "ttfc_ms": row.ttfc_ms,
                   "input_tokens": row.input_tokens, "output_tokens": row.output_tokens},
    })
    return Answered(row.arm, result, row.prompt, row.answered_by, row.cached)  # type: ignore[arg-type]


async def load_results(session: AsyncSession, run_id: str) -> list[Answered]:
    """A run's results in the order they were stored (items in dataset order, epoch by epoch)."""
    await load_run(session, run_id)
    rows = await session.scalars(select(EvalResult).where(EvalResult.run_id == run_id).order_by(EvalResult.id))
    return [_answered(row) for row in rows]


async def load_report(session: AsyncSession, run_id: str, *, max_regression: float = 0.0) -> RunReport:
    """The stored run's report; LookupError for an unknown run, ValueError for a run without results (it
    failed, or is still running)."""
    run = await load_run(session, run_id)
    results = await load_results(session, run_id)
    if not results:
        raise ValueError(f"evaluation run {run_id!r} has no results: it is {run.status}"
                         + (f" ({run.error})" if run.error else ""))
    mine = [found.result for found in results if found.arm == "candidate"]
    theirs = [found.result for found in results if found.arm == "baseline"]
    return build_report(info_of(run), mine, theirs if run.baseline is not None else None, margin=max_regression)


async def gate_result(session: AsyncSession, run_id: str, *, max_regression: float = 0.0) -> GateResult:
    """The gate of run `run_id`: `error` unless it finished, else `evaluation.comparison.gate` on its report
    with `max_regression` (in each gating metric's unit). LookupError for an unknown run."""
    run = await load_run(session, run_id)
    status: GateStatus
    reasons: tuple[str, ...]
    if run.status != "finished":
        status, reasons = "error", (f"the run is {run.status}" + (f": {run.error}" if run.error else ""),)
    else:
        status, reasons = gate(await load_report(session, run_id), max_regression)
    return GateResult(status, reasons, run.feature, run.model, run.baseline, run.prompt_version,
                      run.baseline_prompt_version)
