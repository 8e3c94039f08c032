"""The batch lookup against a naive reference: one plain SELECT per key, mapped field by field.

The batch path is optimised (SQLite: one JSON array per batch, rows matched back by their
position in the chunk; PostgreSQL: WITH ORDINALITY; Records built by position): on random
records and random queries, both engines and both ways of running queries, every answer must be
the reference's.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sqlstore.importer import ensure_schema
from adapters.sqlstore.lookup import MAX_KEYS_PER_QUERY
from adapters.sqlstore.provider import SqlStoreProvider
from adapters.sqlstore.schema import STATUSES, documents, make_engine
from rmas.documents import EMPTY_HOLDER, DocumentQuery, Holder, match_holder
from rmas.providers import ProviderInfo, Registry
from rmas.verdict import HolderMatch, Record, RecordStatus

INFO = ProviderInfo(id="X", issuing_states=frozenset({"NZL", "AUS", "D"}))
# "D" is asked as written on a German document; the store keys it as DEU.
ASKED_STATES = ("NZL", "AUS", "D")
STORED_STATES = ("NZL", "AUS", "DEU")

_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=12)
_date = st.one_of(st.none(), st.dates(dt.date(1900, 1, 1), dt.date(2099, 12, 31)))
_number = st.text("AB12", min_size=1, max_size=3)
_record = st.fixed_dictionaries(
    {
        "document_type": st.sampled_from(["", "P", "I", "V", "O"]),
        "status": st.sampled_from(sorted(STATUSES)),
        "reported_on": _date,
        "record_ref": _text,
        "reporting_authority": _text,
        "detail": _text,
        "surname": st.sampled_from(["", "SMITH", "MÜLLER", "O'NEIL"]),
        "given_names": st.sampled_from(["", "ANNA", "JEAN PAUL"]),
        "birth_date": st.sampled_from([None, dt.date(1980, 1, 2), dt.date(1975, 6, 30)]),
        "sex": st.sampled_from(["", "F", "M", "X"]),
        "withdrawn": st.booleans(),
    }
)
_records = st.dictionaries(st.tuples(st.sampled_from(STORED_STATES), _number), _record,
                           max_size=40)  # fmt: skip
_holder = st.one_of(
    st.just(EMPTY_HOLDER),
    st.builds(
        Holder,
        surname=st.sampled_from(["", "SMITH", "MÜLLER"]),
        given_names=st.sampled_from(["", "ANNA"]),
        birth_date=st.sampled_from([None, dt.date(1980, 1, 2)]),
        sex=st.sampled_from(["", "F", "M"]),
    ),
)
_query = st.builds(DocumentQuery, st.sampled_from(ASKED_STATES), _number, holder=_holder)
# Each inner list is one lookup_many call; the calls run concurrently (and are coalesced).
_calls = st.lists(st.lists(_query, max_size=30), min_size=1, max_size=3)


def _reference(row: Any, q: DocumentQuery, missing: Record) -> Record:
    """What the record of ``row`` (None: no row) must be, field by field from a plain SELECT."""
    if row is None or row.withdrawn:
        return missing
    birth = row.birth_date
    known = Holder(row.surname, row.given_names, birth, row.sex)
    return Record(
        status=RecordStatus(row.status),
        holder_match=(
            HolderMatch.NOT_CHECKED if q.holder is EMPTY_HOLDER else match_holder(q.holder, known)
        ),
        reported_on=row.reported_on,
        record_ref=row.record_ref,
        reporting_authority=row.reporting_authority,
        detail=row.detail,
        document_type=row.document_type,
    )


async def _expected(
    engine: AsyncEngine, calls: Sequence[Sequence[DocumentQuery]], missing: Record
) -> list[list[Record]]:
    out = []
    async with engine.connect() as conn:
        for call in calls:
            answers = []
            for q in call:
                state, number = q.key
                row = (
                    await conn.execute(
                        select(documents).where(
                            documents.c.issuing_state == state, documents.c.number == number
                        )
                    )
                ).first()
                answers.append(_reference(row, q, missing))
            out.append(answers)
    return out


async def _store(engine: AsyncEngine, records: dict[tuple[str, str], dict[str, Any]]) -> None:
    async with engine.begin() as conn:
        await conn.execute(delete(documents))
        if records:
            await conn.execute(
                insert(documents),
                [{"issuing_state": s, "number": n, **r} for (s, n), r in records.items()],
            )


@contextlib.contextmanager
def _opened(
    db_url: str, **options: Any
) -> Iterator[tuple[asyncio.Runner, AsyncEngine, SqlStoreProvider]]:
    """A runner (hypothesis drives the examples synchronously), a writer engine on a store with
    its schema, and a provider on it; all closed at the end."""
    runner = asyncio.Runner()
    writer = make_engine(db_url)
    runner.run(ensure_schema(writer))
    p = SqlStoreProvider(INFO, db_url, **options)
    try:
        yield runner, writer, p
    finally:
        runner.run(p.aclose())
        runner.run(writer.dispose())
        runner.close()


@pytest.mark.parametrize("io", ["inline", "thread"])
@pytest.mark.parametrize("registry", [Registry.ALERTS, Registry.COMPLETE])
def test_lookup_many_answers_as_a_select_per_key(db_url: str, io: str, registry: Registry) -> None:
    with _opened(db_url, io=io, registry=registry) as (runner, writer, p):
        _batches_as_selects(runner, writer, p)


def _batches_as_selects(runner: asyncio.Runner, writer: AsyncEngine, p: SqlStoreProvider) -> None:
    """Random stores and concurrent batches, each call's answers against a SELECT per key."""

    async def check(
        records: dict[tuple[str, str], dict[str, Any]], calls: list[list[DocumentQuery]]
    ) -> None:
        await _store(writer, records)
        # Numbers that are stored are asked more often than chance would.
        calls = [c + [DocumentQuery("D" if s == "DEU" else s, n) for s, n in list(records)[:5]]
                 for c in calls]  # fmt: skip
        deadline = time.monotonic() + 30
        got = await asyncio.gather(*(p.lookup_many(c, deadline) for c in calls))
        assert got == await _expected(writer, calls, p._missing)
        # Each hit is a record of its own, never one object shared between answers.
        hits = [r for answers in got for r in answers if r is not p._missing]
        assert len({id(r) for r in hits}) == len(hits)

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(_records, _calls)
    def run(
        records: dict[tuple[str, str], dict[str, Any]], calls: list[list[DocumentQuery]]
    ) -> None:
        runner.run(check(records, calls))

    run()


# Single checks (one key a call, read at once inline: ``InlineCoalescer.read_one``), alone and
# beside batches (asked while a batch's query waits, they join it). The index picks a stored key.
_single_or_batch = st.one_of(
    st.tuples(_query, st.integers(0, 40)).map(lambda t: [t]),
    st.lists(st.tuples(_query, st.integers(0, 40)), min_size=2, max_size=6),
)


@pytest.mark.parametrize("io", ["inline", "thread"])
def test_single_key_lookups_answer_as_a_select_per_key(db_url: str, io: str) -> None:
    with _opened(db_url, io=io) as (runner, writer, p):
        _single_keys_as_selects(runner, writer, p)


def _single_keys_as_selects(
    runner: asyncio.Runner, writer: AsyncEngine, p: SqlStoreProvider
) -> None:
    """Random stores and single-key calls (with batches), one by one or together, against a
    SELECT per key."""

    async def check(
        records: dict[tuple[str, str], dict[str, Any]],
        picked: list[list[tuple[DocumentQuery, int]]],
        together: bool,
    ) -> None:
        await _store(writer, records)
        stored = [DocumentQuery("D" if s == "DEU" else s, n) for s, n in records]
        # Three indexes in four ask a stored number (with the query's holder data).
        calls = [
            [DocumentQuery(stored[i % len(stored)].issuing_state, stored[i % len(stored)].number,
                           holder=q.holder) if stored and i % 4 else q for q, i in call]
            for call in picked
        ]  # fmt: skip
        deadline = time.monotonic() + 30
        if together:
            got = await asyncio.gather(*(p.lookup_many(c, deadline) for c in calls))
        else:
            got = [await p.lookup_many(c, deadline) for c in calls]
        assert got == await _expected(writer, calls, p._missing)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(_records, st.lists(_single_or_batch, min_size=1, max_size=5), st.booleans())
    def run(
        records: dict[tuple[str, str], dict[str, Any]],
        picked: list[list[tuple[DocumentQuery, int]]],
        together: bool,
    ) -> None:
        runner.run(check(records, picked, together))

    run()


@pytest.mark.parametrize("io", ["inline", "thread"])
async def test_rows_of_every_chunk_go_to_their_own_keys(db_url: str, io: str) -> None:
    """More keys than one query takes: each row found is matched to its own key, whichever
    chunk it came from (a row carries its position within its chunk, not within the call)."""
    n = MAX_KEYS_PER_QUERY * 2 + 50
    writer = make_engine(db_url)
    await ensure_schema(writer)
    await _store(writer, {("NZL", f"K{i:05d}"): {
        "document_type": "P", "status": "LOST", "reported_on": None, "record_ref": f"R{i}",
        "reporting_authority": "", "detail": "", "surname": "", "given_names": "",
        "birth_date": None, "sex": "", "withdrawn": False} for i in range(0, n, 2)})  # fmt: skip
    await writer.dispose()
    p = SqlStoreProvider(INFO, db_url, io=io)
    try:
        queries = [DocumentQuery("NZL", f"K{i:05d}") for i in reversed(range(n))]
        records = await p.lookup_many(queries, time.monotonic() + 30)
        assert p.queries == 3
    finally:
        await p.aclose()
    for q, r in zip(queries, records, strict=True):
        i = int(q.number[1:])
        assert r.record_ref == (f"R{i}" if i % 2 == 0 else ""), q.number
