"""CSV import into an SQL store: every row validated, bad rows reported by line, good rows loaded.

The CSV header is::

    issuing_state,document_number,document_type,status,reported_on,record_ref

optionally followed by holder columns ``surname,given_names,birth_date,sex,expiry_date`` and by
``reporting_authority,detail``. Columns are found by name, so their order does not matter.

The file is read and validated a chunk at a time (a 10-million-line export never sits in memory;
a large file is parsed in a worker process while this one writes), and everything is written in
one transaction on the driver connection of SQLAlchemy's engine. Two ways to write, chosen inside
that transaction once it holds the store's write lock:

- **Swap** (``replace=True``, or an import into an empty store): the rows go into a fresh table,
  which then takes the place of ``documents`` in the same transaction, so readers see the old
  store until the commit and the complete new one after it. SQLite: straight into the fresh
  table while the chunks arrive in key order, otherwise through a staging table without an
  index, inserted in key order at the end (``_sqlite_swap``). PostgreSQL: COPY into a table
  without an index, its unique key built once at the end; the swap leaves no dead rows behind
  (a delete-and-reload left ten million, and the lookups right after it paid for them).
- **Upsert** (an import into a store that already holds records): ``INSERT ... ON CONFLICT``, a
  later row for the same document winning. A ``replace`` falls back to this path, after deleting
  the old records in the same transaction, when the table carries something a swap would not
  carry over (triggers, views, policies, publications).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import itertools
import marshal
import operator
import os
import pickle
import re
import stat
import sys
import threading
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sqlstore.migrate import migrate_engine
from adapters.sqlstore.schema import (
    SCHEMA_VERSION,
    STATUSES,
    documents,
    make_engine,
    store_meta,
)
from rmas.documents import (
    MAX_NUMBER_LENGTH,
    DocumentType,
    normalise_name,
    normalise_number,
    number_problem,
    parse_sex,
)
from rmas.errors import StoreError
from rmas.states import canonical_economy, to_alpha3

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

REQUIRED_COLUMNS = (
    "issuing_state",
    "document_number",
    "document_type",
    "status",
    "reported_on",
    "record_ref",
)
OPTIONAL_COLUMNS = (
    "surname",
    "given_names",
    "birth_date",
    "sex",
    "expiry_date",
    "reporting_authority",
    "detail",
)

# Column order of the INSERT, shared by CSV import and synthetic stores.
_COLUMNS = (
    "issuing_state",
    "number",
    "document_type",
    "status",
    "reported_on",
    "record_ref",
    "reporting_authority",
    "detail",
    "surname",
    "given_names",
    "birth_date",
    "sex",
    "expiry_date",
)
# What a column holds when the CSV does not carry it.
_ABSENT: dict[str, str | None] = {
    "reporting_authority": "",
    "detail": "",
    "surname": "",
    "given_names": "",
    "birth_date": None,
    "sex": "",
    "expiry_date": None,
}
Row = tuple[Any, ...]

#: Rows per chunk: the unit of parsing, of one executemany / COPY, and of memory held.
CHUNK_ROWS = 50_000
# Read buffer for a worker's chunks (about 2 MB each): fewer pauses of the pipe's transport.
CHUNK_BYTES = 4 << 20


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import did. ``rejected`` lists (line number, reason) for every bad row."""

    loaded: int
    inserted: int
    updated: int
    duplicates: int
    rejected: tuple[tuple[int, str], ...] = field(default_factory=tuple)
    seconds: float = 0.0


# Value caches: a national file repeats a few thousand dates, a handful of states and types.
# Bounded, so that a hostile file cannot grow them without limit.
_CACHE_LIMIT = 100_000
_DATES: dict[str, dt.date] = {}
_ISO_DATES: dict[str, str] = {}
_STATES: dict[str, str | None] = {}
_TYPE_SPELLINGS: dict[str, str] = {}


def _date(raw: str, name: str) -> dt.date | None:
    if not raw:
        return None
    d = _DATES.get(raw)
    if d is not None:
        return d
    s = raw.strip()
    if not s:
        return None
    try:
        d = dt.date.fromisoformat(s)
    except ValueError:
        raise ValueError(f"{name}: not an ISO date (YYYY-MM-DD): {s[:12]!r}") from None
    if len(_DATES) < _CACHE_LIMIT:
        _DATES[raw] = d
    return d


def _iso_date(raw: str, name: str) -> str | None:
    """A date as SQLAlchemy's SQLite ``Date`` stores it (ISO text): the SQLite load writes through
    the driver, and building a ``date`` only to format it again cost 1.5 µs a row."""
    iso = _ISO_DATES.get(raw)
    if iso is not None:
        return iso
    d = _date(raw, name)
    if d is None:
        return None
    iso = d.isoformat()
    if len(_ISO_DATES) < _CACHE_LIMIT:
        _ISO_DATES[raw] = iso
    return iso


def _state(raw: str) -> str:
    # A store holds a handful of states: resolve each spelling once.
    if raw not in _STATES:
        code = to_alpha3(raw) if raw.strip() else None
        _STATES[raw] = canonical_economy(code) if code is not None else None
    state = _STATES[raw]
    if state is None:
        raise ValueError(f"issuing_state: unknown state code {raw.strip()[:8]!r}")
    return state


def _number(raw: str) -> str:
    number = normalise_number(raw)
    problem = number_problem(number)
    if problem is not None:
        raise ValueError(f"document_number: {problem} (after normalising)")
    return number


def _type(raw: str) -> str:
    try:
        letter = DocumentType.parse(raw).letter
    except ValueError as exc:
        raise ValueError(f"document_type: {exc}") from None
    if len(_TYPE_SPELLINGS) < _CACHE_LIMIT:
        _TYPE_SPELLINGS[raw] = letter
    return letter


def _status(raw: str) -> str:
    status = raw.strip().upper()
    if status not in STATUSES:
        raise ValueError(f"status: {status!r} is not one of {', '.join(sorted(STATUSES))}")
    return status


def _sex(raw: str) -> str:
    if not raw:
        return ""
    try:
        return parse_sex(raw)
    except ValueError as exc:
        raise ValueError(f"sex: {raw.strip()[:4]!r} {exc}") from None


def _name(raw: str) -> str:
    return normalise_name(raw) if raw else ""


def record_values(raw: Mapping[str, str]) -> dict[str, Any]:
    """One record's values, validated and normalised exactly as a CSV row's are (ValueError
    naming the column), keyed by the CSV's column names: for delta feeds, which carry the same
    fields. An absent or empty field is what an empty CSV cell is."""
    out: dict[str, Any] = {
        "issuing_state": _state(raw.get("issuing_state", "")),
        "document_number": _number(raw.get("document_number", "")),
        "document_type": _type(raw.get("document_type", "")),
        "status": _status(raw.get("status", "")),
        "reported_on": _date(raw.get("reported_on", ""), "reported_on"),
        "record_ref": raw.get("record_ref", "").strip()[:64],
    }
    for name in OPTIONAL_COLUMNS:
        out[name] = _normaliser(name, iso_dates=False)(raw.get(name, ""))
    return out


def record_key(raw: Mapping[str, str]) -> tuple[str, str]:
    """(issuing economy, normalised number) of a record, validated as a CSV row's are."""
    return _state(raw.get("issuing_state", "")), _number(raw.get("document_number", ""))


def _constant(name: str) -> Callable[[str], Any]:
    value = _ABSENT[name]
    return lambda _raw: value


def _normaliser(name: str, iso_dates: bool) -> Callable[[str], Any]:
    """How an optional column's raw text becomes the stored value (ValueError when invalid)."""
    if name in ("birth_date", "expiry_date"):
        to_date = _iso_date if iso_dates else _date
        return lambda raw: to_date(raw, name)
    if name == "sex":
        return _sex
    if name in ("surname", "given_names"):
        return _name
    limit = 128 if name == "reporting_authority" else 512
    return lambda raw: raw.strip()[:limit]


class _Columns:
    """Where the known columns sit in a CSV header, and which columns the rows carry.

    ``every_column``: rows carry all of ``_COLUMNS`` (what PostgreSQL's COPY needs); otherwise
    only the columns the file has, the others being constants in the SQL (SQLite: binding seven
    empty values a row cost about 1 µs). ``iso_dates``: dates as ISO text instead of ``date``.
    """

    def __init__(self, header: list[str], *, every_column: bool, iso_dates: bool) -> None:
        names = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)
        self.index = {n: (header.index(n) if n in header else -1) for n in names}
        self.width = len(header)
        self.iso_dates = iso_dates
        present = tuple(c for c in _COLUMNS[6:] if self.index[c] >= 0)
        self.columns: tuple[str, ...] = _COLUMNS if every_column else (*_COLUMNS[:6], *present)
        # Values of the optional columns: parsed from the record (``optional``), or all constant
        # when the file has none of them (``tail``, appended without a per-column call).
        self.tail: Row = ()
        if every_column and not present:
            self.tail = tuple(_ABSENT[c] for c in _COLUMNS[6:])
        optional = self.columns[6:] if present else ()
        self.optional: tuple[tuple[int, Callable[[str], Any]], ...] = tuple(
            (self.index[c], _normaliser(c, iso_dates)) if self.index[c] >= 0 else (0, _constant(c))
            for c in optional
        )


def _row_maker(cols: _Columns) -> Callable[[list[str]], Row]:
    """The validating row builder for one header. Hot: 10 million calls a national load, so the
    common case (canonical values) costs a few dictionary and string-method calls."""
    required = operator.itemgetter(*(cols.index[c] for c in REQUIRED_COLUMNS))
    dates = _ISO_DATES if cols.iso_dates else _DATES
    to_date = _iso_date if cols.iso_dates else _date
    states, types, statuses = _STATES, _TYPE_SPELLINGS, STATUSES
    sex_at = cols.index["sex"]
    optional, tail = cols.optional, cols.tail

    def row(rec: list[str]) -> Row:
        raw_state, number, raw_type, status, raw_reported, ref = required(rec)
        state = states.get(raw_state) or _state(raw_state)
        # A fast path for numbers already in canonical form; _number has the rule.
        if not (
            number.isalnum()
            and number.isascii()
            and len(number) <= MAX_NUMBER_LENGTH
            and (number.isupper() or number.isdigit())
        ):
            number = _number(number)
        dtype = types.get(raw_type)
        if dtype is None:
            dtype = _type(raw_type)
        if status not in statuses:
            status = _status(status)
        if sex_at >= 0:
            _sex(rec[sex_at])  # reported before a bad date, as it always was
        reported = (dates.get(raw_reported) or to_date(raw_reported, "reported_on")) if (
            raw_reported) else None  # fmt: skip
        base = (state, number, dtype, status, reported, ref.strip()[:64])
        if optional:
            return base + tuple([norm(rec[i]) for i, norm in optional])
        return base + tail if tail else base

    return row


class CsvChunks:
    """Parses a CSV in chunks of validated rows (a later row for the same document wins within a
    chunk; across chunks the load makes it win). Collects rejects and duplicates as it goes.

    Rows carry ``self.columns`` (see ``_Columns`` for ``every_column`` and ``iso_dates``).
    """

    def __init__(
        self,
        lines: Iterable[str],
        chunk_size: int | None = None,
        *,
        every_column: bool = True,
        iso_dates: bool = False,
    ) -> None:
        self.reader = csv.reader(lines)
        try:
            header = [h.strip() for h in next(self.reader)]
        except StopIteration:
            raise StoreError("line 1: the file is empty") from None
        except (UnicodeDecodeError, csv.Error) as exc:
            raise _unreadable(exc, self.reader.line_num) from None
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise StoreError(f"line 1: header lacks column(s) {', '.join(missing)}")
        self.cols = _Columns(header, every_column=every_column, iso_dates=iso_dates)
        self.columns = self.cols.columns
        self.chunk_size = chunk_size or CHUNK_ROWS
        self.rejected: list[tuple[int, str]] = []
        self.duplicates = 0
        self.loaded = 0

    def __iter__(self) -> Iterator[list[Row]]:
        try:
            yield from self._chunks()
        except (UnicodeDecodeError, csv.Error) as exc:
            raise _unreadable(exc, self.reader.line_num) from None

    def _chunks(self) -> Iterator[list[Row]]:
        width, size = self.cols.width, self.chunk_size
        reader, make, rejected = self.reader, _row_maker(self.cols), self.rejected
        # Rows by number alone: a number seldom repeats across states within a chunk, and a
        # string key costs half of a (state, number) tuple key (0.5 µs a row less, measured).
        # A number that another state also uses goes to ``clashes``, by the full key.
        rows: dict[str, Row] = {}
        clashes: dict[Row, Row] = {}
        for rec in reader:
            if len(rec) != width:
                if rec:
                    rejected.append((reader.line_num, f"{len(rec)} fields; header has {width}"))
                continue
            try:
                row = make(rec)
            except ValueError as exc:
                rejected.append((reader.line_num, str(exc)))
                continue
            seen = rows.setdefault(row[1], row)
            if seen is not row:
                if seen[0] == row[0]:
                    self.duplicates += 1
                    rows[row[1]] = row  # the later row wins
                else:
                    key = row[:2]
                    if key in clashes:
                        self.duplicates += 1
                    clashes[key] = row
            if len(rows) >= size:
                yield self._chunk(rows, clashes)
                rows, clashes = {}, {}
        if rows:
            yield self._chunk(rows, clashes)

    def _chunk(self, rows: dict[str, Row], clashes: dict[Row, Row]) -> list[Row]:
        chunk = list(rows.values())
        if clashes:
            chunk += clashes.values()
        self.loaded += len(chunk)
        return chunk


def _unreadable(exc: Exception, line: int) -> StoreError:
    """The whole import stops: past a point the file cannot be read as CSV text at all."""
    if isinstance(exc, UnicodeDecodeError):
        # Decoded in blocks: the bad byte is somewhere after the last line read.
        where = f" after line {line}" if line else ""
        return StoreError(f"cannot read the file{where}: not UTF-8 text ({exc.reason})")
    return StoreError(f"line {line}: cannot read the file: {exc}")


def parse_rows(
    lines: Iterable[str],
) -> tuple[dict[tuple[str, str], Row], list[tuple[int, str]], int]:
    """All rows of a CSV keyed by (state, number), with rejects and a duplicate count."""
    chunks = CsvChunks(lines, chunk_size=1 << 62)
    rows = {(r[0], r[1]): r for chunk in chunks for r in chunk}
    return rows, chunks.rejected, chunks.duplicates


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


# An import is authoritative: it also brings back a record a feed had withdrawn.
_UPDATE_ALL = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[2:])
_UPSERT = f" ON CONFLICT (issuing_state, number) DO UPDATE SET {_UPDATE_ALL}, withdrawn = false"


async def _pipeline(
    chunks: AsyncIterator[list[Row]], write: Callable[[list[Row]], Awaitable[Any]]
) -> int:
    """Write each chunk while the next one is parsed; returns the rows written.

    The next chunk is parsed (on this thread, or in the worker process of ``_CsvSource``) while
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


async def _aiter(chunks: Iterable[list[Row]]) -> AsyncIterator[list[Row]]:
    for chunk in chunks:
        yield chunk


@dataclass(slots=True)
class _Phases:
    """Seconds spent per phase of a load (and why a replace stayed in place), for the log."""

    marks: dict[str, Any] = field(default_factory=dict)
    t: float = field(default_factory=time.perf_counter)

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.marks[name] = round(now - self.t, 3)
        self.t = now


# --- SQLite ---------------------------------------------------------------------------------

_SQLITE_STAGING = "rmas_import"


def _sqlite_values(columns: Sequence[str]) -> str:
    """``_COLUMNS`` order: a parameter for each column the rows carry, a constant otherwise."""
    return ", ".join(
        "?" if c in columns else ("NULL" if _ABSENT[c] is None else "''") for c in _COLUMNS
    )


def _sqlite_select(columns: Sequence[str]) -> str:
    return ", ".join(
        c if c in columns else ("NULL" if _ABSENT[c] is None else "''") for c in _COLUMNS
    )


async def _load_sqlite(
    driver: Any,
    columns: Sequence[str],
    chunks: AsyncIterator[list[Row]],
    *,
    replace: bool,
    database: str | None,
    phases: _Phases,
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
                f"INSERT INTO documents ({', '.join(_COLUMNS)}) VALUES ({_sqlite_values(columns)})"
                + _UPSERT
            )
            total = await _pipeline(chunks, lambda chunk: driver.executemany(sql, chunk))
            inserted = await _sqlite_count(driver) - before
            path = "upsert"
            phases.mark("upsert")
            if replace:
                phases.marks["in_place_because"] = blocker
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
    phases: _Phases,
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
        f"INSERT INTO documents_new ({', '.join(_COLUMNS)}) VALUES ({_sqlite_values(columns)}) "
        f"ON CONFLICT (issuing_state, number) DO UPDATE SET {_UPDATE_ALL}"
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
        total = await _pipeline(chunks, write)
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
            f"INSERT INTO documents_new ({', '.join(_COLUMNS)}) "
            f"SELECT {_sqlite_select(columns)} FROM {staging} WHERE true "
            f"ORDER BY issuing_state, number, rowid ON CONFLICT (issuing_state, number) "
            f"DO UPDATE SET {_UPDATE_ALL}"
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


# --- PostgreSQL -----------------------------------------------------------------------------

_PG_UPSERT_FROM_LOAD = (
    f"INSERT INTO documents ({', '.join(_COLUMNS)}) "
    f"SELECT {', '.join(_COLUMNS)} FROM load_documents" + _UPSERT
)

#: Memory for building the unique index of a swap (this transaction only): the sort of ten
#: million keys then runs in memory instead of spilling to disk.
PG_INDEX_MEMORY = "512MB"

# Things a swap would not carry over to the fresh table; any of them keeps a replace in place.
_PG_SWAP_BLOCKERS = """
SELECT 'trigger ' || tgname FROM pg_trigger WHERE tgrelid = 'documents'::regclass
    AND NOT tgisinternal
UNION ALL SELECT 'policy ' || polname FROM pg_policy WHERE polrelid = 'documents'::regclass
UNION ALL SELECT 'row security' FROM pg_class WHERE oid = 'documents'::regclass AND relrowsecurity
UNION ALL SELECT 'publication ' || p.pubname FROM pg_publication_rel r
    JOIN pg_publication p ON p.oid = r.prpubid WHERE r.prrelid = 'documents'::regclass
UNION ALL SELECT 'view ' || w.ev_class::regclass::text FROM pg_depend d
    JOIN pg_rewrite w ON w.oid = d.objid
    WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = 'documents'::regclass
UNION ALL SELECT 'foreign key ' || conname FROM pg_constraint
    WHERE confrelid = 'documents'::regclass
LIMIT 1
"""


async def _load_pg(
    driver: Any, chunks: AsyncIterator[list[Row]], *, replace: bool, phases: _Phases
) -> tuple[int, int, str]:
    """Load on an asyncpg connection in one transaction; returns (inserted, updated, path)."""
    async with driver.transaction():
        # Writers wait for this import (as they waited for its row locks before); readers do not.
        await driver.execute("LOCK TABLE documents IN SHARE ROW EXCLUSIVE MODE")
        before = 0 if replace else int(await driver.fetchval("SELECT count(*) FROM documents"))
        blocker = (
            await driver.fetchval(_PG_SWAP_BLOCKERS) if before == 0 else "the store holds records"
        )
        if blocker is None:
            inserted, total = await _pg_swap(driver, chunks, phases)
            path = "swap"
        else:
            if replace:
                # In the same transaction as the load: readers see the old records until commit.
                await driver.execute("DELETE FROM documents")
            await driver.execute(
                "CREATE TEMP TABLE load_documents (LIKE documents INCLUDING DEFAULTS) "
                "ON COMMIT DROP"
            )
            total = await _pipeline(chunks, lambda chunk: _copy_pg(driver, chunk))
            if total >= 10_000:
                # Fresh planner statistics after a bulk load: without them PostgreSQL's plan for
                # the batch join was six times slower on 10 million records (p99 50 ms -> 8.8 ms).
                await driver.execute("ANALYZE documents")
            inserted = int(await driver.fetchval("SELECT count(*) FROM documents")) - before
            path = "upsert"
            phases.mark("upsert")
            if replace:
                phases.marks["in_place_because"] = blocker
    phases.mark("commit")
    if path == "swap" and PG_VACUUM_AFTER_SWAP:
        # Outside the transaction (VACUUM cannot run in one): the new rows are committed, and the
        # first lookups would otherwise each set hint bits on the pages they read.
        await driver.execute("VACUUM documents")
        phases.mark("vacuum")
    return inserted, total - inserted, path


PG_VACUUM_AFTER_SWAP = True


async def _copy_pg(driver: Any, rows: Sequence[Row]) -> None:
    """COPY a chunk into the temporary table, upsert it, empty the table: about 1.5x the rate of
    executemany. Chunks are upserted in order, so a later row for a document wins."""
    await driver.copy_records_to_table("load_documents", records=rows, columns=list(_COLUMNS))
    await driver.execute(_PG_UPSERT_FROM_LOAD)
    await driver.execute("TRUNCATE load_documents")


async def _pg_swap(
    driver: Any, chunks: AsyncIterator[list[Row]], phases: _Phases
) -> tuple[int, int]:
    """COPY into ``documents_load`` (no index), build its keys, ANALYZE it, and put it in place of
    ``documents``. All in the caller's transaction. Returns (rows in the store, rows loaded)."""
    # Everything but the indexes: columns, defaults, NOT NULL and CHECK constraints, storage.
    await driver.execute(
        "CREATE TABLE documents_load (LIKE documents INCLUDING ALL EXCLUDING INDEXES)"
    )
    total = await _pipeline(
        chunks,
        lambda chunk: driver.copy_records_to_table(
            "documents_load", records=chunk, columns=list(_COLUMNS)
        ),
    )
    phases.mark("copy")
    await driver.execute(f"SET LOCAL maintenance_work_mem = '{PG_INDEX_MEMORY}'")
    renames = await _pg_build_keys(driver)
    removed = 0
    if renames is None:
        # The file named a document in two chunks: keep its last row (COPY appends to the fresh
        # heap in file order, so the highest ctid is the latest), then build the keys again.
        status = await driver.execute(
            "DELETE FROM documents_load d USING (SELECT ctid, row_number() OVER ("
            "PARTITION BY issuing_state, number ORDER BY ctid DESC) AS n FROM documents_load) o "
            "WHERE d.ctid = o.ctid AND o.n > 1"
        )
        removed = int(status.split()[-1])
        renames = await _pg_build_keys(driver)
        if renames is None:
            raise StoreError("duplicate keys remained after removing repeated rows")
    phases.mark("index")
    # Statistics travel with the table through the rename: the first batch after the swap is
    # planned on them (without them the batch join's p99 was 50 ms on 10 million records).
    await driver.execute("ANALYZE documents_load")
    phases.mark("analyze")
    await _pg_copy_privileges(driver)
    await _pg_lock_for_swap(driver)
    await driver.execute("DROP TABLE documents")
    await driver.execute("ALTER TABLE documents_load RENAME TO documents")
    for statement in renames:
        await driver.execute(statement)
    phases.mark("swap")
    return total - removed, total


async def _pg_build_keys(driver: Any) -> list[str] | None:
    """Give ``documents_load`` the constraints and indexes of ``documents`` under temporary names;
    returns the statements that give them their real names after the swap, or None when the rows
    break a unique key (nothing is left half-built: a savepoint undoes it)."""
    import asyncpg

    constraints = await driver.fetch(
        "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint "
        "WHERE conrelid = 'documents'::regclass AND contype IN ('p', 'u') ORDER BY conname"
    )
    indexes = await driver.fetch(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid) AS def FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'documents'::regclass "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) "
        "ORDER BY c.relname"
    )
    renames: list[str] = []
    try:
        async with driver.transaction():  # a savepoint
            for i, c in enumerate(constraints):
                temp = f"rmas_load_key{i}"
                await driver.execute(f"ALTER TABLE documents_load ADD CONSTRAINT {temp} {c['def']}")
                renames.append(
                    f"ALTER TABLE documents RENAME CONSTRAINT {temp} TO {_pg_ident(c['conname'])}"
                )
            for i, ix in enumerate(indexes):
                temp = f"rmas_load_ix{i}"
                head, _, using = ix["def"].partition(" USING ")
                unique = "UNIQUE " if head.startswith("CREATE UNIQUE") else ""
                await driver.execute(f"CREATE {unique}INDEX {temp} ON documents_load USING {using}")
                renames.append(f"ALTER INDEX {temp} RENAME TO {_pg_ident(ix['relname'])}")
    except asyncpg.UniqueViolationError:
        return None
    return renames


def _pg_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _pg_copy_privileges(driver: Any) -> None:
    """The fresh table gets the owner and the grants of the live one (a read-only role that the
    provider connects as must still be able to read after a reload)."""
    owner = await driver.fetchval(
        "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'documents'::regclass"
    )
    if owner != await driver.fetchval("SELECT current_user"):
        await driver.execute(f"ALTER TABLE documents_load OWNER TO {_pg_ident(owner)}")
    grants = await driver.fetch(
        "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END AS who, "
        "a.privilege_type AS what, a.is_grantable AS again "
        "FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a "
        "LEFT JOIN pg_roles r ON r.oid = a.grantee WHERE c.oid = 'documents'::regclass"
    )
    for g in grants:
        option = " WITH GRANT OPTION" if g["again"] else ""
        await driver.execute(f"GRANT {g['what']} ON documents_load TO {g['who']}{option}")


#: How long one attempt to take the swap's exclusive lock may wait: readers that arrive while it
#: waits queue behind it, so a long-running query elsewhere must not stall every lookup.
PG_SWAP_LOCK_WAIT = 0.2
PG_SWAP_LOCK_ATTEMPTS = 300


async def _pg_lock_for_swap(driver: Any) -> None:
    import asyncpg

    for _ in range(PG_SWAP_LOCK_ATTEMPTS):
        try:
            async with driver.transaction():  # a savepoint, which also ends the SET LOCAL
                await driver.execute(
                    f"SET LOCAL lock_timeout = '{int(PG_SWAP_LOCK_WAIT * 1000)}ms'"
                )
                await driver.execute("LOCK TABLE documents IN ACCESS EXCLUSIVE MODE")
            return
        except asyncpg.LockNotAvailableError:
            pass
        await asyncio.sleep(PG_SWAP_LOCK_WAIT)
    raise StoreError("the store stayed busy: could not take the lock to swap in the new records")


# --- Entry points ---------------------------------------------------------------------------


async def _load(
    engine: AsyncEngine,
    columns: Sequence[str],
    chunks: AsyncIterator[list[Row]],
    *,
    replace: bool,
    phases: _Phases | None = None,
) -> tuple[int, int, str]:
    """Load chunks of rows (carrying ``columns``; SQLite dates as ISO text, PostgreSQL rows with
    every column) in one transaction; returns (inserted, updated, path)."""
    dialect = engine.dialect.name
    phases = phases or _Phases()
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        if dialect == "sqlite":
            try:
                return await _load_sqlite(
                    driver, columns, chunks, replace=replace, database=engine.url.database,
                    phases=phases,
                )  # fmt: skip
            finally:
                # Closed, not pooled: its temporary database (a swap's staging table) is
                # discarded with it, and its bulk-load settings go too.
                await conn.invalidate()
        if dialect == "postgresql":
            return await _load_pg(driver, chunks, replace=replace, phases=phases)
    raise StoreError(f"import into {dialect} is not supported")


async def import_csv(url: str, path: Path, *, replace: bool = False) -> ImportReport:
    """Load a CSV file into the store at ``url``; bad rows are reported, good rows loaded."""
    t0 = time.perf_counter()
    engine = make_engine(url)
    sqlite = engine.dialect.name == "sqlite"
    try:
        # The file is read a chunk at a time: a 10-million-line export never sits in memory.
        source = _CsvSource(path, every_column=not sqlite, iso_dates=sqlite)
        try:
            await _pragmas(engine)
            await ensure_schema(engine)
            phases = _Phases()
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
    )
    # One line per import: which way it went, and the seconds each phase took.
    log.info("store_import", engine=engine.dialect.name, path=how, worker=source.in_worker,
             loaded=report.loaded, rejected=len(report.rejected),
             seconds=round(report.seconds, 3), **phases.marks)  # fmt: skip
    return report


#: Files at least this large are parsed in a worker process. Starting one costs about 0.5 s
#: (a fresh interpreter importing this module); parsing 400,000 rows here costs more than that.
WORKER_MIN_BYTES = 16 << 20

# The worker is a plain interpreter running this module's _worker_main: not multiprocessing,
# whose "spawn" re-runs the caller's __main__ script in the child (and "fork" would copy a
# process that runs threads).
_WORKER_CODE = "from adapters.sqlstore.importer import _worker_main; _worker_main()"


class _CsvSource:
    """The validated chunks of a CSV file, parsed on this thread or, for a large file, in a worker
    process, so that parsing (CSV, validation: ~1.5 µs a row) runs on the other core while this
    process binds and writes. The worker sends whole chunks through a pipe, in marshal format
    for SQLite's text-only rows (unpacking: 0.2 µs a row; pickle 0.3 µs) and pickle for
    PostgreSQL's rows with dates. A chunk in the pipe, one parsed ahead and one being written are
    all that is ever held in memory.
    """

    def __init__(self, path: Path, *, every_column: bool, iso_dates: bool) -> None:
        self.path, self.every_column, self.iso_dates = path, every_column, iso_dates
        self.rejected: list[tuple[int, str]] = []
        self.duplicates = 0
        self.loaded = 0
        self._worker: asyncio.subprocess.Process | None = None
        try:
            self._file: TextIO | None = _open_csv(path)
        except OSError as exc:
            raise StoreError(f"{path}: cannot read: {exc.strerror}") from None
        try:
            info = os.fstat(self._file.fileno())
            # The header is checked here, before the store is touched, whoever parses the rest.
            self._parser = CsvChunks(self._file, every_column=every_column, iso_dates=iso_dates)
        except BaseException:
            self._file.close()
            raise
        self.columns = self._parser.columns
        # Only a regular file can be read again from the start by the worker.
        self.in_worker = stat.S_ISREG(info.st_mode) and info.st_size >= WORKER_MIN_BYTES

    async def chunks(self) -> AsyncIterator[list[Row]]:
        if not self.in_worker:
            parser = self._parser
            try:
                for chunk in parser:
                    yield chunk
            finally:
                self.rejected, self.duplicates = parser.rejected, parser.duplicates
                self.loaded = parser.loaded
            return
        self._close_file()
        self._worker = worker = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _WORKER_CODE, str(self.path), str(CHUNK_ROWS),
            "every" if self.every_column else "present", "iso" if self.iso_dates else "date",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, limit=CHUNK_BYTES,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
        )  # fmt: skip
        assert worker.stdout is not None
        decode: Callable[[bytes], Any] = marshal.loads if self.iso_dates else pickle.loads
        while True:
            try:
                size = int.from_bytes(await worker.stdout.readexactly(8), "little")
                message = decode(await worker.stdout.readexactly(size))
            except asyncio.IncompleteReadError:
                code = await worker.wait()
                raise StoreError(f"the CSV parser process stopped (exit code {code})") from None
            if message[0] == "error":
                raise StoreError(message[1])
            self.rejected.extend(message[-1])
            if message[0] == "end":
                self.loaded, self.duplicates = message[1], message[2]
                return
            yield message[1]

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    async def aclose(self) -> None:
        self._close_file()
        worker, self._worker = self._worker, None
        if worker is not None:
            if worker.returncode is None:
                worker.kill()  # still parsing for an import that has failed or been cancelled
            await worker.wait()


def _worker_main() -> None:
    """The worker process of ``_CsvSource``: parse ``argv[1]``, and write length-prefixed chunks
    (with the rejects found so far) to stdout, then the totals."""
    path, chunk_rows, columns, dates = sys.argv[1:5]
    # The frames own stdout: anything else printed in this process goes to stderr instead.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    iso = dates == "iso"
    encode: Callable[[Any], bytes] = (
        marshal.dumps if iso else lambda obj: pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
    )

    def send(message: tuple[Any, ...]) -> None:
        data = encode(message)
        out.write(len(data).to_bytes(8, "little"))
        out.write(data)
        out.flush()

    try:
        with _open_csv(Path(path)) as source:
            parser = CsvChunks(
                source, int(chunk_rows), every_column=columns == "every", iso_dates=iso
            )
            sent = 0
            for chunk in parser:
                send(("rows", chunk, parser.rejected[sent:]))
                sent = len(parser.rejected)
            send(("end", parser.loaded, parser.duplicates, parser.rejected[sent:]))
    except BrokenPipeError:
        pass  # the parent stopped reading: it has given up on this import
    except (StoreError, OSError) as exc:
        reason = str(exc) if isinstance(exc, StoreError) else f"{path}: cannot read: {exc}"
        with contextlib.suppress(OSError):
            send(("error", reason))


def _open_csv(path: Path) -> TextIO:
    return path.open(encoding="utf-8-sig", newline="")


async def _pragmas(engine: AsyncEngine) -> None:
    if engine.dialect.name == "sqlite":
        async with engine.connect() as conn:
            # WAL lets lookups go on while an import writes; it persists in the file.
            await conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL still keeps the store consistent across a crash (a committed
            # load may be lost at power failure, never half-applied).
            await conn.exec_driver_sql("PRAGMA synchronous=NORMAL")


def synthetic_number(state: str, k: int) -> str:
    """The k-th synthetic document number of ``state`` (benchmarks: k < count exists)."""
    return f"{state[0]}{k:09d}"


async def build_synthetic(url: str, count: int, states: Sequence[str], seed: int = 0) -> None:
    """A store of ``count`` records per state, numbers ``synthetic_number(state, 0..count-1)``."""
    statuses = ("VALID", "LOST", "STOLEN", "REVOKED", "INVALID", "STOLEN_BLANK")
    engine = make_engine(url)
    try:
        await _pragmas(engine)
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
        await _load(engine, _COLUMNS, _aiter(chunks), replace=True)
    finally:
        await engine.dispose()


async def store_stats(url: str) -> dict[str, Any]:
    """Record counts by state and status (withdrawn records left out), and the last feed."""
    from adapters.sqlstore.schema import feeds

    engine = make_engine(url, create=False)
    last_feed: dict[str, Any] | None = None
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    select(feeds.c.name, feeds.c.applied_at, feeds.c.changes)
                    .order_by(feeds.c.applied_at.desc())
                    .limit(1)
                )
            ).first()
            if row is not None:
                last_feed = {"name": row[0], "applied_at": row[1], "changes": row[2]}
            result = await conn.execute(
                select(documents.c.issuing_state, documents.c.status, func.count())
                .where(documents.c.withdrawn.is_(False))
                .group_by(documents.c.issuing_state, documents.c.status)
                .order_by(documents.c.issuing_state, documents.c.status)
            )
            by: dict[str, dict[str, int]] = {}
            for state, status, n in result:
                by.setdefault(state, {})[status] = n
    finally:
        await engine.dispose()
    return {
        "total": sum(sum(v.values()) for v in by.values()),
        "by_state": by,
        "last_feed": last_feed,
    }
