"""Bulk write, whichever the engine: the upsert statement, the write-while-parsing pipeline, and
the phase timings of a load (logged once per import)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from adapters.sqlstore.csvrows import COLUMNS, Row

__all__ = ["UPDATE_ALL", "UPSERT", "Phases", "aiter_chunks", "pipeline"]

# An import is authoritative: it also brings back a record a feed had withdrawn.
UPDATE_ALL = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[2:])
UPSERT = f" ON CONFLICT (issuing_state, number) DO UPDATE SET {UPDATE_ALL}, withdrawn = false"


async def pipeline(
    chunks: AsyncIterator[list[Row]], write: Callable[[list[Row]], Awaitable[Any]]
) -> int:
    """Write each chunk while the next one is parsed; returns the rows written.

    The next chunk is parsed (on this thread, or in the worker process of ``CsvSource``) while
    the driver writes the previous one (aiosqlite's thread, or the PostgreSQL server).
    """
    total = 0
    pending: asyncio.Future[Any] | None = None
    try:
        async for chunk in chunks:
            total += len(chunk)
            if pending is not None:
                await pending
            pending = asyncio.ensure_future(write(chunk))
    except BaseException:
        if pending is not None:
            # The caller rolls back; this write's own outcome no longer matters.
            pending.add_done_callback(lambda f: f.cancelled() or f.exception())
        raise
    if pending is not None:
        await pending
    return total


async def aiter_chunks(chunks: Iterable[list[Row]]) -> AsyncIterator[list[Row]]:
    for chunk in chunks:
        yield chunk


@dataclass(slots=True)
class Phases:
    """Seconds spent per phase of a load (and why a replace stayed in place), for the log."""

    marks: dict[str, Any] = field(default_factory=dict)
    t: float = field(default_factory=time.perf_counter)

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.marks[name] = round(now - self.t, 3)
        self.t = now
