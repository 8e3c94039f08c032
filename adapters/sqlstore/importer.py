"""CSV import into an SQL store: every row validated, bad rows reported by line, good rows loaded.

The CSV's columns and the validation of each row: :mod:`adapters.sqlstore.csvrows`.

The file is read and validated a chunk at a time (a 10-million-line export never sits in memory;
a large file is parsed in a worker process while this one writes), and everything is written in
one transaction on the driver connection of SQLAlchemy's engine. Two ways to write, chosen inside
that transaction once it holds the store's write lock:

- **Swap** (``replace=True``, or an import into an empty store): the rows go into a fresh table,
  which then takes the place of ``documents`` in the same transaction, so readers see the old
  store until the commit and the complete new one after it. SQLite: straight into the fresh
  table while the chunks arrive in key order, otherwise through a staging table without an
  index, inserted in key order at the end (``load_sqlite``). PostgreSQL: COPY into a table
  without an index, its unique key built once at the end; the swap leaves no dead rows behind
  (a delete-and-reload left ten million, and the lookups right after it paid for them).
- **Upsert** (an import into a store that already holds records): ``INSERT ... ON CONFLICT``, a
  later row for the same document winning. A ``replace`` falls back to this path, after deleting
  the old records in the same transaction, when the table carries something a swap would not
  carry over (triggers, views, policies, publications).

The stages, one module each: ``csvrows`` (columns, rows, chunks), ``worker`` (the parsing worker
process), ``bulk`` (the write pipeline and upsert), ``load_sqlite``, ``load_postgres``, ``stats``.
This module is the face: :func:`import_csv`, :class:`ImportReport`, synthetic stores.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sqlstore.bulk import Phases, aiter_chunks
from adapters.sqlstore.csvrows import (
    CHUNK_ROWS,
    COLUMNS,
    REQUIRED_COLUMNS,
    Row,
    parse_rows,
    record_key,
    record_values,
)
from adapters.sqlstore.load_postgres import load_pg
from adapters.sqlstore.load_sqlite import load_sqlite, pragmas
from adapters.sqlstore.migrate import migrate_engine
from adapters.sqlstore.schema import SCHEMA_VERSION, make_engine, store_meta
from adapters.sqlstore.stats import store_stats
from adapters.sqlstore.worker import CsvSource
from rmas.errors import StoreError

__all__ = [
    "REQUIRED_COLUMNS",
    "ImportReport",
    "Row",
    "build_synthetic",
    "ensure_schema",
    "import_csv",
    "parse_rows",
    "record_key",
    "record_values",
    "store_stats",
    "synthetic_number",
]

log = structlog.get_logger("adapters.sqlstore")


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import did. ``rejected`` lists (line number, reason) for every bad row."""

    loaded: int
    inserted: int
    updated: int
    duplicates: int
    rejected: tuple[tuple[int, str], ...] = field(default_factory=tuple)
    seconds: float = 0.0
    #: Who parsed the file: "worker" (a worker process, for a large file) or "in-process".
    parsed_by: str = "in-process"


async def ensure_schema(engine: AsyncEngine) -> None:
    """Create or migrate the tables to the current revision, and record the schema version."""
    await migrate_engine(engine)
    async with engine.begin() as conn:
        found = (
            await conn.execute(
                select(store_meta.c.value).where(store_meta.c.key == "schema_version")
            )
        ).scalar()
        if found is None:
            await conn.execute(
                store_meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION))
            )


async def _load(
    engine: AsyncEngine,
    columns: Sequence[str],
    chunks: AsyncIterator[list[Row]],
    *,
    replace: bool,
    phases: Phases | None = None,
) -> tuple[int, int, str]:
    """Load chunks of rows (carrying ``columns``; SQLite dates as ISO text, PostgreSQL rows with
    every column) in one transaction; returns (inserted, updated, path)."""
    dialect = engine.dialect.name
    phases = phases or Phases()
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        if dialect == "sqlite":
            try:
                return await load_sqlite(
                    driver, columns, chunks, replace=replace, database=engine.url.database,
                    phases=phases,
                )  # fmt: skip
            finally:
                # Closed, not pooled: its temporary database (a swap's staging table) is
                # discarded with it, and its bulk-load settings go too.
                await conn.invalidate()
        if dialect == "postgresql":
            return await load_pg(driver, chunks, replace=replace, phases=phases)
    raise StoreError(f"import into {dialect} is not supported")


async def import_csv(url: str, path: Path, *, replace: bool = False) -> ImportReport:
    """Load a CSV file into the store at ``url``; bad rows are reported, good rows loaded."""
    t0 = time.perf_counter()
    engine = make_engine(url)
    sqlite = engine.dialect.name == "sqlite"
    try:
        # The file is read a chunk at a time: a 10-million-line export never sits in memory.
        source = CsvSource(path, every_column=not sqlite, iso_dates=sqlite)
        try:
            await pragmas(engine)
            await ensure_schema(engine)
            phases = Phases()
            inserted, updated, how = await _load(
                engine, source.columns, source.chunks(), replace=replace, phases=phases
            )
        finally:
            await source.aclose()
    finally:
        await engine.dispose()
    report = ImportReport(
        loaded=source.loaded,
        inserted=inserted,
        updated=updated,
        duplicates=source.duplicates,
        rejected=tuple(source.rejected),
        seconds=time.perf_counter() - t0,
        parsed_by="worker" if source.in_worker else "in-process",
    )
    # One line per import: which way it went, and the seconds each phase took.
    log.info("store_import", engine=engine.dialect.name, path=how, worker=source.in_worker,
             loaded=report.loaded, rejected=len(report.rejected),
             seconds=round(report.seconds, 3), **phases.marks)  # fmt: skip
    return report


def synthetic_number(state: str, k: int) -> str:
    """The k-th synthetic document number of ``state`` (benchmarks: k < count exists)."""
    return f"{state[0]}{k:09d}"


async def build_synthetic(url: str, count: int, states: Sequence[str], seed: int = 0) -> None:
    """A store of ``count`` records per state, numbers ``synthetic_number(state, 0..count-1)``."""
    statuses = ("VALID", "LOST", "STOLEN", "REVOKED", "INVALID", "STOLEN_BLANK")
    engine = make_engine(url)
    try:
        await pragmas(engine)
        await ensure_schema(engine)
        reported: Any = dt.date(2024, 1, 1)
        if engine.dialect.name == "sqlite":
            reported = reported.isoformat()
        rows: list[Row] = [
            (state, synthetic_number(state, k), "P", statuses[(k * 7919 + seed) % len(statuses)],
             reported, f"R{k}", "", "", "", "", None, "", None)
            for state in states
            for k in range(count)
        ]  # fmt: skip
        chunks = (rows[i : i + CHUNK_ROWS] for i in range(0, len(rows), CHUNK_ROWS))
        await _load(engine, COLUMNS, aiter_chunks(chunks), replace=True)
    finally:
        await engine.dispose()
