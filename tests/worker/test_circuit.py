"""The per-model circuit breaker: opens at ≥ 50 % failures over ≥ 10 calls, fails fast while open,
lets one trial through after 30 s."""

from __future__ import annotations

import pytest

from core.errors import (
    CircuitOpen,
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
)
from worker.llm.circuit import CircuitBreaker, Circuits, State, is_failure


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def call(breaker: CircuitBreaker, error: Exception | None = None) -> None:
    with breaker.guard():
        if error is not None:
            raise error


def fail(breaker: CircuitBreaker, times: int = 1, error: Exception | None = None) -> None:
    for _ in range(times):
        with pytest.raises(ProviderError):
            call(breaker, error or ProviderError("anthropic", 500, "boom", retryable=True))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def breaker(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker("claude", "anthropic", clock=clock)


def test_it_stays_closed_below_the_volume_threshold(breaker: CircuitBreaker) -> None:
    fail(breaker, 9)
    assert breaker.state is State.CLOSED


def test_it_opens_at_half_failures_over_ten_calls_and_then_fails_fast(breaker: CircuitBreaker) -> None:
    for _ in range(5):
        call(breaker)
    fail(breaker, 5)
    assert breaker.state is State.OPEN
    with pytest.raises(CircuitOpen) as caught:
        call(breaker)
    assert not caught.value.retryable and caught.value.model == "claude"


def test_it_stays_closed_under_half_failures(breaker: CircuitBreaker) -> None:
    for _ in range(6):
        call(breaker)
    fail(breaker, 4)
    assert breaker.state is State.CLOSED


def test_only_calls_of_the_last_minute_count(breaker: CircuitBreaker, clock: Clock) -> None:
    fail(breaker, 9)
    clock.now += 61
    fail(breaker, 1)
    assert breaker.state is State.CLOSED


def test_after_30_s_one_trial_goes_through_and_its_success_closes_the_circuit(breaker: CircuitBreaker, clock: Clock) -> None:
    fail(breaker, 10)
    clock.now += 29.9
    assert breaker.state is State.OPEN
    clock.now += 0.1
    assert breaker.state is State.HALF_OPEN
    with breaker.guard():
        with pytest.raises(CircuitOpen):  # a second call while the trial runs fails fast
            call(breaker)
    assert breaker.state is State.CLOSED
    fail(breaker, 9)
    assert breaker.state is State.CLOSED  # the window starts afresh


def test_a_failed_trial_opens_it_again_for_30_s(breaker: CircuitBreaker, clock: Clock) -> None:
    fail(breaker, 10)
    clock.now += 30
    fail(breaker)
    assert breaker.state is State.OPEN
    clock.now += 30
    assert breaker.state is State.HALF_OPEN


def test_a_cancelled_trial_lets_the_next_call_try(breaker: CircuitBreaker, clock: Clock) -> None:
    fail(breaker, 10)
    clock.now += 30
    with pytest.raises(KeyboardInterrupt):
        call(breaker, KeyboardInterrupt())  # type: ignore[arg-type]
    assert breaker.state is State.HALF_OPEN
    call(breaker)
    assert breaker.state is State.CLOSED


@pytest.mark.parametrize(
    ("error", "counts"),
    [
        pytest.param(ProviderError("p", 500, "x", retryable=True), True, id="500"),
        pytest.param(ProviderRateLimited("p", 529), True, id="529-overloaded"),
        pytest.param(ProviderTimeout("p"), True, id="timeout"),
        pytest.param(ProviderError("p", None, "cut", retryable=True), True, id="connection-lost"),
        pytest.param(ProviderRateLimited("p", 429), None, id="429-neither"),
        pytest.param(ProviderRejected("p", 400, "bad"), False, id="400-is-an-answer"),
    ],
)
def test_what_counts_as_a_failure(error: ProviderError, counts: bool | None) -> None:
    assert is_failure(error) is counts


def test_rate_limits_do_not_open_the_circuit(breaker: CircuitBreaker) -> None:
    fail(breaker, 20, ProviderRateLimited("anthropic", 429))
    assert breaker.state is State.CLOSED


def test_circuits_are_per_model(clock: Clock) -> None:
    circuits = Circuits(clock=clock)
    fail(circuits.for_model("a", "anthropic"), 10)
    assert circuits.state("a") is State.OPEN and circuits.state("b") is State.CLOSED
    assert circuits.for_model("a") is circuits.for_model("a")
