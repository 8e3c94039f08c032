"""A hub stopping while an airline's subscription stream is inside a flight-store call: the hub
closes its flight store, and returns from its stop, only once that stream has let go of it.

The stream is cut off in the middle of the call (the drain's grace period ends while another
writer holds the SQLite file's write lock), so SQLAlchemy invalidates the connection and closes
it in a task of its own. A hub that returned from its stop before that close was done left both
tasks to the event loop's end, which cancels every task once: when the stream's task came
first, its connection's worker thread stopped ahead of the close, which then waited forever
(aiosqlite 0.22, SQLAlchemy 2.1) and the loop never closed (a test's teardown hung)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from rmas.testing import ChangingProvider
from rmas.v1 import check_pb2
from rmas.verdict import RecordStatus
from tests.flights.kit import WIREMU, Subscriber, flight_hub, flights_config, paxlst

#: The statement a stream runs before it sends a change (Outbox.mark_sent).
MARK_SENT = "UPDATE flight_status_changes SET attempts"


async def write_lock(db: Path) -> sqlite3.Connection:
    """The SQLite file's write lock, taken by another connection (once no hub writer holds it:
    tried without waiting, so that the event loop is never blocked)."""
    con = sqlite3.connect(db, timeout=0, isolation_level=None)
    while True:
        try:
            con.execute("BEGIN IMMEDIATE")
            return con
        except sqlite3.OperationalError:
            await asyncio.sleep(0.01)


async def test_a_stopping_hub_waits_for_a_stream_cut_off_inside_the_flight_store(
    tmp_path: Path,
) -> None:
    nzl = ChangingProvider.issuer("NZL", ["NZL"])
    hub = flight_hub([nzl], flights_config(tmp_path))
    _handle, stub, _channel = await hub.__aenter__()
    stopping: asyncio.Task[Any] | None = None
    lock: sqlite3.Connection | None = None
    marking: list[asyncio.Task[Any]] = []
    marked = asyncio.Event()

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        task = asyncio.current_task()
        if statement.startswith(MARK_SENT) and task is not None:
            marking.append(task)
            marked.set()

    sa.event.listen(Engine, "before_cursor_execute", seen)
    try:
        await stub.CheckPaxlst(check_pb2.CheckPaxlstRequest(message=paxlst([WIREMU])))
        first = Subscriber(stub)
        try:
            await nzl.watched()
            nzl.change("NZL", WIREMU.number, RecordStatus.STOLEN)
            await first.get()  # sent, never acknowledged
        finally:
            await first.close()
        lock = await write_lock(tmp_path / "flights.db")
        marking.clear()
        marked.clear()
        # A new subscription sends the change at once: it counts the sending first, a write
        # that waits for the lock.
        second = Subscriber(stub)
        await asyncio.wait_for(marked.wait(), 20)
        stream = marking[0]
        stopping = asyncio.create_task(hub.__aexit__(None, None, None))
        stream_ended_first: list[bool] = []
        stopping.add_done_callback(lambda _t: stream_ended_first.append(stream.done()))
        # The drain's grace period ends: the hub cuts the stream off inside its write.
        for _ in range(2000):
            if stream.cancelling() or stopping.done():
                break
            await asyncio.sleep(0.01)
        assert stream.cancelling() or stream.done()
        # Time for a hub that does not wait for the stream to finish stopping without it.
        await asyncio.wait({stopping}, timeout=1.0)
        lock.rollback()  # the other writer lets go: the stream's call ends, so does the stream
        await asyncio.wait_for(stopping, 30)
        await second.close()
        assert stream_ended_first == [True], "the hub stopped while a stream was in its store"
    finally:
        sa.event.remove(Engine, "before_cursor_execute", seen)
        if lock is not None:
            lock.close()
        if stopping is None:
            await hub.__aexit__(None, None, None)
        # Whatever happened, nothing of the stream is left to the event loop's end.
        if marking:
            await asyncio.wait(marking[:1], timeout=10)
