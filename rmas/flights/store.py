"""The flight store: open flights, their passengers, the status-change outbox, watch positions.

SQLAlchemy Core over ``sqlite+aiosqlite`` (one hub; WAL, a busy timeout) or
``postgresql+asyncpg`` (several hubs share their open flights: any hub may take a message for a
flight another opened, and a subscriber on one hub receives the changes another enqueued). What
it holds of a document is its keyed hash and its sealed query (:mod:`rmas.flights.sealing`):
never a number or a name in clear.

Two hubs acting on the same record change must not tell the airline twice: a passenger's row
carries a ``version``, every change of its directive is a compare-and-set on it, and the outbox
is unique on ``(passenger_id, version)``.

Beside it: :mod:`rmas.flights.database` (the engine, the tables, the watch positions) and
:mod:`rmas.flights.outbox` (the status changes sent and acknowledged).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from rmas.flights.database import CANCELLED, CLOSED, OPEN
from rmas.flights.model import FlightReport, PassengerRow, StatusChange
from rmas.flights.outbox import Outbox
from rmas.flights.schema import (
    changes,
    documents,
    epoch,
    flights,
    metadata,
    passenger_row,
    passengers,
)
from rmas.verdict import Directive

__all__ = [
    "CANCELLED",
    "CLOSED",
    "OPEN",
    "FlightStore",
    "PassengerUpdate",
    "metadata",
    "new_change_id",
]


def new_change_id() -> str:
    """A status change's id: 14 upper-case hex characters (it is also the control reference of
    its CUSRES, an..14)."""
    return secrets.token_hex(7).upper()


@dataclass(frozen=True, slots=True)
class PassengerUpdate:
    """A passenger's directive after a re-check or an override (see FlightStore.update)."""

    #: What the providers' answers give.
    checked: Directive
    #: What the airline is told (OK_TO_BOARD while an override lasts).
    directive: Directive
    unchecked: bool
    incomplete: bool
    #: (document key, new check id) per document, in order; empty: the check ids stay.
    documents: Sequence[tuple[str, str]] = ()


class FlightStore(Outbox):
    """The flight store of one hub (or of several sharing PostgreSQL); also the change
    watcher's :class:`~rmas.changewatch.PositionStore` (:mod:`rmas.flights.database`) and the
    status changes' outbox (:mod:`rmas.flights.outbox`)."""

    # -- flights ---------------------------------------------------------------------------

    async def flight_id(
        self, conn: AsyncConnection, report: FlightReport, now: float
    ) -> tuple[str, str]:
        """The id and state of the report's flight, created (open) when new."""
        key = report.flight_key
        where = sa.and_(flights.c.owner == report.owner, flights.c.flight_key == key)
        row = (await conn.execute(sa.select(flights.c.id, flights.c.state).where(where))).first()
        if row is not None:
            await conn.execute(
                flights.update().where(flights.c.id == row.id).values(updated_at=now)
            )
            return str(row.id), str(row.state)
        legs = json.dumps(
            [[leg.number, list(map(list, leg.places)), list(map(list, leg.times))]
             for leg in report.legs]
        )  # fmt: skip
        values = dict(
            id=secrets.token_hex(16), owner=report.owner, flight_key=key,
            carrier=report.carrier[:8], number=report.number[:40], departure=report.departure,
            departure_at=epoch(report.departure), legs=legs, sender=report.sender[:40],
            recipient=report.recipient[:40], syntax=report.syntax[:8], state=OPEN,
            opened_at=now, updated_at=now,
        )  # fmt: skip
        await conn.execute(self._insert_ignore(flights, values))
        row = (await conn.execute(sa.select(flights.c.id, flights.c.state).where(where))).first()
        assert row is not None
        return str(row.id), str(row.state)

    async def close_flight(self, conn: AsyncConnection, flight_id: str, state: str) -> None:
        """Closed or cancelled: nothing kept of its passengers, no change sent, ever."""
        await conn.execute(flights.update().where(flights.c.id == flight_id).values(state=state))
        await self._forget_flight(conn, flight_id)

    async def _forget_flight(self, conn: AsyncConnection, flight_id: str) -> None:
        pids = sa.select(passengers.c.id).where(passengers.c.flight_id == flight_id)
        await conn.execute(documents.delete().where(documents.c.passenger_id.in_(pids)))
        await conn.execute(changes.delete().where(changes.c.flight_id == flight_id))
        await conn.execute(passengers.delete().where(passengers.c.flight_id == flight_id))

    async def remove_passengers(
        self, conn: AsyncConnection, flight_id: str, keys: Iterable[str]
    ) -> int:
        """Offloaded passengers leave the flight: their rows, documents and unsent changes."""
        ids = [
            r.id
            for r in await conn.execute(
                sa.select(passengers.c.id).where(
                    passengers.c.flight_id == flight_id, passengers.c.pax_key.in_(list(keys))
                )
            )
        ]
        if ids:
            await conn.execute(documents.delete().where(documents.c.passenger_id.in_(ids)))
            await conn.execute(changes.delete().where(changes.c.passenger_id.in_(ids)))
            await conn.execute(passengers.delete().where(passengers.c.id.in_(ids)))
        return len(ids)

    async def put_passengers(
        self,
        conn: AsyncConnection,
        flight_id: str,
        items: Sequence[tuple[str, PassengerRow]],
    ) -> int:
        """Record passengers' answers (``(passenger key, row)``), each unless a newer request's
        answer is already recorded for it; returns how many were. Unacknowledged changes of a
        passenger recorded again are dropped: the new answer supersedes them. A few statements
        per message, whatever its size (a 480-passenger manifest is not 2,000 round trips); the
        rows of new passengers and of every document go through the driver's ``executemany``."""
        latest = dict(items)  # a passenger listed twice: the later listing
        stored = await self._stored(conn, flight_id)
        fresh = [k for k in latest if k not in stored]
        if fresh:
            await self._insert_many(
                conn, passengers, _PAX_INSERTED,
                [(flight_id, k, *_values(latest[k])) for k in fresh], ignore=True,
                constants={"version": 1},
            )  # fmt: skip
            now_stored = await self._stored(conn, flight_id)
            for k in fresh:
                pid, at = now_stored[k]
                if at == latest[k].received_at:
                    stored[k] = (pid, -1.0)  # inserted now
                else:
                    stored[k] = (pid, at)  # another hub inserted it first
        recorded: list[tuple[int, PassengerRow]] = []
        again: list[int] = []  # recorded before: their documents and changes are replaced
        updates: list[dict[str, Any]] = []
        for k, row in latest.items():
            pid, at = stored[k]
            if at < 0:
                recorded.append((pid, row))
            elif at <= row.received_at:
                updates.append(
                    {
                        "pid": pid,
                        **{f"v_{c}": v for c, v in zip(_UPDATED, _values(row), strict=True)},
                    }
                )
                recorded.append((pid, row))
                again.append(pid)
        if updates:
            await conn.execute(
                passengers.update()
                .where(passengers.c.id == sa.bindparam("pid"))
                .values(
                    {
                        **{c: sa.bindparam(f"v_{c}") for c in _UPDATED},
                        "version": passengers.c.version + 1,
                    }
                ),
                updates,
            )
        for start in range(0, len(again), 500):
            chunk = again[start : start + 500]
            await conn.execute(documents.delete().where(documents.c.passenger_id.in_(chunk)))
            await conn.execute(
                changes.delete().where(
                    changes.c.passenger_id.in_(chunk), changes.c.acked_at.is_(None)
                )
            )
        docs = [(pid, *document) for pid, row in recorded for document in row.documents]
        if docs:
            await self._insert_many(conn, documents, _DOC_INSERTED, docs)
        return len(recorded)

    async def _stored(self, conn: AsyncConnection, flight_id: str) -> dict[str, tuple[int, float]]:
        """The flight's passengers recorded so far: (row id, received_at) per passenger key."""
        q = sa.select(passengers.c.pax_key, passengers.c.id, passengers.c.received_at).where(
            passengers.c.flight_id == flight_id
        )
        return {str(k): (int(i), float(at)) for k, i, at in await conn.execute(q)}

    # -- passengers ------------------------------------------------------------------------

    async def holders(self, doc_keys: Sequence[str]) -> list[PassengerRow]:
        """Passengers of open flights holding any of these documents."""
        if not doc_keys:
            return []
        sub = sa.select(documents.c.passenger_id).where(documents.c.doc_key.in_(list(doc_keys)))
        return await self._passengers(passengers.c.id.in_(sub))

    async def answered_by(self, economies: frozenset[str] | None) -> list[PassengerRow]:
        """Passengers of open flights with a document of these economies (None: any)."""
        sub = sa.select(documents.c.passenger_id)
        if economies is not None:
            sub = sub.where(documents.c.economy.in_(sorted(economies)))
        return await self._passengers(passengers.c.id.in_(sub))

    async def incomplete(self) -> list[PassengerRow]:
        return await self._passengers(passengers.c.incomplete.is_(True))

    async def overrides_ended(self, now: float) -> list[PassengerRow]:
        return await self._passengers(
            sa.and_(passengers.c.override_expires > 0, passengers.c.override_expires <= now)
        )

    async def by_check_id(self, check_id: str) -> tuple[PassengerRow, str, float] | None:
        """The open flight's passenger whose answer carries ``check_id``, with the flight's
        owner and departure (time.time(); 0 when unknown)."""
        sub = sa.select(documents.c.passenger_id).where(documents.c.check_id == check_id)
        rows = await self._passengers(passengers.c.id.in_(sub))
        if not rows:
            return None
        async with self.engine.connect() as conn:
            r = (
                await conn.execute(
                    sa.select(flights.c.owner, flights.c.departure_at).where(
                        flights.c.id == rows[0].flight_id
                    )
                )
            ).one()
        return rows[0], str(r.owner), float(r.departure_at)

    async def _passengers(self, where: Any) -> list[PassengerRow]:
        q = (
            sa.select(passengers)
            .join(flights, flights.c.id == passengers.c.flight_id)
            .where(flights.c.state == OPEN, where)
            .order_by(passengers.c.id)
        )
        async with self.engine.connect() as conn:
            rows = [passenger_row(r) for r in await conn.execute(q)]
            if rows:
                by_id = {r.id: r for r in rows}
                for start in range(0, len(rows), 500):
                    ids = [r.id for r in rows[start : start + 500]]
                    dq = (
                        sa.select(documents)
                        .where(documents.c.passenger_id.in_(ids))
                        .order_by(documents.c.id)
                    )
                    for d in await conn.execute(dq):
                        by_id[d.passenger_id].documents.append(
                            (d.doc_key, d.economy, bytes(d.sealed), d.check_id)
                        )
        return rows

    async def update(
        self,
        row: PassengerRow,
        change: PassengerUpdate,
        *,
        override: tuple[str, str, float] | None = None,
        clear_override: bool = False,
    ) -> StatusChange | None:
        """Compare-and-set on the passenger's version: record its new directive, and when what
        the airline is told changes, enqueue a status change (returned). None when another hub
        (or another task) changed the passenger first, or nothing the airline sees changed."""
        now = time.time()
        values: dict[str, Any] = dict(
            directive=change.directive.value, checked_directive=change.checked.value,
            unchecked=change.unchecked, incomplete=change.incomplete,
        )  # fmt: skip
        if change.documents:
            values["check_ids"] = json.dumps([c for _k, c in change.documents])
        if override is not None:
            values.update(override_by=override[0], override_reason=override[1],
                          override_expires=override[2])  # fmt: skip
        elif clear_override:
            values.update(override_by="", override_reason="", override_expires=0.0)
        told = (row.directive, row.unchecked) != (change.directive, change.unchecked)
        async with self.engine.begin() as conn:
            done = await conn.execute(
                passengers.update()
                .where(passengers.c.id == row.id, passengers.c.version == row.version)
                .values(**values, version=row.version + 1)
            )
            if done.rowcount != 1:
                return None
            for key, check_id in change.documents:
                await conn.execute(
                    documents.update()
                    .where(documents.c.passenger_id == row.id, documents.c.doc_key == key)
                    .values(check_id=check_id)
                )
            if not told:
                return None
            check_ids = tuple(c for _k, c in change.documents) or row.check_ids
            cid = new_change_id()
            await conn.execute(
                changes.insert().values(
                    id=cid, owner=sa.select(flights.c.owner).where(
                        flights.c.id == row.flight_id).scalar_subquery(),
                    flight_id=row.flight_id, passenger_id=row.id, version=row.version + 1,
                    passenger_ref=row.passenger_ref, booking_ref=row.booking_ref,
                    directive=change.directive.value, unchecked=change.unchecked,
                    check_ids=json.dumps(list(check_ids)),
                    overridden=override is not None, created_at=now, acked_at=None, attempts=0,
                )
            )  # fmt: skip
        return await self.change(cid)

    # -- state for rmas status, and purging ------------------------------------------------

    async def summary(self) -> tuple[int, list[tuple[str, str, str, int]], int]:
        """(open flights, (owner, flight, departure, incomplete passengers) per flight holding
        some, unacknowledged changes)."""
        async with self.engine.connect() as conn:
            n = (
                await conn.execute(sa.select(sa.func.count()).where(flights.c.state == OPEN))
            ).scalar_one()
            q = (
                sa.select(flights.c.owner, flights.c.number, flights.c.departure,
                          sa.func.count(passengers.c.id))
                .join(passengers, passengers.c.flight_id == flights.c.id)
                .where(flights.c.state == OPEN, passengers.c.incomplete.is_(True))
                .group_by(flights.c.owner, flights.c.number, flights.c.departure)
            )  # fmt: skip
            outages = [(str(a), str(b), str(c), int(d)) for a, b, c, d in await conn.execute(q)]
            pending = (
                await conn.execute(sa.select(sa.func.count()).where(changes.c.acked_at.is_(None)))
            ).scalar_one()
        return int(n), outages, int(pending)

    async def purge(self, now: float, after_s: float) -> int:
        """Forget flights ``after_s`` past their departure (or their opening, when the PAXLST
        gave no departure), open or not; and what is kept of closed ones. Returns how many
        flights were purged."""
        when = sa.case((flights.c.departure_at > 0, flights.c.departure_at),
                       else_=flights.c.opened_at)  # fmt: skip
        async with self.engine.begin() as conn:
            ids = [
                r.id
                for r in await conn.execute(sa.select(flights.c.id).where(when + after_s < now))
            ]
            for fid in ids:
                await self._forget_flight(conn, fid)
            if ids:
                await conn.execute(flights.delete().where(flights.c.id.in_(ids)))
        return len(ids)


#: The columns a passenger's new answer sets, in the table's order (that of :func:`_values`).
_UPDATED = (
    "booking_ref", "passenger_ref", "directive", "unchecked", "incomplete", "floor",
    "checked_directive", "received_at", "check_ids", "override_by", "override_reason",
    "override_expires",
)  # fmt: skip
#: A new passenger's row (its version is 1): its flight and key, then what its answer sets.
_PAX_INSERTED = ("flight_id", "pax_key", *_UPDATED)
#: A document's row: its passenger, then PassengerRow.documents' (key, economy, sealed, check id).
_DOC_INSERTED = ("passenger_id", "doc_key", "economy", "sealed", "check_id")


#: json.dumps without its per-call set-up (a tuple is written as a list, as json.dumps does).
_json = json.JSONEncoder().encode


def _values(row: PassengerRow) -> tuple[Any, ...]:
    """What a passenger's answer sets (``_UPDATED``), as the driver takes them."""
    return (
        row.booking_ref, row.passenger_ref, row.directive.value, row.unchecked, row.incomplete,
        row.floor.value if row.floor else "", row.directive.value, row.received_at,
        _json(row.check_ids), "", "", 0.0,
    )  # fmt: skip
