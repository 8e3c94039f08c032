"""Isolation for one provider: a circuit breaker and a bulkhead. No I/O here; clocks are injected.

- :class:`CircuitBreaker` stops calling a provider after ``failures`` consecutive failures (or
  time-outs), answers "no" at once while open, lets one probe through after ``reset_s`` (half-open),
  and closes on the probe's success or opens again on its failure.
- :class:`Bulkhead` bounds the calls in flight to one provider; a call over the bound is refused
  at once rather than queued behind a provider that may be dead.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

__all__ = ["BreakerState", "Bulkhead", "CircuitBreaker"]

log = structlog.get_logger("rmas.resilience")


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(slots=True)
class CircuitBreaker:
    name: str
    failures: int = 5
    reset_s: float = 5.0
    clock: Callable[[], float] = time.monotonic
    state: BreakerState = BreakerState.CLOSED
    consecutive: int = 0
    opened_at: float = 0.0
    probing: bool = False
    opened_count: int = 0

    def allow(self) -> bool:
        """May a call go out now? In half-open state only one probe at a time."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN:
            if self.clock() - self.opened_at < self.reset_s:
                return False
            self._move(BreakerState.HALF_OPEN)
        if self.probing:
            return False
        self.probing = True
        return True

    def success(self) -> None:
        self.consecutive = 0
        self.probing = False
        if self.state is not BreakerState.CLOSED:
            self._move(BreakerState.CLOSED)

    def release(self) -> None:
        """A call ended with no verdict on the provider (the caller gave up): free the probe."""
        self.probing = False

    def failure(self) -> None:
        self.consecutive += 1
        self.probing = False
        if self.state is BreakerState.HALF_OPEN or (
            self.state is BreakerState.CLOSED and self.consecutive >= self.failures
        ):
            self.opened_at = self.clock()
            self.opened_count += 1
            self._move(BreakerState.OPEN)

    def _move(self, to: BreakerState) -> None:
        log.warning("breaker_state", provider=self.name, state_from=self.state.value,
                    state_to=to.value, consecutive_failures=self.consecutive)  # fmt: skip
        self.state = to


@dataclass(slots=True)
class Bulkhead:
    limit: int
    in_flight: int = 0
    rejected: int = 0

    def try_acquire(self) -> bool:
        if self.in_flight >= self.limit:
            self.rejected += 1
            return False
        self.in_flight += 1
        return True

    def release(self) -> None:
        self.in_flight -= 1
