"""The hub's side of the flight conversation: record answers, re-check on record changes,
override, and keep the outbox moving.

- :meth:`FlightTracker.record` — an answered PAXLST opens or updates its flight (the newest
  request's answer stands for a passenger), offloads passengers, or closes the flight.
- :meth:`FlightTracker.on_changes` / :meth:`FlightTracker.on_lost` — the change watcher's
  callbacks (:class:`~rmas.changewatch.ChangeWatcher`): the passengers of open flights holding a
  changed document (or every passenger a provider answers for, when its changes were lost) are
  checked again through the hub's normal fan-out, with their unsealed queries; when what the
  airline is told changes, the new directive is recorded (compare-and-set on the passenger's
  version) and a status change enqueued.
- :meth:`FlightTracker.override` — a government officer's override of a DO_NOT_BOARD.
- a periodic task checks INCOMPLETE passengers again (a required provider was down: once it is
  back, their changes go out), ends expired overrides, and purges departed flights.

Every re-check is audited (channel ``recheck``), every override too (channel ``override``: who,
when, why, until when).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice

import structlog
from cryptography.exceptions import InvalidTag
from sqlalchemy.ext.asyncio import AsyncConnection

from rmas.audit.entry import Caller, Channel
from rmas.changes import DocumentChange
from rmas.documents import DocumentQuery
from rmas.errors import AuditError, RmasError
from rmas.flights.config import FlightsConfig
from rmas.flights.model import (
    FlightEvent,
    FlightReport,
    PassengerRow,
    ReportedPassenger,
    StatusChange,
)
from rmas.flights.sealing import FlightKeys
from rmas.flights.store import CANCELLED, CLOSED, OPEN, FlightStore, PassengerUpdate
from rmas.hub import CheckResult, Hub
from rmas.providers import Scope
from rmas.states import canonical_economy
from rmas.verdict import Directive, Verdict, most_severe

__all__ = ["FlightError", "FlightTracker", "NotOverridable", "Overridden", "UnknownCheck"]

log = structlog.get_logger("rmas.flights")

#: Who re-checks passengers, as the audit trail records it.
RECHECK_CALLER = Caller("rmas://hub/recheck", "hub")
#: Passengers checked again in one hub batch.
RECHECK_BATCH = 500
#: Answered flights waiting to be recorded before an answer waits for the store.
REPORTS_QUEUED = 1000
#: Answered flights recorded in one transaction, at most (when that many are waiting).
RECORD_BATCH = 16


class FlightError(RmasError):
    """A flight operation that cannot be done (the servicer's FAILED_PRECONDITION)."""


class UnknownCheck(FlightError):
    """No passenger of an open flight carries this check id."""


class NotOverridable(FlightError):
    """The passenger's directive is not DO_NOT_BOARD."""


@dataclass(frozen=True, slots=True)
class Overridden:
    """An override done: the status change sent, and what it changed."""

    change: StatusChange | None
    passenger: PassengerRow
    original: Directive
    expires: float


class FlightTracker:
    """Open flights of one hub (or of several sharing the store)."""

    def __init__(
        self,
        hub: Hub,
        store: FlightStore,
        keys: FlightKeys,
        config: FlightsConfig,
        *,
        audit: object | None = None,
    ) -> None:
        self.hub = hub
        self.store = store
        self.keys = keys
        self.config = config
        #: The audit trail (rmas.audit.trail.AuditTrail), when the hub keeps one.
        self.audit = audit
        self._waiters: set[asyncio.Event] = set()
        self._task: asyncio.Task[None] | None = None
        #: Answered flights waiting to be recorded, in the order they were answered: the
        #: airline's answer never waits for the flight store (see record).
        self._reports: asyncio.Queue[FlightReport] = asyncio.Queue(maxsize=REPORTS_QUEUED)
        self._recorder: asyncio.Task[None] | None = None
        #: PAXLSTs being checked and not yet queued for recording (see answering).
        self._answering: set[asyncio.Event] = set()
        #: Status changes enqueued by this hub since start (for metrics).
        self.enqueued = 0
        #: The store's summary at the last periodic pass (for metrics): open flights, flights
        #: holding incomplete passengers (owner, flight, departure, how many), unacknowledged.
        self.summary: tuple[int, list[tuple[str, str, str, int]], int] = (0, [], 0)

    async def start(self) -> None:
        await self.store.open()
        self.summary = await self.store.summary()
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._periodic())
        self._recorder = loop.create_task(self._record_all())

    async def aclose(self) -> None:
        if self._recorder is not None:
            with contextlib.suppress(TimeoutError):  # what was answered is recorded first
                await asyncio.wait_for(self._reports.join(), 10.0)
            self._recorder.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._recorder
            self._recorder = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        await self.store.aclose()

    # -- waking the subscribers of this hub ------------------------------------------------

    def waiter(self) -> asyncio.Event:
        event = asyncio.Event()
        self._waiters.add(event)
        return event

    def forget(self, event: asyncio.Event) -> None:
        self._waiters.discard(event)

    def wake(self) -> None:
        """Wake every subscriber's stream of this hub (to look in the outbox, or to end)."""
        for event in self._waiters:
            event.set()

    # -- answers ---------------------------------------------------------------------------

    async def record(self, report: FlightReport) -> None:
        """Queue what an answered PAXLST does to its flight, to be recorded in the order the
        messages were answered, right after (waits only when REPORTS_QUEUED are waiting: the
        store is slower than the traffic). Whatever acts on recorded passengers (a record
        change, an override) waits until every report queued before it is recorded."""
        await self._reports.put(report)

    @contextlib.contextmanager
    def answering(self) -> Iterator[None]:
        """Around a PAXLST's check and its ``record``: a record change that arrives meanwhile
        waits for it (:meth:`recorded`), so that the passenger checked before the change is
        found and checked again."""
        done = asyncio.Event()
        self._answering.add(done)
        try:
            yield
        finally:
            done.set()
            self._answering.discard(done)

    async def status(self) -> tuple[int, list[tuple[str, str, str, int]], int]:
        """The store's summary (rmas status), once what was answered is recorded."""
        await self.recorded()
        return await self.store.summary()

    async def recorded(self) -> None:
        """Return once every PAXLST being answered now is answered and every report queued so
        far is recorded."""
        answering = list(self._answering)
        if answering:
            await asyncio.gather(*(e.wait() for e in answering))
        if self._recorder is not None:
            await self._reports.join()

    async def _record_all(self) -> None:
        while True:
            batch = [await self._reports.get()]
            while len(batch) < RECORD_BATCH and not self._reports.empty():
                batch.append(self._reports.get_nowait())
            try:
                await self._record_batch(batch)
            finally:
                for _ in batch:
                    self._reports.task_done()

    async def _record_batch(self, batch: Sequence[FlightReport]) -> None:
        """The reports waiting, in one transaction (one commit and one WAL checkpoint for all);
        when it fails, each in its own, so that one report the store refuses loses no other."""
        if len(batch) > 1:
            try:
                await self.record_now(*batch)
                return
            except Exception as exc:  # rolled back: each is recorded on its own below
                log.warning("flights_batch_not_recorded", flights=len(batch),
                            error=f"{type(exc).__name__}: {exc}"[:300])  # fmt: skip
        for report in batch:
            try:
                await self.record_now(report)
            except Exception as exc:  # the store is down: the conversation of this one is lost
                log.error("flight_not_recorded", flight=report.number,
                          error=f"{type(exc).__name__}: {exc}"[:300])  # fmt: skip

    async def record_now(self, *reports: FlightReport) -> None:
        """What answered PAXLSTs do to their flights (rmas.flights.model's table), in order, in
        one transaction."""
        now = time.time()
        async with self.store.engine.begin() as conn:
            for report in reports:
                await self._record_one(conn, report, now)

    async def _record_one(self, conn: AsyncConnection, report: FlightReport, now: float) -> None:
        fid, state = await self.store.flight_id(conn, report, now)
        if state != OPEN:
            return  # closed or cancelled: nothing is recorded for it again
        if report.event in (FlightEvent.CLOSE, FlightEvent.CANCEL):
            state = CLOSED if report.event is FlightEvent.CLOSE else CANCELLED
            await self.store.close_flight(conn, fid, state)
            log.info("flight_closed", flight=report.number, state=state)
            return
        keys = [self._pax_key(p) for p in report.passengers]
        if report.event is FlightEvent.OFFLOAD:
            n = await self.store.remove_passengers(conn, fid, keys)
            log.info("passengers_offloaded", flight=report.number, passengers=n)
            return
        await self.store.put_passengers(conn, fid, self._rows(report, keys))

    def _pax_key(self, p: ReportedPassenger) -> str:
        """A passenger within its flight: RFF+ABO, else RFF+AVF and its first document."""
        if p.passenger_ref:
            return f"ABO:{p.passenger_ref}"
        first = self.keys.key_of(p.documents[0][0])[:16] if p.documents else ""
        return f"AVF:{p.booking_ref}:{first}"

    def _rows(self, report: FlightReport, keys: Sequence[str]) -> list[tuple[str, PassengerRow]]:
        """(passenger key, row) per passenger of the report: its documents keyed and sealed."""
        docs = [(q, self.keys.key_of(q), c) for p in report.passengers for q, c in p.documents]
        sealed = self.keys.seal_all([(q, k) for q, k, _c in docs])
        rows = iter([(k, q.economy, s, c) for (q, k, c), s in zip(docs, sealed, strict=True)])
        out = []
        for key, p in zip(keys, report.passengers, strict=True):
            mine = list(islice(rows, len(p.documents)))
            out.append((key, PassengerRow(
                id=0, flight_id="", booking_ref=p.booking_ref, passenger_ref=p.passenger_ref,
                directive=p.directive, unchecked=p.unchecked, incomplete=p.incomplete,
                floor=p.floor, checked_directive=p.directive, version=1,
                received_at=report.received_at, check_ids=p.check_ids, documents=mine,
            )))  # fmt: skip
        return out

    # -- record changes --------------------------------------------------------------------

    async def on_changes(self, provider_id: str, changes: Sequence[DocumentChange]) -> None:
        await self.recorded()
        keys = sorted(
            {self.keys.document_key(canonical_economy(c.issuing_state), c.number) for c in changes}
        )
        rows = await self.store.holders(keys)
        if rows:
            log.info("record_changes_match", provider=provider_id, changes=len(changes),
                     passengers=len(rows))  # fmt: skip
            await self.recheck(rows)

    async def on_lost(self, provider_id: str) -> None:
        provider = next((p for p in self.hub.providers if p.info.id == provider_id), None)
        if provider is None:
            return
        info = provider.info
        economies = None if info.scope is Scope.GLOBAL else info.issuing_states
        await self.recorded()
        rows = await self.store.answered_by(economies)
        log.warning("record_changes_lost", provider=provider_id, passengers=len(rows))
        await self.recheck(rows)

    async def recheck(self, rows: Sequence[PassengerRow]) -> list[StatusChange]:
        """Check ``rows`` again; returns the status changes enqueued."""
        out: list[StatusChange] = []
        for start in range(0, len(rows), RECHECK_BATCH):
            out += await self._recheck(rows[start : start + RECHECK_BATCH])
        if out:
            self.wake()
        return out

    async def _recheck(self, rows: Sequence[PassengerRow]) -> list[StatusChange]:
        items: list[DocumentQuery] = []
        owners: list[tuple[int, str]] = []
        for i, row in enumerate(rows):
            for key, _economy, sealed, _cid in row.documents:
                try:
                    items.append(self.keys.unseal(sealed, key))
                except (InvalidTag, ValueError):
                    log.error("sealed_query_unreadable", passenger=row.id)
                    continue
                owners.append((i, key))
        if not items:
            return []
        results = await self.hub.check(items, self.hub.deadline(None))
        await self._audit(results, RECHECK_CALLER, Channel.RECHECK, "RECHECK", required=False)
        per_row: dict[int, list[tuple[str, CheckResult]]] = {}
        for (i, key), r in zip(owners, results, strict=True):
            per_row.setdefault(i, []).append((key, r))
        now = time.time()
        enqueued = []
        for i, found in per_row.items():
            row = rows[i]
            rs = [r for _k, r in found]
            floor = [row.floor] if row.floor is not None else []
            checked = most_severe([*floor, *(r.directive for r in rs)])
            unchecked = checked is Directive.OK_TO_BOARD and any(r.unchecked for r in rs)
            overridden = row.override_expires > now
            update = PassengerUpdate(
                checked=checked,
                directive=Directive.OK_TO_BOARD if overridden else checked,
                unchecked=unchecked and not overridden,
                incomplete=any(r.verdict is Verdict.INCOMPLETE for r in rs),
                documents=[(k, r.check_id) for k, r in found],
            )
            change = await self.store.update(row, update)
            if change is not None:
                self.enqueued += 1
                enqueued.append(change)
                log.info("status_change_enqueued", change_id=change.change_id,
                         flight=change.flight, directive=change.directive.value,
                         was=row.directive.value)  # fmt: skip
        return enqueued

    async def _audit(
        self,
        results: Sequence[CheckResult],
        caller: Caller,
        channel: Channel,
        reference: str,
        *,
        required: bool,
    ) -> None:
        submit = getattr(self.audit, "submit", None)
        if submit is None or not results:
            return
        try:
            await submit(results, caller, channel, reference)
        except AuditError:
            if required:
                raise
            log.error("recheck_unaudited", checks=len(results))

    # -- overrides -------------------------------------------------------------------------

    async def override(
        self, caller: Caller, check_id: str, reason: str, expires: float | None = None
    ) -> Overridden:
        """Override the DO_NOT_BOARD of the passenger whose answer carries ``check_id``: the
        airline is told OK_TO_BOARD until ``expires`` (default: until the flight is purged);
        the providers' records are untouched; the audit trail records it first (AuditError: no
        override)."""
        await self.recorded()
        found = await self.store.by_check_id(check_id)
        if found is None:
            raise UnknownCheck(f"no passenger of an open flight has check id {check_id[:40]!r}")
        row, _owner, departure_at = found
        if row.checked_directive is not Directive.DO_NOT_BOARD:
            raise NotOverridable(
                f"the passenger's directive is {row.checked_directive.value}, not DO_NOT_BOARD: "
                "there is nothing to override"
            )
        now = time.time()
        life = self.config.purge_after_h * 3600.0
        until = expires or ((departure_at or now) + life)
        if until <= now:
            raise FlightError("the override would expire before it starts")
        query = None
        for key, _e, sealed, cid in row.documents:
            if cid == check_id:
                with contextlib.suppress(InvalidTag, ValueError):
                    query = self.keys.unseal(sealed, key)
        when = dt.datetime.fromtimestamp(until, dt.UTC).isoformat(timespec="seconds")
        entry = CheckResult(
            check_id=check_id, ref=row.passenger_ref, verdict=Verdict.ALERT,
            directive=Directive.OK_TO_BOARD, document=query,
        )  # fmt: skip
        await self._audit(
            [entry], caller, Channel.OVERRIDE,
            f"OVERRIDE DO_NOT_BOARD -> OK_TO_BOARD until {when}: {reason}", required=True,
        )  # fmt: skip
        update = PassengerUpdate(
            checked=row.checked_directive,
            directive=Directive.OK_TO_BOARD,
            unchecked=False,
            incomplete=row.incomplete,
        )
        change = await self.store.update(row, update, override=(caller.identity, reason, until))
        if change is None and row.directive is not Directive.OK_TO_BOARD:
            raise FlightError("the passenger changed while overriding; try again")
        log.warning("directive_overridden", officer=caller.identity, check_id=check_id,
                    until=when, change_id=change.change_id if change else "")  # fmt: skip
        self.wake()
        return Overridden(change, row, row.checked_directive, until)

    # -- periodic work ---------------------------------------------------------------------

    async def tick(self) -> None:
        """Check INCOMPLETE passengers again, end expired overrides, purge departed flights."""
        now = time.time()
        incomplete = await self.store.incomplete()
        if incomplete:
            await self.recheck(incomplete)
        ended = await self.store.overrides_ended(now)
        for row in ended:
            update = PassengerUpdate(
                checked=row.checked_directive,
                directive=row.checked_directive,
                unchecked=False,
                incomplete=row.incomplete,
            )
            if await self.store.update(row, update, clear_override=True) is not None:
                self.enqueued += 1
        if ended:
            self.wake()
        purged = await self.store.purge(now, self.config.purge_after_h * 3600.0)
        if purged:
            log.info("flights_purged", flights=purged)
        self.summary = await self.store.summary()

    async def _periodic(self) -> None:
        while True:
            await asyncio.sleep(self.config.recheck_s)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store may be down; try again at the next tick
                log.warning("flights_tick_failed", error=f"{type(exc).__name__}: {exc}"[:300])

    # -- acknowledgments -------------------------------------------------------------------

    async def acknowledge(self, owner: str, change_ids: Sequence[str]) -> list[str]:
        """Acknowledge status changes for ``owner``; returns a problem per id that could not be
        (unknown, or another caller's)."""
        problems = []
        for cid in change_ids:
            outcome = await self.store.acknowledge(cid, owner)
            if outcome in ("not_found", "denied"):
                problems.append(f"status change {cid[:40]!r} is not one of this caller's")
        return problems
