"""The statistics of a two-arm evaluation on a small set (reference/evaluation-and-rollout.md §4).

Both arms answer the same items, so the analysis is of per-item differences (paired). Items that share a
context (a `cluster` in the dataset, or the repeats of one item) are not independent, so the bootstrap resamples
whole clusters. The 95 % interval is the percentile interval of 2,000 resampled mean differences, drawn from
`random.Random(seed)`: the same data and seed always give the same interval.

A verdict says **better** or **worse** only when the whole interval lies beyond the margin on one side;
anything else is **no detectable difference**. Preferences (win/tie/loss) get an exact two-sided sign test
(ties dropped) and a Wilson interval for the win rate among decided comparisons.

Pure Python, no I/O.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from worker.cohorts import wilson

__all__ = [
    "BETTER",
    "NO_DIFFERENCE",
    "RESAMPLES",
    "WORSE",
    "Interval",
    "Verdict",
    "paired_bootstrap",
    "percentile",
    "poor_share",
    "sign_test",
    "verdict",
    "wilson",
]

Verdict = Literal["better", "worse", "no detectable difference"]
BETTER: Verdict = "better"
WORSE: Verdict = "worse"
NO_DIFFERENCE: Verdict = "no detectable difference"
RESAMPLES = 2_000
_Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal


@dataclass(frozen=True)
class Interval:
    """The two means, their difference (candidate − baseline) and its 95 % interval."""

    mean_candidate: float
    mean_baseline: float
    difference: float
    low: float
    high: float


def paired_bootstrap(
    candidate: Sequence[float],
    baseline: Sequence[float],
    clusters: Sequence[str | None],
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
    confidence: float = 0.95,
) -> Interval:
    """The mean difference of paired scores with a clustered percentile-bootstrap interval.

    `candidate[i]`, `baseline[i]` and `clusters[i]` describe one item (or one repeat of it); items without a
    cluster are clusters of their own. Each resample draws as many clusters as there are, with replacement
    (`rng.randrange(k)` k times, in order), and takes the mean difference over all items of the drawn clusters.
    The interval's ends are the (1 ± confidence)/2 percentiles of the resampled means, linearly interpolated.
    """
    if not len(candidate) == len(baseline) == len(clusters):
        raise ValueError("candidate, baseline and clusters must have the same length")
    if not candidate:
        raise ValueError("no paired scores")
    if resamples < 1:
        raise ValueError("resamples must be positive")
    sums, counts = _cluster_totals([c - b for c, b in zip(candidate, baseline, strict=True)], clusters)
    rng = random.Random(seed)
    k = len(sums)
    means = []
    for _ in range(resamples):
        total = count = 0.0
        for _ in range(k):
            index = rng.randrange(k)
            total += sums[index]
            count += counts[index]
        means.append(total / count)
    means.sort()
    tail = (1 - confidence) / 2
    return Interval(
        mean_candidate=math.fsum(candidate) / len(candidate),
        mean_baseline=math.fsum(baseline) / len(baseline),
        difference=(math.fsum(candidate) - math.fsum(baseline)) / len(candidate),
        low=_sorted_percentile(means, tail),
        high=_sorted_percentile(means, 1 - tail),
    )


def _cluster_totals(differences: list[float], clusters: Sequence[str | None]) -> tuple[list[float], list[int]]:
    """Per cluster, in order of first appearance: the sum of its differences and its number of items."""
    position: dict[str, int] = {}
    sums: list[float] = []
    counts: list[int] = []
    for difference, cluster in zip(differences, clusters, strict=True):
        index = position.get(cluster) if cluster is not None else None
        if index is None:
            index = len(sums)
            sums.append(0.0)
            counts.append(0)
            if cluster is not None:
                position[cluster] = index
        sums[index] += difference
        counts[index] += 1
    return sums, counts


def verdict(interval: Interval, higher_is_better: bool, margin: float = 0.0) -> Verdict:
    """`better` when the whole interval lies beyond +margin on the good side, `worse` when it lies beyond the
    margin on the bad side, else `no detectable difference`. The margin is in the metric's own unit."""
    if margin < 0:
        raise ValueError("margin must not be negative")
    good_low, good_high = (interval.low, interval.high) if higher_is_better else (-interval.high, -interval.low)
    if good_low > margin:
        return BETTER
    if good_high < -margin:
        return WORSE
    return NO_DIFFERENCE


def sign_test(wins: int, losses: int) -> float:
    """The exact two-sided sign test p-value of wins against losses (ties already dropped): the binomial
    probability, at p = ½, of a split at least as uneven. 1.0 when there is nothing to test."""
    if wins < 0 or losses < 0:
        raise ValueError("wins and losses must not be negative")
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(wins, losses) + 1))
    return min(1.0, 2 * tail / 2**n)


def poor_share(scores: Sequence[float], *, poor_at_most: float = 2) -> float:
    """The share of judge scores that are poor (≤ 2 on the 1–4 scale, GitLab's "<20 % poor answers" rule)."""
    if not scores:
        raise ValueError("no scores")
    return sum(1 for score in scores if score <= poor_at_most) / len(scores)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0 ≤ q ≤ 1) by linear interpolation between order statistics, as numpy's default."""
    if not values:
        raise ValueError("no values")
    return _sorted_percentile(sorted(values), q)


def _sorted_percentile(ordered: Sequence[float], q: float) -> float:
    if not 0 <= q <= 1:
        raise ValueError("q must be between 0 and 1")
    position = q * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    fraction = position - below
    return ordered[below] + (ordered[above] - ordered[below]) * fraction
