from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import time
from pathlib import Path

import pytest

from adapters.sqlstore.importer import build_synthetic, import_csv, synthetic_number
from adapters.sqlstore.lookup import Coalescer, InlineCoalescer
from adapters.sqlstore.provider import MAX_KEYS_PER_QUERY, SqlStoreProvider, batch_sql
from rmas.config import parse_config
from rmas.documents import DocumentQuery, Holder
from rmas.errors import ConfigError, ProviderUnavailable
from rmas.providers import ProviderInfo, Registry
from rmas.verdict import HolderMatch, RecordStatus

CSV = (
    (
        "issuing_state,document_number,document_type,status,reported_on,record_ref,"
        "surname,given_names,birth_date,sex,expiry_date,reporting_authority,detail\n"
    )
    + """NZL,LA000001,P,VALID,,R1,SMITH,ANNA,1980-01-02,F,2030-01-01,,
NZL,LA000002,P,LOST,2024-03-04,R2,,,,,,DIA NZ,lost in Rome
NZL,LA000003,P,STOLEN,2024-03-05,R3,,,,,,,
NZL,LA000004,P,STOLEN_BLANK,,R4,,,,,,,
NZL,LA000005,P,REVOKED,,R5,,,,,,,
NZL,LA000006,P,INVALID,,R6,,,,,,,
"""
)
INFO = ProviderInfo(id="NZL", issuing_states=frozenset({"NZL"}))


def q(number: str, **holder: object) -> DocumentQuery:
    return DocumentQuery("NZL", number, holder=Holder(**holder))  # type: ignore[arg-type]


@pytest.fixture
async def store_url(tmp_path: Path, db_url: str) -> str:
    (tmp_path / "nzl.csv").write_text(CSV)
    url = db_url
    report = await import_csv(url, tmp_path / "nzl.csv")
    assert report.rejected == ()
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite store URL with no store in it yet (the inline reader is SQLite's alone)."""
    return f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"


@pytest.fixture(params=["inline", "thread"])
def io(request: pytest.FixtureRequest) -> str:
    """Both ways of running queries answer the same."""
    return str(request.param)


def reads_through(p: SqlStoreProvider) -> str:
    """How the started provider actually reads: "inline" (a sqlite3 connection on the loop's
    thread), "thread" (aiosqlite reader threads) or "postgres" (asyncpg). A test named for a
    mode checks it ran in that mode, not in the other one with the same answers."""
    coalescer = p._coalescer
    if isinstance(coalescer, InlineCoalescer):
        return "inline"
    assert isinstance(coalescer, Coalescer)
    module = type(coalescer.readers[0]).__module__
    return "thread" if module.startswith("aiosqlite") else "postgres"


def soon() -> float:
    return time.monotonic() + 5


async def test_every_status_round_trips(store_url: str, io: str) -> None:
    p = SqlStoreProvider(INFO, store_url, io=io)
    try:
        numbers = [f"LA00000{i}" for i in range(1, 7)]
        records = await p.lookup_many([q(n) for n in numbers], soon())
        assert reads_through(p) == (io if store_url.startswith("sqlite") else "postgres")
    finally:
        await p.aclose()
    assert [r.status for r in records] == [
        RecordStatus.VALID, RecordStatus.LOST, RecordStatus.STOLEN, RecordStatus.STOLEN_BLANK,
        RecordStatus.REVOKED, RecordStatus.INVALID,
    ]  # fmt: skip
    lost = records[1]
    assert (lost.reported_on, lost.record_ref, lost.reporting_authority, lost.detail) == (
        dt.date(2024, 3, 4), "R2", "DIA NZ", "lost in Rome",
    )  # fmt: skip


async def test_an_unknown_number_is_no_record_or_not_issued_by_registry(store_url: str) -> None:
    alerts = SqlStoreProvider(INFO, store_url)
    complete = SqlStoreProvider(INFO, store_url, registry=Registry.COMPLETE)
    try:
        (a,) = await alerts.lookup_many([q("LA999999")], soon())
        (c,) = await complete.lookup_many([q("LA999999")], soon())
        (known,) = await complete.lookup_many([q("LA000003")], soon())
    finally:
        await alerts.aclose()
        await complete.aclose()
    assert a.status is RecordStatus.NO_RECORD
    assert c.status is RecordStatus.NOT_ISSUED
    assert known.status is RecordStatus.STOLEN


async def test_holder_data_is_compared_field_by_field(store_url: str, io: str) -> None:
    p = SqlStoreProvider(INFO, store_url, io=io)
    try:
        records = await p.lookup_many(
            [
                q("LA000001", surname="SMITH", given_names="ANNA", birth_date=dt.date(1980, 1, 2)),
                q("LA000001", surname="JONES"),
                q("LA000001", sex="M"),
                q("LA000001"),
                q("LA000002", surname="SMITH"),  # the record holds no holder data
                q("LA000001", surname="SMITH", birth_date=dt.date(1981, 1, 2)),
            ],
            soon(),
        )
    finally:
        await p.aclose()
    assert [r.holder_match for r in records] == [
        HolderMatch.MATCH, HolderMatch.MISMATCH, HolderMatch.MISMATCH, HolderMatch.NOT_CHECKED,
        HolderMatch.NOT_CHECKED, HolderMatch.MISMATCH,
    ]  # fmt: skip


async def test_duplicates_and_batches_larger_than_one_query(db_url: str, io: str) -> None:
    url = db_url
    await build_synthetic(url, 2000, ["NZL"], seed=1)
    p = SqlStoreProvider(INFO, url, io=io)
    n = MAX_KEYS_PER_QUERY * 2 + 17
    queries = [DocumentQuery("NZL", synthetic_number("NZL", k)) for k in range(n)]
    queries += [queries[3], DocumentQuery("NZL", synthetic_number("NZL", 10**6))]
    try:
        records = await p.lookup_many(queries, soon())
        assert p.queries == 3
    finally:
        await p.aclose()
    assert len(records) == len(queries)
    assert all(r.status is not RecordStatus.NO_RECORD for r in records[:-1])
    assert records[3] == records[n]
    assert records[-1].status is RecordStatus.NO_RECORD


async def test_concurrent_lookups_are_coalesced_into_fewer_queries(db_url: str, io: str) -> None:
    url = db_url
    await build_synthetic(url, 1000, ["NZL"], seed=1)
    p = SqlStoreProvider(INFO, url, readers=2, io=io)
    await p.start()
    try:
        keys = [synthetic_number("NZL", k) for k in range(200)]
        # Two documents a call: batches (a single key alone is read at once inline, below).
        pairs = zip(keys[::2], keys[1::2], strict=True)
        results = await asyncio.gather(*(p.lookup_many([q(a), q(b)], soon()) for a, b in pairs))
        assert p.queries < 50
        assert reads_through(p) == (io if url.startswith("sqlite") else "postgres")
    finally:
        await p.aclose()
    assert all(r.status is not RecordStatus.NO_RECORD for pair in results for r in pair)


async def test_inline_single_key_is_read_at_once_unless_a_query_is_waiting(sqlite_url: str) -> None:
    """A single check reads its key without a loop turn (nothing to share a query with); a key
    asked while a batch's query is scheduled joins that query instead."""
    await build_synthetic(sqlite_url, 100, ["NZL"], seed=1)
    p = SqlStoreProvider(INFO, sqlite_url, io="inline")
    await p.start()
    try:
        coalescer = p._coalescer
        assert isinstance(coalescer, InlineCoalescer)
        known, unknown = synthetic_number("NZL", 3), synthetic_number("NZL", 500)
        # No suspension: the coroutine finishes on its first step.
        for number in (known, unknown):
            coro = p.lookup_many([q(number)], soon())
            with pytest.raises(StopIteration) as done:
                coro.send(None)
            (record,) = done.value.value
            assert (record.status is RecordStatus.NO_RECORD) is (number == unknown)
        assert p.queries == 2
        # A batch schedules a flush; single keys asked in the same iteration (their tasks run
        # before the flush) ride on it.
        got = await asyncio.gather(
            p.lookup_many([q(known), q(unknown)], soon()),
            *(p.lookup_many([q(n)], soon()) for n in (known, unknown)),
        )
        assert p.queries == 3
        assert got[1][0] == got[0][0] and got[2][0] == got[0][1]
    finally:
        await p.aclose()


async def test_inline_single_key_read_failure_is_unavailable(sqlite_url: str) -> None:
    await build_synthetic(sqlite_url, 10, ["NZL"], seed=1)
    p = SqlStoreProvider(INFO, sqlite_url, io="inline")
    await p.start()
    try:
        coalescer = p._coalescer
        assert isinstance(coalescer, InlineCoalescer)
        coalescer.conn.close()
        with pytest.raises(ProviderUnavailable, match="store query failed: ProgrammingError"):
            await p.lookup_many([q(synthetic_number("NZL", 1))], soon())
    finally:
        coalescer.conn = sqlite3.connect(":memory:")
        await p.aclose()


async def test_a_cancelled_caller_does_not_break_the_others(db_url: str, io: str) -> None:
    url = db_url
    await build_synthetic(url, 1000, ["NZL"], seed=1)
    p = SqlStoreProvider(INFO, url, readers=1, io=io)
    await p.start()
    try:
        # Two keys a call: callers that wait for a shared query (a single key is read at once
        # inline, with nothing to wait for).
        tasks = [
            asyncio.create_task(p.lookup_many([q(synthetic_number("NZL", k))] * 2, soon()))
            for k in range(50)
        ]
        await asyncio.sleep(0)
        for t in tasks[::3]:
            t.cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        after = await p.lookup_many([q(synthetic_number("NZL", 7))], soon())
    finally:
        await p.aclose()
    for i, d in enumerate(done):
        if i % 3 == 0:
            assert isinstance(d, asyncio.CancelledError)
        else:
            assert isinstance(d, list)
            assert d[0].status is not RecordStatus.NO_RECORD
    assert after[0].status is not RecordStatus.NO_RECORD


async def test_the_batch_query_searches_the_unique_index(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'big.db'}"
    await build_synthetic(url, 5000, ["NZL"], seed=1)
    with sqlite3.connect(tmp_path / "big.db") as db:
        db.execute("ANALYZE")
        plan = db.execute("EXPLAIN QUERY PLAN " + batch_sql(50), ["NZL", "N1"] * 50).fetchall()
    details = [row[-1] for row in plan]
    assert any("SEARCH d USING PRIMARY KEY" in d for d in details), details
    assert not any(d.startswith("SCAN d") for d in details), details


async def test_a_missing_store_is_unavailable_not_a_crash(tmp_path: Path, io: str) -> None:
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    p = SqlStoreProvider(INFO, f"sqlite+aiosqlite:///{empty}", io=io)
    with pytest.raises(ProviderUnavailable, match="cannot be opened"):
        await p.lookup_many([q("LA1")], soon())
    await p.aclose()


async def test_the_postgres_batch_query_uses_the_unique_index(postgres_url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from adapters.sqlstore.provider import PG_BATCH_SQL

    engine = create_async_engine(postgres_url)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "DROP TABLE IF EXISTS documents, abtc_cards, store_meta, feeds, change_log, "
                "alembic_version"
            )
        )
    await build_synthetic(postgres_url, 20_000, ["NZL"], seed=1)
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql("ANALYZE documents")
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            rows = await driver.fetch(
                "EXPLAIN " + PG_BATCH_SQL, ["NZL"] * 50,
                [synthetic_number("NZL", k) for k in range(50)],
            )  # fmt: skip
    finally:
        await engine.dispose()
    plan = "\n".join(r[0] for r in rows)
    assert "uq_documents_key" in plan, plan
    assert "Seq Scan on documents" not in plan, plan


def test_config_options_are_checked_with_their_key(tmp_path: Path) -> None:
    base = "[[providers]]\nid='NZL'\nkind='sql'\nissuing_states=['NZL']\n"
    (tmp_path / "nzl.db").touch()  # the store must exist: serving never creates one
    cfg = parse_config(base + "url='sqlite+aiosqlite:///nzl.db'\nregistry='complete'\n",
                       base_dir=tmp_path)  # fmt: skip
    p = SqlStoreProvider.from_config(cfg.providers[0])
    assert p.registry is Registry.COMPLETE
    assert p.url == f"sqlite+aiosqlite:///{tmp_path / 'nzl.db'}"
    for extra, key in (
        ("", "providers[0].url"),
        ("url='sqlite+aiosqlite:///x.db'\nregistry='most'\n", "providers[0].registry"),
        ("url='sqlite+aiosqlite:///x.db'\nreaders=0\n", "providers[0].readers"),
        ("url='mysql+aiomysql://h/db'\n", "providers[0].url"),
        ("url='postgresql+psycopg://h/db'\n", "providers[0].url"),
        ("url='sqlite+aiosqlite:///x.db'\nio='fibre'\n", "providers[0].io"),
    ):
        with pytest.raises(ConfigError) as info:
            SqlStoreProvider.from_config(parse_config(base + extra).providers[0])
        assert info.value.key == key
