"""The status-change outbox: what each airline has been sent and not yet acknowledged.

A status change is enqueued by :meth:`~rmas.flights.store.FlightStore.update` (in the
transaction that changes the passenger's directive); the subscriber streams read it here, count
each sending, and record the airline's acknowledgment (only the flight's owner may).
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from rmas.flights.database import OPEN, FlightDatabase
from rmas.flights.model import StatusChange
from rmas.flights.schema import change_row, changes, flights

__all__ = ["Outbox"]


class Outbox(FlightDatabase):
    """The outbox of status changes (the flight store's base)."""

    def _change_query(self) -> sa.Select[Any]:
        return sa.select(
            changes,
            flights.c.number.label("flight"),
            flights.c.departure,
            flights.c.sender,
            flights.c.recipient,
            flights.c.syntax,
            flights.c.legs,
        ).join(flights, flights.c.id == changes.c.flight_id)

    async def change(self, change_id: str) -> StatusChange | None:
        async with self.engine.connect() as conn:
            r = (await conn.execute(self._change_query().where(changes.c.id == change_id))).first()
        return change_row(r) if r is not None else None

    async def unacknowledged(self, owner: str, limit: int = 500) -> list[StatusChange]:
        """The owner's status changes not yet acknowledged, oldest first, on open flights."""
        q = (
            self._change_query()
            .where(changes.c.owner == owner, changes.c.acked_at.is_(None), flights.c.state == OPEN)
            .order_by(changes.c.created_at, changes.c.id)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [change_row(r) for r in await conn.execute(q)]

    async def mark_sent(self, change_id: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                changes.update()
                .where(changes.c.id == change_id)
                .values(attempts=changes.c.attempts + 1)
            )

    async def acknowledge(self, change_id: str, owner: str) -> str:
        """``"ok"``, ``"already"``, ``"not_found"`` or ``"denied"`` (another caller's)."""
        async with self.engine.begin() as conn:
            r = (
                await conn.execute(
                    sa.select(changes.c.owner, changes.c.acked_at).where(changes.c.id == change_id)
                )
            ).first()
            if r is None:
                return "not_found"
            if r.owner != owner:
                return "denied"
            if r.acked_at is not None:
                return "already"
            await conn.execute(
                changes.update().where(changes.c.id == change_id).values(acked_at=time.time())
            )
        return "ok"
