"""The change watcher: resumes from the saved position, retries failed feeds, acts at least once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

from rmas.changes import ChangeFeed, ChangesLost, DocumentChange
from rmas.changewatch import ChangeWatcher, MemoryPositions
from rmas.documents import DocumentQuery
from rmas.providers import ProviderInfo
from rmas.verdict import Record


class LogFeed:
    """A provider with an in-memory change log; ``fail_next`` makes the next read fail."""

    def __init__(self, pid: str = "nzl") -> None:
        self._info = ProviderInfo(pid, frozenset({"NZL"}))
        self.log: list[str] = []
        self.fail_next: Exception | None = None
        self.follows: list[str] = []
        self.grew = asyncio.Event()

    @property
    def info(self) -> ProviderInfo:
        return self._info

    async def lookup_many(self, queries: Sequence[DocumentQuery], deadline: float) -> list[Record]:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None

    def record(self, number: str) -> None:
        self.log.append(number)
        self.grew.set()

    async def current_position(self) -> str:
        return str(len(self.log))

    async def watch_changes(self, since: str) -> AsyncIterator[Sequence[DocumentChange]]:
        self.follows.append(since)
        pos = int(since)
        if pos > len(self.log):
            raise ChangesLost(f"position {since} is past the log")
        while True:
            if self.fail_next is not None:
                exc, self.fail_next = self.fail_next, None
                raise exc
            if pos < len(self.log):
                batch = [
                    DocumentChange("NZL", n, str(i + 1))
                    for i, n in enumerate(self.log[pos:], start=pos)
                ]
                pos = len(self.log)
                yield batch
                continue
            self.grew.clear()
            await self.grew.wait()


async def _until(predicate: Callable[[], object]) -> None:
    """Poll until ``predicate()`` holds (a bound on a hang, not a timing assertion)."""
    async with asyncio.timeout(10):
        while not predicate():  # noqa: ASYNC110 (the watcher offers no event to wait on)
            await asyncio.sleep(0.005)


async def test_starts_from_now_then_acts_on_each_change_and_saves_its_position() -> None:
    feed = LogFeed()
    assert isinstance(feed, ChangeFeed)
    feed.record("OLD1")  # before the hub ever watched: not replayed
    seen: list[str] = []

    async def on_changes(pid: str, changes: Sequence[DocumentChange]) -> None:
        seen.extend(f"{pid}:{c.number}" for c in changes)

    async def on_lost(pid: str) -> None:
        raise AssertionError("nothing lost")

    positions = MemoryPositions()
    watcher = ChangeWatcher([feed], positions, on_changes, on_lost)
    watcher.start()
    try:
        await _until(lambda: feed.follows)
        feed.record("A1")
        feed.record("B2")
        await _until(lambda: len(seen) == 2)
        assert seen == ["nzl:A1", "nzl:B2"]
        await _until(lambda: positions.positions.get("nzl") == "3")
        (state,) = watcher.states()
        assert state.connected and state.changes == 2
    finally:
        await watcher.aclose()


async def test_a_failed_feed_resumes_from_the_last_saved_position() -> None:
    feed = LogFeed()
    seen: list[str] = []

    async def on_changes(pid: str, changes: Sequence[DocumentChange]) -> None:
        seen.extend(c.number for c in changes)

    async def on_lost(pid: str) -> None:
        raise AssertionError("nothing lost")

    positions = MemoryPositions()
    positions.positions["nzl"] = "0"
    feed.record("A1")
    watcher = ChangeWatcher([feed], positions, on_changes, on_lost, backoff_initial_s=0.01)
    watcher.start()
    try:
        await _until(lambda: seen == ["A1"])
        feed.fail_next = ConnectionError("store went away")
        feed.record("B2")
        await _until(lambda: "B2" in seen)
        assert feed.follows[-1] == "1"  # resumed after A1, so A1 is not acted on twice
        assert seen == ["A1", "B2"]
        assert watcher.states()[0].failures == 1
    finally:
        await watcher.aclose()


async def test_a_failing_handler_holds_the_position_until_it_succeeds() -> None:
    feed = LogFeed()
    calls: list[str] = []

    async def on_changes(pid: str, changes: Sequence[DocumentChange]) -> None:
        calls.append(changes[0].number)
        if len(calls) < 3:
            raise OSError("flight store unavailable")

    async def on_lost(pid: str) -> None:
        raise AssertionError("nothing lost")

    positions = MemoryPositions()
    positions.positions["nzl"] = "0"
    feed.record("A1")
    watcher = ChangeWatcher([feed], positions, on_changes, on_lost, backoff_initial_s=0.01)
    watcher.start()
    try:
        await _until(lambda: positions.positions["nzl"] == "1")
        assert calls == ["A1", "A1", "A1"]
    finally:
        await watcher.aclose()


async def test_lost_changes_recheck_everything_the_provider_answers_for() -> None:
    feed = LogFeed()
    lost: list[str] = []

    async def on_changes(pid: str, changes: Sequence[DocumentChange]) -> None:
        return None

    async def on_lost(pid: str) -> None:
        lost.append(pid)

    positions = MemoryPositions()
    positions.positions["nzl"] = "7"  # the log was pruned below what this hub saved
    feed.record("A1")
    watcher = ChangeWatcher([feed], positions, on_changes, on_lost, backoff_initial_s=0.01)
    watcher.start()
    try:
        await _until(lambda: lost == ["nzl"])
        await _until(lambda: positions.positions["nzl"] == "1")
    finally:
        await watcher.aclose()
