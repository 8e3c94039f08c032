"""An import's load on SQLite: one transaction on aiosqlite's connection, by swap or upsert
(the two ways are described in :mod:`adapters.sqlstore.importer`)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import operator
import os
import re
import threading
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sqlstore.bulk import UPDATE_ALL, UPSERT, Phases, pipeline
from adapters.sqlstore.changelog import log_reload
from adapters.sqlstore.csvrows import ABSENT, COLUMNS, Row
from rmas.errors import StoreError

__all__ = ["READ_AHEAD_MIN_BYTES", "load_sqlite", "pragmas"]
_SQLITE_STAGING = "rmas_import"


def _sqlite_values(columns: Sequence[str]) -> str:
    """``COLUMNS`` order: a parameter for each column the rows carry, a constant otherwise."""
    return ", ".join(
        "?" if c in columns else ("NULL" if ABSENT[c] is None else "''") for c in COLUMNS
    )


def _sqlite_select(columns: Sequence[str]) -> str:
    return ", ".join(
        c if c in columns else ("NULL" if ABSENT[c] is None else "''") for c in COLUMNS
    )


async def load_sqlite(
    driver: Any,
    columns: Sequence[str],
    chunks: AsyncIterator[list[Row]],
    *,
    replace: bool,
    database: str | None,
    phases: Phases,
) -> tuple[int, int, str]:
    """Load on an aiosqlite connection in one transaction; returns (inserted, updated, path).

    The connection is left with settings for a bulk load: the caller closes it afterwards.
    """
    # A bigger page cache for this connection: the unique index of a large store does not fit
    # the default 2 MB, and the final sort of a swap uses this much memory before it spills.
    await driver.execute("PRAGMA cache_size = -262144")
    # Reads through a memory map: dropping the replaced table reads every page of it (10 million
    # records: 2.1-2.7 s instead of 3.1-5.4 s).
    await driver.execute("PRAGMA mmap_size = 2147418112")
    # The staging table lives in the temporary database: a file of its own, never synced, outside
    # the WAL (the store itself stays in WAL mode with synchronous=NORMAL, crash-safe).
    await driver.execute("PRAGMA temp_store = FILE")
    # Taken now, not at the first write: the choice of path below must hold until the commit.
    await driver.execute("BEGIN IMMEDIATE")
    try:
        before = 0 if replace else await _sqlite_count(driver)
        blocker = await _sqlite_swap_blocker(driver) if before == 0 else "the store holds records"
        if blocker is None:
            inserted, total = await _sqlite_swap(driver, columns, chunks, database, phases)
            path = "swap"
        else:
            if replace:
                await driver.execute("DELETE FROM documents")
            sql = (
                f"INSERT INTO documents ({', '.join(COLUMNS)}) VALUES ({_sqlite_values(columns)})"
                + UPSERT
            )
            total = await pipeline(chunks, lambda chunk: driver.executemany(sql, chunk))
            inserted = await _sqlite_count(driver) - before
            path = "upsert"
            phases.mark("upsert")
            if replace:
                phases.marks["in_place_because"] = blocker
        await log_reload(driver, "sqlite")  # any record may have changed (changelog)
        await driver.commit()
    except BaseException:
        await driver.rollback()
        raise
    phases.mark("commit")
    return inserted, total - inserted, path


#: A store file larger than this is read ahead before a swap drops its old table (see _read_ahead).
READ_AHEAD_MIN_BYTES = 64 << 20


def _read_ahead(path: str, stop: threading.Event) -> None:
    """Read the store file once, front to back, so that the OS caches it.

    Dropping the replaced table reads each of its pages, one at a time and in tree order: on a
    store that has sat unused (not in the OS cache) that took 17 s for 10 million records, 5 s
    once cached. A sequential read of the whole file runs at disk speed (about 1 GB/s here) on
    a thread while the new records are staged.
    """
    buffer = bytearray(1 << 20)
    with contextlib.suppress(OSError), open(path, "rb", buffering=0) as f:
        if os.fstat(f.fileno()).st_size < READ_AHEAD_MIN_BYTES:
            return
        while not stop.is_set() and f.readinto(buffer):
            pass


async def _sqlite_count(driver: Any) -> int:
    rows = await driver.execute_fetchall("SELECT count(*) FROM documents")
    return int(rows[0][0])


async def _sqlite_swap_blocker(driver: Any) -> str | None:
    """Why ``documents`` cannot be swapped for a fresh table, or None when it can.

    A trigger would not survive the drop, and a view makes the rename fail.
    """
    rows = await driver.execute_fetchall(
        "SELECT type, name FROM sqlite_master WHERE type = 'view' "
        "OR (type = 'trigger' AND tbl_name = 'documents')"
    )
    return f"{rows[0][0]} {rows[0][1]}" if rows else None


async def _sqlite_swap(
    driver: Any,
    columns: Sequence[str],
    chunks: AsyncIterator[list[Row]],
    database: str | None,
    phases: Phases,
) -> tuple[int, int]:
    """Fill ``documents_new`` and put it in place of ``documents``, in the caller's transaction.
    Returns (rows in the store, rows loaded).

    The fresh table is created from the live table's own SQL: same columns, same UNIQUE
    constraint, so the store keeps exactly the schema its Alembic revision made. Rows go straight
    into it as long as each chunk arrives in key order (its unique index then grows at one end,
    while the next chunk is parsed); from the first chunk that does not, they go to a staging
    table without an index and join the fresh table in one sorted insert at the end. Measured on
    10 million records, same runs: in key order, straight in 219,000-304,000 rows/s against
    165,000-228,000 staged; shuffled, 142,000-146,000 staged against 119,000 straight in
    (B-tree inserts all over an index larger than the page cache).
    """
    ((ddl,),) = await driver.execute_fetchall(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'documents'"
    )
    fresh_ddl, found = re.subn(r"^CREATE TABLE\s+(\"documents\"|documents)", "CREATE TABLE "
                               "documents_new", ddl)  # fmt: skip
    if found != 1:
        raise StoreError(f"unexpected definition of the documents table: {ddl[:80]!r}")
    others = await driver.execute_fetchall(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'documents' "
        "AND sql IS NOT NULL"
    )
    await driver.execute("DROP TABLE IF EXISTS documents_new")
    await driver.execute(fresh_ddl)
    straight_in = (
        f"INSERT INTO documents_new ({', '.join(COLUMNS)}) VALUES ({_sqlite_values(columns)}) "
        f"ON CONFLICT (issuing_state, number) DO UPDATE SET {UPDATE_ALL}"
    )
    staging = f"temp.{_SQLITE_STAGING}"
    staged = False

    async def write(chunk: list[Row]) -> None:
        nonlocal staged
        # Keys are unique within a chunk, so comparing whole rows compares keys.
        if not staged and not all(map(operator.lt, chunk, itertools.islice(chunk, 1, None))):
            staged = True
            await driver.execute(f"DROP TABLE IF EXISTS {staging}")
            await driver.execute(f"CREATE TEMP TABLE {_SQLITE_STAGING} ({', '.join(columns)})")
        if staged:
            await driver.executemany(
                f"INSERT INTO {staging} VALUES ({', '.join('?' * len(columns))})", chunk
            )
        else:
            await driver.executemany(straight_in, chunk)

    stop = threading.Event()
    warm: asyncio.Future[None] | None = None
    if database:
        warm = asyncio.ensure_future(asyncio.to_thread(_read_ahead, database, stop))
    try:
        total = await pipeline(chunks, write)
    finally:
        if warm is not None:
            if not warm.done():
                phases.marks["read_ahead_unfinished"] = True
            stop.set()
            await warm
    phases.mark("load")
    if staged:
        # In key order, and by rowid within a key: the later of two rows for a document wins.
        await driver.execute(
            f"INSERT INTO documents_new ({', '.join(COLUMNS)}) "
            f"SELECT {_sqlite_select(columns)} FROM {staging} WHERE true "
            f"ORDER BY issuing_state, number, rowid ON CONFLICT (issuing_state, number) "
            f"DO UPDATE SET {UPDATE_ALL}"
        )
        phases.mark("staged_insert")
        # The staging table is not dropped (that walks all its pages: 1-2 s for 10 million
        # rows): it goes with the temporary database when the caller closes the connection.
    await driver.execute("DROP TABLE documents")
    phases.mark("drop_old")
    await driver.execute("ALTER TABLE documents_new RENAME TO documents")
    for (sql,) in others:
        await driver.execute(sql)
    phases.mark("swap")
    inserted = await _sqlite_count(driver)
    phases.mark("count")
    return inserted, total


async def pragmas(engine: AsyncEngine) -> None:
    if engine.dialect.name == "sqlite":
        async with engine.connect() as conn:
            # WAL lets lookups go on while an import writes; it persists in the file.
            await conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL still keeps the store consistent across a crash (a committed
            # load may be lost at power failure, never half-applied).
            await conn.exec_driver_sql("PRAGMA synchronous=NORMAL")
