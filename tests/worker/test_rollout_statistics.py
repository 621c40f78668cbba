"""`worker.cohorts`: Wilson and Newcombe intervals against the published values, and the decision a check
takes from fixed counts."""

from __future__ import annotations

import pytest

from access.admin.rollouts import RolloutConfig
from core.metrics import CohortCounts
from worker.cohorts import compare, decide, newcombe, wilson

GUARD = RolloutConfig(step_time_s=600, min_requests=50, failure_limit=2)


@pytest.mark.parametrize(("successes", "n", "expected"), [
    (81, 263, (0.2553, 0.3662)),  # Newcombe (1998a), Table I
    (15, 148, (0.0624, 0.1605)),
    (0, 10, (0.0, 0.2775)),
    (1, 29, (0.0061, 0.1718)),
])
def test_wilson_score_interval_matches_the_published_values(successes: int, n: int, expected: tuple[float, float]) -> None:
    assert tuple(round(bound, 4) for bound in wilson(successes, n)) == expected


@pytest.mark.parametrize(("counts", "expected"), [  # Newcombe (1998b), Table II, method 10
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((6, 7, 2, 7), (0.0582, 0.8062)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ((0, 10, 0, 20), (-0.1611, 0.2775)),
    ((10, 10, 0, 20), (0.6791, 1.0)),
])
def test_newcombe_hybrid_score_interval_matches_the_published_values(
    counts: tuple[int, int, int, int], expected: tuple[float, float]
) -> None:
    difference, low, high = newcombe(*counts)
    assert difference == pytest.approx(counts[0] / counts[1] - counts[2] / counts[3])
    assert (round(low, 4), round(high, 4)) == expected


def test_wilson_of_nothing_is_the_whole_range() -> None:
    assert wilson(0, 0) == (0.0, 1.0)


def cohort(requests: int, errors: int = 0, *, slow: int = 0, ttfc_ms: int = 400) -> CohortCounts:
    answered = requests - errors
    return CohortCounts(requests=requests, errors=errors, apdex_ok=answered - slow, ttfc_ms=ttfc_ms * answered,
                        ttfc_count=answered, ttfc_buckets=(answered, 0, 0, 0, 0, 0))


def test_thresholds_read_from_a_config_take_defaults_for_missing_keys() -> None:
    assert RolloutConfig.from_json(None) == RolloutConfig()
    read = RolloutConfig.from_json({"min_requests": 7, "step_time_s": 30, "unknown": 1, "failure_limit": None})
    assert (read.min_requests, read.step_time_s, read.failure_limit, read.hard_error_ratio) == (7, 30, 2, 0.2)


def test_healthy_cohorts_pass_once_the_step_time_elapsed_with_enough_requests() -> None:
    new, old = cohort(60, 1), cohort(200, 3)
    metrics = compare(new, old, GUARD)
    assert [(m.name, m.verdict) for m in metrics] == [
        ("error_ratio", "within limit"), ("apdex", "within limit"), ("ttfc", "within limit")]
    assert decide(metrics, new, old, GUARD, elapsed_s=599, failures=0, extended=False).decision == "waiting"
    passed = decide(metrics, new, old, GUARD, elapsed_s=600, failures=1, extended=False)
    assert (passed.decision, passed.action, passed.failures) == ("pass", "advance", 0)


def test_the_hard_error_ratio_fails_at_once_with_ten_requests() -> None:
    new, old = cohort(10, 2), cohort(40)
    decision = decide(compare(new, old, GUARD), new, old, GUARD, elapsed_s=5, failures=0, extended=False)
    assert (decision.decision, decision.action) == ("fail", "roll_back")
    assert decision.reason is not None and "0.2000 (2/10)" in decision.reason and "0.0000 (0/40)" in decision.reason
    fewer = cohort(9, 9)  # below min(10, min_requests): the interval speaks, not the hard limit
    assert decide([], fewer, old, GUARD, elapsed_s=5, failures=0, extended=False).action == "none"


def test_an_outage_of_both_cohorts_is_no_reason_to_roll_back_at_once() -> None:
    new, old = cohort(20, 10), cohort(40, 20)
    metrics = compare(new, old, GUARD)
    assert metrics[0].verdict == "within limit"
    assert decide(metrics, new, old, GUARD, elapsed_s=5, failures=0, extended=False).action == "none"


def test_a_significant_softer_regression_fails_after_the_failure_limit() -> None:
    new, old = cohort(200, 30), cohort(400, 4)  # 15 % against 1 %: under the hard limit, clearly worse
    metrics = compare(new, old, GUARD)
    error = metrics[0]
    assert error.verdict == "worse" and error.low is not None and error.low > GUARD.max_error_delta
    first = decide(metrics, new, old, GUARD, elapsed_s=700, failures=0, extended=False)
    assert (first.decision, first.action, first.failures) == ("fail", "none", 1)  # never passes on a failing check
    second = decide(metrics, new, old, GUARD, elapsed_s=710, failures=1, extended=False)
    assert (second.decision, second.action) == ("fail", "roll_back")
    assert second.reason is not None and second.reason.startswith("error_ratio: new 0.1500, old 0.0100")
    assert "95 % interval" in second.reason and "for 2 checks in a row" in second.reason


def test_a_difference_within_the_noise_is_not_a_failure() -> None:
    new, old = cohort(60, 3), cohort(60, 1)  # 5 % against 1.7 %: the interval includes the margin
    error = compare(new, old, GUARD)[0]
    assert error.low is not None and error.low < GUARD.max_error_delta < error.high  # type: ignore[operator]
    assert error.verdict == "within limit"


def test_apdex_and_time_to_first_chunk_ratios_are_judged_with_enough_measures() -> None:
    slow, old = cohort(60, slow=10, ttfc_ms=900), cohort(60, ttfc_ms=500)
    metrics = {m.name: m for m in compare(slow, old, GUARD)}
    assert metrics["apdex"].verdict == "worse" and metrics["apdex"].difference == pytest.approx(50 / 60)
    assert metrics["ttfc"].verdict == "worse" and metrics["ttfc"].difference == pytest.approx(1.8)
    assert "ratio 0.8333 (below the limit 0.97)" in metrics["apdex"].describe()
    few = {m.name: m for m in compare(cohort(20, slow=10, ttfc_ms=900), old, GUARD)}
    assert few["apdex"].verdict == few["ttfc"].verdict == "not enough data"


def test_negative_feedback_is_compared_when_given() -> None:
    new, old = cohort(60), cohort(60)
    worse = compare(new, old, GUARD, feedback=((30, 40), (5, 50)))[-1]
    assert (worse.name, worse.verdict) == ("negative_feedback", "worse")
    none = compare(new, old, GUARD, feedback=((0, 0), (5, 50)))[-1]
    assert none.verdict == "not enough data"


def test_too_few_requests_extend_the_step_once_then_pause() -> None:
    new, old = cohort(12), cohort(300)
    metrics = compare(new, old, GUARD)
    first = decide(metrics, new, old, GUARD, elapsed_s=600, failures=0, extended=False)
    assert (first.decision, first.action) == ("inconclusive", "extend")
    then = decide(metrics, new, old, GUARD, elapsed_s=600, failures=0, extended=True)
    assert (then.decision, then.action) == ("inconclusive", "pause")
    assert then.reason is not None and "12 requests in the new cohort" in then.reason


def test_at_a_full_step_passing_needs_the_new_cohort_only() -> None:
    new, baseline = cohort(50), cohort(3)
    metrics = compare(new, baseline, GUARD)
    assert decide(metrics, new, baseline, GUARD, elapsed_s=600, failures=0, extended=False, needs_old=False).action == "advance"
    assert decide(metrics, new, baseline, GUARD, elapsed_s=600, failures=0, extended=False).action == "extend"


def test_the_p95_estimate_is_a_bucket_bound() -> None:
    counts = CohortCounts(requests=20, ttfc_count=20, ttfc_ms=20_000, ttfc_buckets=(10, 8, 1, 1, 0, 0))
    assert counts.ttfc_p95_ms() == 2_000
    assert CohortCounts(requests=1, ttfc_count=1, ttfc_ms=20_000, ttfc_buckets=(0, 0, 0, 0, 0, 1)).ttfc_p95_ms() is None


def test_a_slower_first_chunk_by_a_few_milliseconds_is_not_a_regression() -> None:
    """Seen in a demo with the mock model: 0.8 ms against 0.55 ms (1.45×) rolled a healthy rollout back. A ratio
    past the limit counts only when the new cohort is also `min_ttfc_delta_ms` slower."""
    metrics = {m.name: m for m in compare(cohort(60, ttfc_ms=180), cohort(60, ttfc_ms=100), GUARD)}
    assert metrics["ttfc"].difference == pytest.approx(1.8) and metrics["ttfc"].verdict == "within limit"
    strict = RolloutConfig(min_requests=50, min_ttfc_delta_ms=50)
    assert {m.name: m for m in compare(cohort(60, ttfc_ms=180), cohort(60, ttfc_ms=100), strict)}["ttfc"].verdict == "worse"
