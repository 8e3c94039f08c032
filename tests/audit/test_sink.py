"""The audit sink on real SQLite files and a real PostgreSQL: group commit, one chain per database
however many writers, tamper evidence, lookups, failures and durability."""

# ruff: noqa: F811  (the fixtures are imported from tests.audit, which holds them)

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from rmas.audit import AuditSink, find, find_check, head, verify
from rmas.audit.format import FORMAT, GENESIS, TABLE, block_hash, decode, encode, seal
from rmas.audit.writers import PG_LOCK_KEY
from rmas.errors import AuditError, ConfigError
from tests.audit import (  # noqa: F401  (fixtures)
    CALLER,
    KEYER,
    PgDatabases,
    db_url,
    delete_entries,
    edit_entry,
    entries,
    pg_databases,
    pg_execute,
    pg_url,
    raw_rows,
    set_hash,
    sql_url,
    started,
    stored_check_ids,
)

ROOT = Path(__file__).resolve().parents[2]


async def seqs(url: str) -> list[int]:
    """The seq of every stored entry, block after block."""
    blocks = await raw_rows(url, f"SELECT first_seq, last_seq FROM {TABLE} ORDER BY first_seq")
    return [seq for first, last in blocks for seq in range(first, last + 1)]


# -- writing ------------------------------------------------------------------------------------


async def test_recorded_entries_are_chained_from_genesis(db_url: str) -> None:
    batch = entries(3)
    async with started(db_url) as sink:
        await sink.record(batch)
        await sink.record(entries(2))
        assert (
            sink.commits, sink.entries_written, sink.backlog, sink.failures, sink.healthy
        ) == (2, 5, 0, 0, True)  # fmt: skip
        assert sink.last_commit_ms > 0
    rows = await raw_rows(
        db_url, f"SELECT first_seq, last_seq, format, prev_hash, hash, body FROM {TABLE} "
        "ORDER BY first_seq",
    )  # fmt: skip
    assert [(r[0], r[1], r[2]) for r in rows] == [(1, 3, FORMAT), (4, 5, FORMAT)]
    # The same bytes and hashes on both engines: block 1 follows the genesis hash.
    body = bytes(rows[0][5])
    assert decode(FORMAT, body) == batch and body == encode(dataclasses.astuple(e) for e in batch)
    first = block_hash(FORMAT, GENESIS, 1, 3, body)
    assert (GENESIS, first) == (rows[0][3], rows[0][4])
    assert rows[1][3] == first == seal(GENESIS, 0, 3, body).hash
    report = await verify(db_url)
    assert report.ok and (5, (5, rows[-1][4])) == (report.count, report.head)
    assert (5, rows[-1][4]) == await head(db_url)


async def test_concurrent_records_share_commits(db_url: str) -> None:
    async with started(db_url) as sink:
        await asyncio.gather(*(sink.record(entries(2)) for _ in range(200)))
        assert sink.entries_written == 400
        assert sink.commits <= 5, "200 concurrent calls should share a handful of commits"
        assert sink.backlog == 0
    assert list(range(1, 401)) == await seqs(db_url)
    assert (await verify(db_url)).ok


async def test_a_commit_takes_whole_calls_up_to_max_batch(db_url: str) -> None:
    async with started(db_url, max_batch=50) as sink:
        await asyncio.gather(*(sink.record(entries(1)) for _ in range(200)))
        assert sink.commits == 4
        await sink.record(entries(120))  # a single call larger than max_batch is one commit
        assert sink.commits == 5
    assert (await verify(db_url)).count == 320


async def test_entries_queued_while_a_commit_runs_form_the_next_one(db_url: str) -> None:
    async with started(db_url) as sink:
        first = asyncio.ensure_future(sink.record(entries(1)))
        await asyncio.sleep(0)  # the writer takes the first call alone
        rest = [asyncio.ensure_future(sink.record(entries(1))) for _ in range(30)]
        await asyncio.gather(first, *rest)
        assert sink.commits == 2
    assert list(range(1, 32)) == await seqs(db_url)


async def test_the_number_is_never_stored(db_url: str, tmp_path: Path) -> None:
    async with started(db_url) as sink:
        await sink.record(entries(3, number="LA1234567", reference="QF1"))
    rows = await raw_rows(db_url, f"SELECT * FROM {TABLE}")
    assert "LA1234567" not in repr(rows) and "LA1234567" not in json.dumps(str(rows))
    if db_url.startswith("sqlite"):  # nor in any page of the file or its write-ahead log
        files = await asyncio.to_thread(
            lambda: [f.read_bytes() for f in tmp_path.glob("audit.db*")]
        )
        assert files and all(b"LA1234567" not in data for data in files)


async def test_sqlite_runs_in_wal_mode_with_full_synchronous_commits(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    async with started(url) as sink:  # as the writer process reports its connection's pragmas
        pragmas = sink._writer.pragmas  # type: ignore[attr-defined]
        assert (pragmas["journal_mode"], pragmas["synchronous"]) == ("wal", 2)
        assert pragmas["page_size"] == 16_384  # a new trail's (writer.PAGE_SIZE)
    async with started(url, synchronous="normal") as sink:
        assert sink._writer.pragmas["synchronous"] == 1  # type: ignore[attr-defined]


async def test_a_trail_made_with_other_pages_keeps_them(tmp_path: Path) -> None:
    """Page size is a new trail's choice; one made before (SQLite's default) is appended to as
    it is."""
    from rmas.audit.format import table_ddl

    path = tmp_path / "audit.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA page_size = 4096")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute(table_ddl("sqlite"))
    db.close()
    url = f"sqlite+aiosqlite:///{path}"
    async with started(url) as sink:
        assert sink._writer.pragmas["page_size"] == 4096  # type: ignore[attr-defined]
        await sink.record(entries(500))
    report = await verify(url)
    assert report.ok and report.count == 500


async def test_relative_sqlite_paths_are_resolved_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "var").mkdir()
    async with started("sqlite+aiosqlite:///var/audit.db") as sink:
        await sink.record(entries(1))
        assert str(tmp_path / "var" / "audit.db") == sink.location
    assert (tmp_path / "var" / "audit.db").exists()


def test_bad_settings_are_configuration_errors() -> None:
    for url in ("mysql://db/audit", "sqlite:///plain-driver.db", "postgresql://h/db", "nonsense"):
        with pytest.raises(ConfigError, match="sqlite\\+aiosqlite:///FILE") as info:
            AuditSink(url)
        assert info.value.key == "audit.url"
    with pytest.raises(ConfigError, match="file"):
        AuditSink("sqlite+aiosqlite:///:memory:")
    with pytest.raises(ConfigError) as info:
        AuditSink("sqlite+aiosqlite:///a.db", synchronous="OFF")
    assert info.value.key == "audit.synchronous"
    with pytest.raises(ConfigError):
        AuditSink("sqlite+aiosqlite:///a.db", max_batch=0)


async def test_record_needs_a_started_open_sink(tmp_path: Path) -> None:
    sink = AuditSink(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    with pytest.raises(AuditError, match="not started"):
        await sink.record(entries(1))
    await sink.record([])  # nothing to write is never an error
    await sink.start()
    await sink.aclose()
    await sink.aclose()  # closing twice is harmless
    with pytest.raises(AuditError, match="closed"):
        await sink.record(entries(1))
    with pytest.raises(AuditError, match="closed"):
        await sink.start()


async def test_aclose_commits_what_is_queued(db_url: str) -> None:
    sink = AuditSink(db_url)
    await sink.start()
    tasks = [asyncio.ensure_future(sink.record(entries(2))) for _ in range(50)]
    await asyncio.sleep(0)  # every call queued, none committed yet
    assert sink.backlog == 100
    await sink.aclose()
    assert all(t.done() and t.exception() is None for t in tasks)
    assert (sink.entries_written, sink.backlog) == (100, 0)
    assert (await verify(db_url)).count == 100


async def test_a_stopped_writer_fails_its_callers_and_empties_the_backlog(tmp_path: Path) -> None:
    sink = AuditSink(f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}")
    await sink.start()
    tasks = [asyncio.ensure_future(sink.record(entries(2))) for _ in range(5)]
    await asyncio.sleep(0)
    assert sink._drainer is not None
    sink._drainer.cancel()  # as at a hard shutdown of the loop
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(d, AuditError) for d in done)
    assert sink.backlog == 0
    await sink.aclose()


async def test_a_cancelled_caller_does_not_stop_the_others(db_url: str) -> None:
    async with started(db_url) as sink:
        tasks = [asyncio.ensure_future(sink.record(entries(1))) for _ in range(10)]
        await asyncio.sleep(0)
        tasks[3].cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(done[3], asyncio.CancelledError)
        assert all(d is None for i, d in enumerate(done) if i != 3)
    assert (await verify(db_url)).ok


# -- one chain, many writers ----------------------------------------------------------------------


async def test_two_sinks_on_one_database_form_one_chain(db_url: str) -> None:
    async with started(db_url) as a, started(db_url) as b:
        for _ in range(5):
            await asyncio.gather(
                *(a.record(entries(2)) for _ in range(20)),
                *(b.record(entries(3)) for _ in range(20)),
            )
        assert (a.entries_written, b.entries_written) == (200, 300)
    report = await verify(db_url)
    assert report.ok and report.count == 500
    assert list(range(1, 501)) == await seqs(db_url)


WRITER = """
import asyncio, sys
from rmas.audit import AuditSink
from tests.audit import entries

async def main(url, rounds):
    sink = AuditSink(url)
    await sink.start()
    for _ in range(rounds):
        await asyncio.gather(*(sink.record(entries(2)) for _ in range(10)))
    await sink.aclose()
    print("wrote", sink.entries_written, flush=True)

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


async def test_hub_processes_sharing_a_database_form_one_chain(db_url: str) -> None:
    # Three processes start on an empty database at once: schema creation races too.
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WRITER,
            db_url,
            "15",
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    outs = await asyncio.gather(*(p.communicate() for p in procs))
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, (out + err).decode()
        assert "wrote 300" in out.decode()
    report = await verify(db_url)
    assert report.ok and report.count == 900


KILLED_WRITER = """
import asyncio, sys
from rmas.audit import AuditSink
from tests.audit import entries

async def one(sink):
    batch = entries(3)
    await sink.record(batch)
    print("written", *(e.check_id for e in batch), flush=True)

async def main(url):
    sink = AuditSink(url)
    await sink.start()
    print("started", flush=True)
    while True:
        await asyncio.gather(*(one(sink) for _ in range(20)))

asyncio.run(main(sys.argv[1]))
"""


def test_a_killed_hub_loses_no_entry_whose_record_returned(db_url: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, db_url], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    written: list[str] = []
    try:
        for line in proc.stdout:
            if line.startswith("written"):
                written.extend(line.split()[1:])
                if len(written) >= 600:
                    break
        os.kill(proc.pid, signal.SIGKILL)
        rest, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    for line in rest.splitlines():
        if line.startswith("written"):
            written.extend(line.split()[1:])
    assert len(written) >= 600, err
    stored = asyncio.run(stored_check_ids(db_url))
    assert not set(written) - stored, "an entry whose record() returned was lost"
    assert asyncio.run(verify(db_url)).ok


# -- tamper evidence ------------------------------------------------------------------------------


async def _filled(url: str, n: int = 20) -> None:
    async with started(url) as sink:
        for _ in range(n // 5):
            await sink.record(entries(5))


async def test_an_edited_entry_is_detected(db_url: str) -> None:
    await _filled(db_url)
    await edit_entry(db_url, 7, verdict="ALERT", directive="DO_NOT_BOARD")
    await edit_entry(db_url, 12, caller="rmas://airline/XX")
    report = await verify(db_url)
    assert not report.ok
    # Each block is one call of 5 entries: one group, named by its range.
    assert report.problems == (
        "entries 6-10 edited: hash mismatch (block 6-10)",
        "entries 11-15 edited: hash mismatch (block 11-15)",
    )


async def test_an_edit_that_rewrote_its_hash_breaks_the_next_link(db_url: str) -> None:
    await _filled(db_url)  # commits of 5: entry 10 ends one block, entry 11 starts the next
    await edit_entry(db_url, 10, verdict="ALERT")
    (row,) = await raw_rows(db_url, f"SELECT prev_hash, body FROM {TABLE} WHERE first_seq = 6")
    await set_hash(db_url, 10, block_hash(FORMAT, row[0], 6, 10, bytes(row[1])))
    # The digests still name the group; the next block's link shows the rewritten hash.
    assert ((await verify(db_url)).problems) == (
        "block 6-10: the digests of entries 6-10 were altered (the entries themselves are intact)",
        "block 11-15 does not follow block 6-10: prev_hash mismatch",
    )


async def test_deleted_entries_are_detected(db_url: str) -> None:
    await _filled(db_url)
    await delete_entries(db_url, 6, 10)
    assert (await verify(db_url)).problems == ("entries 6-10 missing: seq gap",)
    await delete_entries(db_url, 1, 5)
    assert (await verify(db_url)).first_problem == "entries 1-10 missing: seq gap"


async def test_a_deleted_tail_is_detected_against_an_anchor(db_url: str) -> None:
    await _filled(db_url)
    anchor = await head(db_url)
    assert anchor[0] == 20
    await delete_entries(db_url, 16, 20)
    assert (await verify(db_url)).ok  # a chain alone cannot tell
    report = await verify(db_url, expect_head=anchor)
    assert not report.ok and report.first_problem is not None
    assert "entries 16-20 missing" in report.first_problem
    assert "tail deleted" in report.first_problem


async def test_the_chain_carries_on_after_an_anchor(db_url: str) -> None:
    await _filled(db_url)
    anchor = await head(db_url)
    await _filled(db_url, 10)
    report = await verify(db_url, expect_head=anchor)
    assert report.ok and report.count == 30


async def test_verify_reads_in_chunks(db_url: str) -> None:
    await _filled(db_url, 25)
    full = await verify(db_url)
    assert full == await verify(db_url, chunk=2)
    await delete_entries(db_url, 11, 15)
    assert (await verify(db_url, chunk=2)).problems == ("entries 11-15 missing: seq gap",)


# -- finding ------------------------------------------------------------------------------------


async def test_find_returns_every_check_of_a_document(db_url: str) -> None:
    async with started(db_url) as sink:
        await sink.record(entries(2))
        target = entries(2, number="LA1234567")
        await sink.record(target)
        await sink.record(entries(2, number="LA1234567", state="AUS"))  # another state's
    found = await find(db_url, KEYER.key_of("NZL", "LA1234567"))
    assert [f["seq"] for f in found] == [3, 4]
    assert [e.check_id for e in target] == [f["check_id"] for f in found]
    assert {"NZL"} == {f["issuing_state"] for f in found}
    assert target[0].sources == found[0]["sources"]
    assert await find(db_url, KEYER.key_of("NZL", "LA7654321")) == []
    (one,) = await find_check(db_url, target[1].check_id)
    assert one["seq"] == 4


async def test_find_compares_in_full_what_the_scan_found(db_url: str) -> None:
    """A value found in a block's bytes is not a match unless the entry's field equals it."""
    async with started(db_url) as sink:
        made = entries(3, number="B0000001")
        await sink.record(made)
        await sink.record(entries(2))
    key = made[0].document_key
    assert [f["seq"] for f in await find(db_url, key)] == [1, 2, 3]
    assert await find(db_url, key[:40]) == []  # in the bytes, but no entry's whole key
    assert await find_check(db_url, key) == []  # a document key is no check id
    assert await find(db_url, made[0].check_id) == []


# -- failures -------------------------------------------------------------------------------------


async def test_an_unreachable_database_fails_start(tmp_path: Path) -> None:
    sink = AuditSink(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'audit.db'}")
    with pytest.raises(AuditError, match=r"missing/audit\.db cannot be opened.*directory"):
        await sink.start()
    assert not sink.healthy
    await sink.aclose()
    pg = AuditSink("postgresql+asyncpg://rmas:secret@127.0.0.1:1/audit", timeout_s=2)
    with pytest.raises(AuditError, match=r"127\.0\.0\.1:1/audit unreachable") as info:
        await pg.start()
    assert "secret" not in str(info.value)


async def test_sqlite_directory_removed_fails_the_commit_and_never_starts_a_new_chain(
    tmp_path: Path,
) -> None:
    where = tmp_path / "var"
    where.mkdir()
    async with started(f"sqlite+aiosqlite:///{where / 'audit.db'}") as sink:
        await sink.record(entries(2))
        shutil.rmtree(where)
        with capture_logs() as logs, pytest.raises(AuditError, match="removed while in use"):
            await sink.record(entries(2, number="LA1234567"))
        assert (sink.healthy, sink.failures, sink.backlog) == (False, 1, 0)
        where.mkdir()  # even with the directory back, no fresh empty chain is started
        with pytest.raises(AuditError, match="no longer exists"):
            await sink.record(entries(1))
        assert not (where / "audit.db").exists()
    assert "LA1234567" not in repr(logs)
    assert any(e["event"] == "audit_commit_failed" for e in logs)


async def test_a_locked_database_fails_the_commit_then_recovers(db_url: str) -> None:
    await _filled(db_url, 5)
    async with started(db_url, timeout_s=0.3) as sink, _locked(db_url):
        task = asyncio.ensure_future(sink.record(entries(4)))
        await asyncio.sleep(0.1)
        assert sink.backlog == 4  # waiting for the lock
        with pytest.raises(AuditError, match="not written"):
            await task
        assert (sink.healthy, sink.failures, sink.backlog) == (False, 1, 0)
    async with started(db_url) as sink:
        await sink.record(entries(1))
        assert sink.healthy
    report = await verify(db_url)
    assert report.ok and report.count == 6  # the failed commit left nothing behind


async def test_a_failed_commit_recovers_when_the_lock_goes(db_url: str) -> None:
    async with started(db_url, timeout_s=0.3) as sink:
        await sink.record(entries(1))
        async with _locked(db_url):
            with pytest.raises(AuditError):
                await sink.record(entries(1))
            assert not sink.healthy
        await sink.record(entries(2))
        assert (sink.healthy, sink.failures, sink.entries_written) == (True, 1, 3)
    assert list(range(1, 4)) == await seqs(db_url)


@contextlib.asynccontextmanager
async def _locked(url: str) -> AsyncIterator[None]:
    """Another connection holds the database's write lock (SQLite) or the table (PostgreSQL)."""
    if url.startswith("sqlite"):
        db = sqlite3.connect(url.split(":///", 1)[1], isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            db.execute("ROLLBACK")
            db.close()
        return
    import asyncpg

    conn = await asyncpg.connect(sql_url(url))
    try:
        async with conn.transaction():
            await conn.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
            yield
    finally:
        await conn.close()


async def test_a_dropped_postgresql_database_fails_the_commit(
    postgres_url: str, pg_databases: PgDatabases
) -> None:
    url = await pg_databases.create(postgres_url)
    if url is None:
        pytest.skip("no privilege to create a database to drop")
    name = url.rpartition("/")[2]
    async with started(url) as sink:
        await sink.record(entries(2))
        await pg_execute(postgres_url, f"DROP DATABASE {name} WITH (FORCE)")
        with pytest.raises(AuditError, match="not written"):
            await sink.record(entries(1))
        assert not sink.healthy
        with pytest.raises(AuditError, match="does not exist"):
            await sink.record(entries(1))
        assert sink.failures == 2


async def test_postgresql_commits_wait_for_another_writers_lock(pg_url: str) -> None:
    import asyncpg

    db_url = pg_url
    async with started(db_url) as sink:
        other = await asyncpg.connect(sql_url(db_url))
        try:
            await other.execute(f"SELECT pg_advisory_lock({PG_LOCK_KEY})")
            task = asyncio.ensure_future(sink.record(entries(2)))
            await asyncio.sleep(0.2)
            assert not task.done() and sink.backlog == 2
            await other.execute(f"SELECT pg_advisory_unlock({PG_LOCK_KEY})")
            await task
        finally:
            await other.close()
    assert (await verify(db_url)).ok


async def test_reading_a_database_without_a_trail_is_a_precise_error(
    db_url: str, tmp_path: Path
) -> None:
    if db_url.startswith("sqlite"):
        with pytest.raises(AuditError, match="does not exist"):
            await verify(db_url)
        sqlite3.connect(tmp_path / "audit.db").close()
    with pytest.raises(AuditError, match="holds no audit trail"):
        await verify(db_url)
    with pytest.raises(AuditError, match="holds no audit trail"):
        await find(db_url, "0" * 64)


async def test_a_probe_proves_the_trail_writable_without_adding_an_entry(db_url: str) -> None:
    async with started(db_url, timeout_s=0.3) as sink:
        await sink.record(entries(2))
        assert await sink.probe() and sink.healthy and sink.idle_s < 1.0
        async with _locked(db_url):
            assert not await sink.probe()
            assert not sink.healthy and sink.failures == 0  # a probe is not a failed commit
            assert not await sink.probe()
        assert await sink.probe() and sink.healthy
        await sink.record(entries(1))
    report = await verify(db_url)
    assert report.ok and report.count == 3  # the probes added nothing to the chain
    assert await seqs(db_url) == [1, 2, 3]


async def test_a_probe_needs_an_open_sink(tmp_path: Path) -> None:
    sink = AuditSink(f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}")
    assert not await sink.probe()
    await sink.start()
    assert await sink.probe()
    await sink.aclose()
    assert not await sink.probe()


async def test_a_probe_never_recreates_a_removed_sqlite_trail(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    async with started(f"sqlite+aiosqlite:///{path}") as sink:
        await sink.record(entries(1))
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{path}{suffix}")
        assert not await sink.probe()
        assert not await sink.probe()  # the writer restarted: the file is still missing
    assert not path.exists()  # no probe created a new, empty trail
