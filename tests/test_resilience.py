from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from rmas.abtc import CardQuery
from rmas.changes import ChangeFeed, DocumentChange
from rmas.documents import DocumentQuery
from rmas.errors import ProviderError, ProviderUnavailable
from rmas.providers import (
    CardProvider,
    GuardConfig,
    ProviderInfo,
    ProviderSnapshot,
    Registry,
    card_capable,
    record_count,
    registry_of,
    snapshot_of,
)
from rmas.remote.client import RemoteProvider
from rmas.resilience import BreakerState, Bulkhead, CircuitBreaker, Guarded, SelfGuarded, guarded
from rmas.testing import FakeProvider

NZL = ProviderInfo(id="NZL", issuing_states=frozenset({"NZL"}))


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


# -- the guard around any provider ------------------------------------------------------------


class Feed(FakeProvider):
    """A fake that also reports record changes, counts its records and names its registry."""

    registry = Registry.COMPLETE

    async def current_position(self) -> str:
        return "7"

    def watch_changes(self, since: str) -> AsyncIterator[Sequence[DocumentChange]]:
        raise NotImplementedError

    async def record_count(self) -> int | None:
        return 42


class Cards(FakeProvider):
    async def lookup_cards(self, queries: Sequence[CardQuery], deadline: float) -> list[Any]:
        raise ProviderUnavailable("no cards today")


def soon() -> float:
    return time.monotonic() + 5


async def test_a_guarded_provider_keeps_every_capability_of_the_one_it_wraps() -> None:
    feed = guarded(Feed(info=NZL))
    assert isinstance(feed, Guarded) and isinstance(feed, ChangeFeed)
    assert not isinstance(feed, CardProvider)
    assert await feed.current_position() == "7"  # type: ignore[attr-defined]
    assert await record_count(feed) == 42
    assert registry_of(feed) is Registry.COMPLETE
    cards = guarded(Cards(info=NZL))
    assert isinstance(cards, CardProvider) and not isinstance(cards, ChangeFeed)
    assert card_capable(cards)
    plain = guarded(FakeProvider(info=NZL))
    assert not isinstance(plain, CardProvider | ChangeFeed)
    assert await record_count(plain) is None and registry_of(plain) is None
    snap = snapshot_of(plain)
    assert snap is not None and (snap["breaker"], snap["in_flight"]) == ("closed", 0)


async def test_the_guard_opens_on_document_and_card_failures_and_refuses_at_once() -> None:
    inner = Cards(info=NZL, failure="error")
    p = guarded(inner, GuardConfig(breaker_failures=2, breaker_reset_s=60))
    assert isinstance(p, Guarded) and isinstance(p, CardProvider)
    with pytest.raises(ProviderError):
        await p.lookup_many([DocumentQuery("NZL", "A1")], soon())
    with pytest.raises(ProviderUnavailable, match="no cards today"):
        await p.lookup_cards([CardQuery("NZL", "C1", "AUS")], soon())
    assert p.guard.breaker.state is BreakerState.OPEN
    with pytest.raises(ProviderUnavailable, match="circuit open for NZL"):
        await p.lookup_many([DocumentQuery("NZL", "A1")], soon())
    assert len(inner.calls) == 1  # the open breaker did not call it


async def test_a_short_caller_deadline_is_not_held_against_the_provider() -> None:
    inner = FakeProvider(info=NZL, failure="hang")
    p = guarded(inner, GuardConfig(breaker_failures=1, breaker_min_budget_s=0.25))
    assert isinstance(p, Guarded)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.02):
            await p.lookup_many([DocumentQuery("NZL", "A1")], time.monotonic() + 0.02)
    assert p.guard.breaker.state is BreakerState.CLOSED  # given 20 ms: not the provider's fault
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await p.lookup_many([DocumentQuery("NZL", "A1")], time.monotonic() + 0.3)
    assert p.guard.breaker.state is BreakerState.OPEN  # a fair budget, no answer


async def test_the_bulkhead_refuses_past_its_bound_at_once() -> None:
    inner = FakeProvider(info=NZL, failure="hang")
    p = guarded(inner, GuardConfig(max_in_flight=1))
    first = asyncio.create_task(p.lookup_many([DocumentQuery("NZL", "A1")], soon()))
    await asyncio.sleep(0.01)
    with pytest.raises(ProviderUnavailable, match="1 calls in flight"):
        await p.lookup_many([DocumentQuery("NZL", "A2")], soon())
    assert (p.guard.bulkhead.in_flight, p.guard.bulkhead.rejected) == (1, 1)
    first.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await first
    assert p.guard.bulkhead.in_flight == 0  # the slot is given back however the call ends


def test_a_provider_with_its_own_guard_is_not_wrapped_again() -> None:
    node = RemoteProvider(NZL, "127.0.0.1:1")
    assert isinstance(node, SelfGuarded)
    assert guarded(node) is node
    once = guarded(FakeProvider(info=NZL))
    assert guarded(once) is once


def test_the_snapshot_is_the_providers_own_with_the_guards_figures() -> None:
    class Own(FakeProvider):
        def snapshot(self) -> ProviderSnapshot:
            return ProviderSnapshot(provider="inner", target="db.example:5432", breaker="?")

    snap = snapshot_of(guarded(Own(info=NZL)))
    assert snap is not None
    assert (snap["target"], snap["provider"], snap["breaker"]) == (
        "db.example:5432",
        "NZL",
        "closed",
    )
