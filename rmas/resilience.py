"""Isolation for one provider, whatever its kind: a circuit breaker and a bulkhead around its calls.

- :class:`CircuitBreaker` stops calling a provider after ``failures`` consecutive failures (or
  time-outs), answers "no" at once while open, lets one probe through after ``reset_s`` (half-open),
  and closes on the probe's success or opens again on its failure.
- :class:`Bulkhead` bounds the calls in flight to one provider; a call over the bound is refused
  at once rather than queued behind a provider that may be dead.
- :class:`Guard` runs one call behind both, judging the provider, not the caller: a call cut short
  by the caller's own short deadline (a budget under ``min_budget_s``) counts neither way.
- :func:`guarded` wraps any provider in a Guard (the hub does so for every configured provider,
  :func:`rmas.plugins.build_providers`): ``lookup_many`` and ``lookup_cards`` go through it,
  every other capability (record count, change feed, start, registry) passes through. A provider
  that guards its own calls (a national node's client, which also judges Describe) is
  :class:`SelfGuarded` and is not wrapped twice.

Config, on any ``[[providers]]`` table (:class:`rmas.providers.GuardConfig`)::

    max_in_flight = 64          # bulkhead; absent: the kind's default (64 for grpc, else none)
    breaker_failures = 5        # consecutive failures that open the breaker
    breaker_reset_ms = 5000     # how long it stays open before one probe
    breaker_min_budget_ms = 250 # time-outs of calls given less than this are not the provider's

No I/O here; clocks are injected.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast, runtime_checkable

import structlog

from rmas.changes import ChangeFeed, DocumentChange
from rmas.documents import DocumentQuery
from rmas.errors import ProviderTimeout, ProviderUnavailable
from rmas.providers import (
    CardProvider,
    GuardConfig,
    Provider,
    ProviderInfo,
    ProviderSnapshot,
    Registry,
    record_count,
    registry_of,
    snapshot_of,
    start_provider,
)
from rmas.verdict import Record

if TYPE_CHECKING:
    from rmas.abtc import CardQuery, CardRecord

__all__ = ["BreakerState", "Bulkhead", "CircuitBreaker", "Guard", "SelfGuarded", "guarded"]

log = structlog.get_logger("rmas.resilience")

T = TypeVar("T")
Q = TypeVar("Q")


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
    #: Most calls in flight; 0: no bound (the calls are still counted).
    limit: int
    in_flight: int = 0
    rejected: int = 0

    def try_acquire(self) -> bool:
        if self.limit and self.in_flight >= self.limit:
            self.rejected += 1
            return False
        self.in_flight += 1
        return True

    def release(self) -> None:
        self.in_flight -= 1


@dataclass(slots=True)
class Guard:
    """One provider's breaker and bulkhead. (Its calls' latencies are the fan-out's to keep:
    :class:`rmas.fanout.ProviderStats`.)"""

    name: str
    breaker: CircuitBreaker
    bulkhead: Bulkhead
    #: A call given less than this (seconds) that times out says nothing about the provider.
    min_budget_s: float = 0.25
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def from_config(cls, name: str, cfg: GuardConfig, default_in_flight: int = 0) -> Guard:
        limit = cfg.max_in_flight if cfg.max_in_flight is not None else default_in_flight
        return cls(
            name,
            CircuitBreaker(name, cfg.breaker_failures, cfg.breaker_reset_s),
            Bulkhead(limit),
            cfg.breaker_min_budget_s,
        )

    async def run(
        self,
        call: Callable[[Q, float], Awaitable[T]],
        queries: Q,
        deadline: float,
        admit: Callable[[], Awaitable[None]] | None = None,
    ) -> T:
        """``call(queries, deadline)`` behind the breaker and the bulkhead. ``admit``, awaited
        once the breaker lets the call through and before it takes a bulkhead slot, may refuse
        it (by raising): that says nothing about the provider (a half-open probe is freed)."""
        breaker = self.breaker
        # (The closed breaker's checks inlined: this runs on every call of every provider.)
        if breaker.state is not BreakerState.CLOSED and not breaker.allow():
            raise ProviderUnavailable(f"circuit open for {self.name}")
        if admit is not None:
            try:
                await admit()
            except BaseException:
                self.breaker.release()
                raise
        bulkhead = self.bulkhead  # (Bulkhead.try_acquire and release inlined, as above)
        if bulkhead.limit and bulkhead.in_flight >= bulkhead.limit:
            bulkhead.rejected += 1
            breaker.release()
            raise ProviderUnavailable(f"{self.name}: {bulkhead.limit} calls in flight")
        bulkhead.in_flight += 1
        budget = deadline - self.clock()
        try:
            result = await call(queries, deadline)
        except (ProviderTimeout, asyncio.CancelledError):
            # No answer in time. A provider that had a fair budget failed; a call the caller's
            # own short deadline cut off says nothing about it (but frees a half-open probe).
            if budget >= self.min_budget_s:
                breaker.failure()
            else:
                breaker.release()
            raise
        except BaseException:
            # Anything else, an answer that could not be read included, is the provider's failure.
            breaker.failure()
            raise
        finally:
            bulkhead.in_flight -= 1
        if breaker.consecutive or breaker.state is not BreakerState.CLOSED:
            breaker.success()
        return result

    def snapshot(self) -> ProviderSnapshot:
        """Breaker and bulkhead figures (for ``rmas status``, metrics and logs)."""
        breaker = self.breaker
        return ProviderSnapshot(
            provider=self.name,
            breaker=breaker.state.value,
            consecutive_failures=breaker.consecutive,
            times_opened=breaker.opened_count,
            in_flight=self.bulkhead.in_flight,
            rejected_by_bulkhead=self.bulkhead.rejected,
        )


@runtime_checkable
class SelfGuarded(Protocol):
    """A provider that runs its own calls through a :class:`Guard` (not wrapped again)."""

    @property
    def guard(self) -> Guard: ...


class Guarded:
    """Any provider behind a :class:`Guard`; see the module. Use :func:`guarded` to make one."""

    #: Only these: an attribute set on the wrapper would not reach the provider it wraps.
    __slots__ = ("guard", "provider")

    def __init__(self, provider: Provider, guard: Guard) -> None:
        self.provider = provider
        self.guard = guard

    @property
    def info(self) -> ProviderInfo:
        return self.provider.info

    def lookup_many(
        self, queries: Sequence[DocumentQuery], deadline: float
    ) -> Coroutine[Any, Any, list[Record]]:
        # The guard's coroutine itself, not one awaiting it: one frame less on every call.
        return self.guard.run(self.provider.lookup_many, queries, deadline)

    async def aclose(self) -> None:
        await self.provider.aclose()

    async def start(self) -> None:
        await start_provider(self.provider)

    async def record_count(self) -> int | None:
        return await record_count(self.provider)

    @property
    def registry(self) -> Registry | None:
        return registry_of(self.provider)

    def snapshot(self) -> ProviderSnapshot:
        """The provider's own snapshot (if it has one) with the guard's figures."""
        snap = ProviderSnapshot(**(snapshot_of(self.provider) or {}))
        snap.update(self.guard.snapshot())
        return snap

    def __getattr__(self, name: str) -> Any:
        # Anything else the provider offers (its own attributes, for its tests and tools).
        if name in Guarded.__slots__:  # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        return getattr(self.provider, name)

    def __repr__(self) -> str:
        return f"Guarded({self.provider!r})"


class _GuardedCards(Guarded):
    __slots__ = ()

    async def lookup_cards(self, queries: Sequence[CardQuery], deadline: float) -> list[CardRecord]:
        cards = cast(CardProvider, self.provider)  # chosen by guarded() for card providers
        return await self.guard.run(cards.lookup_cards, queries, deadline)


class _GuardedChanges(Guarded):
    __slots__ = ()

    async def current_position(self) -> str:
        return await cast(ChangeFeed, self.provider).current_position()

    def watch_changes(self, since: str) -> AsyncIterator[Sequence[DocumentChange]]:
        return cast(ChangeFeed, self.provider).watch_changes(since)


class _GuardedCardsChanges(_GuardedCards, _GuardedChanges):
    __slots__ = ()


def guarded(provider: Provider, cfg: GuardConfig | None = None) -> Provider:
    """``provider`` behind a breaker and a bulkhead configured by ``cfg`` (defaults: see
    :class:`~rmas.providers.GuardConfig`), with the same capabilities (CardProvider, ChangeFeed)
    as ``provider``; a :class:`SelfGuarded` provider as it is."""
    if isinstance(provider, (SelfGuarded, Guarded)):
        return provider
    guard = Guard.from_config(provider.info.id, cfg or GuardConfig())
    cards, changes = isinstance(provider, CardProvider), isinstance(provider, ChangeFeed)
    cls = {
        (False, False): Guarded,
        (True, False): _GuardedCards,
        (False, True): _GuardedChanges,
        (True, True): _GuardedCardsChanges,
    }[(cards, changes)]
    return cls(provider, guard)
