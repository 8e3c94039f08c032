"""The flight conversation's RPCs on ``rmas.v1.DocumentCheck``: status changes and overrides.

:class:`FlightCheckService` is the check servicer (:mod:`rmas.server.check_service`) with three
more RPCs, answered from the hub's open flights (:mod:`rmas.flights`):

- ``WatchStatusChanges`` — the airline's subscription, under its own identity: every status
  change of *its* flights not yet acknowledged, oldest first, then each new one as it is
  enqueued. A change is sent again while unacknowledged, after ``[flights] resend_initial_s``,
  then twice as long each time up to ``resend_max_s``; a new subscription (after a restart of
  the hub or of the airline's client) gets every unacknowledged change at once. The stream
  looks in the flight store every ``[flights] poll_ms`` (and at once when this hub enqueues),
  so a subscriber on one hub receives what another hub sharing the store enqueued: polling
  rather than LISTEN/NOTIFY, because it works the same on SQLite and PostgreSQL and needs no
  connection held per subscriber. When the hub stops, every subscription ends at once with
  UNAVAILABLE (it would otherwise hold up the drain for its whole grace period); the hub closes
  its flight store once the flight calls have ended (:meth:`FlightCheckService.flight_calls_ended`).
- ``AckStatusChange`` — by change id, only by the caller whose flight it is.
- ``OverrideDirective`` — officers only (the access policy refuses every other role).

A hub without ``[flights]`` answers FAILED_PRECONDITION.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from rmas.errors import AuditError, FieldViolation
from rmas.flights.model import StatusChange
from rmas.flights.tracker import FlightError, FlightTracker, UnknownCheck
from rmas.grpckit.auth import current_caller
from rmas.grpckit.errors import abort_invalid
from rmas.grpckit.mapping import directive_to_pb
from rmas.iapi.cusres import write_status_change
from rmas.server.check_service import Ctx, DocumentCheckService
from rmas.v1 import check_pb2

__all__ = ["FlightCheckService"]

#: Longest override reason kept (it goes into the audit trail).
MAX_REASON = 500


class FlightCheckService(DocumentCheckService):
    """DocumentCheck with the flight conversation's RPCs."""

    def __init__(self, *args: Any, flights: FlightTracker | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.flights = flights
        #: The hub is stopping: subscriptions end (UNAVAILABLE), they do not hold up the drain.
        self.stopping = False
        #: The tasks answering flight RPCs now: the hub closes the flight store once they end.
        self._flight_calls: set[asyncio.Task[Any]] = set()

    def end_subscriptions(self) -> None:
        """End every WatchStatusChanges stream now (the hub is stopping): a subscription never
        ends on its own, so the drain would otherwise wait its whole grace period for them. The
        airline subscribes again (to this hub once restarted, or to another) and gets every
        change it has not acknowledged."""
        self.stopping = True
        if self.flights is not None:
            self.flights.wake()

    async def flight_calls_ended(self, wait_s: float) -> int:
        """Wait (``wait_s`` seconds at most) for the flight RPCs under way to end; returns how
        many have not. A call cut off inside a flight-store call (by its caller leaving, or by
        the drain's end) is still unwinding it: SQLAlchemy closes the interrupted connection in
        a task of its own, which the call waits for. A hub that closed its store and returned
        before that left both tasks to the event loop's end, which cancels every task once:
        when the call's task came first, it stopped the connection's worker thread ahead of the
        close, which then waited forever (aiosqlite 0.22.1, SQLAlchemy 2.1)."""
        pending = [t for t in self._flight_calls if not t.done()]
        if not pending:
            return 0
        _done, still = await asyncio.wait(pending, timeout=wait_s)
        return len(still)

    def _counted(self) -> None:
        """Count the current task (a call's) among the flight calls under way, until it ends."""
        task = asyncio.current_task()
        if task is not None and task not in self._flight_calls:
            self._flight_calls.add(task)
            task.add_done_callback(self._flight_calls.discard)

    async def flight_status(self) -> tuple[int, list[tuple[str, str, str, int]], int]:
        """The open flights' summary, for HubAdmin.Status: a flight call too."""
        assert self.flights is not None
        self._counted()
        return await self.flights.status()

    async def _tracker(self, context: Ctx) -> FlightTracker:
        self._counted()
        if self.flights is None:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "this hub keeps no open flights: configure [flights] to have status changes",
            )
            raise AssertionError("unreachable")  # pragma: no cover
        return self.flights

    def status_change_pb(self, change: StatusChange, attempt: int) -> check_pb2.StatusChange:
        cfg = self._iapi.config
        now = dt.datetime.now(dt.UTC)
        cusres = write_status_change(
            change,
            stamp=(now.strftime("%y%m%d"), now.strftime("%H%M")),
            codes=cfg.codes,
            hub_id=cfg.hub_id,
        )
        return check_pb2.StatusChange(
            change_id=change.change_id,
            flight=change.flight,
            departure=change.departure,
            passenger_ref=change.passenger_ref,
            booking_ref=change.booking_ref,
            directive=directive_to_pb(change.directive),
            check_ids=list(change.check_ids),
            unchecked=change.unchecked,
            cusres=cusres.encode("latin-1" if change.syntax == "UNOC" else "ascii", "ignore"),
            attempt=attempt,
            created_at=dt.datetime.fromtimestamp(change.created_at, dt.UTC).isoformat(),
            overridden=change.overridden,
        )

    async def WatchStatusChanges(
        self, request: check_pb2.WatchStatusChangesRequest, context: Ctx
    ) -> AsyncIterator[check_pb2.StatusChange]:
        tracker = await self._tracker(context)
        owner = current_caller().caller.identity
        cfg = tracker.config
        poll = cfg.poll_ms / 1000.0
        event = tracker.waiter()
        #: Per change sent on this stream: (times sent here, when it is due again).
        sent: dict[str, tuple[int, float]] = {}
        try:
            while not self.stopping:
                event.clear()
                pending = await tracker.store.unacknowledged(owner)
                now = time.monotonic()
                for change in pending:
                    times, due = sent.get(change.change_id, (0, 0.0))
                    if times and now < due:
                        continue
                    await tracker.store.mark_sent(change.change_id)
                    wait = min(cfg.resend_initial_s * 2**times, cfg.resend_max_s)
                    sent[change.change_id] = (times + 1, now + wait)
                    yield self.status_change_pb(change, change.attempts + 1)
                live = {c.change_id for c in pending}
                for cid in [c for c in sent if c not in live]:
                    del sent[cid]
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), poll)
        finally:
            tracker.forget(event)
        await context.abort(
            grpc.StatusCode.UNAVAILABLE,
            "the hub is stopping: subscribe again (unacknowledged status changes are sent again)",
        )

    async def AckStatusChange(
        self, request: check_pb2.AckStatusChangeRequest, context: Ctx
    ) -> check_pb2.AckStatusChangeResponse:
        tracker = await self._tracker(context)
        if not request.change_id or len(request.change_id) > 40:
            await abort_invalid(context, [FieldViolation("change_id", "required (a change id)")])
        owner = current_caller().caller.identity
        outcome = await tracker.store.acknowledge(request.change_id, owner)
        if outcome == "not_found":
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such status change")
        if outcome == "denied":
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED, "the status change is another caller's"
            )
        return check_pb2.AckStatusChangeResponse(already=outcome == "already")

    async def OverrideDirective(
        self, request: check_pb2.OverrideDirectiveRequest, context: Ctx
    ) -> check_pb2.OverrideDirectiveResponse:
        tracker = await self._tracker(context)
        bad = []
        if not request.check_id or len(request.check_id) > 40:
            bad.append(FieldViolation("check_id", "required (a check id of the answer)"))
        reason = " ".join(request.reason.split())
        if not reason:
            bad.append(FieldViolation("reason", "required: why the directive is overridden"))
        elif len(reason) > MAX_REASON or not reason.isprintable():
            bad.append(FieldViolation("reason", f"printable text of at most {MAX_REASON} chars"))
        expires: float | None = None
        if request.expires:
            try:
                when = dt.datetime.fromisoformat(request.expires)
                if when.tzinfo is None:
                    when = when.replace(tzinfo=dt.UTC)
                expires = when.timestamp()
            except ValueError:
                bad.append(FieldViolation("expires", "an ISO 8601 date and time"))
        if bad:
            await abort_invalid(context, bad)
        who = current_caller()
        try:
            done = await tracker.override(who.caller, request.check_id, reason, expires)
        except UnknownCheck as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
            raise AssertionError("unreachable") from None  # pragma: no cover
        except FlightError as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
            raise AssertionError("unreachable") from None  # pragma: no cover
        except AuditError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"not overridden: {exc}")
            raise AssertionError("unreachable") from None  # pragma: no cover
        p = done.passenger
        return check_pb2.OverrideDirectiveResponse(
            change_id=done.change.change_id if done.change else "",
            flight=done.change.flight if done.change else "",
            passenger_ref=p.passenger_ref,
            booking_ref=p.booking_ref,
            original=directive_to_pb(done.original),
            directive=directive_to_pb(done.change.directive if done.change else p.directive),
            expires=dt.datetime.fromtimestamp(done.expires, dt.UTC).isoformat(timespec="seconds"),
        )
