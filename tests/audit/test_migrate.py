"""``rmas audit migrate`` on trails that the earlier rmas wrote (fixtures/audit, made by
fixtures/audit/make_old_trails.py with that code): SQLite with a row per entry, SQLite blocks,
PostgreSQL rows."""

# ruff: noqa: F811  (the fixtures are imported from tests.audit, which holds them)

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from rmas.audit import AuditSink, DocumentKeyer, find, find_check, head, verify
from rmas.audit.migrate import BLOCK, migrate
from rmas.audit.reader import VERIFY_CHUNK
from rmas.documents import validate_document
from rmas.errors import AuditError
from tests.audit import (  # noqa: F401  (fixtures)
    PgDatabases,
    entries,
    pg_databases,
    pg_execute,
    pg_url,
    raw_rows,
    sql_url,
    started,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "audit"
EXPECTED: dict[str, Any] = json.loads((FIXTURES / "expected.json").read_text())
KEYER = DocumentKeyer.from_file(FIXTURES / "audit.key")


def _copy(name: str, tmp_path: Path) -> str:
    shutil.copy(FIXTURES / name, tmp_path / name)
    return f"sqlite+aiosqlite:///{tmp_path / name}"


async def _load_pg_rows(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(sql_url(url))
    try:
        await conn.execute((FIXTURES / "pg_rows.sql").read_text())
    finally:
        await conn.close()


@pytest.fixture(params=["v1.db", "blocks.db", "pg_rows.sql"])
def old_trail(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """(url, what it holds) of a trail the earlier rmas wrote, in a place of its own."""
    name = request.param
    if name.endswith(".db"):
        return _copy(name, tmp_path), EXPECTED[name]
    url = request.getfixturevalue("pg_url")
    asyncio.run(_load_pg_rows(url))
    return url, EXPECTED[name]


def _key(state: str, number: str) -> str:
    economy, normalised = validate_document(issuing_state=state, number=number).key
    return KEYER.key_of(economy, normalised)


async def test_every_earlier_layout_is_refused_then_converted_and_found(
    old_trail: tuple[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, expected = old_trail
    # Read a few rows or blocks at a time, so that the old trail is read in several pages.
    monkeypatch.setattr("rmas.audit.migrate._READ", 7)
    monkeypatch.setattr("rmas.audit.migrate._READ_BLOCKS", 3)
    with pytest.raises(AuditError, match="earlier layout: convert it with `rmas audit migrate`"):
        await verify(url)
    sink = AuditSink(url)
    with pytest.raises(AuditError, match=r"layout of an earlier rmas.*rmas audit migrate"):
        await sink.start()
    await sink.aclose()

    done = await migrate(url, hub="hub-old")
    assert done.entries == expected["count"] == done.after.count
    assert f"{done.old_head[0]}:{done.old_head[1]}" == expected["head"]
    assert done.after.ok and await head(url) == done.after.head
    # Every entry is there, in order, with the hub given; the documents are found by key.
    for seq, check_id in enumerate(expected["check_ids"], 1):
        (entry,) = await find_check(url, check_id)
        assert (entry["seq"], entry["hub"]) == (seq, "hub-old")
    (nzl_state, nzl_number), (deu_state, deu_number) = expected["documents"]
    (nzl,) = await find(url, _key(nzl_state, nzl_number))
    assert (nzl["seq"], nzl["issuing_state"], nzl["verdict"]) == (1, "NZL", "CLEAR")
    (deu,) = await find(url, _key(deu_state, deu_number))
    assert (deu["seq"], deu["issuing_state"], deu["verdict"]) == (5, "D", "ALERT")
    manifest = await find_check(url, expected["check_ids"][15])
    assert manifest[0]["reference"] == "QF0001-20261122"
    odd = await find_check(url, expected["check_ids"][36])
    assert odd[0]["caller"] == "rmas://airline/Zürich\tdesk"

    # The old tables are gone; hubs append to the new chain; a second run has nothing to do.
    async with started(url) as sink:
        await sink.record(entries(2))
    report = await verify(url)
    assert report.ok and report.count == expected["count"] + 2
    with pytest.raises(AuditError, match="already has the current layout"):
        await migrate(url)


async def test_a_broken_earlier_trail_is_not_converted(tmp_path: Path) -> None:
    url = _copy("v1.db", tmp_path)
    db = sqlite3.connect(tmp_path / "v1.db", isolation_level=None)
    db.execute("UPDATE audit_entries SET verdict = 'CLEAR' WHERE seq = 5")
    db.close()
    with pytest.raises(AuditError, match=r"broken \(entry 5 edited: hash mismatch\); nothing"):
        await migrate(url)
    db = sqlite3.connect(tmp_path / "v1.db")
    tables = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    db.close()
    assert "audit_entries" in tables and "audit_block" not in tables  # left as it was


async def test_an_earlier_trail_with_a_gap_is_not_converted(tmp_path: Path) -> None:
    url = _copy("blocks.db", tmp_path)
    db = sqlite3.connect(tmp_path / "blocks.db", isolation_level=None)
    first = db.execute("SELECT first_seq FROM audit_blocks ORDER BY first_seq LIMIT 1 OFFSET 3")
    (seq,) = first.fetchone()
    db.execute("DELETE FROM audit_blocks WHERE first_seq = ?", (seq,))
    db.close()
    with pytest.raises(AuditError, match=f"entry {seq} missing or out of order"):
        await migrate(url)


async def test_large_trails_are_converted_in_blocks(tmp_path: Path) -> None:
    """More entries than a block holds: several blocks, read back across chunks."""
    from rmas.audit.format import GENESIS

    path = tmp_path / "v1.db"
    shutil.copy(FIXTURES / "v1.db", path)
    db = sqlite3.connect(path, isolation_level=None)
    rows = db.execute("SELECT * FROM audit_entries ORDER BY seq").fetchall()
    db.execute("DELETE FROM audit_entries")
    prev = GENESIS
    db.execute("BEGIN")
    for seq in range(1, BLOCK + 51):
        fields = list(rows[(seq - 1) % len(rows)][3:])
        fields[4] = f"{seq - 1:032x}"  # check_id
        text = b"%s\x00%d\x00%s" % (prev.encode(), seq, "\x00".join(fields).encode())
        digest = hashlib.sha256(text).hexdigest()
        db.execute(f"INSERT INTO audit_entries VALUES ({', '.join('?' * 14)})",
                   (seq, prev, digest, *fields))  # fmt: skip
        prev = digest
    db.execute("COMMIT")
    db.close()
    url = f"sqlite+aiosqlite:///{path}"
    done = await migrate(url)
    assert done.old_head == (BLOCK + 50, prev) and done.after.count == BLOCK + 50
    blocks = await raw_rows(url, "SELECT first_seq, last_seq FROM audit_block")
    assert blocks == [(1, BLOCK), (BLOCK + 1, BLOCK + 50)]
    assert (await verify(url, chunk=1)) == (await verify(url)) and VERIFY_CHUNK > 1
    (last,) = await find_check(url, f"{BLOCK + 49:032x}")
    assert (last["seq"], last["hub"]) == (BLOCK + 50, "")


async def test_nothing_to_migrate_is_said(tmp_path: Path, pg_url: str) -> None:
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with pytest.raises(AuditError, match="holds no audit trail"):
        await migrate(f"sqlite+aiosqlite:///{empty}")
    with pytest.raises(AuditError, match="holds no audit trail"):
        await migrate(pg_url)
    with pytest.raises(AuditError, match="cannot be migrated"):
        await migrate(f"sqlite+aiosqlite:///{tmp_path / 'missing.db'}")
