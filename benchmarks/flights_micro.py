"""What recording one answered 400-passenger flight costs the flight store, in one process.

``python -m benchmarks.flights_micro [--fresh]``: ``FlightTracker.record_now`` (the hub's own
recording step, without the check) of 64 flights after 16 unmeasured ones, into a copy of the
bench's 2,000-flight store (``bench-out/flights/fleet-2000x400.db``, built by
``python -m benchmarks.flights_bench``) or, with ``--fresh``, an empty one; one flight per
transaction (the recorder when one answered flight waits), then ``RECORD_BATCH`` per transaction
(the recorder under sustained load: the flights waiting are recorded together). Per flight: CPU
time of all threads (SQLite runs in aiosqlite's thread), of the event loop's thread alone, and
wall time, under the store's own settings and two variants set on each connection: a 64 MB page
cache, and WAL checkpoints postponed. docs/benchmarks.md, "Flights (issue 17)".
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.flights_bench import WORK, _fleet_path

VARIANTS: dict[str, tuple[str, ...]] = {
    "as the hub opens it": (),
    "cache_size 64 MB": ("PRAGMA cache_size=-65536",),
    "wal_autocheckpoint 100000 pages": ("PRAGMA wal_autocheckpoint=100000",),
}


def _report(i: int) -> Any:
    from rmas.documents import DocumentQuery
    from rmas.flights.model import FlightEvent, FlightReport, ReportedPassenger
    from rmas.verdict import Directive

    pax = tuple(
        ReportedPassenger(
            booking_ref=f"B{j:05d}", passenger_ref=str(j + 1), crew=False,
            directive=Directive.OK_TO_BOARD, unchecked=False, incomplete=False, floor=None,
            documents=((DocumentQuery("NZL", f"N{i:04d}{j:04d}"), os.urandom(8).hex()),),
            check_ids=(os.urandom(8).hex(),),
        )
        for j in range(400)
    )  # fmt: skip
    return FlightReport(
        owner="insecure:127.0.0.1", event=FlightEvent.ANSWER, carrier="QF", number=f"QF{i}",
        departure="2027-10-01T12:00", legs=(), sender="A", recipient="B", syntax="UNOA",
        received_at=time.time(), passengers=pax,
    )  # fmt: skip


async def _measure(path: Path, pragmas: tuple[str, ...], batch: int) -> tuple[float, ...]:
    import sqlalchemy as sa

    from rmas.flights.sealing import FlightKeys
    from rmas.flights.store import FlightStore
    from rmas.flights.tracker import FlightTracker

    store = FlightStore(f"sqlite+aiosqlite:///{path}")
    await store.open()
    await store.engine.dispose()  # the next connections get the variant's settings too

    @sa.event.listens_for(store.engine.sync_engine, "connect")
    def _variant(dbapi: Any, _record: Any) -> None:
        cur = dbapi.cursor()
        for pragma in pragmas:
            cur.execute(pragma)
        cur.close()

    # Only record_now runs: it uses the store and the keys, not the hub or the config.
    tracker = FlightTracker(None, store, FlightKeys(os.urandom(32)), None)  # type: ignore[arg-type]
    reports = [_report(10_000 + i) for i in range(80)]
    for start in range(0, 16, batch):
        await tracker.record_now(*reports[start : start + batch])
    measured = reports[16:]
    c, t, w = time.process_time(), time.thread_time(), time.perf_counter()
    for start in range(0, len(measured), batch):
        await tracker.record_now(*measured[start : start + batch])
    cpu, loop, wall = time.process_time() - c, time.thread_time() - t, time.perf_counter() - w
    await store.aclose()
    n = len(measured) / 1000
    return cpu / n, loop / n, wall / n


def main(fresh: bool) -> None:
    from rmas.flights.tracker import RECORD_BATCH

    src = _fleet_path()
    if not fresh and not src.exists():
        sys.exit(f"{src} does not exist: run python -m benchmarks.flights_bench first")
    for name, pragmas in VARIANTS.items():
        for batch in (1, RECORD_BATCH):
            path = WORK / "micro.db"
            for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                p.unlink(missing_ok=True)
            if not fresh:
                shutil.copyfile(src, path)
            cpu, loop, wall = asyncio.run(_measure(path, pragmas, batch))
            where = "empty store" if fresh else "2,000-flight store"
            print(f"{where}, {name}, {batch} a transaction: record_now per 400-passenger "
                  f"flight: CPU {cpu:.1f} ms (all threads; {loop:.1f} on the loop's), "
                  f"wall {wall:.1f} ms", flush=True)  # fmt: skip
            path.unlink(missing_ok=True)


if __name__ == "__main__":
    main(fresh="--fresh" in sys.argv)
