"""Trails of format-1 blocks, as hubs wrote them before format 2 (fixtures/audit/format1.db,
written by that code: make_format1_trail.py), read as they were and appended to in format 2:
one chain of both formats, on SQLite and PostgreSQL."""

# ruff: noqa: F811  (the fixtures are imported from tests.audit, which holds them)

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import importlib.util
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rmas.audit import AuditSink, AuditTrail, Channel, DocumentKeyer, find, find_check, head, verify
from rmas.audit.entry import encode_entries
from rmas.audit.format import FORMAT, FORMAT_1, FORMAT_2, INSERT_SQL, decode, table_ddl
from rmas.audit.reader import find_card
from rmas.documents import validate_document
from tests.audit import (  # noqa: F401  (fixtures)
    CALLER,
    PgDatabases,
    db_url,
    edit_entry,
    pg_databases,
    raw_rows,
    result,
    sql_url,
)

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures" / "audit"
EXPECTED: dict[str, Any] = json.loads((FIXTURES / "format1.json").read_text())
KEYER = DocumentKeyer.from_file(FIXTURES / "audit.key")


def _fixture_script() -> Any:
    """make_format1_trail.py as a module (its calls: the results and callers it recorded)."""
    spec = importlib.util.spec_from_file_location(
        "make_format1", FIXTURES / "make_format1_trail.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _old_rows() -> list[tuple[Any, ...]]:
    db = sqlite3.connect(FIXTURES / "format1.db")
    try:
        return db.execute("SELECT * FROM audit_block ORDER BY first_seq").fetchall()
    finally:
        db.close()


async def _load_pg(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(sql_url(url))
    try:
        await conn.execute(table_ddl("postgresql"))
        insert = INSERT_SQL.replace("?", "${}").format(*range(1, 8))
        await conn.executemany(insert, _old_rows())
    finally:
        await conn.close()


@pytest.fixture
def old_trail(db_url: str) -> str:
    """A trail of format-1 blocks, on each engine: the file itself, or its rows in PostgreSQL."""
    if db_url.startswith("sqlite"):
        path = Path(db_url.split(":///", 1)[1])
        shutil.copy(FIXTURES / "format1.db", path)
    else:
        asyncio.run(_load_pg(db_url))
    return db_url


def _key(state: str, number: str) -> str:
    economy, normalised = validate_document(issuing_state=state, number=number).key
    return KEYER.key_of(economy, normalised)


def test_format_2_gives_the_entries_format_1_gave() -> None:
    """The same calls, encoded by this hub, decode to exactly the entries that the code of
    format 1 read back from its own blocks (the fixture), field for field."""
    calls = _fixture_script()._calls()
    expected = EXPECTED["entries"]
    at = 0
    for results, caller, channel, reference in calls:
        now = dt.datetime.fromisoformat(expected[at]["time"])
        body = encode_entries(results, caller, channel, KEYER, hub="hub-f1", reference=reference,
                              now=now)  # fmt: skip
        got = [dataclasses.asdict(e) for e in decode(FORMAT, body)]
        assert got == expected[at : at + len(results)]
        at += len(results)
    assert at == EXPECTED["count"]


async def test_a_format_1_trail_reads_as_it_did(old_trail: str) -> None:
    report = await verify(old_trail)
    assert report.ok and f"{report.head[0]}:{report.head[1]}" == EXPECTED["head"]
    assert report.formats == ((FORMAT_1, EXPECTED["count"]),)
    rows = await raw_rows(old_trail, "SELECT format, body FROM audit_block ORDER BY first_seq")
    assert len(rows) == EXPECTED["blocks"]
    assert [dataclasses.asdict(e) for fmt, body in rows for e in decode(fmt, bytes(body))] == (
        EXPECTED["entries"]
    )
    for state, number, seqs in EXPECTED["documents"]:
        found = await find(old_trail, _key(state, number))
        assert [f["seq"] for f in found] == seqs
        for f in found:
            assert {k: v for k, v in f.items() if k not in ("seq", "block")} == (
                EXPECTED["entries"][f["seq"] - 1]
            )
    card = KEYER.key_of("ABTC:AUS", "AU1234567")
    assert [f["seq"] for f in await find_card(old_trail, card)] == [151]


async def test_a_new_hub_appends_format_2_blocks_to_a_format_1_trail(old_trail: str) -> None:
    old = await head(old_trail)
    trail = AuditTrail(AuditSink(old_trail), KEYER, hub_id="hub-f2")
    await trail.start()
    try:
        again = [result("FA0001", "NZL")]  # a document the format-1 blocks already name
        manifest = [result(f"FB{i:04d}", "NZL") for i in range(150)]
        await trail.record(again, CALLER, Channel.DOCUMENT)
        await trail.record(manifest, CALLER, Channel.MANIFEST, "QF9")
    finally:
        await trail.aclose()
    count = EXPECTED["count"]
    report = await verify(old_trail, expect_head=old)  # the anchor kept before still holds
    assert report.ok and report.count == count + 151
    assert report.formats == ((FORMAT_1, count), (FORMAT_2, 151))
    blocks = await raw_rows(old_trail, "SELECT first_seq, last_seq, format FROM audit_block "
                            f"WHERE first_seq > {count} ORDER BY first_seq")  # fmt: skip
    assert blocks == [(count + 1, count + 1, FORMAT_2), (count + 2, count + 151, FORMAT_2)]
    # Found in blocks of both formats, alike.
    found = await find(old_trail, _key("NZL", "FA0001"))
    assert [f["seq"] for f in found] == [1, 151, count + 1]
    assert [(f["hub"], f["channel"]) for f in found] == [
        ("hub-f1", "document"), ("hub-f1", "document"), ("hub-f2", "document")
    ]  # fmt: skip
    (last,) = await find_check(old_trail, manifest[-1].check_id)
    assert (last["seq"], last["reference"], last["caller"]) == (
        count + 151, "QF9", CALLER.identity
    )  # fmt: skip
    (first,) = await find_check(old_trail, EXPECTED["entries"][11]["check_id"])
    assert first["seq"] == 12 and first["reference"] == "QF0001-20261122"

    # An edit is named by entry in a format-1 block, by group in a format-2 block.
    await edit_entry(old_trail, 12, verdict="ALERT")
    await edit_entry(old_trail, count + 100, directive="DO_NOT_BOARD")
    assert (await verify(old_trail)).problems == (
        "entry 12 edited: hash mismatch (block 11-140)",
        f"entries {count + 66}-{count + 129} edited: hash mismatch (block {count + 2}-"
        f"{count + 151})",
    )


def test_verify_prints_the_formats_of_a_mixed_trail(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    shutil.copy(FIXTURES / "format1.db", path)
    url = f"sqlite+aiosqlite:///{path}"

    async def append() -> None:
        trail = AuditTrail(AuditSink(url), KEYER, hub_id="hub-f2")
        await trail.start()
        await trail.record([result(), result("LA7654321")], CALLER, Channel.MANIFEST)
        await trail.aclose()

    asyncio.run(append())
    out = subprocess.run(
        [sys.executable, "-m", "rmas.cli", "audit", "verify", "--url", url],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    count = EXPECTED["count"]
    assert f"audit trail intact: {count + 2} entries" in out.stdout
    assert f"entries by block format: {FORMAT_1} {count}, {FORMAT_2} 2" in out.stdout
    # A block that names the other format is broken, whichever way.
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("UPDATE audit_block SET format = ? WHERE first_seq = 1", (FORMAT_2,))
    db.execute("UPDATE audit_block SET format = ? WHERE first_seq = ?", (FORMAT_1, count + 1))
    db.close()
    broken = asyncio.run(verify(url)).problems
    assert broken == (
        "block 1-1 altered: its body does not start with a group (the group from entry 1)",
        f"block {count + 1}-{count + 2} altered: not 12 fields in each entry",
    )


def test_the_format_1_fixture_is_what_its_script_says() -> None:
    """A guard on the fixture: one block per call, all of format 1, ending at its head."""
    rows = _old_rows()
    assert {r[2] for r in rows} == {FORMAT_1} and FORMAT != FORMAT_1
    assert len(rows) == EXPECTED["blocks"] == len(_fixture_script()._calls())
    assert f"{rows[-1][1]}:{rows[-1][4]}" == EXPECTED["head"]
