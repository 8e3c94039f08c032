"""Reference model of the flight recorder: the implementation the batched one replaced (one report
per transaction, every row through SQLAlchemy's parameter processing, one nonce and one
``json.dumps`` per sealed query), kept to test the fast path against (tests/flights/
test_recording.py).

Taken from rmas/flights (store.py, tracker.py, sealing.py) at commit 5fe1883, unchanged but for
names and the ``store``/``keys`` arguments. Do not speed these up: they are the reference.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from rmas.documents import DocumentQuery
from rmas.flights.model import FlightEvent, FlightReport, PassengerRow, ReportedPassenger
from rmas.flights.schema import changes, documents, epoch, flights, passengers
from rmas.flights.sealing import FlightKeys
from rmas.flights.store import CANCELLED, CLOSED, OPEN, FlightStore


def seal(keys: FlightKeys, query: DocumentQuery, document_key: str) -> bytes:
    h = query.holder
    plain = json.dumps(
        [
            query.issuing_state,
            query.number,
            query.type.value,
            h.surname,
            h.given_names,
            h.birth_date.isoformat() if h.birth_date else "",
            h.sex,
            h.nationality,
            query.expiry_date.isoformat() if query.expiry_date else "",
            query.ref,
        ],
        separators=(",", ":"),
    ).encode()
    nonce = os.urandom(12)
    return nonce + keys._aead.encrypt(nonce, plain, document_key.encode())


async def record_now(store: FlightStore, keys: FlightKeys, report: FlightReport) -> None:
    """FlightTracker.record_now of 5fe1883."""
    now = time.time()
    async with store.engine.begin() as conn:
        fid = await flight_id(store, conn, report, now)
        if await flight_state(conn, fid) != OPEN:
            return
        if report.event in (FlightEvent.CLOSE, FlightEvent.CANCEL):
            state = CLOSED if report.event is FlightEvent.CLOSE else CANCELLED
            await store.close_flight(conn, fid, state)
            return
        pax_keys = [pax_key(keys, p) for p in report.passengers]
        if report.event is FlightEvent.OFFLOAD:
            await store.remove_passengers(conn, fid, pax_keys)
            return
        items = [
            (key, row_of(keys, p, report.received_at))
            for key, p in zip(pax_keys, report.passengers, strict=True)
        ]
        await put_passengers(store, conn, fid, items)


def pax_key(keys: FlightKeys, p: ReportedPassenger) -> str:
    if p.passenger_ref:
        return f"ABO:{p.passenger_ref}"
    first = keys.key_of(p.documents[0][0])[:16] if p.documents else ""
    return f"AVF:{p.booking_ref}:{first}"


def row_of(keys: FlightKeys, p: ReportedPassenger, received_at: float) -> PassengerRow:
    docs = []
    for query, check_id in p.documents:
        key = keys.key_of(query)
        docs.append((key, query.economy, seal(keys, query, key), check_id))
    return PassengerRow(
        id=0, flight_id="", booking_ref=p.booking_ref, passenger_ref=p.passenger_ref,
        directive=p.directive, unchecked=p.unchecked, incomplete=p.incomplete, floor=p.floor,
        checked_directive=p.directive, version=1, received_at=received_at,
        check_ids=p.check_ids, documents=docs,
    )  # fmt: skip


async def flight_id(
    store: FlightStore, conn: AsyncConnection, report: FlightReport, now: float
) -> str:
    key = report.flight_key
    where = sa.and_(flights.c.owner == report.owner, flights.c.flight_key == key)
    row = (await conn.execute(sa.select(flights.c.id).where(where))).first()
    if row is not None:
        await conn.execute(flights.update().where(flights.c.id == row.id).values(updated_at=now))
        return str(row.id)
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
    await conn.execute(store._insert_ignore(flights, values))
    row = (await conn.execute(sa.select(flights.c.id).where(where))).first()
    assert row is not None
    return str(row.id)


async def flight_state(conn: AsyncConnection, fid: str) -> str:
    row = (await conn.execute(sa.select(flights.c.state).where(flights.c.id == fid))).first()
    return str(row.state) if row is not None else ""


async def put_passengers(
    store: FlightStore,
    conn: AsyncConnection,
    fid: str,
    items: Sequence[tuple[str, PassengerRow]],
) -> int:
    latest = dict(items)
    stored = await _stored(conn, fid, list(latest))
    fresh = [k for k in latest if k not in stored]
    if fresh:
        rows = [{**_values(latest[k]), "flight_id": fid, "pax_key": k, "version": 1} for k in fresh]
        await conn.execute(store._insert_ignore_stmt(passengers), rows)
        for k, (pid, at) in (await _stored(conn, fid, fresh)).items():
            if at == latest[k].received_at:
                stored[k] = (pid, -1.0)
            else:
                stored[k] = (pid, at)
    recorded: list[tuple[int, PassengerRow]] = []
    again: list[int] = []
    updates: list[dict[str, Any]] = []
    for k, row in latest.items():
        pid, at = stored[k]
        if at < 0:
            recorded.append((pid, row))
        elif at <= row.received_at:
            updates.append({"pid": pid, **{f"v_{c}": v for c, v in _values(row).items()}})
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
            changes.delete().where(changes.c.passenger_id.in_(chunk), changes.c.acked_at.is_(None))
        )
    docs = [
        dict(passenger_id=pid, doc_key=k, economy=e, sealed=sealed, check_id=c)
        for pid, row in recorded
        for k, e, sealed, c in row.documents
    ]
    if docs:
        await conn.execute(documents.insert(), docs)
    return len(recorded)


async def _stored(
    conn: AsyncConnection, fid: str, keys: Sequence[str]
) -> dict[str, tuple[int, float]]:
    out: dict[str, tuple[int, float]] = {}
    for start in range(0, len(keys), 500):
        q = sa.select(passengers.c.pax_key, passengers.c.id, passengers.c.received_at).where(
            passengers.c.flight_id == fid,
            passengers.c.pax_key.in_(list(keys[start : start + 500])),
        )
        for r in await conn.execute(q):
            out[str(r.pax_key)] = (int(r.id), float(r.received_at))
    return out


_UPDATED = (
    "booking_ref", "passenger_ref", "directive", "unchecked", "incomplete", "floor",
    "checked_directive", "received_at", "check_ids", "override_by", "override_reason",
    "override_expires",
)  # fmt: skip


def _values(row: PassengerRow) -> dict[str, Any]:
    return dict(
        booking_ref=row.booking_ref, passenger_ref=row.passenger_ref,
        directive=row.directive.value, unchecked=row.unchecked, incomplete=row.incomplete,
        floor=row.floor.value if row.floor else "", checked_directive=row.directive.value,
        received_at=row.received_at, check_ids=json.dumps(list(row.check_ids)),
        override_by="", override_reason="", override_expires=0.0,
    )  # fmt: skip
