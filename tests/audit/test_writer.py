"""The SQLite writer process and the block layout: wire form, storage, the view, lookups, tamper
evidence on blocks, the process's life and death, the linger, and the earlier layout (reading
and migrating it)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.dialects import sqlite as sqlite_dialect

from rmas.audit import AuditSink, Channel, entries_for, find, find_check, head, verify
from rmas.audit import writer as w
from rmas.audit.chain import FIELDS, GENESIS, entry_body, entry_fields, hash_entry, link_hash
from rmas.audit.entry import AuditEntry, encode_entries
from rmas.audit.sink import _SQLITE_LOOKUP, LINGER_BELOW, _ddl, encode_group, migrate
from rmas.errors import AuditError
from tests.audit import (
    CALLER,
    KEYER,
    NOW,
    edit_entry,
    entries,
    raw_rows,
    result,
    rewrite_block,
    set_hash,
    started,
)

ROOT = Path(__file__).resolve().parents[2]


def invalid(n: int) -> list[AuditEntry]:
    """Entries of data that failed validation: no issuing state, no document key."""
    from rmas.hub import CheckResult, new_check_id
    from rmas.verdict import Directive, Verdict

    results = [
        CheckResult(new_check_id(), "", Verdict.INVALID_DATA, Directive.DO_NOT_BOARD)
        for _ in range(n)
    ]
    return entries_for(results, CALLER, Channel.MANIFEST, KEYER, now=NOW)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"


def writer_pid(sink: AuditSink) -> int:
    pid = sink._writer.pid  # type: ignore[attr-defined]
    assert isinstance(pid, int)
    return pid


def gone(pid: int, within_s: float = 10.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it if it is ours
        time.sleep(0.05)
    return False


# -- wire form and storage ------------------------------------------------------------------------


def test_the_writer_hashes_as_the_chain_defines() -> None:
    for body in (b"", b"a\x00b", "é\x00ü".encode(), b"x" * 5000):
        for seq in (1, 9, 12345678901):
            assert w.link_hash(GENESIS, seq, body) == link_hash(GENESIS, seq, body)


def test_the_hub_and_entries_for_encode_alike() -> None:
    from rmas.hub import CheckResult, new_check_id
    from rmas.verdict import Directive, Verdict

    bad = CheckResult(new_check_id(), "", Verdict.INVALID_DATA, Directive.DO_NOT_BOARD)
    results = [result(), result("LA7654321", "AUS"), bad]
    keys, group = encode_entries(results, CALLER, Channel.MANIFEST, KEYER, reference="QF1", now=NOW)
    made = entries_for(results, CALLER, Channel.MANIFEST, KEYER, reference="QF1", now=NOW)
    assert (keys, group) == encode_group(made)
    # Each entry's canonical body (what its hash covers) lies between the entry marks.
    assert w.bodies_of(3, group) == [entry_body(entry_fields(e)) for e in made]
    tags = [keys[i : i + 16].decode() for i in range(0, len(keys), 16)]
    assert tags[0::2] == [e.check_id[:16] for e in made]
    assert tags[1::2] == [made[0].document_key[:16], made[1].document_key[:16], w.NO_TAG]


def test_key_tags() -> None:
    hexed = "0123456789abcdef0123"
    assert w.key_tag(hexed) == hexed[:16]
    assert w.key_tag("") == w.NO_TAG
    for odd in ("c1", "0123456789ABCDEF0", "zz" * 10, "é" * 20, "0123456789abcdeg"):
        tag = w.key_tag(odd)
        assert len(tag) == 16 and tag != odd[:16] and int(tag, 16) >= 0


def test_malformed_groups_are_refused() -> None:
    with pytest.raises(w.WriterError, match="malformed"):
        w.bodies_of(2, b"\xff\x00a")
    with pytest.raises(w.WriterError, match="malformed"):
        w.bodies_of(1, b"a\x00b")
    good = b"\xff\x00" + b"\x00".join([b"f"] * w.NFIELDS)
    assert w.bodies_of(2, good + b"\x00" + good) == [good[2:], good[2:]]
    # The totals balance, but one entry has a field too many and the next one too few.
    long, short = good + b"\x00x", good.rsplit(b"\x00", 1)[0]
    with pytest.raises(w.WriterError, match="11 fields in each entry"):
        w.bodies_of(2, long + b"\x00" + short)
    with pytest.raises(w.WriterError, match="not UTF-8 at byte 2"):
        w.bodies_of(1, b"\xff\x00\xc3(" + good[3:])
    with pytest.raises(w.WriterError, match="not 0 entries"):
        w.bodies_of(0, b"")


async def test_a_malformed_call_fails_alone(url: str) -> None:
    keys, group = encode_group(entries(2))
    async with started(url) as sink:
        calls = [
            sink.record_encoded(2, keys, group),
            sink.record_encoded(2, keys[:-1], group),  # a key short
            sink.record_encoded(1, keys[:32], group),  # two entries said to be one
            sink.record_encoded(2, keys, group),
        ]
        done = await asyncio.gather(*calls, return_exceptions=True)
    assert [type(d).__name__ for d in done] == ["NoneType", "AuditError", "AuditError", "NoneType"]
    assert (await verify(url)).count == 4


async def test_a_commit_is_one_block_and_the_view_shows_its_entries(url: str) -> None:
    batch = entries(3, reference="QF1")
    async with started(url) as sink:
        await sink.record(batch)
        await sink.record(entries(2))
    db = sqlite3.connect(url.split(":///")[1])
    assert db.execute("PRAGMA user_version").fetchone()[0] == w.SCHEMA_VERSION
    assert db.execute("SELECT first_seq, last_seq FROM audit_blocks").fetchall() == [(1, 3), (4, 5)]
    db.close()
    rows = await raw_rows(url, "SELECT * FROM audit_entries ORDER BY seq")
    prev = GENESIS
    for seq, (row, entry) in enumerate(zip(rows, batch, strict=False), 1):
        assert row == (seq, prev, hash_entry(prev, seq, entry), *entry_fields(entry))
        prev = row[2]
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5]


async def test_any_text_survives_storage(url: str) -> None:
    odd = 'a "quoted" \\ back\\slash, tab\t, bell\x07, é, 中文, emoji \U0001f600'
    entry = AuditEntry(
        "2026-11-22T10:04:05.123456+00:00", odd, "officer", "document", "c1", "", "",
        "[]", "INVALID_DATA", "DO_NOT_BOARD", "ref \x1f end",
    )  # fmt: skip
    async with started(url) as sink:
        await sink.record([entry, *entries(1)])
        await sink.record([entry])
    (one, _other, again) = await raw_rows(url, "SELECT * FROM audit_entries ORDER BY seq")
    assert one[3:] == entry_fields(entry) == again[3:]
    assert (await verify(url)).ok
    found = await find_check(url, "c1")  # a check id that is not hex: tagged by its hash
    assert [f["seq"] for f in found] == [1, 3] and found[0]["caller"] == odd


async def test_lookups_scan_the_tags_of_every_block(url: str) -> None:
    key = KEYER.key_of("NZL", "B0000001")
    one = entries(1, number="B0000001")[0]
    # A check id whose tag is the document key's: found by check id, never by document key.
    other = entry_fields(entries(1)[0])
    decoy = AuditEntry(*other[:4], key, *other[5:])
    async with started(url) as sink:
        await sink.record([one])
        await sink.record(invalid(300))  # entries without a document key
        await sink.record([decoy, one])
    assert [f["seq"] for f in await find(url, key)] == [1, 303]
    assert [f["seq"] for f in await find_check(url, key)] == [302]
    assert [f["seq"] for f in await find_check(url, one.check_id)] == [1, 303]
    assert await find(url, "") == [] and await find(url, "0" * 64) == []
    db = sqlite3.connect(url.split(":///")[1])
    keys = db.execute("SELECT group_concat(keys, '') FROM audit_blocks").fetchone()[0]
    db.close()
    assert len(keys) == 32 * 303 and keys[16:32] == key[:16] and keys[48:64] == w.NO_TAG


async def test_sinks_sharing_a_file_form_one_chain_that_finds_everything(url: str) -> None:
    async with started(url) as a, started(url) as b:
        for _ in range(3):
            await asyncio.gather(a.record(entries(700)), b.record(entries(700)))
        await a.record(entries(1, number="LA5555555"))
    report = await verify(url)
    assert report.ok and report.count == 4201
    assert [f["seq"] for f in await find(url, KEYER.key_of("NZL", "LA5555555"))] == [4201]


# -- tamper evidence on blocks --------------------------------------------------------------------


async def _filled(url: str) -> None:
    async with started(url) as sink:
        for _ in range(4):
            await sink.record(entries(5))  # blocks 1-5, 6-10, 11-15, 16-20


async def test_a_rewritten_hash_inside_a_block_breaks_the_next_entry(url: str) -> None:
    await _filled(url)
    (row,) = await raw_rows(url, "SELECT * FROM audit_entries WHERE seq = 7")
    fields = list(row[3:])
    fields[FIELDS.index("verdict")] = "ALERT"
    await edit_entry(url, 7, verdict="ALERT")
    await set_hash(url, 7, link_hash(row[1], 7, entry_body(fields)))
    # Inside a block the next entry's prev_hash is the stored hash before it: the forged hash
    # makes entry 8's own hash wrong instead (a row per entry reports "does not follow").
    assert (await verify(url)).problems == ("entry 8 edited: hash mismatch",)


async def test_an_altered_block_is_reported_and_checking_resumes(url: str) -> None:
    await _filled(url)
    rewrite_block(url, 6, lambda entries: entries[:2] + entries[3:])  # an entry removed
    db = sqlite3.connect(url.split(":///")[1], isolation_level=None)
    db.execute("UPDATE audit_blocks SET body = x'00ff' WHERE first_seq = 16")
    db.close()
    report = await verify(url)
    assert report.count == 10 and report.problem_count == 2
    assert report.problems[0].startswith("entries 6-10 unreadable: block 6 altered")
    assert report.problems[1].startswith("entries 16-20 unreadable: block 16 altered")


async def test_an_inserted_block_is_out_of_order(url: str) -> None:
    await _filled(url)
    db = sqlite3.connect(url.split(":///")[1], isolation_level=None)
    first = db.execute("SELECT prev_hash, hashes, keys, body FROM audit_blocks WHERE first_seq = 1")
    prev_hash, hashes, keys, body = first.fetchone()
    db.execute(
        "INSERT INTO audit_blocks VALUES (8, 8, ?, ?, ?, ?)",
        (prev_hash, hashes[:32], keys[:32], json.dumps(w.block_fields(body)[:1]).encode()),
    )
    db.close()
    # Reported once; the chain is followed on from entry 10 (no false gap, links still checked).
    assert (await verify(url)).problems == ("entry 8 out of order: it comes after entry 10",)


async def test_altered_lookup_keys_are_reported(url: str) -> None:
    await _filled(url)
    (target,) = await raw_rows(url, "SELECT document_key FROM audit_entries WHERE seq = 7")
    assert [e["seq"] for e in await find(url, target[0])] == [7]
    db = sqlite3.connect(url.split(":///")[1], isolation_level=None)
    db.execute("UPDATE audit_blocks SET keys = ? WHERE first_seq = 6", (b"-" * 160,))
    db.close()
    assert await find(url, target[0]) == []  # hidden from lookups...
    assert (await verify(url)).problems == (  # ...but not from verify
        "entries 6-10: lookup keys altered (rmas audit find would not find them)",
    )


async def test_a_block_that_is_no_block_is_reported_and_never_appended_to(url: str) -> None:
    await _filled(url)
    async with started(url) as sink:
        await sink.record(entries(1))
        db = sqlite3.connect(url.split(":///")[1], isolation_level=None)
        db.execute("INSERT INTO audit_blocks VALUES (22, 21, 'x', x'', x'', '[]')")  # empty
        db.close()
        with pytest.raises(AuditError, match="audit trail damaged: its last block"):
            await sink.record(entries(1))
    report = await verify(url)
    assert report.problems == ("block 22 altered (its seq range 22-21 is not one)",)
    with pytest.raises(AuditError, match="audit trail damaged: its last block"):
        async with started(url):  # opening reads the tail too
            pass


async def test_a_block_with_a_seq_that_is_no_number_is_reported(url: str) -> None:
    await _filled(url)
    db = sqlite3.connect(url.split(":///")[1], isolation_level=None)
    db.execute("UPDATE audit_blocks SET last_seq = 'x' WHERE first_seq = 16")
    db.close()
    report = await verify(url)  # a report, not a crash
    assert report.problems == ("block 16 altered (its seq range 16-'x' is not one)",)


async def test_a_removed_write_ahead_log_fails_the_next_commit(url: str) -> None:
    path = url.split(":///")[1]
    async with started(url) as sink:
        await sink.record(entries(2))
        os.unlink(f"{path}-wal")  # acknowledged entries not yet checkpointed go with it
        with pytest.raises(AuditError, match="write-ahead log was removed while in use"):
            await sink.record(entries(1))
        assert not sink.healthy


# -- the writer process ---------------------------------------------------------------------------


async def test_a_dead_writer_fails_the_commit_it_held_and_a_new_one_takes_over(url: str) -> None:
    async with started(url, timeout_s=30) as sink:
        await sink.record(entries(2))
        first = writer_pid(sink)
        blocker = sqlite3.connect(url.split(":///")[1], isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # the writer now waits for the lock...
        try:
            task = asyncio.ensure_future(sink.record(entries(3)))
            await asyncio.sleep(0.3)
            assert not task.done()
            os.kill(first, signal.SIGKILL)  # ...and dies
            with pytest.raises(AuditError, match=r"audit writer process stopped \(exit code -9\)"):
                await task
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert (sink.healthy, sink.failures, sink.backlog) == (False, 1, 0)
        await sink.record(entries(1))  # a new writer, on the same file
        assert sink.healthy and writer_pid(sink) != first
    report = await verify(url)
    assert report.ok and report.count == 3


async def test_the_writer_ends_with_the_sink_not_with_a_signal(url: str) -> None:
    async with started(url) as sink:
        pid = writer_pid(sink)
        os.kill(pid, signal.SIGINT)  # a Ctrl-C at a terminal reaches the whole process group
        os.kill(pid, signal.SIGTERM)  # so does a service manager's stop
        await asyncio.sleep(0.2)
        await sink.record(entries(2))
        assert writer_pid(sink) == pid
    assert gone(pid)


HUB = """
import asyncio, sys
from rmas.audit import AuditSink
from tests.audit import entries

async def main(url):
    sink = AuditSink(url)
    await sink.start()
    await sink.record(entries(2))
    print(sink._writer.pid, flush=True)
    await asyncio.sleep(60)

asyncio.run(main(sys.argv[1]))
"""


def test_a_killed_hub_leaves_no_writer_behind(url: str) -> None:
    hub = subprocess.Popen(
        [sys.executable, "-c", HUB, url], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert hub.stdout is not None
        pid = int(next(line for line in hub.stdout if line.strip().isdigit()))
        hub.kill()
        hub.wait(10)
        assert gone(pid), "the writer outlived its hub"
    finally:
        if hub.poll() is None:
            hub.kill()
    assert asyncio.run(verify(url)).count == 2


# -- the linger -----------------------------------------------------------------------------------


async def test_tiny_groups_wait_for_the_linger_only_while_commits_follow_each_other(
    url: str,
) -> None:
    async with started(url, linger_s=0.25) as sink:
        await asyncio.sleep(0.3)
        t0 = time.monotonic()
        await sink.record(entries(1))  # idle: no wait
        assert time.monotonic() - t0 < 0.2
        await sink.record(entries(1))  # right after a commit: waits for the linger
        assert time.monotonic() - t0 >= 0.25
        t1 = time.monotonic()
        await sink.record(entries(LINGER_BELOW))  # not tiny: no wait
        assert time.monotonic() - t1 < 0.2
        # Under load, the tiny calls that arrive during a linger share one commit.
        before = sink.commits
        await asyncio.gather(*(sink.record(entries(1)) for _ in range(20)))
        assert sink.commits - before == 1


# -- the earlier layout ---------------------------------------------------------------------------


def _v1(path: Path, n: int, *, edit: int = 0) -> list[AuditEntry]:
    """A trail as rmas wrote it before blocks: a table row per entry, with the v1 indexes."""
    made = entries(n)
    db = sqlite3.connect(path, isolation_level=None)
    for statement in _ddl(sqlite_dialect.dialect()):
        db.execute(statement)
    prev = GENESIS
    for seq, e in enumerate(made, 1):
        digest = hash_entry(prev, seq, e)
        fields = list(entry_fields(e))
        if seq == edit:
            fields[FIELDS.index("verdict")] = "ALERT"
        db.execute(f"INSERT INTO audit_entries VALUES ({', '.join('?' * 14)})",
                   (seq, prev, digest, *fields))  # fmt: skip
        prev = digest
    db.close()
    return made


async def test_an_earlier_trail_is_read_refused_for_writing_and_migrated(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    url = f"sqlite+aiosqlite:///{path}"
    made = _v1(path, w.MIGRATE_BLOCK + 10)
    before = await verify(url)
    assert before.ok and before.count == len(made)
    assert await head(url) == before.head
    assert [f["seq"] for f in await find_check(url, made[4100].check_id)] == [4101]

    sink = AuditSink(url)
    with pytest.raises(AuditError, match=r"earlier rmas.*rmas audit migrate"):
        await sink.start()
    await sink.aclose()

    done = await migrate(url)
    assert done.entries == len(made) and done.after is not None
    assert (done.after.count, done.after.head) == (before.count, before.head)
    db = sqlite3.connect(path)
    assert db.execute("SELECT first_seq, last_seq FROM audit_blocks").fetchall() == [
        (1, w.MIGRATE_BLOCK), (w.MIGRATE_BLOCK + 1, len(made))
    ]  # fmt: skip
    db.close()
    async with started(url) as sink:
        await sink.record(entries(2))
    report = await verify(url)
    assert report.ok and report.count == len(made) + 2
    assert [f["seq"] for f in await find_check(url, made[3].check_id)] == [4]
    assert [f["seq"] for f in await find_check(url, made[4100].check_id)] == [4101]
    with pytest.raises(AuditError, match="already has the current layout"):
        await migrate(url)


async def test_a_broken_earlier_trail_is_not_migrated(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    _v1(path, 20, edit=7)
    done = await migrate(f"sqlite+aiosqlite:///{path}")
    assert done.after is None and done.before.problems == ("entry 7 edited: hash mismatch",)
    db = sqlite3.connect(path)
    assert w.layout(db) == 1  # left as it was
    db.close()


async def test_a_writer_that_stops_replying_is_killed_and_replaced(url: str) -> None:
    async with started(url, timeout_s=0.5) as sink:
        await sink.record(entries(1))
        pid = writer_pid(sink)
        os.kill(pid, signal.SIGSTOP)  # as a process stuck on a hung disk
        try:
            t0 = time.monotonic()
            with pytest.raises(AuditError, match=r"no reply from the audit writer in 5\.5 s"):
                await sink.record(entries(1))
            assert 5.0 < time.monotonic() - t0 < 15
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        assert gone(pid)
        await sink.record(entries(1))
        assert writer_pid(sink) != pid
    assert (await verify(url)).count >= 2


async def test_an_earlier_trail_is_looked_up_through_its_indexes(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    made = _v1(path, 50)
    db = sqlite3.connect(path)
    for column in ("document_key", "check_id"):
        plan = db.execute(f"EXPLAIN QUERY PLAN {_SQLITE_LOOKUP.format(column=column)}", (3, "x"))
        assert f"USING INDEX ix_audit_entries_{column}" in str(plan.fetchall())
    db.close()
    url = f"sqlite+aiosqlite:///{path}"
    assert [f["seq"] for f in await find(url, made[9].document_key)] == [10]


async def test_a_cancelled_commit_still_has_its_writer_killed_if_it_never_answers(
    url: str,
) -> None:
    async with started(url, timeout_s=0.5) as sink:
        await sink.record(entries(1))
        pid = writer_pid(sink)
        os.kill(pid, signal.SIGSTOP)  # it holds the frame, and may hold the write lock
        try:
            task = asyncio.ensure_future(sink.record(entries(1)))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(6.0)  # the reply timeout, 5.5 s
            assert gone(pid, within_s=3.0)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        await sink.record(entries(1))
    assert (await verify(url)).ok


async def test_a_writer_that_cannot_start_is_not_restarted_at_every_call(url: str) -> None:
    path = url.split(":///")[1]
    async with started(url) as sink:
        await sink.record(entries(1))
        writer = sink._writer  # type: ignore[attr-defined]
        starts = 0
        real_start = writer._start

        async def counted(create: bool) -> None:
            nonlocal starts
            starts += 1
            await real_start(create)

        writer._start = counted
        os.kill(writer_pid(sink), signal.SIGKILL)
        await asyncio.wait_for(writer._proc.exited, 10)  # the sink saw it go
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{path}{suffix}")
        for _ in range(5):
            with pytest.raises(AuditError, match="no longer exists"):
                await sink.record(entries(1))
            assert not await sink.probe()
        assert starts == 1  # one attempt, then the same answer for RESTART_BACKOFF_S
        await asyncio.sleep(1.1)
        with pytest.raises(AuditError, match="no longer exists"):
            await sink.record(entries(1))
        assert starts == 2
