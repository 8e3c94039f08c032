"""Helpers shared by the SQL store tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from typing import TypeVar

from adapters.sqlstore.provider import SqlStoreProvider
from rmas.documents import DocumentQuery
from rmas.verdict import RecordStatus

T = TypeVar("T")


async def lookups_during(
    provider: SqlStoreProvider, numbers: Sequence[str], work: Awaitable[T]
) -> tuple[T, int, int]:
    """Run ``work`` (a reload, say) while looking up the NZL documents ``numbers`` back to back
    through ``provider``: its result, the lookups made, and the records they found missing."""
    missing = lookups = 0
    done = asyncio.Event()
    queries = [DocumentQuery("NZL", n) for n in numbers]

    async def probe() -> None:
        nonlocal missing, lookups
        while not done.is_set():
            recs = await provider.lookup_many(queries, time.monotonic() + 5)
            lookups += 1
            missing += sum(r.status is RecordStatus.NO_RECORD for r in recs)
            await asyncio.sleep(0)

    task = asyncio.create_task(probe())
    try:
        result = await work
    finally:
        done.set()
        await task
    return result, lookups, missing
