"""Routing and fan-out: which providers must answer a document, and asking them all at once.

Routing follows RMAS: a document goes to the provider(s) of the economy that issued it, plus every
global (SLTD-style) provider. The fan-out groups a batch of documents by provider, so that a
manifest of 500 travellers becomes one ``lookup_many`` call per provider (split only where a
provider declares a batch limit), runs those calls concurrently under one deadline, and turns
every failure into an outcome (TIMEOUT, UNAVAILABLE, ERROR): nothing a provider does can fail the
caller's request or hold its answer past the deadline.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

import structlog

from rmas.abtc import CardAnswer, CardQuery, CardRecord
from rmas.documents import DocumentQuery, DocumentType
from rmas.errors import ProviderTimeout, ProviderUnavailable
from rmas.providers import CardProvider, Provider, ProviderInfo, Scope, card_capable
from rmas.verdict import Outcome, Record, SourceAnswer

__all__ = ["LATENCY_BUCKETS_MS", "FanOut", "ProviderStats", "Router"]

log = structlog.get_logger("rmas.fanout")

_ANY_TYPE = DocumentType.UNSPECIFIED

#: A query the fan-out routes (a document or a card) and the answer it gives per provider.
_Q = TypeVar("_Q", DocumentQuery, CardQuery)
_A = TypeVar("_A", SourceAnswer, CardAnswer)


class Router:
    """Maps a document (or an ABTC card) to the providers that must answer for it."""

    def __init__(self, providers: Sequence[Provider]) -> None:
        self.providers: tuple[Provider, ...] = tuple(providers)
        self._by_economy: dict[str, list[Provider]] = {}
        self._global: list[Provider] = []
        self._cards_by_economy: dict[str, list[Provider]] = {}
        self._cards_global: list[Provider] = []
        for p in self.providers:
            info = p.info
            cards = card_capable(p)
            if info.scope is Scope.GLOBAL:
                self._global.append(p)
                if cards:
                    self._cards_global.append(p)
            else:
                for state in info.issuing_states:
                    self._by_economy.setdefault(state, []).append(p)
                    if cards:
                        self._cards_by_economy.setdefault(state, []).append(p)

    def route_card(self, query: CardQuery) -> list[Provider]:
        """The card's home economy's ABTC providers, then every global ABTC provider."""
        return [*self._cards_by_economy.get(query.home_economy, ()), *self._cards_global]

    def route(self, query: DocumentQuery) -> list[Provider]:
        """The issuing economy's providers (if it participates), then every global provider."""
        issuers = self._by_economy.get(query.economy)
        if issuers is None:
            return self._global
        return [*issuers, *self._global] if self._global else issuers

    def participates(self, economy: str) -> bool:
        return economy in self._by_economy


#: Upper bounds (ms) of the provider call latency histogram (:mod:`rmas.server.metrics`).
LATENCY_BUCKETS_MS: tuple[float, ...] = (
    0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
)  # fmt: skip


@dataclass(slots=True)
class ProviderStats:
    """What the hub has seen of one provider: for ``rmas status`` and the metrics endpoint."""

    calls: int = 0
    failures: int = 0
    last_error: str = ""
    #: The last 200 calls: (answered, latency in ms).
    recent: deque[tuple[bool, float]] = field(default_factory=lambda: deque(maxlen=200))
    #: Calls since start by outcome, and their latency: a count per LATENCY_BUCKETS_MS bin (the
    #: last bin: slower than every bound) and the sum. Plain counters, one increment each per
    #: call; the metrics endpoint turns them into a histogram when it is scraped.
    outcomes: dict[Outcome, int] = field(default_factory=dict)
    latency_bins: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))
    latency_sum_ms: float = 0.0

    def record(
        self, answered: bool, latency_ms: float, error: str = "", outcome: Outcome | None = None
    ) -> None:
        self.calls += 1
        self.recent.append((answered, latency_ms))
        if outcome is None:
            outcome = Outcome.ANSWERED if answered else Outcome.ERROR
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        # bisect_left: a latency equal to a bound belongs to that bound's bin (Prometheus "le").
        self.latency_bins[bisect.bisect_left(LATENCY_BUCKETS_MS, latency_ms)] += 1
        self.latency_sum_ms += latency_ms
        if not answered:
            self.failures += 1
            self.last_error = error

    def summary(self) -> dict[str, float | str]:
        lat = sorted(ms for _ok, ms in self.recent)
        bad = sum(1 for ok, _ms in self.recent if not ok)
        n = len(self.recent)

        def pct(q: float) -> float:
            return lat[min(n - 1, int(q * n))] if n else 0.0

        last = [ok for ok, _ms in list(self.recent)[-3:]]
        health = "ok"
        if last and not any(last):
            health = "down"
        elif bad:
            health = "degraded"
        return {"error_rate": bad / n if n else 0.0, "p50_ms": pct(0.5), "p99_ms": pct(0.99),
                "health": health}  # fmt: skip


@dataclass(slots=True)
class _Job:
    provider: Provider
    info: ProviderInfo
    issuer: bool
    indices: list[int]


class FanOut:
    """Asks every routed provider about a batch of documents, concurrently, under one deadline."""

    def __init__(self, router: Router, clock: Callable[[], float] = time.monotonic) -> None:
        self.router = router
        self._clock = clock
        self.stats: dict[str, ProviderStats] = {
            p.info.id: ProviderStats() for p in router.providers
        }

    async def ask(
        self, queries: Sequence[DocumentQuery], deadline: float
    ) -> list[tuple[SourceAnswer, ...]]:
        """Every provider's answer for each query (same order as ``queries``).

        ``deadline`` is an absolute ``time.monotonic()`` instant. A query no provider covers gets
        an empty tuple (the verdict makes it INCOMPLETE). Queries answered by the same answer
        objects get the same tuple object (every "no record" of a provider, every failed call):
        callers may key work they share on the tuple's identity while the list is alive.
        """
        # Providers match on issuing state and number alone: they are never told the type the
        # caller named, so no provider can let a type filter hide a hit (the type is shown to
        # officers from the query and from the record's own ``document_type``).
        queries = [q if q.type is _ANY_TYPE else q.untyped() for q in queries]
        return await self._ask(queries, deadline, _state_of, self.router.route, _LOOKUP,
                               SourceAnswer)  # fmt: skip

    async def ask_cards(
        self, queries: Sequence[CardQuery], deadline: float
    ) -> list[tuple[CardAnswer, ...]]:
        """Every ABTC provider's answer for each card (same order as ``queries``), with the
        machinery of :meth:`ask`: one batch per provider, one deadline, failures as outcomes. A
        card no provider covers gets an empty tuple (rmas.abtc makes it INCOMPLETE)."""
        return await self._ask(queries, deadline, _home_of, self.router.route_card,
                               _LOOKUP_CARDS, CardAnswer)  # fmt: skip

    async def _ask(  # noqa: PLR0917 - private: the one loop behind ask and ask_cards
        self,
        queries: Sequence[_Q],
        deadline: float,
        group_of: Callable[[_Q], str],
        route: Callable[[_Q], list[Provider]],
        lookup: _Lookup,
        answer: Callable[..., _A],
    ) -> list[tuple[_A, ...]]:
        """The one fan-out loop: group ``queries`` by the code they are routed by (routed once
        per group, not once per query), ask each routed provider once about all its groups (no
        task when only one is routed), and give every query one ``answer`` per provider."""
        if len(queries) == 1:  # a single check: nothing to group
            return [await self._ask_one(queries, deadline, route, lookup, answer)]
        groups: dict[str, list[int]] = {}
        for i, q in enumerate(queries):
            code = group_of(q)
            g = groups.get(code)
            if g is None:
                groups[code] = [i]
            else:
                g.append(i)
        jobs: dict[int, _Job] = {}
        routed: list[tuple[list[int], list[tuple[_Job, int]]]] = []
        for indices in groups.values():
            at: list[tuple[_Job, int]] = []
            for p in route(queries[indices[0]]):
                job = jobs.get(id(p))
                if job is None:
                    info = p.info
                    job = jobs[id(p)] = _Job(p, info, info.scope is Scope.ISSUER, [])
                at.append((job, len(job.indices)))  # where this group starts in the job's batch
                job.indices.extend(indices)
            routed.append((indices, at))
        answers: list[tuple[_A, ...]] = [()] * len(queries)
        if not jobs:
            return answers
        job_list = list(jobs.values())
        if len(job_list) == 1:
            # The common single-document, single-provider case: no task to schedule.
            results = [await self._call(job_list[0], queries, deadline, lookup)]
        else:
            results = await asyncio.gather(
                *(self._call(j, queries, deadline, lookup) for j in job_list)
            )
        columns = {
            id(job): _column(job, res, answer) for job, res in zip(job_list, results, strict=True)
        }
        for indices, at in routed:
            _assemble(indices, [(columns[id(job)], start) for job, start in at], answers)
        return answers

    async def _ask_one(
        self,
        queries: Sequence[_Q],
        deadline: float,
        route: Callable[[_Q], list[Provider]],
        lookup: _Lookup,
        answer: Callable[..., _A],
    ) -> tuple[_A, ...]:
        """:meth:`_ask` of one query: each routed provider's answer, in route order."""
        jobs = [_Job(p, p.info, p.info.scope is Scope.ISSUER, [0]) for p in route(queries[0])]
        if not jobs:
            return ()
        if len(jobs) == 1:
            res = await self._call(jobs[0], queries, deadline, lookup)
            return (_column(jobs[0], res, answer)[0],)
        results = await asyncio.gather(*(self._call(j, queries, deadline, lookup) for j in jobs))
        return tuple(_column(j, r, answer)[0] for j, r in zip(jobs, results, strict=True))

    async def _call(
        self, job: _Job, queries: Sequence[Any], deadline: float, lookup: _Lookup
    ) -> tuple[Outcome, list[Any] | None, float, str]:
        info = job.info
        start = self._clock()
        own_deadline = deadline
        if info.timeout_s > 0:
            own_deadline = min(deadline, start + info.timeout_s)
        batch = [queries[i] for i in job.indices]
        remaining = own_deadline - start
        try:
            if remaining <= 0:
                raise TimeoutError
            # The deadline as one timer that cancels this task (what ``asyncio.timeout`` does, 1.5
            # µs of CPU a call under uvloop against its 4): on expiry, the cancellation this timer
            # caused, and only that one, becomes a TimeoutError.
            task = asyncio.current_task()
            assert task is not None
            cancelling = task.cancelling()
            expiry = _Expiry(task)
            timer = asyncio.get_running_loop().call_later(remaining, expiry)
            try:
                if info.max_batch <= 0 or len(batch) <= info.max_batch:  # no split: no frame
                    records = await lookup(job.provider, batch, own_deadline)
                else:
                    records = await _lookup_split(
                        job.provider, batch, own_deadline, info.max_batch, lookup
                    )
            except asyncio.CancelledError:
                if expiry.fired:
                    expiry.fired = False  # its cancellation taken back here, once
                    if task.uncancel() <= cancelling:
                        raise TimeoutError from None
                raise
            finally:
                timer.cancel()
                if expiry.fired:  # fired, but the call ended another way: taken back too
                    task.uncancel()
            if len(records) != len(batch):
                raise _BadAnswer(f"{len(records)} records for {len(batch)} documents")
        except (TimeoutError, ProviderTimeout) as exc:
            return self._fail(job, start, Outcome.TIMEOUT, "no answer before the deadline", exc)
        except ProviderUnavailable as exc:
            return self._fail(job, start, Outcome.UNAVAILABLE, str(exc) or "unavailable", exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return self._fail(job, start, Outcome.ERROR, _describe(exc), exc)
        latency_ms = (self._clock() - start) * 1000.0
        self._stats(info.id).record(True, latency_ms)
        return Outcome.ANSWERED, records, latency_ms, ""

    def _stats(self, provider_id: str) -> ProviderStats:
        st = self.stats.get(provider_id)
        if st is None:
            st = self.stats[provider_id] = ProviderStats()
        return st

    def _fail(
        self, job: _Job, start: float, outcome: Outcome, error: str, exc: BaseException
    ) -> tuple[Outcome, None, float, str]:
        latency_ms = (self._clock() - start) * 1000.0
        self._stats(job.info.id).record(
            False, latency_ms, f"{outcome.value}: {error}"[:200], outcome
        )
        # The message goes to the officer in the answer; the log gets only the exception's class,
        # since an adapter's message may quote the document it failed on.
        log.warning(
            "provider_failed",
            provider=job.info.id,
            outcome=outcome.value,
            error_type=type(exc).__name__,
            documents=len(job.indices),
            latency_ms=round(latency_ms, 2),
        )
        return outcome, None, latency_ms, error


class _BadAnswer(Exception):
    pass


class _Expiry:
    """A provider call's deadline timer: cancels the calling task once, and says it did."""

    __slots__ = ("fired", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.fired = False

    def __call__(self) -> None:
        self.fired = True
        self.task.cancel()


def _column(
    job: _Job, result: tuple[Outcome, list[Any] | None, float, str], answer: Callable[..., _A]
) -> list[_A]:
    """One provider's answers, in the order of its batch. Answers are immutable and differ only
    by record: documents given the same record object (a provider's shared "no record", or none
    when the call failed) share one answer object."""
    outcome, records, latency_ms, error = result
    info = job.info
    required = info.required or job.issuer
    if records is None:  # positional (0.6 µs against 0.85 by keywords): see _ANSWER_FIELDS
        failed = answer(info.id, outcome, required, job.issuer, latency_ms, None, info.contact,
                        error)  # fmt: skip
        return [failed] * len(job.indices)
    shared: dict[int, _A] = {}
    column: list[_A] = []
    for record in records:
        made = shared.get(id(record))
        if made is None:
            made = shared[id(record)] = answer(
                info.id, outcome, required, job.issuer, latency_ms, record, info.contact, error
            )
        column.append(made)
    return column


def _assemble(
    indices: list[int], columns: list[tuple[list[_A], int]], answers: list[tuple[_A, ...]]
) -> None:
    """Each document of one routed group gets its answers from the group's providers' columns
    (``(column, where the group starts in it)``), as a tuple shared by the documents whose
    answers are the same objects."""
    tuples: dict[Any, tuple[_A, ...]] = {}
    if len(columns) == 1:  # one provider answers for the group (the usual case)
        ((column, start),) = columns
        for k, i in enumerate(indices, start):
            a = column[k]
            t = tuples.get(id(a))
            if t is None:
                t = tuples[id(a)] = (a,)
            answers[i] = t
        return
    for k, i in enumerate(indices):
        row = tuple(column[start + k] for column, start in columns)
        key = tuple(map(id, row))
        t = tuples.get(key)
        if t is None:
            t = tuples[key] = row
        answers[i] = t


def _state_of(query: DocumentQuery) -> str:
    return query.issuing_state


def _home_of(query: CardQuery) -> str:
    return query.home_economy


#: The leading fields of both answer types, in the order ``_column`` passes them.
_ANSWER_FIELDS = (
    "provider_id", "outcome", "required", "issuer", "latency_ms", "record", "contact", "error",
)  # fmt: skip
for _cls in (SourceAnswer, CardAnswer):
    if tuple(f.name for f in fields(_cls))[: len(_ANSWER_FIELDS)] != _ANSWER_FIELDS:
        raise TypeError(f"{_cls.__name__}'s fields changed: update rmas.fanout._column")


def _describe(exc: BaseException) -> str:
    # The class name and message, bounded: shown to officers and logged (never carries the query).
    text = str(exc)
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


#: How the fan-out asks a provider about a batch: documents (the Provider contract) or ABTC cards
#: (the optional CardProvider capability; only card-capable providers are routed cards).
_Lookup = Callable[[Any, list[Any], float], Coroutine[Any, Any, list[Any]]]


def _lookup_documents(
    provider: Provider, batch: list[DocumentQuery], deadline: float
) -> Coroutine[Any, Any, list[Record]]:
    return provider.lookup_many(batch, deadline)


def _lookup_cards(
    provider: CardProvider, batch: list[CardQuery], deadline: float
) -> Coroutine[Any, Any, list[CardRecord]]:
    return provider.lookup_cards(batch, deadline)


_LOOKUP: _Lookup = _lookup_documents
_LOOKUP_CARDS: _Lookup = _lookup_cards


async def _lookup_split(
    provider: Any, batch: list[Any], deadline: float, max_batch: int, lookup: _Lookup
) -> list[Any]:
    """``lookup`` of ``batch`` in chunks of ``max_batch`` at once (a batch over the limit)."""
    # A TaskGroup, not gather: when one chunk fails, its siblings are cancelled, not orphaned.
    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [
                tg.create_task(lookup(provider, batch[i : i + max_batch], deadline))
                for i in range(0, len(batch), max_batch)
            ]
    except BaseExceptionGroup as group:
        raise group.exceptions[0] from None
    out: list[Any] = []
    for task in tasks:
        out.extend(task.result())
    return out
