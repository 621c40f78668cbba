"""The comparison of a run's two arms: from per-item results to a `RunReport`, and the gate on it.

The runner collects one `ItemResult` per item, repeat (epoch) and arm, and hands both lists to `build_report`.
Results pair up by item id and epoch. Each metric's value per pair goes into `statistics.paired_bootstrap`,
clustered by the item's `cluster` (else by the item, so that the repeats of one item count as one cluster),
and gets a verdict. `gate` turns the verdicts of the gating metrics into pass or regression.

Metrics (higher is better unless said otherwise; * gating):
- `checks_passed`*: the share of an item's checks that pass (items without checks left out);
- `correctness`*, `readability`, `comprehensiveness`: the judge's 1–4 grades, with the share of poor (≤ 2);
- `pairwise`*: the pairwise judge per pair, 1 a win of the candidate, ½ a tie, 0 a loss (baseline: 1 − that);
- `error_rate`* (lower is better): 1 for an action that failed;
- `latency_ms`, `ttfc_ms`, `output_tokens` (lower is better): measured, reported, not gating.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from catalogue.evals import EvalItem
from evaluation.judges import Grade, Preference
from evaluation.scorers import CHECKS_PASSED, Output
from evaluation.statistics import (
    RESAMPLES,
    WORSE,
    Interval,
    Verdict,
    paired_bootstrap,
    percentile,
    poor_share,
    sign_test,
    verdict,
    wilson,
)

__all__ = [
    "GATING_METRICS",
    "METRICS",
    "ArmStats",
    "GateStatus",
    "ItemPair",
    "ItemResult",
    "MetricDefinition",
    "MetricSummary",
    "Pairwise",
    "RunInfo",
    "RunReport",
    "build_report",
    "gate",
]

GateStatus = Literal["pass", "regression"]


@dataclass(frozen=True)
class ItemResult:
    """One answer of one arm to one item in one epoch, as the runner collected it. `scores` is what
    `scorers.score_output` (or `score_checks`) gave; `preference` sits on the candidate's result only, with
    "a" the candidate and "b" the baseline; `judge_error` says why a grade or preference is missing."""

    item: EvalItem
    epoch: int
    output: Output
    scores: Mapping[str, float]
    grade: Grade | None = None
    preference: Preference | None = None
    judge_error: str | None = None


    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, for storing a result (`from_json` reads it back)."""
        return {
            "item": self.item.model_dump(mode="json"),
            "epoch": self.epoch,
            "output": asdict(self.output),
            "scores": dict(self.scores),
            "grade": asdict(self.grade) if self.grade is not None else None,
            "preference": asdict(self.preference) if self.preference is not None else None,
            "judge_error": self.judge_error,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ItemResult:
        grade, preference = data.get("grade"), data.get("preference")
        return cls(
            item=EvalItem.model_validate(data["item"]),
            epoch=int(data["epoch"]),
            output=Output(**data["output"]),
            scores={key: float(value) for key, value in data["scores"].items()},
            grade=Grade(**grade) if grade is not None else None,
            preference=Preference(preference["choice"], tuple(preference["reasons"])) if preference is not None
            else None,
            judge_error=data.get("judge_error"),
        )


@dataclass(frozen=True)
class ItemPair:
    candidate: ItemResult
    baseline: ItemResult | None


@dataclass(frozen=True)
class RunInfo:
    """What was run: the dataset (name and content hash), the feature, the two arms and the judge."""

    dataset: str
    dataset_sha256: str
    feature: str
    model: str
    prompt_version: str
    created_at: str  # ISO 8601
    baseline: str | None = None
    baseline_prompt_version: str | None = None
    judge: str | None = None
    judge_warning: str | None = None  # judge.family_warning
    repeat: int = 1
    sha: str | None = None  # the code's commit, when known


@dataclass(frozen=True)
class MetricDefinition:
    name: str
    label: str
    higher_is_better: bool
    gating: bool
    value: Callable[[ItemResult], float | None]
    judged: bool = False  # a 1–4 grade: the share of poor answers is reported


@dataclass(frozen=True)
class MetricSummary:
    """One metric over the run: the arms' means over the compared pairs, the difference with its 95 % interval
    and verdict (None without a baseline), and for 1–4 grades the share of poor answers per arm."""

    name: str
    label: str
    higher_is_better: bool
    gating: bool
    n: int
    candidate: float
    baseline: float | None = None
    difference: float | None = None
    low: float | None = None
    high: float | None = None
    verdict: Verdict | None = None
    poor_candidate: float | None = None
    poor_baseline: float | None = None

    @property
    def interval(self) -> Interval | None:
        if self.baseline is None or self.difference is None or self.low is None or self.high is None:
            return None
        return Interval(self.candidate, self.baseline, self.difference, self.low, self.high)


@dataclass(frozen=True)
class Pairwise:
    """Win/tie/loss of the candidate against the baseline, the Wilson 95 % interval of its win rate among the
    decided comparisons (ties dropped) and the exact sign-test p-value."""

    wins: int
    ties: int
    losses: int
    win_rate: float | None
    low: float
    high: float
    p_value: float


@dataclass(frozen=True)
class ArmStats:
    """Operational numbers of one arm over all its results (milliseconds, tokens per answer). Latency and
    time to first chunk are of the answered items only (None when none was answered): a failure that comes
    back fast must not make an arm look quicker."""

    n: int
    errors: int
    error_rate: float
    latency_p50: float | None
    latency_p95: float | None
    ttfc_p50: float | None
    ttfc_p95: float | None
    input_tokens: float
    output_tokens: float


@dataclass(frozen=True)
class RunReport:
    info: RunInfo
    metrics: tuple[MetricSummary, ...]
    candidate_stats: ArmStats
    baseline_stats: ArmStats | None
    pairwise: Pairwise | None
    items: tuple[ItemPair, ...]
    margin: float = 0.0
    resamples: int = RESAMPLES
    seed: int = 0

    def metric(self, name: str) -> MetricSummary | None:
        return next((metric for metric in self.metrics if metric.name == name), None)

    def summary(self) -> dict[str, dict[str, object]]:
        """Per metric `{candidate, baseline, difference, low, high, verdict}`: `ai_eval_runs.summary`."""
        return {
            metric.name: {
                "candidate": metric.candidate,
                "baseline": metric.baseline,
                "difference": metric.difference,
                "low": metric.low,
                "high": metric.high,
                "verdict": metric.verdict,
            }
            for metric in self.metrics
        }


def _grade_of(criterion: str) -> Callable[[ItemResult], float | None]:
    return lambda result: float(getattr(result.grade, criterion)) if result.grade is not None else None


def _preference(result: ItemResult) -> float | None:
    choice = result.preference.choice if result.preference is not None else None
    return None if choice is None else 1.0 if choice == "a" else 0.0 if choice == "b" else 0.5


def _answered(result: ItemResult, value: float | None) -> float | None:
    return None if result.output.failed else value


METRICS: tuple[MetricDefinition, ...] = (
    MetricDefinition("checks_passed", "checks passed", True, True, lambda r: r.scores.get(CHECKS_PASSED)),
    MetricDefinition("correctness", "correctness (1–4)", True, True, _grade_of("correctness"), judged=True),
    MetricDefinition("readability", "readability (1–4)", True, False, _grade_of("readability"), judged=True),
    MetricDefinition(
        "comprehensiveness", "comprehensiveness (1–4)", True, False, _grade_of("comprehensiveness"), judged=True
    ),
    MetricDefinition("pairwise", "pairwise win rate", True, True, _preference),
    MetricDefinition("error_rate", "error rate", False, True, lambda r: 1.0 if r.output.failed else 0.0),
    # Measured on answers only: a failed call is fast and short, which must not read as "better".
    MetricDefinition("latency_ms", "latency (ms)", False, False, lambda r: _answered(r, r.output.latency_ms)),
    MetricDefinition("ttfc_ms", "time to first chunk (ms)", False, False, lambda r: _answered(r, r.output.ttfc_ms)),
    MetricDefinition("output_tokens", "output tokens", False, False,
                     lambda r: _answered(r, float(r.output.output_tokens))),
)
GATING_METRICS = tuple(definition.name for definition in METRICS if definition.gating)


def build_report(
    info: RunInfo,
    candidate: Sequence[ItemResult],
    baseline: Sequence[ItemResult] | None = None,
    *,
    margin: float = 0.0,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> RunReport:
    """The report of a run from its per-item results (`baseline` None for a run without a baseline). Results
    pair up by item id and epoch; a candidate result without its baseline counterpart is shown but left out
    of the comparison."""
    if not candidate:
        raise ValueError("a run without results has no report")
    by_key = {(result.item.id, result.epoch): result for result in baseline or ()}
    pairs = tuple(ItemPair(result, by_key.get((result.item.id, result.epoch))) for result in candidate)
    metrics = []
    for definition in METRICS:
        summary = _summarize(definition, pairs, compared=baseline is not None, margin=margin,
                             resamples=resamples, seed=seed)
        if summary is not None:
            metrics.append(summary)
    return RunReport(
        info=info,
        metrics=tuple(metrics),
        candidate_stats=_arm_stats(candidate),
        baseline_stats=_arm_stats(baseline) if baseline else None,
        pairwise=_pairwise(pairs) if baseline is not None else None,
        items=pairs,
        margin=margin,
        resamples=resamples,
        seed=seed,
    )


def _summarize(
    definition: MetricDefinition, pairs: Sequence[ItemPair], *, compared: bool, margin: float, resamples: int,
    seed: int,
) -> MetricSummary | None:
    rows = _rows(definition, pairs, compared)
    if not rows:
        return None
    cand = [row[0] for row in rows]
    alone = MetricSummary(
        definition.name, definition.label, definition.higher_is_better, definition.gating, n=len(rows),
        candidate=sum(cand) / len(cand), poor_candidate=poor_share(cand) if definition.judged else None,
    )
    if not compared:
        return alone
    base = [row[1] for row in rows]
    interval = paired_bootstrap(cand, base, [row[2] for row in rows], resamples=resamples, seed=seed)
    return replace(
        alone,
        candidate=interval.mean_candidate,
        baseline=interval.mean_baseline,
        difference=interval.difference,
        low=interval.low,
        high=interval.high,
        verdict=verdict(interval, definition.higher_is_better, margin),
        poor_baseline=poor_share(base) if definition.judged else None,
    )


def _rows(definition: MetricDefinition, pairs: Sequence[ItemPair], compared: bool) -> list[tuple[float, float, str]]:
    """(candidate, baseline, cluster) per pair where the metric has a value on both sides (the baseline 0.0
    when there is no baseline). A preference is one value for the pair: the baseline's is its complement."""
    rows = []
    for pair in pairs:
        value = definition.value(pair.candidate)
        if value is None:
            continue
        if definition.name == "pairwise":
            other: float | None = 1 - value
        elif not compared:
            other = 0.0
        else:
            other = definition.value(pair.baseline) if pair.baseline is not None else None
        if other is not None:
            rows.append((value, other, _cluster(pair.candidate.item)))
    return rows


def _cluster(item: EvalItem) -> str:
    return f"cluster:{item.cluster}" if item.cluster else f"item:{item.id}"


def _pairwise(pairs: Sequence[ItemPair]) -> Pairwise | None:
    choices = [pair.candidate.preference.choice for pair in pairs if pair.candidate.preference is not None]
    if not choices:
        return None
    wins, ties, losses = choices.count("a"), choices.count("tie"), choices.count("b")
    low, high = wilson(wins, wins + losses)
    rate = wins / (wins + losses) if wins + losses else None
    return Pairwise(wins, ties, losses, rate, low, high, sign_test(wins, losses))


def _arm_stats(results: Sequence[ItemResult]) -> ArmStats:
    outputs = [result.output for result in results]
    errors = sum(output.failed for output in outputs)
    latencies = [output.latency_ms for output in outputs if not output.failed]
    ttfcs = [output.ttfc_ms for output in outputs if output.ttfc_ms is not None and not output.failed]
    return ArmStats(
        n=len(outputs),
        errors=errors,
        error_rate=errors / len(outputs),
        latency_p50=percentile(latencies, 0.5) if latencies else None,
        latency_p95=percentile(latencies, 0.95) if latencies else None,
        ttfc_p50=percentile(ttfcs, 0.5) if ttfcs else None,
        ttfc_p95=percentile(ttfcs, 0.95) if ttfcs else None,
        input_tokens=sum(output.input_tokens for output in outputs) / len(outputs),
        output_tokens=sum(output.output_tokens for output in outputs) / len(outputs),
    )


def gate(report: RunReport, max_regression: float = 0.0) -> tuple[GateStatus, tuple[str, ...]]:
    """`regression` when a gating metric (checks_passed, correctness, pairwise, error_rate) is detectably worse
    by more than `max_regression` (in the metric's unit: the whole interval beyond it on the bad side), with the
    reasons; else `pass`, with each gating metric's verdict as reasons. A run without a baseline passes: there
    is nothing to be worse than."""
    if max_regression < 0:
        raise ValueError("max_regression must not be negative")
    if report.baseline_stats is None:
        return "pass", ("no baseline: nothing to compare with",)
    worse: list[str] = []
    seen: list[str] = []
    for metric in report.metrics:
        interval = metric.interval
        if not metric.gating or interval is None:
            continue
        decided = verdict(interval, metric.higher_is_better, max(max_regression, report.margin))
        line = f"{metric.name}: {_describe(decided, metric.n, interval)}"
        if decided == WORSE:
            worse.append(line)
        seen.append(line)
    if worse:
        return "regression", tuple(worse)
    return "pass", tuple(seen) or ("no gating metric could be compared",)


def _describe(decided: Verdict, n: int, interval: Interval) -> str:
    return f"{decided} ({interval.difference:+.3g}, 95 % CI {interval.low:+.3g} to {interval.high:+.3g}, n={n})"
