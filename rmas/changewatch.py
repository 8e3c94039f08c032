"""The hub's watcher of record changes: one task per change-capable provider.

For each provider that implements :class:`~rmas.changes.ChangeFeed`, the watcher resumes from
the position it last acted on (kept by a :class:`PositionStore`, so a restart loses nothing),
hands each batch of changes to ``on_changes`` and only then saves the new position: a change is
acted on at least once. A feed that fails is retried from the last saved position with
exponential backoff; a feed that reports :class:`~rmas.changes.ChangesLost` leads to
``on_lost`` (re-check everything that provider answers for) and a restart from its current
position. What the watcher does per provider is visible in :meth:`ChangeWatcher.states`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from rmas.changes import ChangeFeed, ChangesLost, DocumentChange
from rmas.providers import Provider

__all__ = ["ChangeWatcher", "MemoryPositions", "OnChanges", "OnLost", "PositionStore", "WatchState"]

log = structlog.get_logger("rmas.changewatch")

#: Called with a provider's id and a batch of its changes, oldest first.
OnChanges = Callable[[str, Sequence[DocumentChange]], Awaitable[None]]
#: Called with a provider's id when its feed lost changes: re-check all it answers for.
OnLost = Callable[[str], Awaitable[None]]

#: Most changes handed to ``on_changes`` at once (more wait for the next batch).
BATCH_MAX = 500


class PositionStore(Protocol):
    """Where the watcher keeps, per provider, the position of the last change acted on."""

    async def load_position(self, provider_id: str) -> str | None: ...

    async def save_position(self, provider_id: str, position: str) -> None: ...


class MemoryPositions:
    """Positions kept in memory: for tests and for hubs that keep no flight state."""

    def __init__(self) -> None:
        self.positions: dict[str, str] = {}

    async def load_position(self, provider_id: str) -> str | None:
        return self.positions.get(provider_id)

    async def save_position(self, provider_id: str, position: str) -> None:
        self.positions[provider_id] = position


@dataclass(slots=True)
class WatchState:
    """What the watcher knows of one provider's feed (for ``rmas status`` and metrics)."""

    provider_id: str
    connected: bool = False
    position: str = ""
    changes: int = 0
    failures: int = 0
    last_error: str = ""
    #: time.time() of the last change acted on (0: none yet).
    last_change_at: float = 0.0


class ChangeWatcher:
    """Watches every change-capable provider and hands their changes to ``on_changes``."""

    def __init__(
        self,
        providers: Sequence[Provider],
        positions: PositionStore,
        on_changes: OnChanges,
        on_lost: OnLost,
        *,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 10.0,
    ) -> None:
        self._feeds: dict[str, ChangeFeed] = {
            p.info.id: p for p in providers if isinstance(p, ChangeFeed)
        }
        self._positions = positions
        self._on_changes = on_changes
        self._on_lost = on_lost
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._states = {pid: WatchState(pid) for pid in self._feeds}
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def provider_ids(self) -> list[str]:
        return sorted(self._feeds)

    def states(self) -> list[WatchState]:
        return [self._states[pid] for pid in sorted(self._states)]

    def start(self) -> None:
        for pid, feed in self._feeds.items():
            task = asyncio.get_running_loop().create_task(self._run(pid, feed))
            self._tasks.append(task)

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def _run(self, pid: str, feed: ChangeFeed) -> None:
        state = self._states[pid]
        delay = self._backoff[0]
        while True:
            try:
                await self._follow(pid, feed, state)
            except asyncio.CancelledError:
                raise
            except ChangesLost as exc:
                state.connected = False
                state.last_error = f"changes lost: {exc}"
                log.warning("changes_lost", provider=pid, error=str(exc)[:200])
                try:
                    position = await feed.current_position()
                    await self._on_lost(pid)
                    await self._save(pid, position, state)
                    delay = self._backoff[0]
                    continue
                except asyncio.CancelledError:
                    raise
                except Exception as again:  # retried below, with backoff
                    state.last_error = f"{type(again).__name__}: {again}"[:300]
            except Exception as exc:  # any feed failure is retried with backoff
                state.connected = False
                state.failures += 1
                state.last_error = f"{type(exc).__name__}: {exc}"[:300]
                log.warning("change_feed_failed", provider=pid, error=type(exc).__name__)
            else:  # a feed is not supposed to end; follow it again from the saved position
                state.connected = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff[1])

    async def _follow(self, pid: str, feed: ChangeFeed, state: WatchState) -> None:
        position = await self._positions.load_position(pid)
        if position is None:
            position = await feed.current_position()
            await self._save(pid, position, state)
        state.position = position
        state.connected = True
        state.last_error = ""
        async for batch in feed.watch_changes(position):
            for start in range(0, len(batch), BATCH_MAX):
                await self._deliver(pid, list(batch[start : start + BATCH_MAX]), state)

    async def _deliver(self, pid: str, batch: list[DocumentChange], state: WatchState) -> None:
        delay = self._backoff[0]
        while True:  # the position advances only once the hub has acted on the changes
            try:
                await self._on_changes(pid, batch)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the hub's state store may be down: retry
                state.last_error = f"acting on changes: {type(exc).__name__}: {exc}"[:300]
                log.warning("change_handling_failed", provider=pid, error=type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff[1])
        state.changes += len(batch)
        state.last_change_at = time.time()
        await self._save(pid, batch[-1].position, state)

    async def _save(self, pid: str, position: str, state: WatchState) -> None:
        await self._positions.save_position(pid, position)
        state.position = position
