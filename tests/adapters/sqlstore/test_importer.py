from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine

from adapters.sqlstore import cli, csvrows, worker
from adapters.sqlstore.importer import import_csv, store_stats
from adapters.sqlstore.provider import PG_BATCH_SQL, SqlStoreProvider, batch_sql
from adapters.sqlstore.schema import documents
from rmas.documents import DocumentQuery
from rmas.errors import StoreError
from rmas.providers import ProviderInfo
from rmas.verdict import RecordStatus
from tests.adapters.sqlstore import lookups_during

HEADER = "issuing_state,document_number,document_type,status,reported_on,record_ref"
HOLDER = ",surname,given_names,birth_date,sex,expiry_date"
INFO = ProviderInfo(id="NZL", issuing_states=frozenset({"NZL"}))


def url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"


async def rows(url: str) -> list[tuple[str, ...]]:
    """The store's rows, read through SQLAlchemy so that both engines answer alike."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(
                select(documents.c.issuing_state, documents.c.number, documents.c.status,
                       documents.c.reported_on, documents.c.surname).order_by(documents.c.number)
            )  # fmt: skip
            return [
                (a, b, c, d.isoformat() if d is not None else None, e) for a, b, c, d, e in result
            ]
    finally:
        await engine.dispose()


async def test_good_rows_load_and_bad_rows_are_reported_with_their_line(
    tmp_path: Path, db_url: str
) -> None:
    csv = tmp_path / "in.csv"
    csv.write_text(
        "\n".join([
            HEADER,
            "NZL,la 000001,P,STOLEN,2024-05-01,R1",
            "QQQ,LA000002,P,LOST,,R2",
            "NZL,LA000003,P,MISPLACED,,R3",
            "NZL,LA000004,P,LOST,01/05/2024,R4",
            "NZL,,P,LOST,,R5",
            "nz,LA000006,P,revoked,,R6",
            "NZL,LA000007,P,LOST,,R7,extra",
        ])
        + "\n"
    )  # fmt: skip
    report = await import_csv(db_url, csv)
    assert report.loaded == 2
    assert [line for line, _ in report.rejected] == [3, 4, 5, 6, 8]
    reasons = dict(report.rejected)
    assert "issuing_state" in reasons[3]
    assert "status" in reasons[4]
    assert "reported_on" in reasons[5]
    assert "document_number" in reasons[6]
    assert "fields" in reasons[8]
    assert await rows(db_url) == [
        ("NZL", "LA000001", "STOLEN", "2024-05-01", ""),
        ("NZL", "LA000006", "REVOKED", None, ""),
    ]


async def test_holder_columns_are_normalised_and_germany_is_stored_as_deu(
    tmp_path: Path, db_url: str
) -> None:
    csv = tmp_path / "in.csv"
    csv.write_text(
        HEADER + HOLDER + "\n"
        "D,C01X00T47,P,VALID,,R1,Müller-O'Neil,anna maria,1974-08-12,F,2030-01-01\n"
    )
    report = await import_csv(db_url, csv)
    assert report.rejected == ()
    assert await rows(db_url) == [("DEU", "C01X00T47", "VALID", None, "MUELLER ONEIL")]


async def test_a_later_row_wins_and_reimport_updates(tmp_path: Path, db_url: str) -> None:
    csv = tmp_path / "in.csv"
    csv.write_text(f"{HEADER}\nNZL,LA1,P,LOST,,R1\nNZL,LA1,P,STOLEN,,R1\nNZL,LA2,P,LOST,,R2\n")
    first = await import_csv(db_url, csv)
    assert (first.loaded, first.inserted, first.updated, first.duplicates) == (2, 2, 0, 1)
    csv.write_text(f"{HEADER}\nNZL,LA2,P,REVOKED,,R2\nNZL,LA3,P,LOST,,R3\n")
    second = await import_csv(db_url, csv)
    assert (second.loaded, second.inserted, second.updated) == (2, 1, 1)
    assert [(r[1], r[2]) for r in await rows(db_url)] == [
        ("LA1", "STOLEN"),
        ("LA2", "REVOKED"),
        ("LA3", "LOST"),
    ]
    replaced = await import_csv(db_url, csv, replace=True)
    assert replaced.inserted == 2
    assert [r[1] for r in await rows(db_url)] == ["LA2", "LA3"]


async def test_a_header_without_required_columns_is_refused(tmp_path: Path) -> None:
    csv = tmp_path / "in.csv"
    csv.write_text("issuing_state,document_number\nNZL,LA1\n")
    with pytest.raises(StoreError, match="record_ref"):
        await import_csv(url(tmp_path), csv)


async def test_stats_count_by_state_and_status(
    tmp_path: Path, fixtures_dir: Path, db_url: str
) -> None:
    await import_csv(db_url, fixtures_dir / "records" / "nzl.csv")
    stats = await store_stats(db_url)
    assert stats["total"] == 300
    assert set(stats["by_state"]["NZL"]) == {
        "VALID", "LOST", "STOLEN", "STOLEN_BLANK", "REVOKED", "INVALID",
    }  # fmt: skip


@pytest.mark.parametrize("name", ["nzl.csv", "aus.csv", "phl.csv", "usa.csv"])
async def test_every_demo_fixture_loads_cleanly(
    tmp_path: Path, fixtures_dir: Path, name: str
) -> None:
    report = await import_csv(url(tmp_path), fixtures_dir / "records" / name)
    assert report.rejected == ()
    assert report.loaded >= 200


def test_the_cli_exits_1_and_names_lines_when_rows_are_rejected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "in.csv"
    csv.write_text(f"{HEADER}\nNZL,LA1,P,LOST,,R1\nNZL,LA2,P,GONE,,R2\n")
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["store", "import", "--url", url(tmp_path), str(csv)])
    assert args.func(args) == 1
    out = capsys.readouterr()
    assert "loaded 1 records" in out.out
    assert "line 3: status" in out.err
    args = parser.parse_args(["store", "stats", "--url", url(tmp_path)])
    assert args.func(args) == 0
    assert "NZL: LOST 1" in capsys.readouterr().out


# --- The swap path: an import into an empty store, and every --replace ---------------------


async def table_identity(url: str) -> int:
    """Changes when ``documents`` is a new table: SQLite's root page, PostgreSQL's OID."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            sql = (
                "SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = 'documents'"
                if engine.dialect.name == "sqlite"
                else "SELECT 'documents'::regclass::oid"
            )
            return int((await conn.exec_driver_sql(sql)).scalar_one())
    finally:
        await engine.dispose()


async def store_shape(url: str) -> dict[str, Any]:
    """The unique key, the plan of a batch lookup, and any table the import left behind."""
    engine = create_async_engine(url)
    keys = [("NZL", f"LB{i:06d}") for i in range(50)]
    try:
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            if engine.dialect.name == "sqlite":
                tables = await driver.execute_fetchall(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'table'"
                )
                ddl = dict(tables)["documents"]
                plan = await driver.execute_fetchall(
                    "EXPLAIN QUERY PLAN " + batch_sql(50), [v for k in keys for v in k]
                )
                return {
                    # Clustered on the key since revision 0005.
                    "key": "CONSTRAINT uq_documents_key PRIMARY KEY (issuing_state, number)" in ddl
                    and ddl.endswith("WITHOUT ROWID"),
                    "plan": "\n".join(row[-1] for row in plan),
                    "index": "SEARCH d USING PRIMARY KEY (issuing_state=? AND number=?)",
                    "tables": sorted(dict(tables)),
                    "stats": None,
                }
            constraints = await driver.fetch(
                "SELECT conname FROM pg_constraint WHERE conrelid = 'documents'::regclass "
                "AND contype = 'u'"
            )
            plan = await driver.fetch(
                "EXPLAIN " + PG_BATCH_SQL, [k[0] for k in keys], [k[1] for k in keys]
            )
            tables = await driver.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
            stats = await driver.fetchval(
                "SELECT count(*) FROM pg_stats WHERE tablename = 'documents'"
            )
            return {
                "key": [r[0] for r in constraints] == ["uq_documents_key"],
                "plan": "\n".join(r[0] for r in plan),
                "index": "uq_documents_key",
                "tables": sorted(r[0] for r in tables),
                "stats": stats,
            }
    finally:
        await engine.dispose()


def leftovers(tables: list[str]) -> list[str]:
    """Tables an import made for itself (the test database may hold other projects' tables)."""
    return [t for t in tables if t.startswith(("documents_", "rmas_", "load_"))]


def big_csv(path: Path, status: str, extra: int = 20_000) -> Path:
    path.write_text(
        HEADER + "\n" + "".join(f"NZL,LA{i:06d},P,{status},2024-01-02,R{i}\n" for i in range(200))
        + "".join(f"NZL,LB{i:06d},P,LOST,,R{i}\n" for i in range(extra))
    )  # fmt: skip
    return path


async def test_an_import_into_an_empty_store_builds_its_unique_key_once(
    tmp_path: Path, db_url: str
) -> None:
    report = await import_csv(db_url, big_csv(tmp_path / "in.csv", "STOLEN"))
    assert (report.loaded, report.inserted, report.updated, report.duplicates) == (
        20_200, 20_200, 0, 0,
    )  # fmt: skip
    shape = await store_shape(db_url)
    assert shape["key"], "the Alembic revision's unique constraint is in place"
    assert shape["index"] in shape["plan"], shape["plan"]
    assert leftovers(shape["tables"]) == []
    if shape["stats"] is not None:
        assert shape["stats"] > 0, "the import ends with ANALYZE"
    assert (await rows(db_url))[0] == ("NZL", "LA000000", "STOLEN", "2024-01-02", "")


async def test_a_replace_swaps_in_a_new_table_and_lookups_answer_throughout(
    tmp_path: Path, db_url: str
) -> None:
    keep = [f"LA{i:06d}" for i in range(200)]
    await import_csv(db_url, big_csv(tmp_path / "first.csv", "STOLEN", extra=0))
    before = await table_identity(db_url)
    provider = SqlStoreProvider(INFO, db_url)
    await provider.start()  # lookups are answering before the reload starts
    try:
        report, lookups, missing = await lookups_during(
            provider,
            keep,
            import_csv(db_url, big_csv(tmp_path / "second.csv", "LOST"), replace=True),
        )
        after = await provider.lookup_many([DocumentQuery("NZL", keep[0])], time.monotonic() + 5)
    finally:
        await provider.aclose()
    assert (lookups > 1, missing) == (True, 0)
    assert after[0].status is RecordStatus.LOST, "open readers see the new table"
    assert (report.inserted, report.updated) == (20_200, 0)
    assert await table_identity(db_url) != before, "a fresh table, not the old one reloaded"
    shape = await store_shape(db_url)
    assert shape["key"]
    assert shape["index"] in shape["plan"], shape["plan"]
    assert leftovers(shape["tables"]) == []


async def test_a_document_repeated_in_later_chunks_keeps_its_last_row(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csvrows, "CHUNK_ROWS", 3)
    csv = tmp_path / "in.csv"
    csv.write_text(
        "\n".join([
            HEADER,
            "NZL,LA1,P,LOST,,R1",
            "NZL,LA2,P,LOST,,R2",
            "NZL,LA2,P,STOLEN,,R2",  # a repeat within the chunk
            "AUS,LA2,P,REVOKED,,R9",  # the same number for another state: another document
            "NZL,LA3,P,LOST,,R3",
            "NZL,LA1,P,INVALID,,R1",  # a repeat two chunks later
            "NZL,LA4,P,LOST,,R4",
            "NZL,LA1,P,STOLEN,,R1",  # and again
        ])
        + "\n"
    )  # fmt: skip
    # Into the empty store and as a replace: the swap; then into the full store: the upsert.
    for replace, counts in ((False, (6, 5, 1, 2)), (True, (6, 5, 1, 2)), (False, (6, 0, 6, 2))):
        report = await import_csv(db_url, csv, replace=replace)
        assert (report.loaded, report.inserted, report.updated, report.duplicates) == counts
        assert sorted((r[0], r[1], r[2]) for r in await rows(db_url)) == [
            ("AUS", "LA2", "REVOKED"),
            ("NZL", "LA1", "STOLEN"),
            ("NZL", "LA2", "STOLEN"),
            ("NZL", "LA3", "LOST"),
            ("NZL", "LA4", "LOST"),
        ]
    assert (await store_shape(db_url))["key"]


async def test_a_later_row_wins_whether_its_chunk_went_straight_in_or_was_staged(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two rows a chunk: the first two chunks are in key order (written straight into the fresh
    # table on SQLite), the third is not (it and the rest are staged and sorted at the end).
    monkeypatch.setattr(csvrows, "CHUNK_ROWS", 2)
    csv = tmp_path / "in.csv"
    csv.write_text(
        "\n".join([
            HEADER,
            "NZL,LA1,P,LOST,,R1", "NZL,LA2,P,LOST,,R2",
            "NZL,LA1,P,STOLEN,,R1", "NZL,LA3,P,LOST,,R3",
            "NZL,LA5,P,LOST,,R5", "NZL,LA4,P,LOST,,R4",
            "NZL,LA1,P,REVOKED,,R1", "NZL,LA6,P,LOST,,R6",
        ])
        + "\n"
    )  # fmt: skip
    for replace, counts in ((False, (8, 6, 2, 0)), (True, (8, 6, 2, 0)), (False, (8, 0, 8, 0))):
        report = await import_csv(db_url, csv, replace=replace)
        assert (report.loaded, report.inserted, report.updated, report.duplicates) == counts
        assert [(r[1], r[2]) for r in await rows(db_url)] == [
            ("LA1", "REVOKED"), ("LA2", "LOST"), ("LA3", "LOST"), ("LA4", "LOST"),
            ("LA5", "LOST"), ("LA6", "LOST"),
        ]  # fmt: skip


async def test_a_worker_process_parses_a_large_file_and_reports_lines_alike(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv = tmp_path / "in.csv"
    csv.write_text(
        HEADER + HOLDER + "\n"
        + "".join(f"NZL,LA{i:06d},P,LOST,2024-05-01,R{i},Smith,anna,1980-02-03,f,\n"
                  for i in range(3000))
        + "NZL,LA9,P,GONE,,R,,,,,\n"
        + "NZL,LA000007,P,STOLEN,,R,,,,,\n"
        + "NZL,LB1,P,LOST,,R,,,1980-13-01,,\n"
        + "NZL,LB2,P,LOST,,R\n"
    )  # fmt: skip
    in_process = await import_csv(db_url, csv)
    expected = await rows(db_url)
    monkeypatch.setattr(worker, "WORKER_MIN_BYTES", 0)
    in_worker = await import_csv(db_url, csv, replace=True)
    assert (in_process.parsed_by, in_worker.parsed_by) == ("in-process", "worker")
    assert await rows(db_url) == expected
    assert in_worker.rejected == in_process.rejected
    assert [line for line, _ in in_worker.rejected] == [3002, 3004, 3005]
    assert "status" in in_worker.rejected[0][1]
    assert "birth_date" in in_worker.rejected[1][1]
    assert "fields" in in_worker.rejected[2][1]
    assert (in_worker.loaded, in_worker.inserted, in_worker.duplicates) == (3000, 3000, 1)
    assert expected[7] == ("NZL", "LA000007", "STOLEN", None, "")


@pytest.mark.parametrize("in_worker", [False, True])
async def test_a_file_that_stops_being_text_is_refused_and_the_store_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_worker: bool
) -> None:
    if in_worker:
        monkeypatch.setattr(worker, "WORKER_MIN_BYTES", 0)
    good = tmp_path / "good.csv"
    good.write_text(f"{HEADER}\nNZL,LA1,P,LOST,,R1\n")
    await import_csv(url(tmp_path), good)
    bad = tmp_path / "bad.csv"
    # Past the first block read with the header: the worker meets the bad byte, not the parent.
    good_lines = "".join(f"NZL,LB{i:06d},P,LOST,,R\n" for i in range(2000))
    bad.write_bytes(f"{HEADER}\n{good_lines}".encode() + b"NZL,LA3,P,LOST,,R\xff\n")
    with pytest.raises(StoreError, match=r"cannot read the file after line \d+: not UTF-8"):
        await import_csv(url(tmp_path), bad, replace=True)
    assert [r[1] for r in await rows(url(tmp_path))] == ["LA1"]


async def test_a_replace_reloads_a_table_with_a_trigger_in_place(
    tmp_path: Path, db_url: str
) -> None:
    csv = tmp_path / "in.csv"
    csv.write_text(f"{HEADER}\nNZL,LA1,P,LOST,,R1\n")
    await import_csv(db_url, csv)
    engine = create_async_engine(db_url)
    async with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            await conn.execute(text(
                "CREATE TRIGGER audit_documents AFTER INSERT ON documents "
                "BEGIN SELECT 1; END"))  # fmt: skip
        else:
            await conn.execute(text(
                "CREATE OR REPLACE FUNCTION audit_documents() RETURNS trigger AS $$ BEGIN "
                "RETURN NEW; END $$ LANGUAGE plpgsql"))  # fmt: skip
            await conn.execute(text(
                "CREATE TRIGGER audit_documents AFTER INSERT ON documents FOR EACH ROW "
                "EXECUTE FUNCTION audit_documents()"))  # fmt: skip
    before = await table_identity(db_url)
    csv.write_text(f"{HEADER}\nNZL,LA2,P,STOLEN,,R2\n")
    report = await import_csv(db_url, csv, replace=True)
    assert (report.inserted, report.updated) == (1, 0)
    assert [r[1] for r in await rows(db_url)] == ["LA2"]
    assert await table_identity(db_url) == before, "the trigger's table was not swapped away"
    async with engine.connect() as conn:
        sql = (
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"
            if engine.dialect.name == "sqlite"
            else "SELECT count(*) FROM pg_trigger WHERE tgname = 'audit_documents'"
        )
        assert (await conn.exec_driver_sql(sql)).scalar_one() == 1
    await engine.dispose()


async def test_a_swap_keeps_other_indexes_and_the_grants(tmp_path: Path, db_url: str) -> None:
    csv = tmp_path / "in.csv"
    csv.write_text(f"{HEADER}\nNZL,LA1,P,LOST,,R1\n")
    await import_csv(db_url, csv)
    engine = create_async_engine(db_url)
    postgres = engine.dialect.name == "postgresql"
    async with engine.begin() as conn:
        await conn.execute(text("CREATE INDEX ix_documents_status ON documents (status)"))
        if postgres:
            await conn.execute(text("GRANT SELECT ON documents TO PUBLIC"))
    before = await table_identity(db_url)
    await import_csv(db_url, csv, replace=True)
    assert await table_identity(db_url) != before
    async with engine.connect() as conn:
        if postgres:
            indexes = await conn.exec_driver_sql(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'documents'"
            )
            public = await conn.exec_driver_sql(
                "SELECT has_table_privilege('public', 'documents', 'SELECT')"
            )
            assert public.scalar_one()
        else:
            indexes = await conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'documents'"
            )
        names = sorted(r[0] for r in indexes)
    await engine.dispose()
    # SQLite: the key is the table itself (WITHOUT ROWID, revision 0005), no index of its own.
    assert names == sorted(["uq_documents_key", "ix_documents_status"] if postgres
                           else ["ix_documents_status"])  # fmt: skip


async def test_a_swap_waits_for_a_long_reader_without_stalling_the_others(
    tmp_path: Path, postgres_url: str
) -> None:
    import asyncpg

    engine = create_async_engine(postgres_url)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "DROP TABLE IF EXISTS documents, abtc_cards, store_meta, feeds, change_log, "
                "alembic_version"
            )
        )
    await engine.dispose()
    await import_csv(postgres_url, big_csv(tmp_path / "first.csv", "STOLEN", extra=0))
    dsn = postgres_url.replace("postgresql+asyncpg://", "postgresql://")
    long_reader, other = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    try:
        # An open transaction that has read the table holds a lock the swap must wait for.
        reader = long_reader.transaction()
        await reader.start()
        await long_reader.fetchval("SELECT count(*) FROM documents")
        task = asyncio.create_task(
            import_csv(postgres_url, big_csv(tmp_path / "second.csv", "LOST"), replace=True)
        )
        slowest = 0.0
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            t = time.perf_counter()
            status = await other.fetchval(
                "SELECT status FROM documents WHERE issuing_state = 'NZL' AND number = 'LA000001'"
            )
            slowest = max(slowest, time.perf_counter() - t)
            assert status == "STOLEN"
            await asyncio.sleep(0.01)
        assert not task.done(), "the swap waits for the open transaction"
        assert slowest < 1.0, "lookups queue behind the swap's lock for one short attempt at most"
        await reader.commit()
        report = await task
    finally:
        await long_reader.close()
        await other.close()
    assert report.inserted == 20_200
    assert (await rows(postgres_url))[0][2] == "LOST"
