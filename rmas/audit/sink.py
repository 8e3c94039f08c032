"""Where audit entries go: a group-committing writer to SQLite or PostgreSQL, and the read side.

:class:`AuditSink` makes entries durable before the hub answers, cheaply:

- **Group commit.** ``record()`` queues its entries and waits. One writer task per sink takes
  everything queued (whole ``record()`` calls, up to ``max_batch`` entries), commits it in one
  transaction, then wakes those callers. No timer: whatever queued while a commit ran forms the
  next one, so under load a commit carries many checks and when idle a check waits for one.
- **One chain per database**, however many hub processes share it. Each commit holds an
  exclusive lock (SQLite ``BEGIN IMMEDIATE``; PostgreSQL ``pg_advisory_xact_lock`` on
  :data:`PG_LOCK_KEY`), reads the tail (highest ``seq`` and its hash), numbers and chains its
  entries from there (:mod:`rmas.audit.chain`), inserts them in one statement and commits. The
  primary key on ``seq`` turns any writer that skipped the lock into a failed commit, never a
  fork.
- **Durability.** SQLite runs in WAL mode with ``synchronous=FULL`` by default: the commit has
  reached the disk when ``record()`` returns. PostgreSQL uses the server's synchronous commit.
  After every SQLite commit the file is checked to be still the one opened (SQLite in WAL mode
  carries on writing to a deleted file, which would lose entries silently).
- **Driver connections, not SQLAlchemy, on the hot path** (docs: performance.md): SQLite through
  the stdlib ``sqlite3`` on one dedicated thread, one thread hop per commit (aiosqlite would cost
  four: begin, tail, insert, commit); PostgreSQL through one asyncpg connection, four round
  trips per commit, the rows as typed arrays through ``unnest``. SQLAlchemy describes the table
  (:data:`audit_entries`, for admin queries) and renders its DDL for each dialect.
- **Indexes.** ``document_key`` (for :func:`find`) and ``check_id`` are random values, and a
  B-tree insert at a random place dirties a page of its own: SQLite writes every dirty page
  whole to its write-ahead log, so two plain indexes cost about 1 page (4 KiB) per index per
  entry, measured at 38 µs of CPU an entry on a 500,000-entry trail against 2.5 µs without them.
  Both indexes therefore lead with the entry's bucket, ``seq >> 12`` (4,096 consecutive entries):
  new entries land in the newest bucket's few pages, and the cost fell to 5 µs an entry. A
  lookup probes each bucket in one statement (``WITH RECURSIVE`` on SQLite, ``generate_series``
  on PostgreSQL): measured 8 ms (SQLite) and 19 ms (PostgreSQL) on 2,000,000 entries,
  connection included. PostgreSQL gets the same indexes: its write-ahead log writes a full page
  image at the first change of each page after a checkpoint, so scattered inserts cost it too
  (not measured separately).
- **Failures.** A failed commit is rolled back, its callers get :class:`~rmas.errors.AuditError`
  and ``healthy`` is false until a commit succeeds; the connection is dropped and reopened for
  the next commit (an SQLite file is reopened only if it still exists: a lost database is an
  error, never a fresh chain).

Reading: :func:`verify` streams the chain in ``seq`` order in chunks (memory stays flat for
millions of entries), :func:`find` looks entries up by document key, :func:`head` gives the
anchor an operator keeps to detect a deleted tail (see :mod:`rmas.audit.chain`).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import hashlib
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, Protocol

import structlog
from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, Table, Text, literal_column
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.schema import CreateIndex, CreateTable

from rmas.audit.chain import (
    FIELDS,
    GENESIS,
    ChainVerifier,
    VerifyReport,
    entry_body,
    entry_fields,
    link_hash,
)
from rmas.audit.entry import AuditEntry
from rmas.errors import AuditError, ConfigError

__all__ = [
    "BUCKET_BITS",
    "COLUMNS",
    "PG_LOCK_KEY",
    "SYNCHRONOUS_MODES",
    "TABLE",
    "AuditSink",
    "audit_entries",
    "audit_metadata",
    "find",
    "find_check",
    "head",
    "verify",
]

log = structlog.get_logger("rmas.audit")

TABLE = "audit_entries"

audit_metadata = MetaData()

#: The stored entries: ``seq``, the chain columns, then every :data:`~rmas.audit.chain.FIELDS`
#: column, all text. SQLite's ``seq`` is its rowid (INTEGER PRIMARY KEY).
audit_entries = Table(
    TABLE,
    audit_metadata,
    Column(
        "seq",
        BigInteger().with_variant(Integer(), "sqlite"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("prev_hash", Text, nullable=False),
    Column("hash", Text, nullable=False),
    *(Column(name, Text, nullable=False) for name in FIELDS),
)

#: Entries per index bucket (2**BUCKET_BITS); see the module docstring, "Indexes".
BUCKET_BITS: Final = 12
_BUCKET = f"seq >> {BUCKET_BITS}"

for _column in ("document_key", "check_id"):
    Index(
        f"ix_audit_entries_{_column}",
        audit_entries.c.seq.op(">>")(literal_column(str(BUCKET_BITS))),
        audit_entries.c[_column],
    )

COLUMNS: Final = ("seq", "prev_hash", "hash", *FIELDS)
_COLS = ", ".join(COLUMNS)

#: PostgreSQL advisory lock serialising chain appends (and schema creation) in one database.
PG_LOCK_KEY: Final = int.from_bytes(
    hashlib.sha256(b"rmas.audit.chain").digest()[:8], "big", signed=True
)

#: SQLite ``synchronous`` settings accepted (OFF is not: it would give up durability).
SYNCHRONOUS_MODES: Final = frozenset({"NORMAL", "FULL", "EXTRA"})

_TAIL_SQL = f"SELECT seq, hash FROM {TABLE} ORDER BY seq DESC LIMIT 1"
_SQLITE_INSERT = f"INSERT INTO {TABLE} ({_COLS}) VALUES ({', '.join('?' * len(COLUMNS))})"
_PG_INSERT = (
    f"INSERT INTO {TABLE} ({_COLS}) SELECT * FROM unnest($1::bigint[], "
    + ", ".join(f"${i}::text[]" for i in range(2, len(COLUMNS) + 1))
    + ")"
)
_MAX_SEQ_SQL = f"SELECT max(seq) FROM {TABLE}"
# Lookups probe the index once per bucket, in one statement (a bucket costs about 5 µs).
_SQLITE_LOOKUP = (
    "WITH RECURSIVE b(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM b WHERE x < ?) "
    f"SELECT {_COLS} FROM b CROSS JOIN {TABLE} a ON (a.{_BUCKET}) = b.x AND a.{{column}} = ? "
    "ORDER BY a.seq"
)
_PG_LOOKUP = (
    f"SELECT {_COLS} FROM generate_series(0, $1::bigint) AS b(x) "
    f"JOIN {TABLE} a ON (a.{_BUCKET}) = b.x AND a.{{column}} = $2 ORDER BY a.seq"
)
_SQLITE_CHUNK = f"SELECT {_COLS} FROM {TABLE} WHERE seq > ? ORDER BY seq LIMIT ?"
_PG_CHUNK = f"SELECT {_COLS} FROM {TABLE} WHERE seq > $1 ORDER BY seq LIMIT $2"

#: Rows per read while verifying.
VERIFY_CHUNK = 10_000


def _ddl(dialect: Dialect) -> tuple[str, ...]:
    table = str(CreateTable(audit_entries, if_not_exists=True).compile(dialect=dialect))
    indexes = (
        str(CreateIndex(ix, if_not_exists=True).compile(dialect=dialect))
        for ix in sorted(audit_entries.indexes, key=lambda ix: str(ix.name))
    )
    return (table.strip(), *indexes)


_SQLITE_DDL = _ddl(sqlite_dialect.dialect())
_PG_DDL = _ddl(pg_dialect.asyncpg.dialect())  # type: ignore[no-untyped-call]


# -- where ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Target:
    kind: Literal["sqlite", "postgresql"]
    #: SQLite: the absolute file path. PostgreSQL: an asyncpg DSN.
    location: str
    #: For messages and logs: the URL with any password hidden.
    shown: str


def _target(url: str, key: str = "audit.url") -> _Target:
    forms = "sqlite+aiosqlite:///FILE or postgresql+asyncpg://USER@HOST/DB"
    try:
        u = make_url(url)
    except Exception:
        raise ConfigError(key, f"not a database URL: use {forms}") from None
    backend, driver = u.get_backend_name(), u.get_driver_name()
    if (backend, driver) == ("sqlite", "aiosqlite"):
        if not u.database or u.database == ":memory:" or u.database.startswith("file:"):
            raise ConfigError(key, "give the audit database a file: sqlite+aiosqlite:///FILE")
        path = str(Path(u.database).expanduser().resolve())
        return _Target("sqlite", path, path)
    if (backend, driver) == ("postgresql", "asyncpg"):
        dsn = u.set(drivername="postgresql").render_as_string(hide_password=False)
        return _Target("postgresql", dsn, u.render_as_string(hide_password=True))
    raise ConfigError(
        key,
        f"use {forms}, not {u.drivername}",
    )


def _reason(exc: BaseException) -> str:
    """An exception as a short message (driver messages name tables and codes, never numbers)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{name}: {text[:300]}" if text else name


# -- writers ------------------------------------------------------------------------------------

#: An entry ready to store: its fields (FIELDS order) and their canonical bytes.
_Row = tuple[tuple[str, ...], bytes]


class _Writer(Protocol):
    async def open(self) -> None: ...
    async def commit(self, rows: list[_Row]) -> None: ...
    async def close(self) -> None: ...


class _SqliteWriter:
    """One sqlite3 connection on one dedicated thread; a commit is one hop to it and back."""

    def __init__(self, path: str, synchronous: str, timeout_s: float) -> None:
        self.path = path
        self.synchronous = synchronous
        self.timeout_s = timeout_s
        self._db: sqlite3.Connection | None = None
        self._file_id: tuple[int, int] | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="rmas-audit-sqlite"
        )

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def open(self) -> None:
        await self._call(self._open, True)

    async def commit(self, rows: list[_Row]) -> None:
        await self._call(self._commit, rows)

    async def close(self) -> None:
        try:
            await self._call(self._close)
        finally:
            self._executor.shutdown(wait=False)

    # The methods below run on the writer thread only.

    def _open(self, create: bool) -> None:
        path = self.path
        if not create and not os.path.exists(path):
            raise AuditError(f"audit database {path} no longer exists")
        try:
            if create:
                db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            else:  # never create a new, empty chain in place of a lost one
                uri = f"file:{urllib.parse.quote(path)}?mode=rw"
                db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            hint = "" if os.path.isdir(os.path.dirname(path)) else " (its directory does not exist)"
            raise AuditError(f"audit database {path} cannot be opened: {exc}{hint}") from exc
        try:
            db.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise AuditError(f"audit database {path} cannot use WAL mode (got {mode})")
            db.execute(f"PRAGMA synchronous = {self.synchronous}")
            if create:
                db.execute("BEGIN IMMEDIATE")
                try:
                    for statement in _SQLITE_DDL:
                        db.execute(statement)
                    db.execute("COMMIT")
                except BaseException:
                    db.rollback()
                    raise
            db.execute(_TAIL_SQL).fetchone()  # fails now if the table is missing or foreign
            st = os.stat(path)
        except AuditError:
            db.close()
            raise
        except (sqlite3.Error, OSError) as exc:
            db.close()
            raise AuditError(f"audit database {path} unusable: {_reason(exc)}") from exc
        self._db = db
        self._file_id = (st.st_dev, st.st_ino)

    def _commit(self, rows: list[_Row]) -> None:
        if self._db is None:
            self._open(False)
        db = self._db
        assert db is not None
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                tail = db.execute(_TAIL_SQL).fetchone()
                seq, prev = (tail[0], tail[1]) if tail else (0, GENESIS)
                out = []
                for fields, body in rows:
                    seq += 1
                    digest = link_hash(prev, seq, body)
                    out.append((seq, prev, digest, *fields))
                    prev = digest
                db.executemany(_SQLITE_INSERT, out)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.rollback()
                raise
            self._check_file()
        except BaseException:
            self._drop()
            raise

    def _check_file(self) -> None:
        """SQLite in WAL mode writes on into a deleted or replaced file: refuse to count that."""
        try:
            st = os.stat(self.path)
        except OSError:
            raise AuditError(f"audit database {self.path} was removed while in use") from None
        if (st.st_dev, st.st_ino) != self._file_id:
            raise AuditError(f"audit database {self.path} was replaced while in use")

    def _drop(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()

    def _close(self) -> None:
        self._drop()


class _PgWriter:
    """One asyncpg connection; a commit is four round trips under the advisory lock."""

    def __init__(self, target: _Target, timeout_s: float) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self._conn: Any = None

    async def _connect(self) -> Any:
        import asyncpg

        try:
            return await asyncpg.connect(
                self.target.location,
                timeout=self.timeout_s,
                server_settings={"application_name": "rmas-audit"},
            )
        except Exception as exc:
            raise AuditError(
                f"audit database {self.target.shown} unreachable: {_reason(exc)}"
            ) from exc

    async def open(self) -> None:
        conn = await self._connect()
        try:
            async with asyncio.timeout(self.timeout_s):
                if await conn.fetchval(f"SELECT to_regclass('{TABLE}')") is None:
                    async with conn.transaction():
                        await conn.execute(f"SELECT pg_advisory_xact_lock({PG_LOCK_KEY})")
                        for statement in _PG_DDL:
                            await conn.execute(statement)
                await conn.fetchrow(_TAIL_SQL)  # fails now if the table is foreign
        except Exception as exc:
            conn.terminate()
            raise AuditError(
                f"audit database {self.target.shown} unusable: {_reason(exc)}"
            ) from exc
        self._conn = conn

    async def commit(self, rows: list[_Row]) -> None:
        conn = self._conn
        if conn is None or conn.is_closed():
            self._conn = conn = await self._connect()
        try:
            async with asyncio.timeout(self.timeout_s):
                # BEGIN and the lock in one round trip (simple query protocol); the tail must be
                # read by a later statement, whose snapshot sees the previous holder's commit.
                await conn.execute(f"BEGIN; SELECT pg_advisory_xact_lock({PG_LOCK_KEY})")
                tail = await conn.fetchrow(_TAIL_SQL)
                seq, prev = (tail[0], tail[1]) if tail else (0, GENESIS)
                seqs = list(range(seq + 1, seq + 1 + len(rows)))
                prevs: list[str] = []
                hashes: list[str] = []
                for (_fields, body), n in zip(rows, seqs, strict=True):
                    prevs.append(prev)
                    prev = link_hash(prev, n, body)
                    hashes.append(prev)
                columns = zip(*(fields for fields, _body in rows), strict=True)
                await conn.execute(_PG_INSERT, seqs, prevs, hashes, *columns)
                await conn.execute("COMMIT")
        except BaseException as exc:
            # Whatever state the transaction is in, a fresh connection is simplest and safe:
            # the server rolls back what this one left open.
            self._conn = None
            conn.terminate()
            if isinstance(exc, TimeoutError):
                raise AuditError(
                    f"no commit within {self.timeout_s:g} s (database locked, slow or gone)"
                ) from exc
            raise

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), self.timeout_s)
            except Exception:
                conn.terminate()


# -- the sink -----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Waiting:
    rows: list[_Row]
    future: asyncio.Future[None]


class AuditSink:
    """Durable, chained, group-committed audit entries. See the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        max_batch: int = 5000,
        synchronous: str = "FULL",
        timeout_s: float = 5.0,
    ) -> None:
        """``url``: ``sqlite+aiosqlite:///FILE`` (relative to the working directory) or
        ``postgresql+asyncpg://...``. ``synchronous``: SQLite's pragma, NORMAL, FULL or EXTRA
        (PostgreSQL follows the server's ``synchronous_commit``). ``timeout_s``: longest wait for
        a lock or a connection (SQLite's busy timeout; PostgreSQL's whole commit) before the
        commit fails."""
        self._target = _target(url)
        if max_batch < 1:
            raise ConfigError("audit.max_batch", "must be 1 or more")
        sync = synchronous.strip().upper()
        if sync not in SYNCHRONOUS_MODES:
            raise ConfigError("audit.synchronous", 'must be "FULL" (default), "NORMAL" or "EXTRA"')
        if timeout_s <= 0:
            raise ConfigError("audit.timeout", "must be more than 0 seconds")
        self.url = url
        self.max_batch = max_batch
        self._writer: _Writer = (
            _SqliteWriter(self._target.location, sync, timeout_s)
            if self._target.kind == "sqlite"
            else _PgWriter(self._target, timeout_s)
        )
        self._queue: collections.deque[_Waiting] = collections.deque()
        self._drainer: asyncio.Task[None] | None = None
        self._state: Literal["new", "open", "closing", "closed"] = "new"
        #: Entries queued or being committed, not yet committed.
        self.backlog = 0
        #: Commits that succeeded, entries they wrote, and commits that failed.
        self.commits = 0
        self.entries_written = 0
        self.failures = 0
        #: Duration of the last group commit (milliseconds).
        self.last_commit_ms = 0.0
        #: False after a failed commit (or start) until a commit succeeds again.
        self.healthy = True

    @property
    def engine(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._target.kind

    @property
    def location(self) -> str:
        """The database, for status pages and logs (file path, or URL without password)."""
        return self._target.shown

    async def start(self) -> None:
        """Create the schema if absent and open the writer; AuditError if that fails."""
        if self._state == "open":
            return
        if self._state != "new":
            raise AuditError("audit sink is closed")
        try:
            await self._writer.open()
        except AuditError as exc:
            self.healthy = False
            log.error("audit_unavailable", database=self._target.shown, error=str(exc))
            raise
        self._state = "open"
        self.healthy = True
        log.info("audit_started", database=self._target.shown)

    async def record(self, entries: Sequence[AuditEntry]) -> None:
        """Return once ``entries`` are committed durably; AuditError when they were not."""
        if not entries:
            return
        if self._state not in ("open", "closing"):
            raise AuditError(
                "audit sink is closed" if self._state == "closed" else "audit sink not started"
            )
        try:
            rows = [(f, entry_body(f)) for f in map(entry_fields, entries)]
        except (ValueError, TypeError) as exc:
            raise AuditError(f"audit entry cannot be stored: {exc}") from None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue.append(_Waiting(rows, future))
        self.backlog += len(rows)
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain(), name="rmas-audit-writer")
            self._drainer.add_done_callback(self._drained)
        await future

    def _drained(self, task: asyncio.Task[None]) -> None:
        """A writer task cancelled (even before it ran) fails what is still queued."""
        if self._drainer is task:
            self._drainer = None
        if task.cancelled() or task.exception() is not None:
            self._fail_queued()

    def _fail_queued(self, *more: _Waiting) -> None:
        for w in (*more, *self._queue):
            self.backlog -= len(w.rows)
            if not w.future.done():
                w.future.set_exception(AuditError("audit sink stopped"))
        self._queue.clear()

    async def _drain(self) -> None:
        """Commit everything queued, batch after batch, until the queue is empty."""
        queue = self._queue
        batch: list[_Waiting] = []
        try:
            while queue:
                batch = [queue.popleft()]
                size = len(batch[0].rows)
                while queue and size + len(queue[0].rows) <= self.max_batch:
                    w = queue.popleft()
                    batch.append(w)
                    size += len(w.rows)
                rows = batch[0].rows if len(batch) == 1 else [r for w in batch for r in w.rows]
                started = time.perf_counter()
                try:
                    await self._writer.commit(rows)
                except Exception as exc:
                    self.backlog -= size
                    self.failures += 1
                    self.healthy = False
                    reason = exc if isinstance(exc, AuditError) else _reason(exc)
                    log.error("audit_commit_failed", database=self._target.shown,
                              entries=size, error=str(reason))  # fmt: skip
                    for w in batch:
                        if not w.future.done():
                            w.future.set_exception(
                                AuditError(f"audit entries not written: {reason}")
                            )
                    batch = []
                    continue
                self.last_commit_ms = (time.perf_counter() - started) * 1000.0
                self.backlog -= size
                self.commits += 1
                self.entries_written += size
                if not self.healthy:
                    self.healthy = True
                    log.info("audit_recovered", database=self._target.shown)
                for w in batch:
                    if not w.future.done():
                        w.future.set_result(None)
                batch = []
        except BaseException:  # cancelled: nobody may believe these entries were written
            self._fail_queued(*batch)
            raise
        finally:
            # Now, not in the done callback: a record() arriving before that callback runs must
            # start a new writer.
            self._drainer = None

    async def aclose(self) -> None:
        """Commit what is queued, then close. Entries recorded while closing are still written."""
        if self._state == "closed":
            return
        if self._state == "new":
            self._state = "closed"
            await self._writer.close()
            return
        self._state = "closing"
        while (drainer := self._drainer) is not None:
            await asyncio.wait([drainer])  # neither cancels it nor raises what ended it
            if self._drainer is drainer:
                self._drainer = None
        self._state = "closed"
        await self._writer.close()
        log.info("audit_closed", database=self._target.shown, entries=self.entries_written)


# -- reading ----------------------------------------------------------------------------------


def _sqlite_reader(path: str) -> sqlite3.Connection:
    """A read-only connection to an existing audit database (never creates a file)."""
    if not os.path.exists(path):
        raise AuditError(f"audit database {path} does not exist")
    try:
        db = sqlite3.connect(f"file:{urllib.parse.quote(path)}?mode=ro", uri=True)
        db.execute(f"SELECT seq FROM {TABLE} LIMIT 0")
    except sqlite3.Error as exc:
        if "no such table" in str(exc):
            raise AuditError(f"{path} holds no audit trail (no table {TABLE})") from None
        raise AuditError(f"audit database {path} cannot be read: {exc}") from exc
    return db


async def _pg_reader(target: _Target) -> Any:
    import asyncpg

    try:
        conn = await asyncpg.connect(target.location, timeout=10.0)
    except Exception as exc:
        raise AuditError(f"audit database {target.shown} unreachable: {_reason(exc)}") from exc
    if await conn.fetchval(f"SELECT to_regclass('{TABLE}')") is None:
        await conn.close()
        raise AuditError(f"{target.shown} holds no audit trail (no table {TABLE})")
    return conn


def _verify_sqlite(path: str, verifier: ChainVerifier, chunk: int) -> None:
    db = _sqlite_reader(path)
    try:
        after = 0
        while True:
            rows = db.execute(_SQLITE_CHUNK, (after, chunk)).fetchall()
            for row in rows:
                verifier.feed(row[0], row[1], row[2], row[3:])
            if len(rows) < chunk:
                return
            after = rows[-1][0]
    except sqlite3.Error as exc:
        raise AuditError(f"audit database {path} cannot be read: {exc}") from exc
    finally:
        db.close()


async def verify(
    url: str, *, expect_head: tuple[int, str] | None = None, chunk: int = VERIFY_CHUNK
) -> VerifyReport:
    """Check the whole chain: every hash, every link, no gap; and the anchor if one is given.

    A deleted tail leaves a valid chain: only ``expect_head`` (a ``(seq, hash)`` an operator
    kept, from :func:`head`) detects it. AuditError when the database cannot be read.
    """
    target = _target(url, "--url")
    verifier = ChainVerifier(expect_head=expect_head)
    if target.kind == "sqlite":
        await asyncio.to_thread(_verify_sqlite, target.location, verifier, chunk)
        return verifier.finish()
    conn = await _pg_reader(target)
    try:
        after = 0
        while True:
            rows = await conn.fetch(_PG_CHUNK, after, chunk)
            for row in rows:
                verifier.feed(row[0], row[1], row[2], tuple(row)[3:])
            if len(rows) < chunk:
                break
            after = rows[-1][0]
    except AuditError:
        raise
    except Exception as exc:
        raise AuditError(f"audit database {target.shown} cannot be read: {_reason(exc)}") from exc
    finally:
        await conn.close()
    return verifier.finish()


async def _select(url: str, column: str, value: str) -> list[dict[str, Any]]:
    """Entries whose ``column`` (an indexed one) equals ``value``, by seq."""
    target = _target(url, "--url")
    if target.kind == "sqlite":
        sql = _SQLITE_LOOKUP.format(column=column)

        def run() -> list[tuple[Any, ...]]:
            db = _sqlite_reader(target.location)
            try:
                last = db.execute(_MAX_SEQ_SQL).fetchone()[0] or 0
                return db.execute(sql, (last >> BUCKET_BITS, value)).fetchall()
            except sqlite3.Error as exc:
                raise AuditError(f"audit database {target.location} cannot be read: {exc}") from exc
            finally:
                db.close()

        rows = await asyncio.to_thread(run)
    else:
        conn = await _pg_reader(target)
        try:
            last = await conn.fetchval(_MAX_SEQ_SQL) or 0
            found = await conn.fetch(_PG_LOOKUP.format(column=column), last >> BUCKET_BITS, value)
            rows = [tuple(r) for r in found]
        except Exception as exc:
            raise AuditError(
                f"audit database {target.shown} cannot be read: {_reason(exc)}"
            ) from exc
        finally:
            await conn.close()
    return [dict(zip(COLUMNS, row, strict=True)) for row in rows]


async def find(url: str, document_key: str) -> list[dict[str, Any]]:
    """Every entry about the document with this key (:meth:`DocumentKeyer.key_of`), by seq.

    Each is a dict of the stored columns (``seq``, ``prev_hash``, ``hash`` and the entry's
    fields; ``sources`` is the stored JSON text).
    """
    return await _select(url, "document_key", document_key)


async def find_check(url: str, check_id: str) -> list[dict[str, Any]]:
    """The entry (normally one) of the check with this id, as :func:`find` returns them."""
    return await _select(url, "check_id", check_id)


async def head(url: str) -> tuple[int, str]:
    """(seq, hash) of the last entry, (0, GENESIS) when empty: the anchor an operator keeps."""
    target = _target(url, "--url")
    if target.kind == "sqlite":

        def run() -> Any:
            db = _sqlite_reader(target.location)
            try:
                return db.execute(_TAIL_SQL).fetchone()
            finally:
                db.close()

        row = await asyncio.to_thread(run)
    else:
        conn = await _pg_reader(target)
        try:
            row = await conn.fetchrow(_TAIL_SQL)
        finally:
            await conn.close()
    return (int(row[0]), str(row[1])) if row else (0, GENESIS)
