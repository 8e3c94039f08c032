"""The hub's use case: validate, fan out, merge. One function per channel-independent operation.

The gRPC servicers (and the iAPI channel) translate their wire formats into
:class:`~rmas.documents.DocumentQuery` objects, or into the :class:`~rmas.errors.ValidationError`
that stopped one, and hand them here. A document with bad data is answered INVALID_DATA without
asking anyone; the rest of the batch goes out in one fan-out.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace

import structlog

from rmas.abtc import CardQuery, CardResult, judge_card
from rmas.documents import DocumentQuery
from rmas.errors import FieldViolation, ValidationError
from rmas.fanout import FanOut, Router
from rmas.frozen import fast_init
from rmas.mrz import MrzReading
from rmas.providers import Provider
from rmas.verdict import Decision, Directive, IncompletePolicy, SourceAnswer, Verdict, merge

__all__ = [
    "MAX_REF_LENGTH",
    "SINGLES_WINDOW_S",
    "TURN",
    "CheckResult",
    "Hub",
    "HubPolicy",
    "InvalidDocument",
    "Item",
    "ScannedDocument",
    "in_turns",
    "new_check_id",
]


#: Longest reference a caller may give a document of a batch (a manifest line, a PAXLST
#: traveller): EDIFACT's RFF reference is an..70.
MAX_REF_LENGTH = 70

#: Documents a batch's per-document work goes through between two turns of the event loop
#: (``await asyncio.sleep(0)``) while single checks are coming (:meth:`Hub.gives_turns`):
#: reading, merging and writing a manifest of hundreds then never holds the loop for more than
#: a fraction of a millisecond. gRPC's aio server accepts about one new call per turn of the
#: loop: held for milliseconds at a time by manifests, it left single checks waiting for seconds
#: (docs/benchmarks.md, session 11). Turns every 64 documents cost manifests alone 3% of their
#: CPU at one in flight and 12% at four (each turn lets another manifest's work in, and the
#: caches go cold), so they are given only when someone is waiting for them; then every 32
#: (64 accepted about 500 single checks a second beside two manifests in slow minutes, 32
#: about 800).
TURN = 32
#: How long after a single check began large batches go on giving the loop turns (seconds).
SINGLES_WINDOW_S = 0.25


async def in_turns(n: int, size: int) -> AsyncIterator[slice]:
    """The positions of ``n`` items as slices of ``size``, giving the event loop a turn
    (``await asyncio.sleep(0)``) between two; all of them in one slice when ``size`` is 0 or at
    least ``n``. The one way a large batch takes turns: ``size`` is :data:`TURN` (or a step of
    its own) while :meth:`Hub.gives_turns`, else 0."""
    if size <= 0 or size >= n:
        yield slice(0, n)
        return
    for start in range(0, n, size):
        if start:
            await asyncio.sleep(0)
        yield slice(start, start + size)


_ids = random.Random(os.urandom(32))
log = structlog.get_logger("rmas.hub")


def new_check_id() -> str:
    """A unique id for one document check (quoted by officers and airlines): 128 random bits.

    From a generator seeded by the OS, not a syscall per id: os.urandom cost ~1 µs per document
    in a manifest's profile. Uniqueness is what matters here; the id grants nothing.
    """
    return _ids.getrandbits(128).to_bytes(16, "big").hex()  # half the time of a format


@dataclass(frozen=True, slots=True)
class HubPolicy:
    """How the hub decides what it cannot know for sure."""

    #: What an INCOMPLETE verdict tells the airline.
    on_incomplete: IncompletePolicy = IncompletePolicy.CONTACT
    #: Longest a check may take, whatever deadline the caller sent (seconds).
    max_deadline_s: float = 1.5
    #: The hub's own economy: where ABTC cards are checked for, unless a request names another.
    economy: str = ""


@dataclass(frozen=True, slots=True)
class InvalidDocument:
    """A document of a batch whose data failed validation: answered INVALID_DATA, never asked."""

    ref: str
    violations: tuple[FieldViolation, ...]

    @classmethod
    def from_error(cls, ref: str, error: ValidationError) -> InvalidDocument:
        return cls(ref, tuple(error.violations))


@dataclass(frozen=True, slots=True)
class ScannedDocument:
    """A document read from its machine-readable zone, with the reading's evidence.

    When a check digit is refuted, the providers are asked about the number as read and about
    every OCR-confusion candidate the reading names; see :func:`rmas.verdict.merge`.
    """

    query: DocumentQuery
    reading: MrzReading


Item = DocumentQuery | InvalidDocument | ScannedDocument


@fast_init
@dataclass(frozen=True, slots=True)
class CheckResult:
    """One document's verdict, with everything an officer may see (edges filter for others)."""

    check_id: str
    ref: str
    verdict: Verdict
    directive: Directive
    unchecked: bool = False
    sources: tuple[SourceAnswer, ...] = ()
    problems: tuple[FieldViolation, ...] = ()
    warnings: tuple[str, ...] = ()
    document: DocumentQuery | None = None
    mrz: MrzReading | None = None
    #: Whether the issuing economy's own provider was asked. False when only global stores were
    #: (the issuer has no provider here): a CLEAR then rests on them alone, not on the issuer.
    issuer_consulted: bool = False
    #: The ABTC presented with the document, judged for the checking economy (officers only).
    #: It never changes ``verdict`` or ``directive``.
    abtc: CardResult | None = None


@dataclass(slots=True)
class _Pending:
    index: int
    query: DocumentQuery
    reading: MrzReading | None = None
    #: Positions in the fan-out batch of this document's OCR candidates, with their numbers.
    candidates: Sequence[tuple[int, str]] = ()


class Hub:
    """Routes, fans out and merges. Stateless: safe to share between all requests."""

    def __init__(self, providers: Sequence[Provider], policy: HubPolicy | None = None) -> None:
        self.policy = policy or HubPolicy()
        self.router = Router(providers)
        self.fanout = FanOut(self.router)
        self.started = time.monotonic()
        #: Documents checked since start, and checks being answered now (for ``rmas status``).
        self.checked = 0
        self.in_flight = 0
        #: When the last check of a single document began (``time.monotonic``).
        self.single_at = -SINGLES_WINDOW_S

    def gives_turns(self) -> bool:
        """Whether a large batch gives the loop a turn every :data:`TURN` documents now: while
        single checks are coming (one began less than :data:`SINGLES_WINDOW_S` ago). Single
        checks stuck in gRPC's queue are not seen yet, but the first one through switches the
        turns on, and with them the rest come through."""
        return time.monotonic() - self.single_at < SINGLES_WINDOW_S

    @property
    def providers(self) -> tuple[Provider, ...]:
        return self.router.providers

    def reconfigure(self, providers: Sequence[Provider], policy: HubPolicy) -> None:
        """Route new checks to ``providers`` under ``policy`` (a configuration reload).

        Checks already under way keep the fan-out they started with, so none is dropped; the
        statistics of providers that stay carry over, so ``rmas status`` and the metrics go on.
        """
        old = self.fanout
        self.policy = policy
        self.router = Router(providers)
        fanout = FanOut(self.router)
        for pid in fanout.stats:
            if pid in old.stats:
                fanout.stats[pid] = old.stats[pid]
        self.fanout = fanout

    def deadline(self, caller_remaining_s: float | None) -> float:
        """The absolute deadline for a check: the caller's, capped by policy, minus a margin.

        The margin leaves time to merge and send the answer before the caller gives up.
        """
        budget = self.policy.max_deadline_s
        if caller_remaining_s is not None:
            margin = min(0.02, caller_remaining_s * 0.1)
            budget = min(budget, caller_remaining_s - margin)
        return time.monotonic() + max(budget, 0.0)

    async def check_with_card(
        self, item: DocumentQuery | ScannedDocument, card: CardQuery, deadline: float
    ) -> CheckResult:
        """A document and the ABTC presented with it, asked at once under one deadline.

        The card's verdict (:func:`rmas.abtc.judge_card`) rides beside the document's, which it
        never changes.
        """
        results, cards = await asyncio.gather(
            self.check([item], deadline), self.fanout.ask_cards([card], deadline)
        )
        verdict = judge_card(card, cards[0], dt.date.today())
        # The card number is redacted by the log configuration (rmas.logs), like document numbers.
        log.debug("abtc_checked", card_number=card.number, home_economy=card.home_economy,
                  checking_economy=card.checking_economy, usable=verdict.usable,
                  reason=verdict.reason.value)  # fmt: skip
        return replace(results[0], abtc=verdict)

    async def check(self, items: Sequence[Item], deadline: float) -> list[CheckResult]:
        """A result per item, in order. Items that failed validation are INVALID_DATA."""
        self.checked += len(items)
        if len(items) == 1:
            self.single_at = time.monotonic()
        for item in items:
            if type(item) is not DocumentQuery:
                return await self._check_mixed(items, deadline)
        # Only plain documents (most manifests): the batch is the items themselves.
        queries: Sequence[DocumentQuery] = items  # type: ignore[assignment]
        self.in_flight += len(queries)
        try:
            answers = await self.fanout.ask(queries, deadline)
        finally:
            self.in_flight -= len(queries)
        policy = self.policy.on_incomplete
        if len(queries) <= TURN:
            return self._merged(queries, answers, policy)
        return await self._merged_in_turns(queries, answers, policy)

    async def _merged_in_turns(
        self,
        queries: Sequence[DocumentQuery],
        answers: Sequence[tuple[SourceAnswer, ...]],
        policy: IncompletePolicy,
    ) -> list[CheckResult]:
        """:meth:`_merged` of a large batch, :data:`TURN` documents at a time, giving the loop
        a turn in between when :meth:`gives_turns`; under one ``policy`` throughout (a reload
        between two turns does not split a batch's rule)."""
        out: list[CheckResult] = []
        async for part in in_turns(len(queries), TURN if self.gives_turns() else 0):
            out += self._merged(queries[part], answers[part], policy)
        return out

    def _merged(
        self,
        queries: Sequence[DocumentQuery],
        answers: Sequence[tuple[SourceAnswer, ...]],
        policy: IncompletePolicy,
    ) -> list[CheckResult]:
        """The results of plain documents from their answers (same order).

        Documents answered by the same tuple of answers (the fan-out shares them: every "no
        record", every failed call) get the same decision: merged once per distinct tuple in
        this call, keyed by its identity (alive in ``answers`` until the loop ends). Still the
        one rule: rmas.verdict.merge.
        """
        today: dt.date | None = None  # read once per call, and only when needed
        for q in queries:
            if q.expiry_date is not None:
                today = dt.date.today()
                break
        shared: dict[int, tuple[Decision, bool]] = {}
        result = self._result
        out: list[CheckResult] = []
        new_id = new_check_id
        for q, sources in zip(queries, answers, strict=True):
            joined = shared.get(id(sources))
            if joined is None:
                joined = shared[id(sources)] = (
                    merge(sources, policy),
                    any(a.issuer for a in sources),
                )
            d, consulted = joined
            expiry = q.expiry_date
            if consulted and (expiry is None or (today is not None and expiry >= today)):
                # Nothing to warn about: _result, inlined.
                out.append(CheckResult(new_id(), q.ref, d.verdict, d.directive, d.unchecked,
                                       sources, (), (), q, None, True))  # fmt: skip
                continue
            out.append(result(q, None, d, consulted, sources, today))
        return out

    async def _check_mixed(self, items: Sequence[Item], deadline: float) -> list[CheckResult]:
        """:meth:`check` of a batch with invalid or scanned documents among its items."""
        results: list[CheckResult | None] = [None] * len(items)
        pending: list[_Pending] = []
        batch: list[DocumentQuery] = []
        for i, item in enumerate(items):
            if isinstance(item, InvalidDocument):
                d = merge((), data_valid=False)
                results[i] = CheckResult(
                    check_id=new_check_id(),
                    ref=item.ref,
                    verdict=d.verdict,
                    directive=d.directive,
                    problems=item.violations,
                )
            elif isinstance(item, ScannedDocument):
                candidates: list[tuple[int, str]] = []
                pending.append(_Pending(i, item.query, item.reading, candidates))
                batch.append(item.query)
                for number in item.reading.candidate_numbers():
                    candidates.append((len(batch), number))
                    batch.append(replace(item.query, number=number))
            else:
                pending.append(_Pending(i, item))
                batch.append(item)
        if pending:
            self.in_flight += len(pending)
            try:
                answers = await self.fanout.ask(batch, deadline)
            finally:
                self.in_flight -= len(pending)
            policy = self.policy.on_incomplete
            today = dt.date.today()
            at = 0
            plain: list[tuple[_Pending, int]] = []  # with where its answers are
            for p in pending:
                sources = answers[at]
                at += 1
                if p.reading is None:
                    plain.append((p, at - 1))
                    continue
                for pos, number in p.candidates:
                    sources = (*sources, *(replace(a, queried_number=number) for a in answers[pos]))
                    at += 1
                suspect = not p.reading.check_digits_ok
                results[p.index] = self._result(
                    p.query,
                    p.reading,
                    merge(sources, policy, data_suspect=suspect),
                    any(a.issuer for a in sources),
                    sources,
                    today,
                )
            if plain:
                merged = await self._merged_in_turns(
                    [p.query for p, _ in plain], [answers[pos] for _, pos in plain], policy
                )
                for (p, _), r in zip(plain, merged, strict=True):
                    results[p.index] = r
        return [r for r in results if r is not None]

    @staticmethod
    def _result(  # noqa: PLR0917 - private, positional for speed (once per document)
        query: DocumentQuery,
        reading: MrzReading | None,
        d: Decision,
        consulted: bool,
        sources: tuple[SourceAnswer, ...],
        today: dt.date | None,
    ) -> CheckResult:
        warnings: list[str] = []
        if not sources:
            warnings.append(f"no provider answers for documents of {query.issuing_state}")
        elif not consulted:
            warnings.append(
                f"the issuer ({query.economy}) was not consulted: no provider answers for it here; "
                "checked against the global stores only"
            )
        if query.expiry_date is not None and today is not None and query.expiry_date < today:
            warnings.append(f"document expired on {query.expiry_date.isoformat()}")
        problems: tuple[FieldViolation, ...] = ()
        if reading is not None:
            problems = reading.problems
            for sug in reading.suggestions:
                warnings.append(
                    f"possible misread at line {sug.line}, column {sug.column}: "
                    f"{sug.found!r} may be {sug.replacement!r}"
                    + (f" (number {sug.document_number} also checked)"
                       if sug.document_number != query.number else "")
                )  # fmt: skip
        return CheckResult(
            new_check_id(),
            query.ref,
            d.verdict,
            d.directive,
            d.unchecked,
            sources,
            problems,
            tuple(warnings) if warnings else (),
            query,
            reading,
            consulted,
        )
