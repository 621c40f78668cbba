"""Per-model circuit breakers (SPEC §8.2), GitLab's Circuitbox settings: a model whose calls fail at 50 % or
more over at least 10 calls in the last minute opens its circuit; calls then fail fast with CircuitOpen for
30 s, after which one trial call is let through (half-open): its success closes the circuit, its failure
opens it again.

Failures are what says the provider is unwell: 5xx (529 included), timeouts, lost connections, cut or
malformed streams. A 4xx is the provider answering (a success); a 429 counts neither way. The state is
per worker process.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum

from core.errors import CircuitOpen, ProviderError, ProviderRateLimited, ProviderTimeout

__all__ = ["CircuitBreaker", "Circuits", "State", "is_failure"]

log = logging.getLogger(__name__)


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


def is_failure(exc: ProviderError) -> bool | None:
    """True when `exc` counts against the circuit, False when it shows a healthy provider, None for neither."""
    if isinstance(exc, ProviderRateLimited):
        return True if exc.status == 529 else None
    if isinstance(exc, ProviderTimeout) or exc.status is None:
        return True
    return exc.status >= 500


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        provider: str = "",
        *,
        error_threshold: float = 0.5,
        volume_threshold: int = 10,
        window_s: float = 60.0,
        open_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.provider = provider
        self._error_threshold = error_threshold
        self._volume_threshold = volume_threshold
        self._window_s = window_s
        self._open_s = open_s
        self._clock = clock
        # Outcomes in one-second buckets [second, calls, failures]: constant work per call, at most
        # window_s buckets however many calls.
        self._buckets: deque[list[int]] = deque()
        self._calls = self._failures = 0
        self._opened_at: float | None = None
        self._trial = False

    @property
    def state(self) -> State:
        if self._opened_at is None:
            return State.CLOSED
        if self._trial or self._clock() - self._opened_at >= self._open_s:
            return State.HALF_OPEN
        return State.OPEN

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Around one model call: fails fast when open, records the outcome."""
        trial = self._admit()
        try:
            yield
        except ProviderError as exc:
            self._record(is_failure(exc), trial)
            raise
        except BaseException:
            self._record(None, trial)
            raise
        self._record(False, trial)

    def _admit(self) -> bool:
        """Whether the call is the half-open trial; CircuitOpen when it may not run."""
        state = self.state
        if state is State.OPEN or (state is State.HALF_OPEN and self._trial):
            raise CircuitOpen(self.provider, self.name)
        if state is State.HALF_OPEN:
            self._trial = True
            return True
        return False

    def _record(self, failed: bool | None, trial: bool) -> None:
        if trial:
            self._trial = False
            if failed:
                self._open()
            elif failed is False:
                log.info("circuit closed", extra={"model": self.name})
                self._opened_at = None
                self._reset()
            return
        if failed is None or self._opened_at is not None:
            return
        second = int(self._clock())
        while self._buckets and second - self._buckets[0][0] >= self._window_s:
            _, calls, failures = self._buckets.popleft()
            self._calls -= calls
            self._failures -= failures
        if not self._buckets or self._buckets[-1][0] != second:
            self._buckets.append([second, 0, 0])
        self._buckets[-1][1] += 1
        self._buckets[-1][2] += failed
        self._calls += 1
        self._failures += failed
        if self._calls >= self._volume_threshold and self._failures >= self._error_threshold * self._calls:
            self._open()

    def _open(self) -> None:
        log.warning("circuit opened", extra={"model": self.name, "provider": self.provider})
        self._opened_at = self._clock()
        self._reset()

    def _reset(self) -> None:
        self._buckets.clear()
        self._calls = self._failures = 0


class Circuits:
    """One breaker per model identifier, created on first use."""

    def __init__(self, **options: object) -> None:
        self._options = options
        self._breakers: dict[str, CircuitBreaker] = {}

    def for_model(self, identifier: str, provider: str = "") -> CircuitBreaker:
        breaker = self._breakers.get(identifier)
        if breaker is None:
            breaker = self._breakers[identifier] = CircuitBreaker(identifier, provider, **self._options)  # type: ignore[arg-type]
        return breaker

    def state(self, identifier: str) -> State:
        breaker = self._breakers.get(identifier)
        return breaker.state if breaker else State.CLOSED
