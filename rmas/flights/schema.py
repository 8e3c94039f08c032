"""The flight store's tables (SQLAlchemy Core) and their rows as model objects.

Nothing here holds a document number or a name: a document is its keyed hash (``doc_key``) and
its sealed query (``sealed``, :mod:`rmas.flights.sealing`).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa

from rmas.flights.model import LegInfo, PassengerRow, StatusChange
from rmas.verdict import Directive

__all__ = [
    "DROPPED_INDEXES",
    "changes",
    "documents",
    "flights",
    "metadata",
    "passengers",
    "positions",
]

metadata = sa.MetaData()

flights = sa.Table(
    "flights",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("owner", sa.String(300), nullable=False),
    sa.Column("flight_key", sa.String(200), nullable=False),
    sa.Column("carrier", sa.String(8), nullable=False),
    sa.Column("number", sa.String(40), nullable=False),
    sa.Column("departure", sa.String(20), nullable=False),
    sa.Column("departure_at", sa.Float, nullable=False),
    sa.Column("legs", sa.Text, nullable=False),
    sa.Column("sender", sa.String(40), nullable=False),
    sa.Column("recipient", sa.String(40), nullable=False),
    sa.Column("syntax", sa.String(8), nullable=False),
    sa.Column("state", sa.String(12), nullable=False),
    sa.Column("opened_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.UniqueConstraint("owner", "flight_key", name="flights_owner_key"),
)

passengers = sa.Table(
    "flight_passengers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # Found by flight through the unique key's index (flight_id first).
    sa.Column("flight_id", sa.String(32), nullable=False),
    sa.Column("pax_key", sa.String(200), nullable=False),
    sa.Column("booking_ref", sa.String(80), nullable=False),
    sa.Column("passenger_ref", sa.String(80), nullable=False),
    sa.Column("directive", sa.String(24), nullable=False),
    sa.Column("unchecked", sa.Boolean, nullable=False),
    sa.Column("incomplete", sa.Boolean, nullable=False),
    sa.Column("floor", sa.String(24), nullable=False),
    sa.Column("checked_directive", sa.String(24), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("check_ids", sa.Text, nullable=False),
    sa.Column("override_by", sa.Text, nullable=False),
    sa.Column("override_reason", sa.Text, nullable=False),
    sa.Column("override_expires", sa.Float, nullable=False),
    sa.UniqueConstraint("flight_id", "pax_key", name="flight_passengers_key"),
)

documents = sa.Table(
    "flight_documents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("passenger_id", sa.Integer, nullable=False, index=True),
    sa.Column("doc_key", sa.String(64), nullable=False, index=True),
    sa.Column("economy", sa.String(3), nullable=False),
    sa.Column("sealed", sa.LargeBinary, nullable=False),
    # Not indexed: only an override looks a check id up (a scan), while every recorded
    # document would pay an insert into an index on random keys.
    sa.Column("check_id", sa.String(40), nullable=False),
)

#: Indexes earlier releases created and nothing needs any more: dropped when a store opens
#: (rmas.flights.database; docs/operations.md, "[flights]").
DROPPED_INDEXES = ("ix_flight_passengers_flight_id", "ix_flight_documents_check_id")

changes = sa.Table(
    "flight_status_changes",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("owner", sa.String(300), nullable=False, index=True),
    sa.Column("flight_id", sa.String(32), nullable=False, index=True),
    sa.Column("passenger_id", sa.Integer, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("passenger_ref", sa.String(80), nullable=False),
    sa.Column("booking_ref", sa.String(80), nullable=False),
    sa.Column("directive", sa.String(24), nullable=False),
    sa.Column("unchecked", sa.Boolean, nullable=False),
    sa.Column("check_ids", sa.Text, nullable=False),
    sa.Column("overridden", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("acked_at", sa.Float, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.UniqueConstraint("passenger_id", "version", name="flight_status_changes_once"),
)

positions = sa.Table(
    "flight_watch_positions",
    metadata,
    sa.Column("provider_id", sa.String(200), primary_key=True),
    sa.Column("position", sa.Text, nullable=False),
)


def epoch(iso: str) -> float:
    """ISO 8601 minutes (as the PAXLST gave them, taken as UTC) to time.time(); 0 when absent."""
    if not iso:
        return 0.0
    try:
        d = dt.datetime.fromisoformat(iso)
    except ValueError:
        return 0.0
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.UTC)
    return d.timestamp()


def passenger_row(r: Any) -> PassengerRow:
    return PassengerRow(
        id=int(r.id), flight_id=str(r.flight_id), booking_ref=r.booking_ref,
        passenger_ref=r.passenger_ref, directive=Directive(r.directive),
        unchecked=bool(r.unchecked), incomplete=bool(r.incomplete),
        floor=Directive(r.floor) if r.floor else None,
        checked_directive=Directive(r.checked_directive), version=int(r.version),
        received_at=float(r.received_at), check_ids=tuple(json.loads(r.check_ids)),
        override_by=r.override_by, override_reason=r.override_reason,
        override_expires=float(r.override_expires),
    )  # fmt: skip


def change_row(r: Any) -> StatusChange:
    legs = tuple(
        LegInfo(n, tuple(tuple(p) for p in places), tuple(tuple(t) for t in times))
        for n, places, times in json.loads(r.legs)
    )
    return StatusChange(
        change_id=r.id, owner=r.owner, flight_id=r.flight_id, passenger_id=int(r.passenger_id),
        version=int(r.version), flight=r.flight, departure=r.departure,
        passenger_ref=r.passenger_ref, booking_ref=r.booking_ref,
        directive=Directive(r.directive), unchecked=bool(r.unchecked),
        check_ids=tuple(json.loads(r.check_ids)), overridden=bool(r.overridden),
        created_at=float(r.created_at), attempts=int(r.attempts), sender=r.sender,
        recipient=r.recipient, syntax=r.syntax, legs=legs,
    )  # fmt: skip
