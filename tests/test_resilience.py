from __future__ import annotations

from rmas.resilience import BreakerState, Bulkhead, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_breaker_opens_after_consecutive_failures_and_refuses_at_once() -> None:
    b = CircuitBreaker("NZL", failures=3, reset_s=5, clock=Clock())
    for _ in range(2):
        assert b.allow()
        b.failure()
    assert b.state is BreakerState.CLOSED
    b.success()  # a success resets the count
    for _ in range(3):
        assert b.allow()
        b.failure()
    assert b.state is BreakerState.OPEN
    assert not b.allow()


def test_half_open_lets_one_probe_through_and_closes_on_success() -> None:
    clock = Clock()
    b = CircuitBreaker("NZL", failures=1, reset_s=5, clock=clock)
    b.allow()
    b.failure()
    clock.now += 4.9
    assert not b.allow()
    clock.now += 0.2
    assert b.allow()  # the probe
    assert b.state is BreakerState.HALF_OPEN
    assert not b.allow()  # only one probe at a time
    b.success()
    assert b.state is BreakerState.CLOSED
    assert b.allow()


def test_a_failed_probe_opens_the_breaker_again() -> None:
    clock = Clock()
    b = CircuitBreaker("NZL", failures=1, reset_s=5, clock=clock)
    b.allow()
    b.failure()
    clock.now += 6
    assert b.allow()
    b.failure()
    assert b.state is BreakerState.OPEN
    assert b.opened_count == 2
    assert not b.allow()
    clock.now += 6
    assert b.allow()


def test_the_bulkhead_refuses_past_its_limit() -> None:
    h = Bulkhead(2)
    assert h.try_acquire()
    assert h.try_acquire()
    assert not h.try_acquire()
    assert h.rejected == 1
    h.release()
    assert h.try_acquire()
