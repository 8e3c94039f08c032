"""Revision 0005: ``documents`` clustered on its key (SQLite WITHOUT ROWID), from a 0004 store."""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from pathlib import Path

from alembic import command
from sqlalchemy import insert, text

from adapters.sqlstore.migrate import HEAD, _config, migrate_engine
from adapters.sqlstore.provider import SqlStoreProvider
from adapters.sqlstore.schema import documents, make_engine
from rmas.documents import DocumentQuery
from rmas.providers import ProviderInfo
from rmas.verdict import Record

INFO = ProviderInfo(id="NZL", issuing_states=frozenset({"NZL"}))
_EMPTY = {"reported_on": None, "reporting_authority": "", "detail": "", "surname": "",
          "given_names": "", "birth_date": None, "sex": "", "withdrawn": False}  # fmt: skip
ROWS = [
    {**_EMPTY, "issuing_state": "NZL", "number": "LA000001", "document_type": "P",
     "status": "VALID", "record_ref": "R1", "surname": "SMITH", "birth_date": dt.date(1980, 1, 2)},
    {**_EMPTY, "issuing_state": "NZL", "number": "LA000002", "document_type": "P",
     "status": "LOST", "reported_on": dt.date(2024, 3, 4), "record_ref": "R2", "detail": "Rome"},
    {**_EMPTY, "issuing_state": "NZL", "number": "LA000003", "document_type": "I",
     "status": "STOLEN", "record_ref": "R3", "withdrawn": True},
]  # fmt: skip
NUMBERS = ("LA000001", "LA000002", "LA000003", "LA000009")


async def answers(url: str) -> list[Record]:
    p = SqlStoreProvider(INFO, url)
    try:
        return await p.lookup_many([DocumentQuery("NZL", n) for n in NUMBERS], time.monotonic() + 5)
    finally:
        await p.aclose()


def ddl(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return str(
            db.execute("SELECT sql FROM sqlite_master WHERE name = 'documents'").fetchone()[0]
        )


async def _downgrade(url: str, target: str) -> None:
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: command.downgrade(_config(sync), target))
    await engine.dispose()


async def test_a_0004_store_is_served_then_migrated_with_its_records_and_indexes(
    db_url: str,
) -> None:
    engine = make_engine(db_url)
    await migrate_engine(engine, "0004")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE INDEX ix_documents_status ON documents (status)"))
        await conn.execute(insert(documents), ROWS)
    await engine.dispose()
    sqlite = db_url.startswith("sqlite")
    path = Path(db_url.split("///", 1)[1]) if sqlite else None
    before = await answers(db_url)  # a 0004 store is still served
    assert [r.record_ref for r in before] == ["R1", "R2", "", ""]

    engine = make_engine(db_url)
    assert await migrate_engine(engine) == ("0004", HEAD)
    async with engine.connect() as conn:
        sql = (
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'documents'"
            if sqlite
            else "SELECT indexname FROM pg_indexes WHERE tablename = 'documents'"
        )
        indexes = sorted(r[0] for r in await conn.exec_driver_sql(sql))
    await engine.dispose()
    assert await answers(db_url) == before
    if path is not None:
        assert ddl(path).endswith("WITHOUT ROWID")
        assert "CONSTRAINT uq_documents_key PRIMARY KEY (issuing_state, number)" in ddl(path)
        assert indexes == ["ix_documents_status"]
    else:
        assert indexes == ["ix_documents_status", "uq_documents_key"]

    await _downgrade(db_url, "0004")
    assert await answers(db_url) == before
    if path is not None:
        assert "WITHOUT ROWID" not in ddl(path)
        assert "CONSTRAINT uq_documents_key UNIQUE (issuing_state, number)" in ddl(path)
