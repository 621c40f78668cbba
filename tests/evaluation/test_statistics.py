"""The statistics of a two-arm evaluation against values computed independently or known from textbooks."""

from __future__ import annotations

import random

import pytest

from evaluation.statistics import (
    BETTER,
    NO_DIFFERENCE,
    WORSE,
    Interval,
    paired_bootstrap,
    percentile,
    poor_share,
    sign_test,
    verdict,
    wilson,
)

# Correctness grades (1–4) of two models on 12 items; items 0–3 share a snippet, 4–5 an issue.
CANDIDATE = [4, 3, 4, 2, 3, 4, 4, 3, 2, 4, 3, 4]
BASELINE = [3, 3, 2, 2, 3, 3, 4, 2, 2, 3, 3, 3]
CLUSTERS = ["snippet", "snippet", "snippet", "snippet", "issue", "issue", None, None, None, None, None, None]


def straightforward_bootstrap(candidate, baseline, clusters, resamples, seed):
    """The same procedure written plainly: clusters in order of first appearance, k draws of randrange(k)."""
    groups: list[list[int]] = []
    named: dict[str, list[int]] = {}
    for index, cluster in enumerate(clusters):
        if cluster is None:
            groups.append([index])
        elif cluster in named:
            named[cluster].append(index)
        else:
            named[cluster] = [index]
            groups.append(named[cluster])
    rng = random.Random(seed)
    means = []
    for _ in range(resamples):
        drawn = [index for _ in groups for index in groups[rng.randrange(len(groups))]]
        means.append(sum(candidate[i] - baseline[i] for i in drawn) / len(drawn))
    means.sort()

    def at(q: float) -> float:
        position = q * (len(means) - 1)
        low = int(position)
        return means[low] + (means[min(low + 1, len(means) - 1)] - means[low]) * (position - low)

    return at(0.025), at(0.975)


def test_the_interval_of_a_fixed_sample_is_the_one_computed_independently() -> None:
    interval = paired_bootstrap(CANDIDATE, BASELINE, CLUSTERS, seed=7)
    low, high = straightforward_bootstrap(CANDIDATE, BASELINE, CLUSTERS, 2_000, seed=7)
    assert interval.mean_candidate == pytest.approx(40 / 12)
    assert interval.mean_baseline == pytest.approx(33 / 12)
    assert interval.difference == pytest.approx(7 / 12)
    assert (interval.low, interval.high) == pytest.approx((low, high), abs=1e-12)
    assert (interval.low, interval.high) == pytest.approx((0.3, 0.8))  # pinned: a change of procedure shows here
    assert 0 < interval.low < interval.difference < interval.high < 1.2
    assert verdict(interval, higher_is_better=True) == BETTER


def test_the_interval_is_reproducible_with_its_seed_and_moves_with_another() -> None:
    latencies = [812.5, 990.1, 1204.7, 640.2, 1500.9, 733.3, 1020.0, 870.4]
    others = [790.0, 1010.3, 1100.2, 700.8, 1320.6, 750.1, 980.5, 905.9]
    first = paired_bootstrap(latencies, others, [None] * 8, seed=1)
    assert paired_bootstrap(latencies, others, [None] * 8, seed=1) == first
    other = paired_bootstrap(latencies, others, [None] * 8, seed=2)
    assert (other.low, other.high) != (first.low, first.high)


def test_identical_arms_have_a_zero_interval_and_no_detectable_difference() -> None:
    interval = paired_bootstrap(CANDIDATE, CANDIDATE, CLUSTERS)
    assert (interval.difference, interval.low, interval.high) == (0, 0, 0)
    assert verdict(interval, higher_is_better=True) == NO_DIFFERENCE
    assert verdict(interval, higher_is_better=False) == NO_DIFFERENCE


def test_a_constant_improvement_is_better_and_a_constant_loss_worse() -> None:
    improved = [score + 0.5 for score in BASELINE]
    interval = paired_bootstrap(improved, BASELINE, CLUSTERS)
    assert (interval.low, interval.high) == pytest.approx((0.5, 0.5))
    assert verdict(interval, higher_is_better=True) == BETTER
    assert verdict(interval, higher_is_better=False) == WORSE  # e.g. half a second more latency
    assert verdict(paired_bootstrap(BASELINE, improved, CLUSTERS), higher_is_better=True) == WORSE


def test_the_margin_widens_the_band_of_no_detectable_difference() -> None:
    interval = Interval(3.1, 3.0, 0.1, 0.05, 0.2)
    assert verdict(interval, True, margin=0.0) == BETTER
    assert verdict(interval, True, margin=0.1) == NO_DIFFERENCE
    assert verdict(Interval(2.9, 3.0, -0.1, -0.2, -0.05), True, margin=0.1) == NO_DIFFERENCE
    assert verdict(Interval(2.9, 3.0, -0.1, -0.2, -0.15), True, margin=0.1) == WORSE
    with pytest.raises(ValueError):
        verdict(interval, True, margin=-1)


def test_clustered_resampling_is_wider_than_unclustered_when_clusters_agree_inside() -> None:
    # Two contexts of five items each: every item of the first improves by 1, of the second loses 1.
    candidate = [1.0] * 5 + [0.0] * 5
    baseline = [0.0] * 5 + [1.0] * 5
    clustered = paired_bootstrap(candidate, baseline, ["a"] * 5 + ["b"] * 5)
    unclustered = paired_bootstrap(candidate, baseline, [None] * 10)
    # Drawing two clusters gives only the means -1, 0 and 1.
    assert (clustered.low, clustered.high) == (-1.0, 1.0)
    assert -1 < unclustered.low < -0.3 and 0.3 < unclustered.high < 1
    assert clustered.difference == unclustered.difference == 0


def test_the_bootstrap_refuses_unpaired_or_empty_samples() -> None:
    with pytest.raises(ValueError, match="same length"):
        paired_bootstrap([1.0, 2.0], [1.0], [None, None])
    with pytest.raises(ValueError, match="no paired"):
        paired_bootstrap([], [], [])


@pytest.mark.parametrize(
    ("successes", "n", "expected"),
    [
        pytest.param(8, 10, (0.4902, 0.9433), id="8-of-10"),
        pytest.param(0, 10, (0.0, 0.2775), id="none"),
        pytest.param(10, 10, (0.7225, 1.0), id="all"),
        pytest.param(50, 100, (0.4038, 0.5962), id="half-of-100"),
    ],
)
def test_wilson_matches_textbook_values(successes: int, n: int, expected: tuple[float, float]) -> None:
    assert wilson(successes, n) == pytest.approx(expected, abs=5e-4)


def test_wilson_without_trials_knows_nothing() -> None:
    assert wilson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson(3, 2)


@pytest.mark.parametrize(
    ("wins", "losses", "p"),
    [
        pytest.param(9, 1, 22 / 1024, id="9-1"),
        pytest.param(1, 9, 22 / 1024, id="1-9"),
        pytest.param(10, 0, 2 / 1024, id="10-0"),
        pytest.param(5, 5, 1.0, id="even"),
        pytest.param(6, 4, 0.7539, id="6-4"),
        pytest.param(0, 0, 1.0, id="nothing"),
        pytest.param(1, 0, 1.0, id="one"),
    ],
)
def test_the_sign_test_is_the_exact_two_sided_binomial(wins: int, losses: int, p: float) -> None:
    assert sign_test(wins, losses) == pytest.approx(p, abs=1e-4)


def test_poor_share_counts_ones_and_twos() -> None:
    assert poor_share([1, 2, 3, 4]) == 0.5
    assert poor_share([3, 4, 4]) == 0.0
    assert poor_share([2.0]) == 1.0


def test_percentile_interpolates_linearly() -> None:
    assert percentile([4, 1, 3, 2], 0.5) == 2.5
    assert percentile(list(range(1, 101)), 0.95) == pytest.approx(95.05)
    assert percentile([7.0], 0.95) == 7.0
