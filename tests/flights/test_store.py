"""The flight store's compare-and-set: a passenger's directive changes once per version, and the
airline is told once, however many hubs act on the same stale row (SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
import time

from rmas.flights.model import FlightEvent, FlightReport, PassengerRow
from rmas.flights.store import FlightStore, PassengerUpdate
from rmas.verdict import Directive


async def test_a_stale_row_changes_nothing_and_tells_nothing(store_url: str) -> None:
    store = FlightStore(store_url)
    await store.open()
    try:
        report = FlightReport(
            owner="rmas://airline/NZ", event=FlightEvent.ANSWER, carrier="NZ", number="NZ103",
            departure="2099-01-01T08:15", legs=(), sender="AIRNZ", recipient="RMAS",
            syntax="UNOA", received_at=time.time(),
        )  # fmt: skip
        row = PassengerRow(
            id=0, flight_id="", booking_ref="K7QF2A", passenger_ref="1001",
            directive=Directive.OK_TO_BOARD, unchecked=False, incomplete=False, floor=None,
            checked_directive=Directive.OK_TO_BOARD, version=1, received_at=report.received_at,
            check_ids=("c1",), documents=[("k" * 64, "NZL", b"sealed", "c1")],
        )  # fmt: skip
        async with store.engine.begin() as conn:
            fid, _state = await store.flight_id(conn, report, time.time())
            assert await store.put_passengers(conn, fid, [("ABO:1001", row)]) == 1
        (stale,) = await store.holders(["k" * 64])
        change = PassengerUpdate(
            checked=Directive.DO_NOT_BOARD, directive=Directive.DO_NOT_BOARD, unchecked=False,
            incomplete=False, documents=[("k" * 64, "c2")],
        )  # fmt: skip
        first = await store.update(stale, change)
        assert first is not None and first.directive is Directive.DO_NOT_BOARD
        assert first.check_ids == ("c2",)
        assert await store.update(stale, change) is None  # the other hub's stale row
        (now,) = await store.holders(["k" * 64])
        assert now.version == stale.version + 1
        assert len(await store.unacknowledged("rmas://airline/NZ")) == 1
        assert await store.unacknowledged("rmas://airline/QF") == []
        assert await store.acknowledge(first.change_id, "rmas://airline/QF") == "denied"
        assert await store.acknowledge(first.change_id, "rmas://airline/NZ") == "ok"
        assert await store.acknowledge(first.change_id, "rmas://airline/NZ") == "already"
        # An older request's answer never replaces a newer one.
        older = dataclasses.replace(row, received_at=row.received_at - 60)
        async with store.engine.begin() as conn:
            assert await store.put_passengers(conn, fid, [("ABO:1001", older)]) == 0
    finally:
        await store.aclose()
