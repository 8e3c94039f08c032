"""The SQLite writer process and the block format: bytes, storage, lookups, tamper evidence on
stored blocks, the process's life and death, and the linger."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rmas.audit import AuditSink, Channel, entries_for, find, find_check, verify
from rmas.audit.entry import encode_entries
from rmas.audit.format import (
    CALL_FIELDS,
    ENTRY_FIELDS,
    FIELDS,
    FORMAT,
    GENESIS,
    GROUP,
    NFIELDS,
    AuditEntry,
    decode,
    groups,
    seal,
    well_formed,
)
from rmas.audit.sink import LINGER_BELOW, encode_group
from rmas.errors import AuditError
from tests.audit import CALLER, KEYER, NOW, block_of, entries, raw_rows, result, spec, started

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


# -- the format and storage ------------------------------------------------------------------------


def test_the_field_list_is_declared_once_and_read_back_in_order() -> None:
    assert tuple(f.name for f in dataclasses.fields(AuditEntry)) == FIELDS
    assert FIELDS[:2] == ("time", "hub") and NFIELDS == 12
    assert sorted(CALL_FIELDS + ENTRY_FIELDS) == sorted(FIELDS)
    made = entries(3, reference="QF1")
    body = encode_group(made)
    # One group: its mark, the call record and three entry records of 6 fields each.
    assert (body.count(b"\x00"), body.count(b"\x1e"), body.count(b"\x1f")) == (1, 4, 4 * 5)
    assert decode(FORMAT, body) == made
    # Entries of another call (other call fields) start another group.
    more = [*made, *entries(2, reference="QF2")]
    assert groups(encode_group(more))[1] == [3, 2]
    assert decode(FORMAT, encode_group(more)) == more


def test_the_hub_and_entries_for_encode_alike() -> None:
    from rmas.hub import CheckResult, new_check_id
    from rmas.verdict import Directive, Verdict

    bad = CheckResult(new_check_id(), "", Verdict.INVALID_DATA, Directive.DO_NOT_BOARD)
    results = [result(), result("LA7654321", "AUS"), bad]
    args = (results, CALLER, Channel.MANIFEST, KEYER)
    body = encode_entries(*args, hub="hub-1", reference="QF1", now=NOW)
    made = entries_for(*args, hub="hub-1", reference="QF1", now=NOW)
    assert body == encode_group(made)
    assert [e.hub for e in decode(FORMAT, body)] == ["hub-1"] * 3


def _records(body: bytes) -> tuple[bytes, list[bytes]]:
    """A one-group body's mark and call record, and its entry records (each ended)."""
    end = body.index(b"\x1e") + 1
    return body[:end], [r + b"\x1e" for r in body[end:-1].split(b"\x1e")]


def test_malformed_entries_are_refused() -> None:
    good = encode_group(entries(2))
    assert well_formed(2, good) and groups(good)[1] == [2]
    assert not well_formed(3, good) and not well_formed(2, good[:-1]) and not well_formed(0, b"")
    call, (one, two) = _records(good)
    # The totals balance, but one record has a field too many and the next one too few: entry
    # records, or the call record and an entry record.
    long = one[:-1] + b"\x1fx\x1e"
    short = one[: one.rindex(b"\x1f")] + b"\x1e"
    long_call = call[:-1] + b"\x1fx\x1e"
    for bad in (call + long + short, long_call + short + two):
        assert well_formed(2, bad)
        with pytest.raises(ValueError, match="group 1 is not a call record and 1-64 entries"):
            seal(GENESIS, 0, 2, bad)
    # A group's mark inside a record; bytes after a group's last record; no mark first.
    with pytest.raises(ValueError, match="group 2 is not a call record"):
        seal(GENESIS, 0, 2, call + one + two[:3] + b"\x00" + two[3:])
    with pytest.raises(ValueError, match="group 1 does not end a record"):
        seal(GENESIS, 0, 2, call + one + b"xyz" + call + two)
    with pytest.raises(ValueError, match="group 2 does not end a record"):
        seal(GENESIS, 0, 2, call + one + call + two + b"xyz")
    with pytest.raises(ValueError, match="does not start with a group"):
        seal(GENESIS, 0, 2, good[1:])
    with pytest.raises(ValueError, match="group 1 is not a call record"):
        seal(GENESIS, 0, 2, call)  # a call record without entries
    with pytest.raises(ValueError, match="not UTF-8 at byte 1"):
        seal(GENESIS, 0, 2, b"\x00\xc3(" + good[3:])
    with pytest.raises(ValueError, match="not 3 entries"):
        seal(GENESIS, 0, 3, good)
    # At most GROUP entries a group.
    many = encode_group(entries(GROUP + 1))
    assert groups(many)[1] == [GROUP, 1]
    call, records = _records(many[: many.index(b"\x00", 1)])
    with pytest.raises(ValueError, match="group 1 is not a call record and 1-64 entries"):
        seal(GENESIS, 0, GROUP + 1, call + b"".join(records) + records[0])


async def test_a_malformed_call_fails_alone(url: str) -> None:
    body = encode_group(entries(2))
    call, (one, _two) = _records(body)
    long, short = one[:-1] + b"\x1fx\x1e", one[: one.rindex(b"\x1f")] + b"\x1e"
    async with started(url) as sink:
        calls = [
            sink.record_encoded(2, body),
            sink.record_encoded(2, body[:-1]),  # a record not ended
            sink.record_encoded(1, body),  # two entries said to be one
            sink.record_encoded(2, call + long + short),
            sink.record_encoded(2, body[1:]),  # no group's mark
            sink.record_encoded(2, body),
        ]
        done = await asyncio.gather(*calls, return_exceptions=True)
    # The fourth has the separators of two entries, not their fields.
    assert [type(d).__name__ for d in done] == [
        "NoneType", "AuditError", "AuditError", "AuditError", "AuditError", "NoneType"
    ]  # fmt: skip
    assert (await verify(url)).count == 4


async def test_a_commit_is_one_block_of_verbatim_bytes(url: str) -> None:
    batch = entries(3, reference="QF1")
    async with started(url) as sink:
        await sink.record(batch)
        await sink.record(entries(2))
    rows = await raw_rows(url, "SELECT first_seq, last_seq, format FROM audit_block")
    assert rows == [(1, 3, FORMAT), (4, 5, FORMAT)]
    block = await block_of(url, 2)
    assert block.body == encode_group(batch) and decode(FORMAT, block.body) == batch
    assert block == seal(GENESIS, 0, 3, block.body)


async def test_any_text_survives_storage(url: str) -> None:
    odd = 'a "quoted" \\ back\\slash, tab\t, bell\x07, é, 中文, emoji \U0001f600'
    entry = AuditEntry(
        "2026-11-22T10:04:05.123456+00:00", "hub é", odd, "officer", "document", "c1", "", "",
        "[]", "INVALID_DATA", "DO_NOT_BOARD", "ref end",
    )  # fmt: skip
    async with started(url) as sink:
        await sink.record([entry, *entries(1)])
        await sink.record([entry])
    assert (await verify(url)).ok
    found = await find_check(url, "c1")
    assert [f["seq"] for f in found] == [1, 3] and found[0]["caller"] == odd
    assert found[0]["hub"] == "hub é"


async def test_lookups_compare_the_field_they_search(url: str) -> None:
    key = KEYER.key_of("NZL", "B0000001")
    one = entries(1, number="B0000001")[0]
    # A check id equal to the document key: found by check id, never by document key.
    decoy = dataclasses.replace(entries(1)[0], check_id=key)
    async with started(url) as sink:
        await sink.record([one])
        await sink.record(invalid(300))  # entries without a document key
        await sink.record([decoy, one])
    assert [f["seq"] for f in await find(url, key)] == [1, 303]
    assert [f["seq"] for f in await find_check(url, key)] == [302]
    assert [f["seq"] for f in await find_check(url, one.check_id)] == [1, 303]
    assert await find(url, "") == [] and await find(url, "0" * 64) == []


async def test_sinks_sharing_a_file_form_one_chain_that_finds_everything(url: str) -> None:
    async with started(url) as a, started(url) as b:
        for _ in range(3):
            await asyncio.gather(a.record(entries(700)), b.record(entries(700)))
        await a.record(entries(1, number="LA5555555"))
    report = await verify(url)
    assert report.ok and report.count == 4201
    assert [f["seq"] for f in await find(url, KEYER.key_of("NZL", "LA5555555"))] == [4201]


# -- tamper evidence on stored blocks -------------------------------------------------------------


async def _filled(url: str) -> None:
    async with started(url) as sink:
        for _ in range(4):
            await sink.record(entries(5))  # blocks 1-5, 6-10, 11-15, 16-20


def _sql(url: str, sql: str, *args: object) -> None:
    db = sqlite3.connect(url.split(":///")[1], isolation_level=None)
    try:
        db.execute(sql, args)
    finally:
        db.close()


async def test_an_altered_block_is_reported_and_checking_resumes(url: str) -> None:
    await _filled(url)
    block = await block_of(url, 6)
    ((call, records),) = spec.parse2(block.body)
    cut = spec.encode2([(call, records[:2] + records[3:])])
    _sql(url, "UPDATE audit_block SET body = ? WHERE first_seq = 6", cut)  # an entry removed
    _sql(url, "UPDATE audit_block SET body = x'00ff' WHERE first_seq = 16")
    report = await verify(url)
    assert report.count == 20
    assert report.problems == (
        "block 6-10 altered: its entries, digests and seq range disagree (first in the group "
        "from entry 6)",
        "block 16-20 altered: group 1 is not a call record and 1-64 entries of 6 fields (the "
        "group from entry 16)",
    )


async def test_an_inserted_block_is_out_of_order(url: str) -> None:
    await _filled(url)
    b = await block_of(url, 1)
    ((call, records),) = spec.parse2(b.body)
    one = spec.encode2([(call, records[:1])])
    _sql(url, "INSERT INTO audit_block VALUES (?, ?, ?, ?, ?, ?, ?)",
         *seal(b.prev_hash, 7, 1, one).row())  # fmt: skip
    # Reported once; the chain is followed on from entry 10 (no false gap, links still checked).
    assert (await verify(url)).problems == ("block 8-8 out of order: it comes after entry 10",)


async def test_a_damaged_last_block_is_reported_and_never_appended_to(url: str) -> None:
    await _filled(url)
    async with started(url) as sink:
        await sink.record(entries(1))
        _sql(url, "INSERT INTO audit_block VALUES (22, 'x', ?, '', 'x', x'', x'')", FORMAT)
        with pytest.raises(AuditError, match="audit trail damaged: its last block"):
            await sink.record(entries(1))
    report = await verify(url)  # a report, not a crash
    assert report.problems == ("block 22-'x' altered: its seq range is not one",)
    with pytest.raises(AuditError, match="audit trail damaged: its last block"):
        async with started(url):  # opening reads the tail too
            pass


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


# -- the writer process, again -----------------------------------------------------------------


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
