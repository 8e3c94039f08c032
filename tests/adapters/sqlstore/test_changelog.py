"""The store's change log and the ``sql`` provider's change feed, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from adapters.sqlstore import changelog
from adapters.sqlstore.feeds import apply_feed
from adapters.sqlstore.importer import import_csv
from adapters.sqlstore.provider import SqlStoreProvider
from adapters.sqlstore.schema import change_log, make_engine
from rmas.changes import ChangesLost, DocumentChange, change_capable
from rmas.changewatch import ChangeWatcher, MemoryPositions
from rmas.errors import ProviderError
from rmas.providers import ProviderInfo

INFO = ProviderInfo(id="NZL", issuing_states=frozenset({"NZL"}))
HEADER = "issuing_state,document_number,document_type,status,reported_on,record_ref\n"


def feed(tmp_path: Path, name: str, *changes: tuple[str, str, int]) -> Path:
    path = tmp_path / name
    path.write_text("".join(
        json.dumps({"op": "upsert", "issuing_state": "NZL", "number": n, "status": s,
                    "version": v}) + "\n" for n, s, v in changes))  # fmt: skip
    return path


async def seeded(tmp_path: Path, url: str) -> None:
    csv = tmp_path / "seed.csv"
    csv.write_text(HEADER + "NZL,LA000001,P,VALID,,R1\nNZL,LA000002,P,VALID,,R2\n")
    await import_csv(url, csv)


async def take(it: Any, n: int) -> list[DocumentChange]:
    """The next ``n`` changes of a watch iterator (batches flattened)."""
    out: list[DocumentChange] = []
    while len(out) < n:
        out.extend(await asyncio.wait_for(anext(it), 15))
    return out


def provider(url: str) -> SqlStoreProvider:
    return SqlStoreProvider(INFO, url, poll_interval=0.05, change_batch=2)


async def test_an_applied_feed_is_seen_by_a_provider_following_the_log(
    tmp_path: Path, db_url: str
) -> None:
    await seeded(tmp_path, db_url)
    p = provider(db_url)
    try:
        assert change_capable(p)
        start = await p.current_position()
        it = p.watch_changes(start)
        three = (("LA000001", "STOLEN", 1), ("LA000002", "LOST", 1), ("LA000003", "REVOKED", 1))
        await apply_feed(db_url, feed(tmp_path, "a.jsonl", *three))
        got = await take(it, 3)
        await it.aclose()
        assert sorted((c.issuing_state, c.number) for c in got) == [
            ("NZL", "LA000001"), ("NZL", "LA000002"), ("NZL", "LA000003")]  # fmt: skip
        positions = [int(c.position) for c in got]
        assert positions == sorted(positions) and len(set(positions)) == 3
        assert int(positions[0]) > int(start)
        assert await p.current_position() == got[-1].position
        # Resuming from a change's position gives exactly the ones after it.
        it = p.watch_changes(got[0].position)
        assert [c.number for c in await take(it, 2)] == [c.number for c in got[1:]]
        await it.aclose()
    finally:
        await p.aclose()


async def test_stale_and_repeated_feeds_log_nothing(tmp_path: Path, db_url: str) -> None:
    await seeded(tmp_path, db_url)
    await apply_feed(db_url, feed(tmp_path, "a.jsonl", ("LA000001", "STOLEN", 5)))
    p = provider(db_url)
    try:
        before = await p.current_position()
        await apply_feed(db_url, feed(tmp_path, "a.jsonl", ("LA000001", "STOLEN", 5)))
        await apply_feed(db_url, feed(tmp_path, "b.jsonl", ("LA000001", "VALID", 4)))
        assert await p.current_position() == before
    finally:
        await p.aclose()


async def test_a_bulk_import_makes_the_feed_report_lost_changes(
    tmp_path: Path, db_url: str
) -> None:
    await seeded(tmp_path, db_url)
    p = provider(db_url)
    try:
        start = await p.current_position()
        await apply_feed(db_url, feed(tmp_path, "a.jsonl", ("LA000001", "STOLEN", 1)))
        csv = tmp_path / "more.csv"
        csv.write_text(HEADER + "NZL,LA000009,P,LOST,,R9\n")
        await import_csv(db_url, csv)
        it = p.watch_changes(start)
        # The change before the reload is handed over first, then the reload is reported.
        assert [c.number for c in await take(it, 1)] == ["LA000001"]
        with pytest.raises(ChangesLost):
            await asyncio.wait_for(anext(it), 15)
        # From the current position (past the reload) the feed goes on.
        it = p.watch_changes(await p.current_position())
        await apply_feed(db_url, feed(tmp_path, "b.jsonl", ("LA000002", "LOST", 1)))
        assert [c.number for c in await take(it, 1)] == ["LA000002"]
        await it.aclose()
    finally:
        await p.aclose()


async def test_pruned_and_unknown_positions_are_lost(tmp_path: Path, db_url: str) -> None:
    await seeded(tmp_path, db_url)
    await apply_feed(db_url, feed(tmp_path, "a.jsonl", ("LA000001", "STOLEN", 1)))
    p = provider(db_url)
    try:
        old = await p.current_position()
        await apply_feed(db_url, feed(tmp_path, "b.jsonl", ("LA000002", "STOLEN", 1)))
        engine = make_engine(db_url, create=False)
        try:
            assert await changelog.prune(engine, retention_s=0) >= 2
            async with engine.connect() as conn:
                left = (await conn.execute(select(func.count()).select_from(change_log))).scalar()
            assert left == 0
            assert await changelog.retention(engine) == 0
        finally:
            await engine.dispose()
        for since in ("0", str(int(old) - 1), "999999", "not-a-position"):
            with pytest.raises(ChangesLost):
                await asyncio.wait_for(anext(p.watch_changes(since)), 15)
        # The newest position is still served: nothing after it was pruned.
        newest = await p.current_position()
        assert int(newest) > int(old)
        it = p.watch_changes(newest)
        await apply_feed(db_url, feed(tmp_path, "c.jsonl", ("LA000003", "LOST", 1)))
        got = await take(it, 1)
        assert got[0].number == "LA000003" and int(got[0].position) > int(newest)
        await it.aclose()
    finally:
        await p.aclose()


def _rmas(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rmas.cli", *args],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def test_rmas_store_prune_sets_the_retention(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    csv = tmp_path / "seed.csv"
    csv.write_text(HEADER + "NZL,LA000001,P,VALID,,R1\n")
    assert _rmas("store", "import", "--url", url, str(csv)).returncode == 0
    out = _rmas("store", "prune", "--url", url, "--retention", "0")
    assert out.returncode == 0, out.stderr
    assert "removed 1 change-log rows" in out.stdout
    assert "retention 0s" in out.stdout
    bad = _rmas("store", "prune", "--url", url, "--retention", "-5")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


async def test_a_running_watcher_sees_rmas_store_apply_from_another_process(
    tmp_path: Path, db_url: str
) -> None:
    """The hub's watcher over the provider sees, within seconds, a change that `rmas store apply`
    made in a process of its own (a real SQLite file, or the PostgreSQL database)."""
    await seeded(tmp_path, db_url)
    p = SqlStoreProvider(INFO, db_url)  # the default poll interval
    seen: asyncio.Queue[DocumentChange] = asyncio.Queue()

    async def on_changes(pid: str, batch: Sequence[DocumentChange]) -> None:
        for c in batch:
            seen.put_nowait(c)

    async def on_lost(pid: str) -> None:
        raise AssertionError("no change was lost")

    watcher = ChangeWatcher([p], MemoryPositions(), on_changes, on_lost)
    watcher.start()
    try:
        for _ in range(100):  # until the watcher has taken its starting position
            if watcher.states()[0].connected:
                break
            await asyncio.sleep(0.05)
        f = feed(tmp_path, "stolen.jsonl", ("LA000002", "STOLEN", 1))
        out = await asyncio.to_thread(_rmas, "store", "apply", "--url", db_url, str(f))
        assert out.returncode == 0, out.stderr
        change = await asyncio.wait_for(seen.get(), 10)
        assert (change.issuing_state, change.number) == ("NZL", "LA000002")
        assert watcher.states()[0].position == change.position
    finally:
        await watcher.aclose()
        await p.aclose()


async def test_a_closed_provider_ends_its_feed_with_an_error(tmp_path: Path, db_url: str) -> None:
    await seeded(tmp_path, db_url)
    p = provider(db_url)
    it = p.watch_changes(await p.current_position())
    with pytest.raises(TimeoutError):  # polling, nothing new
        await asyncio.wait_for(anext(it), 0.3)
    it = p.watch_changes(await p.current_position())
    await apply_feed(db_url, feed(tmp_path, "a.jsonl", ("LA000001", "STOLEN", 1)))
    assert len(await take(it, 1)) == 1
    await p.aclose()
    with pytest.raises(ProviderError):
        await asyncio.wait_for(anext(it), 15)


async def test_concurrent_writers_lose_no_change_to_a_reader(tmp_path: Path, db_url: str) -> None:
    """Writers (`rmas store apply` processes) that commit in another order than they took ids
    must not make a reader skip a change (on PostgreSQL the log lock orders them)."""
    await seeded(tmp_path, db_url)
    p = provider(db_url)
    try:
        it = p.watch_changes(await p.current_position())
        files = [feed(tmp_path, f"w{w}.jsonl", *((f"LB{w}{k:05d}", "STOLEN", 1) for k in range(5)))
                 for w in range(4)]  # fmt: skip
        reader = asyncio.ensure_future(take(it, 20))
        runs = [asyncio.to_thread(_rmas, "store", "apply", "--url", db_url, str(f)) for f in files]
        outs = await asyncio.gather(*runs)
        assert all(o.returncode == 0 for o in outs), [o.stderr for o in outs]
        got = await reader
        await it.aclose()
        assert {c.number for c in got} == {f"LB{w}{k:05d}" for w in range(4) for k in range(5)}
        positions = [int(c.position) for c in got]
        assert positions == sorted(positions) and len(set(positions)) == 20
    finally:
        await p.aclose()


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_on_postgresql_a_commit_wakes_the_feed_before_its_next_poll(
    tmp_path: Path, db_url: str
) -> None:
    """LISTEN/NOTIFY: with a 60 s poll interval the change still arrives within seconds (SQLite
    has no notifications: its feeds only poll)."""
    await seeded(tmp_path, db_url)
    p = SqlStoreProvider(INFO, db_url, poll_interval=60)
    try:
        it = p.watch_changes(await p.current_position())
        first = asyncio.ensure_future(anext(it))
        await asyncio.sleep(0.5)  # the feed has read the log once and sleeps
        f = feed(tmp_path, "n.jsonl", ("LA000001", "STOLEN", 1))
        out = await asyncio.to_thread(_rmas, "store", "apply", "--url", db_url, str(f))
        assert out.returncode == 0, out.stderr
        batch = await asyncio.wait_for(first, 10)
        assert [c.number for c in batch] == ["LA000001"]
        await it.aclose()
    finally:
        await p.aclose()
