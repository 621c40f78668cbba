"""The statistics of guarded rollouts (SPEC §9.1): comparing a rollout's new cohort with its old one, and
the decision a check takes. Pure functions over counts, no I/O: `worker.rollout` reads the counts and acts.

Metrics, new cohort against old, in the same window:

- **error ratio** `errors / requests`: the difference `p_new − p_old` with Newcombe's hybrid score interval
  (method 10 of Newcombe 1998, from the two Wilson score intervals, 95 %); *worse* when the whole
  interval lies above `max_error_delta`;
- **apdex** `answered within the apdex threshold / answered`: the ratio new / old; *worse* below
  `min_apdex_ratio`;
- **time to first chunk**: the ratio of the means new / old; *worse* above `max_ttfc_ratio`. The mean and not
  a p95: with tens of requests a p95 rests on the two or three slowest, read off coarse buckets, while the
  mean uses every request and its exact sum (the p95 bucket is shown for information);
- **negative feedback** `negative / all feedback` (model rollouts): the difference with Newcombe's interval;
  *worse* when the whole interval lies above `max_negative_feedback_delta`.

A ratio is judged once both cohorts have `min_requests` measures; an interval is always judged (it is wide
when the counts are small). Decision: **fail** at once when the new cohort's error ratio reaches
`hard_error_ratio` over at least `min(10, min_requests)` requests (and the old cohort's does not: an outage
of both is no reason to roll back), or when some metric is worse for `failure_limit` checks in a row;
**pass** when no metric is worse, both cohorts have `min_requests` and the step time has elapsed;
**inconclusive** when the step time elapsed without enough requests (the step is extended once, then the
rollout pauses); else **waiting**.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from access.admin.rollouts import RolloutConfig
from core.metrics import CohortCounts

__all__ = ["Z95", "Decision", "Metric", "compare", "decide", "newcombe", "wilson"]

Z95 = 1.959963984540054  # the standard normal's 97.5th percentile

Verdict = Literal["worse", "within limit", "not enough data"]


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval of the proportion `successes / n` ((0, 1) when n is 0). The one home of it:
    the rollout controller's cohorts and the evaluation's win rates both use it."""
    if not 0 <= successes <= max(n, 0):
        raise ValueError("need 0 <= successes <= n")
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denominator = n + z * z
    center = (successes + z * z / 2) / denominator
    half = z * math.sqrt(n * p * (1 - p) + z * z / 4) / denominator
    return max(0.0, center - half), min(1.0, center + half)


def newcombe(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> tuple[float, float, float]:
    """The difference `x1/n1 − x2/n2` and Newcombe's hybrid score interval of it (both n > 0)."""
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, z)
    l2, u2 = wilson(x2, n2, z)
    difference = p1 - p2
    low = difference - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = difference + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return difference, low, high


@dataclass(frozen=True, slots=True)
class Metric:
    """One comparison: the new and old values, the difference (for `apdex` and `ttfc` the ratio new / old)
    with its 95 % interval when it has one, and the verdict against the threshold."""

    name: str
    new: float | None
    old: float | None
    difference: float | None
    low: float | None
    high: float | None
    verdict: Verdict
    threshold: float

    def as_dict(self) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 4)

        return {"name": self.name, "new": rounded(self.new), "old": rounded(self.old),
                "difference": rounded(self.difference), "low": rounded(self.low), "high": rounded(self.high),
                "verdict": self.verdict, "threshold": self.threshold}

    def describe(self) -> str:
        """For a reason: the metric, both values and the interval (or ratio) against its threshold."""
        def shown(value: float | None) -> str:
            return "-" if value is None else f"{value:.4f}"

        if self.low is not None and self.high is not None:
            return (f"{self.name}: new {shown(self.new)}, old {shown(self.old)}, difference {self.difference:+.4f} "
                    f"(95 % interval {self.low:+.4f} to {self.high:+.4f}, above the margin {self.threshold})")
        side = "below" if self.name == "apdex" else "above"
        return (f"{self.name}: new {shown(self.new)}, old {shown(self.old)}, ratio {shown(self.difference)} "
                f"({side} the limit {self.threshold})")


def _difference(name: str, x1: int, n1: int, x2: int, n2: int, margin: float) -> Metric:
    if n1 <= 0 or n2 <= 0:
        return Metric(name, x1 / n1 if n1 else None, x2 / n2 if n2 else None, None, None, None, "not enough data", margin)
    difference, low, high = newcombe(x1, n1, x2, n2)
    return Metric(name, x1 / n1, x2 / n2, difference, low, high, "worse" if low > margin else "within limit", margin)


def _ratio(name: str, new: float | None, old: float | None, enough: bool, limit: float, *, higher_is_worse: bool,
           min_delta: float = 0.0) -> Metric:
    """The ratio new / old against `limit`; a higher ratio also needs `new - old` above `min_delta`."""
    if not enough or new is None or old is None or old <= 0:
        return Metric(name, new, old, None, None, None, "not enough data", limit)
    ratio = new / old
    worse = ratio > limit and new - old > min_delta if higher_is_worse else ratio < limit
    return Metric(name, new, old, ratio, None, None, "worse" if worse else "within limit", limit)


def compare(
    new: CohortCounts, old: CohortCounts, thresholds: RolloutConfig, feedback: tuple[tuple[int, int], tuple[int, int]] | None = None
) -> list[Metric]:
    """Every metric of the new cohort against the old. `feedback`: (negative, all) feedback of the new
    cohort's model and of the old's (model rollouts only)."""
    minimum = thresholds.min_requests
    apdex_new = new.apdex_ok / new.answered if new.answered else None
    apdex_old = old.apdex_ok / old.answered if old.answered else None
    ttfc_new = new.ttfc_ms / new.ttfc_count if new.ttfc_count else None
    ttfc_old = old.ttfc_ms / old.ttfc_count if old.ttfc_count else None
    metrics = [
        _difference("error_ratio", new.errors, new.requests, old.errors, old.requests, thresholds.max_error_delta),
        _ratio("apdex", apdex_new, apdex_old, min(new.answered, old.answered) >= minimum, thresholds.min_apdex_ratio,
               higher_is_worse=False),
        _ratio("ttfc", ttfc_new, ttfc_old, min(new.ttfc_count, old.ttfc_count) >= minimum, thresholds.max_ttfc_ratio,
               higher_is_worse=True, min_delta=thresholds.min_ttfc_delta_ms),
    ]
    if feedback is not None:
        (negative_new, all_new), (negative_old, all_old) = feedback
        metrics.append(_difference("negative_feedback", negative_new, all_new, negative_old, all_old,
                                   thresholds.max_negative_feedback_delta))
    return metrics


@dataclass(frozen=True, slots=True)
class Decision:
    """What a check decided and what the controller does about it: `roll_back`, `advance` (next step, or
    complete after the last), `extend` the step once, `pause`, or nothing. `failures` is the number of
    failing checks in a row after this one; `reason` explains a roll back or a pause."""

    decision: Literal["fail", "pass", "inconclusive", "waiting"]
    action: Literal["roll_back", "advance", "extend", "pause", "none"]
    failures: int
    reason: str | None = None


def decide(
    metrics: list[Metric], new: CohortCounts, old: CohortCounts, thresholds: RolloutConfig, *, elapsed_s: float,
    failures: int, extended: bool, needs_old: bool = True,
) -> Decision:
    """The decision of one check (see the module's docstring). `needs_old` False: the old cohort is a
    baseline that gets no more traffic (a step at 100 %), so passing needs the new cohort's requests only."""
    error_new = new.errors / new.requests if new.requests else 0.0
    error_old = old.errors / old.requests if old.requests else None
    if (new.requests >= min(10, thresholds.min_requests) and error_new >= thresholds.hard_error_ratio
            and (error_old is None or error_old < thresholds.hard_error_ratio)):
        old_text = "no requests" if error_old is None else f"{error_old:.4f} ({old.errors}/{old.requests})"
        return Decision("fail", "roll_back", failures + 1, (
            f"error_ratio: new {error_new:.4f} ({new.errors}/{new.requests}) reached the hard error ratio "
            f"{thresholds.hard_error_ratio}; old {old_text}"))
    worse = [metric for metric in metrics if metric.verdict == "worse"]
    if worse:
        failures += 1
        reason = "; ".join(metric.describe() for metric in worse)
        if failures >= thresholds.failure_limit:
            return Decision("fail", "roll_back", failures, f"{reason} for {failures} checks in a row")
        return Decision("fail", "none", failures, reason)
    if elapsed_s < thresholds.step_time_s:
        return Decision("waiting", "none", 0)
    if new.requests >= thresholds.min_requests and (old.requests >= thresholds.min_requests or not needs_old):
        return Decision("pass", "advance", 0)
    short = (f"{new.requests} requests in the new cohort and {old.requests} in the old after "
             f"{elapsed_s:.0f} s; {thresholds.min_requests} needed")
    if not extended:
        return Decision("inconclusive", "extend", 0, short)
    return Decision("inconclusive", "pause", 0, f"inconclusive: {short}, the step was extended once already")
