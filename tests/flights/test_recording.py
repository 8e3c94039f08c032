"""The flight recorder against its reference (tests/flights/reference.py): any sequence of answered
PAXLSTs (new lists, changes, offloads, closes; passengers listed twice, older requests answered
late), recorded in batches of any size through the driver's ``executemany``, leaves the store as
the reference leaves it recording one report per transaction through SQLAlchemy: the same
flights, passengers, versions and documents, and the same sealed plaintext, byte for byte.
SQLite, and PostgreSQL when RMAS_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import create_async_engine

from rmas.documents import DocumentQuery, DocumentType, Holder
from rmas.flights import database
from rmas.flights.config import FlightsConfig
from rmas.flights.model import FlightEvent, FlightReport, LegInfo, ReportedPassenger
from rmas.flights.schema import DROPPED_INDEXES, documents, flights, metadata, passengers
from rmas.flights.sealing import FlightKeys
from rmas.flights.store import FlightStore
from rmas.flights.tracker import FlightTracker
from rmas.verdict import Directive
from tests.flights import reference

KEYS = FlightKeys(os.urandom(32))

_QUERIES = [
    DocumentQuery("NZL", "LA910001", DocumentType.PASSPORT,
                  Holder("WIREMU", "ARA", dt.date(1988, 10, 12), "M", "NZL"),
                  dt.date(2030, 1, 2), "1"),
    DocumentQuery("AUS", "PA123456", DocumentType.PASSPORT, Holder("TAYLOR", "ANNA"), ref="2"),
    DocumentQuery("NZL", "LA000002", DocumentType.PASSPORT, Holder("NGATA", 'Hōne "Jr"')),
    DocumentQuery("GBR", "X1", DocumentType.IDENTITY_CARD, Holder(), dt.date(2029, 5, 1), "x" * 70),
]  # fmt: skip

_passenger = st.builds(
    ReportedPassenger,
    booking_ref=st.sampled_from(["K7QF2A", "K7QF2B"]),
    passenger_ref=st.sampled_from(["", "1001", "1002", "1003"]),
    crew=st.booleans(),
    directive=st.sampled_from(list(Directive)),
    unchecked=st.booleans(),
    incomplete=st.booleans(),
    floor=st.sampled_from([None, Directive.INSUFFICIENT_DATA]),
    documents=st.lists(
        st.tuples(st.sampled_from(_QUERIES), st.text("0123456789abcdef", min_size=1, max_size=8)),
        max_size=2,
    ).map(tuple),
    check_ids=st.lists(st.text("0123456789abcdef", max_size=8), max_size=3).map(tuple),
)


@st.composite
def _reports(draw: st.DrawFn) -> list[FlightReport]:
    # Few flights (two owners, two numbers, one departure) and few passengers, so that
    # messages meet the same flight and passenger; closing ones are rarer than answers.
    events = [FlightEvent.OFFLOAD, FlightEvent.CLOSE, FlightEvent.CANCEL]
    events += [FlightEvent.ANSWER, FlightEvent.CHANGE] * 5
    out = []
    for i in range(draw(st.integers(1, 8))):
        out.append(
            FlightReport(
                owner=draw(st.sampled_from(["rmas://airline/NZ", "rmas://airline/QF"])),
                event=draw(st.sampled_from(events)),
                carrier="NZ",
                number=draw(st.sampled_from(["NZ103", "NZ103", "NZ105"])),
                departure=draw(st.sampled_from(["2099-01-01T08:15", "2099-01-01T08:15", ""])),
                legs=(LegInfo("NZ103", (("125", "AKL"),), (("189", "2099-01-01T08:15", "203"),)),),
                sender="AIRNZ",
                recipient="RMAS",
                syntax="UNOA",
                # Mostly newer than the one before; often an older request answered late.
                received_at=1_900_000_000.0 + draw(st.sampled_from([i, i, i - 3, 0])),
                passengers=tuple(draw(st.lists(_passenger, max_size=5))),
            )
        )
    return out


async def _dump(store: FlightStore) -> dict[str, Any]:
    """The store's contents, without what is random (flight ids, nonces) or a clock's."""
    async with store.engine.connect() as conn:
        fl = {
            r.id: (r.owner, r.flight_key)
            for r in await conn.execute(
                sa.select(flights.c.id, flights.c.owner, flights.c.flight_key)
            )
        }
        flight_rows = sorted(
            (fl[r.id], r.carrier, r.number, r.departure, r.departure_at, r.legs, r.sender,
             r.recipient, r.syntax, r.state)
            for r in await conn.execute(sa.select(flights))
        )  # fmt: skip
        pax = {}
        cols = [c for c in passengers.c if c.name not in ("id", "flight_id")]
        for r in await conn.execute(sa.select(passengers).order_by(passengers.c.id)):
            pax[r.id] = (fl[r.flight_id], *(r._mapping[c] for c in cols))
        docs = []
        for d in await conn.execute(sa.select(documents).order_by(documents.c.id)):
            sealed = bytes(d.sealed)
            plain = KEYS._aead.decrypt(sealed[:12], sealed[12:], d.doc_key.encode())
            docs.append((pax[d.passenger_id][:2], d.doc_key, d.economy, plain, d.check_id))
    return {"flights": flight_rows, "passengers": sorted(pax.values()), "documents": docs}


async def _compare(url: str, reports: list[FlightReport], cuts: list[int]) -> None:
    ref = FlightStore(url.replace("@@", "ref"))
    new = FlightStore(url.replace("@@", "new"))
    for store in (ref, new):
        await _reset(store)
    try:
        for report in reports:
            await reference.record_now(ref, KEYS, report)
        tracker = FlightTracker(None, new, KEYS, None)  # type: ignore[arg-type]
        start = 0
        for cut in [*sorted(set(cuts)), len(reports)]:
            if cut > start:
                await tracker.record_now(*reports[start:cut])
                start = cut
        assert await _dump(new) == await _dump(ref)
    finally:
        await ref.aclose()
        await new.aclose()


async def _reset(store: FlightStore) -> None:
    await store.open()
    async with store.engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)
        await conn.run_sync(metadata.create_all)


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reports=_reports(), cuts=st.lists(st.integers(0, 8), max_size=4))
def test_batched_recording_leaves_the_store_as_the_reference_does(
    engine: str, reports: list[FlightReport], cuts: list[int]
) -> None:
    if engine == "postgres":
        url = os.environ.get("RMAS_TEST_POSTGRES_URL", "")
        if not url:
            pytest.skip("RMAS_TEST_POSTGRES_URL not set")
        # One database, two schemas would need search_path: two table sets in two databases
        # are simpler; the test database holds both in turn (ref first, then new).
        asyncio.run(_compare_pg(url, reports, cuts))
        return
    # 3 rows a statement at most: a flight's rows are split over several multi-row INSERTs.
    with tempfile.TemporaryDirectory() as tmp, mock.patch.object(database, "_PARAMETERS", 45):
        asyncio.run(_compare(f"sqlite+aiosqlite:///{Path(tmp) / '@@.db'}", reports, cuts))


async def _compare_pg(url: str, reports: list[FlightReport], cuts: list[int]) -> None:
    """PostgreSQL: the reference and the fast path in turn on the same database."""
    store = FlightStore(url)
    await _reset(store)
    try:
        for report in reports:
            await reference.record_now(store, KEYS, report)
        expected = await _dump(store)
        await _reset(store)
        tracker = FlightTracker(None, store, KEYS, None)  # type: ignore[arg-type]
        start = 0
        for cut in [*sorted(set(cuts)), len(reports)]:
            if cut > start:
                await tracker.record_now(*reports[start:cut])
                start = cut
        assert await _dump(store) == expected
    finally:
        await store.aclose()


def test_a_sealed_query_is_the_reference_plaintext() -> None:
    for query in _QUERIES:
        key = KEYS.key_of(query)
        ours, theirs = KEYS.seal(query, key), reference.seal(KEYS, query, key)
        assert ours[:12] != theirs[:12]  # a nonce of its own
        opened = [KEYS._aead.decrypt(s[:12], s[12:], key.encode()) for s in (ours, theirs)]
        assert opened[0] == opened[1]
        assert KEYS.unseal(ours, key) == query
    sealed = KEYS.seal_all([(q, KEYS.key_of(q)) for q in _QUERIES])
    assert len({s[:12] for s in sealed}) == len(_QUERIES)  # every nonce drawn apart
    assert [KEYS.unseal(s, KEYS.key_of(q)) for s, q in zip(sealed, _QUERIES, strict=True)] == (
        _QUERIES
    )


async def test_a_report_the_store_refuses_loses_no_other_of_its_batch(tmp_path: Path) -> None:
    """The recorder takes every report waiting (one transaction); when the store refuses one,
    the others are recorded each on its own."""
    store = FlightStore(f"sqlite+aiosqlite:///{tmp_path / 'flights.db'}")
    config = FlightsConfig(url=store.url, key_file=tmp_path / "k", recheck_s=3600.0)
    tracker = FlightTracker(None, store, KEYS, config)  # type: ignore[arg-type]
    await tracker.start()
    try:
        real = store.put_passengers
        calls: list[int] = []

        async def refusing(conn: Any, fid: str, items: Any) -> int:
            if items and items[0][1].booking_ref == "REFUSE":
                raise sa.exc.IntegrityError("INSERT", {}, Exception("refused"))
            return await real(conn, fid, items)

        store.put_passengers = refusing  # type: ignore[method-assign]
        real_now = tracker.record_now

        async def counting(*reports: FlightReport) -> None:
            calls.append(len(reports))
            await real_now(*reports)

        tracker.record_now = counting  # type: ignore[method-assign]
        pax = ReportedPassenger("K7QF2A", "1001", False, Directive.OK_TO_BOARD, False, False,
                                None, ((_QUERIES[0], "c1"),), ("c1",))  # fmt: skip
        bad = ReportedPassenger("REFUSE", "1002", False, Directive.OK_TO_BOARD, False, False,
                                None, ((_QUERIES[1], "c2"),), ("c2",))  # fmt: skip
        base = dict(owner="rmas://airline/NZ", event=FlightEvent.ANSWER, carrier="NZ",
                    departure="2099-01-01T08:15", legs=(), sender="A", recipient="B",
                    syntax="UNOA", received_at=1_900_000_000.0)  # fmt: skip
        for number, p in (("NZ1", pax), ("NZ2", bad), ("NZ3", pax)):
            tracker._reports.put_nowait(FlightReport(number=number, passengers=(p,), **base))
        await tracker.recorded()
        assert calls == [3, 1, 1, 1]  # the batch, then each on its own
        async with store.engine.connect() as conn:
            got = (await conn.execute(sa.select(flights.c.number, sa.func.count(passengers.c.id))
                   .join(passengers, passengers.c.flight_id == flights.c.id)
                   .group_by(flights.c.number))).all()  # fmt: skip
        assert sorted(got) == [("NZ1", 1), ("NZ3", 1)]
    finally:
        await tracker.aclose()


async def _indexes(store: FlightStore) -> set[str]:
    def names(conn: sa.Connection) -> set[str]:
        inspector = sa.inspect(conn)
        return {
            str(ix["name"])
            for table in ("flight_passengers", "flight_documents")
            for ix in inspector.get_indexes(table)
        }

    async with store.engine.connect() as conn:
        return await conn.run_sync(names)


async def test_a_store_of_the_earlier_release_loses_two_indexes_and_nothing_else(
    store_url: str,
) -> None:
    """The migration: a store created by the release before (its tables, and an index on
    flight_passengers.flight_id and one on flight_documents.check_id) opens with both indexes
    dropped, every row kept; the passenger is still found by document key, by check id (the
    override's lookup, now a scan) and by flight."""
    engine = create_async_engine(store_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        # The DDL the earlier release's schema gave them (index=True on both columns).
        await conn.execute(
            sa.text("CREATE INDEX ix_flight_passengers_flight_id ON flight_passengers (flight_id)")
        )
        await conn.execute(
            sa.text("CREATE INDEX ix_flight_documents_check_id ON flight_documents (check_id)")
        )
    await engine.dispose()  # fmt: skip
    old = FlightStore(store_url)
    report = FlightReport(
        owner="rmas://airline/NZ", event=FlightEvent.ANSWER, carrier="NZ", number="NZ103",
        departure="2099-01-01T08:15", legs=(), sender="A", recipient="B", syntax="UNOA",
        received_at=1_900_000_000.0,
        passengers=(ReportedPassenger("K7QF2A", "1001", False, Directive.DO_NOT_BOARD, False,
                                      False, None, ((_QUERIES[0], "c1"),), ("c1",)),),
    )  # fmt: skip
    engine = create_async_engine(store_url)
    old._engine = engine  # the old store, as the earlier release left it: no migration run
    assert set(DROPPED_INDEXES) <= await _indexes(old)
    await reference.record_now(old, KEYS, report)
    before = await _dump(old)
    await engine.dispose()
    old._engine = None

    store = FlightStore(store_url)
    await store.open()
    try:
        assert not set(DROPPED_INDEXES) & await _indexes(store)
        assert "ix_flight_documents_doc_key" in await _indexes(store)
        assert await _dump(store) == before
        found = await store.by_check_id("c1")
        assert found is not None and found[0].passenger_ref == "1001"
        assert [r.passenger_ref for r in await store.holders([KEYS.key_of(_QUERIES[0])])] == [
            "1001"
        ]
        async with store.engine.begin() as conn:  # recorded again: found by flight
            assert (await store.flight_id(conn, report, 0.0))[1] == "open"
        await store.aclose()
        await store.open()  # opened again: nothing left to drop, nothing dropped
        assert await _dump(store) == before
    finally:
        await store.aclose()
