"""Where audit entries go: a group-committing writer to SQLite or PostgreSQL, and the read side.

:class:`AuditSink` makes entries durable before the hub answers, cheaply:

- **Group commit.** ``record()`` queues its entries and waits. One writer task per sink takes
  everything queued (whole ``record()`` calls, up to ``max_batch`` entries), commits it in one
  transaction, then wakes those callers. Whatever queued while a commit ran forms the next one,
  so under load a commit carries many checks and when idle a check waits for one.
- **Linger, only for tiny groups.** When fewer than :data:`LINGER_BELOW` entries wait and the
  previous commit started less than ``linger_s`` (:data:`LINGER_S`, 4 ms) ago, the next one
  waits for that moment: single checks at 64 in flight otherwise commit 1.3 entries at a time,
  and each commit has a fixed cost, mostly the kernel's ``fsync`` (measured with mTLS: 0.55x of
  a plain hub without the linger, 0.8-0.9x with it; docs/benchmarks.md). An idle hub never
  waits: the previous commit is long past. Manifests are never held: they are 64 entries or
  more. ``[audit] linger_ms`` sets it (0: never).
- **One chain per database**, however many hub processes share it. Each commit holds an
  exclusive lock (SQLite ``BEGIN IMMEDIATE``; PostgreSQL ``pg_advisory_xact_lock`` on
  :data:`PG_LOCK_KEY`), reads the tail (highest ``seq`` and its hash), numbers and chains its
  entries from there (:mod:`rmas.audit.chain`), inserts them and commits.
- **Durability.** SQLite runs in WAL mode with ``synchronous=FULL`` by default: the commit has
  reached the disk when ``record()`` returns. PostgreSQL uses the server's synchronous commit.
  After every SQLite commit the file is checked to be still the one opened (SQLite in WAL mode
  carries on writing to a deleted file, which would lose entries silently).
- **SQLite: a writer process** (:mod:`rmas.audit.writer`), which stores each commit as one
  block row (its layout, and why, are described there). The hub serialises a group once, as
  bytes (:func:`rmas.audit.entry.encode_entries`, no AuditEntry objects on the hot path), sends
  it over a pipe, and gets the new head back once it is committed; the process hashes, inserts
  and commits. The event loop thus never contends with SQLite for the GIL, and on a host with
  more than one core the writer's CPU is not the hub's. A writer that dies fails the commit it
  held (AuditError: those checks get no answer) and a new one is started for the next commit;
  it reopens the file only if it still exists (a lost database is an error, never a fresh
  chain). The writer ends when the sink closes its input: after ``aclose()``, or when the hub
  process dies, however it dies.
- **PostgreSQL: one asyncpg connection in the hub**, four round trips per commit, the rows as
  typed arrays through ``unnest``; a row per entry, with the bucketed indexes below. asyncpg
  does its I/O on the event loop without a thread, and the database server does the storing,
  so a process of its own would save the hub little (docs/benchmarks.md).
- **Indexes (PostgreSQL, and SQLite files of layout 1).** ``document_key`` (for :func:`find`)
  and ``check_id`` are random values, and a B-tree insert at a random place dirties a page of
  its own: both indexes lead with the entry's bucket, ``seq >> 12`` (4,096 consecutive
  entries), so that new entries land in the newest bucket's few pages. A lookup probes each
  bucket in one statement (``WITH RECURSIVE`` on SQLite, ``generate_series`` on PostgreSQL):
  measured 8 ms (SQLite) and 19 ms (PostgreSQL) on 2,000,000 entries. SQLite's block layout
  has no index: a lookup scans the blocks' tags (:mod:`rmas.audit.writer`).
- **Failures.** A failed commit is rolled back, its callers get :class:`~rmas.errors.AuditError`
  and ``healthy`` is false until a commit or a :meth:`AuditSink.probe` succeeds; the connection
  is dropped and reopened (SQLite: the writer process restarted) for the next commit.

Reading: :func:`verify` streams the chain in ``seq`` order (memory stays flat for millions of
entries), :func:`find` looks entries up by document key, :func:`head` gives the anchor an
operator keeps to detect a deleted tail (see :mod:`rmas.audit.chain`). SQLite files of the
version 1 layout (a table row per entry) are read as they are; :func:`migrate` converts one.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.parse
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, Protocol, cast

import structlog
from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, Table, Text, literal_column
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.schema import CreateIndex, CreateTable

from rmas.audit import writer as _w
from rmas.audit.chain import FIELDS, GENESIS, ChainVerifier, VerifyReport, entry_fields
from rmas.audit.entry import AuditEntry, encode_keys
from rmas.errors import AuditError, ConfigError
from rmas.fileperm import create_private

__all__ = [
    "BUCKET_BITS",
    "COLUMNS",
    "LINGER_BELOW",
    "LINGER_S",
    "PG_LOCK_KEY",
    "SYNCHRONOUS_MODES",
    "TABLE",
    "AuditSink",
    "audit_entries",
    "audit_metadata",
    "encode_group",
    "find",
    "find_check",
    "head",
    "migrate",
    "verify",
]

log = structlog.get_logger("rmas.audit")

TABLE = "audit_entries"

audit_metadata = MetaData()

#: The entries as a table: ``seq``, the chain columns, then every
#: :data:`~rmas.audit.chain.FIELDS` column, all text. PostgreSQL stores them so (and SQLite files
#: of layout version 1); SQLite's layout 2 shows them so, as a view (:mod:`rmas.audit.writer`).
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
_NFIELDS: Final = len(FIELDS)
_COLS = ", ".join(COLUMNS)

#: PostgreSQL advisory lock serialising chain appends (and schema creation) in one database.
PG_LOCK_KEY: Final = int.from_bytes(
    hashlib.sha256(b"rmas.audit.chain").digest()[:8], "big", signed=True
)

#: SQLite ``synchronous`` settings accepted (OFF is not: it would give up durability).
SYNCHRONOUS_MODES: Final = frozenset({"NORMAL", "FULL", "EXTRA"})

#: A commit of fewer entries than this waits until LINGER_S after the previous one started.
LINGER_BELOW: Final = 64
LINGER_S: Final = 0.004

_TAIL_SQL = f"SELECT seq, hash FROM {TABLE} ORDER BY seq DESC LIMIT 1"
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

#: The writer process's program, run by path (it imports nothing from rmas).
WRITER_SCRIPT: Final = str(Path(_w.__file__ or "writer.py").resolve())
#: After a writer failed to start, commits and probes fail at once for this long.
RESTART_BACKOFF_S: Final = 1.0
#: Capacity asked for the pipe to the writer (Linux's default limit for unprivileged users).
_PIPE_BYTES: Final = 1 << 20


class _Writer(Protocol):
    async def open(self) -> None: ...
    async def commit(self, count: int, keys: bytes, group: bytes) -> None: ...
    async def probe(self) -> None: ...
    async def close(self) -> None: ...


class _WriterProcess(asyncio.SubprocessProtocol):
    """The hub's end of one writer process: requests go out on a pipe to its stdin, replies come
    back on its stdout in the same order, each resolving the oldest waiting future.

    Requests are written with ``os.writev`` straight from their parts (the group is the
    largest: 100-250 KB for a manifest) into a pipe enlarged to 1 MiB where Linux allows, so a
    group usually leaves in one system call and is copied once, by the kernel; a transport's
    write would first join the parts, and a 64 KiB pipe takes a manifest in three rounds.
    What the pipe does not take now is written when it becomes writable.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, write_fd: int) -> None:
        self._loop = loop
        self._transport: asyncio.SubprocessTransport | None = None
        self._fd = write_fd  # -1 once closed
        self._unsent: collections.deque[memoryview] = collections.deque()
        self._close_when_sent = False
        self._buf = bytearray()
        self._waiting: collections.deque[asyncio.Future[bytes]] = collections.deque()
        self._stderr = b""
        self._killed = False
        self.exited: asyncio.Future[None] = loop.create_future()

    @property
    def alive(self) -> bool:
        """Running, taking requests, and not being stopped (a killed process, or one whose
        input is closed, may not have exited yet)."""
        return not self.exited.done() and not self._killed and self._fd >= 0

    @property
    def pid(self) -> int | None:
        return self._transport.get_pid() if self._transport is not None else None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # cast, not isinstance: uvloop's transports do not derive from asyncio's classes.
        self._transport = cast(asyncio.SubprocessTransport, transport)

    def _send(self, parts: list[bytes]) -> None:
        if self._fd < 0:
            raise AuditError("audit writer process stopped")
        if not self._unsent:
            try:
                sent = os.writev(self._fd, parts)
            except BlockingIOError:
                sent = 0
            except OSError:  # the writer is gone; process_exited tells the callers why
                self._close_input()
                raise AuditError("audit writer process stopped") from None
            for part in parts:
                if sent >= len(part):
                    sent -= len(part)
                    continue
                self._unsent.append(memoryview(part)[sent:])
                sent = 0
            if self._unsent:
                self._loop.add_writer(self._fd, self._flush)
        else:
            self._unsent.extend(memoryview(p) for p in parts)

    def _flush(self) -> None:
        """The pipe can take more: write what waits."""
        unsent = self._unsent
        try:
            sent = os.writev(self._fd, list(unsent)[:64])
        except BlockingIOError:
            return
        except OSError:  # a frame cut short must never be followed by another: stop it
            self.kill()  # its callers learn it from process_exited
            return
        while unsent and sent >= len(unsent[0]):
            sent -= len(unsent.popleft())
        if unsent and sent:
            unsent[0] = unsent[0][sent:]
        if not unsent:
            self._loop.remove_writer(self._fd)
            if self._close_when_sent:
                self._close_input()

    def _close_input(self) -> None:
        """End the writer's input (it finishes what it has, then exits)."""
        if self._fd < 0:
            return
        if self._unsent:
            self._loop.remove_writer(self._fd)
            self._unsent.clear()
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = -1

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        assert isinstance(data, bytes)
        if fd == 2:  # a crash's traceback: kept short, for the message when the process ends
            self._stderr = (self._stderr + data)[-2000:]
            return
        buf = self._buf
        buf += data
        while len(buf) >= _w.HEADER.size:
            size, kind = _w.HEADER.unpack_from(buf)
            end = _w.HEADER.size + size
            if len(buf) < end:
                break
            payload = bytes(buf[_w.HEADER.size : end])
            del buf[:end]
            if not self._waiting:  # a reply to nothing: the writer is confused, stop it
                self.kill()
                return
            future = self._waiting.popleft()
            if future.done():  # its caller was cancelled
                continue
            if kind == ord("K"):
                future.set_result(payload)
            else:
                future.set_exception(AuditError(payload.decode("utf-8", "replace")))

    def process_exited(self) -> None:
        assert self._transport is not None
        code = self._transport.get_returncode()
        detail = self._stderr.decode("utf-8", "replace").strip().splitlines()
        why = f"audit writer process stopped (exit code {code})" + (
            f": {detail[-1]}" if detail else ""
        )
        self._close_input()
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(AuditError(why))
        if not self.exited.done():
            self.exited.set_result(None)

    async def request(self, kind: bytes, *payload: bytes, timeout_s: float) -> bytes:
        """Send one frame; its reply's payload, or AuditError (the writer's, or its death).

        A writer that has not replied within ``timeout_s`` (a disk that hangs) is killed: its
        callers get an AuditError rather than waiting for ever.
        """
        if not self.alive or self._fd < 0:
            raise AuditError("audit writer process stopped")
        self._send([_w.HEADER.pack(sum(map(len, payload)), kind[0]), *payload])
        future: asyncio.Future[bytes] = self._loop.create_future()
        self._waiting.append(future)
        timer = self._loop.call_later(timeout_s, self._stuck, future, timeout_s)
        try:
            reply = await future
        except asyncio.CancelledError:
            # The frame is sent: the writer must still answer it in time (it may hold the
            # database's write lock), so the timer stays and _stuck checks for its reply.
            raise
        except BaseException:
            timer.cancel()
            raise
        timer.cancel()
        return reply

    def _stuck(self, future: asyncio.Future[bytes], timeout_s: float) -> None:
        if future in self._waiting:  # no reply yet (a reply removes its future)
            if not future.done():
                future.set_exception(
                    AuditError(f"no reply from the audit writer in {timeout_s:g} s")
                )
            self.kill()  # its other callers learn it from process_exited

    async def close(self, timeout_s: float) -> None:
        """Close its input (it finishes what it has, then exits); kill it if it does not."""
        if self._unsent:
            self._close_when_sent = True
        else:
            self._close_input()
        try:
            await asyncio.wait_for(asyncio.shield(self.exited), timeout_s)
        except TimeoutError:
            self.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.exited), 5.0)
        finally:  # cancelled too: the transport's pipes must not outlive it
            if self._transport is not None:
                self._transport.close()

    def kill(self) -> None:
        if self._transport is not None and not self.exited.done() and not self._killed:
            self._killed = True
            with contextlib.suppress(ProcessLookupError):
                self._transport.kill()
        self._close_input()


class _SqliteWriter:
    """SQLite through a writer process (:mod:`rmas.audit.writer`): a commit is one frame out and
    one back. A dead writer fails the commit it held and is started again for the next one,
    which opens the file only if it still exists."""

    def __init__(self, path: str, synchronous: str, timeout_s: float) -> None:
        self.path = path
        self.synchronous = synchronous
        self.timeout_s = timeout_s
        #: The pragmas the writer reported at its last start (journal_mode, synchronous).
        self.pragmas: dict[str, Any] = {}
        #: Longest wait for a reply: the lock's wait, then time for a slow disk.
        self.reply_timeout_s = timeout_s + max(5.0, timeout_s)
        self._proc: _WriterProcess | None = None
        #: After a failed restart: until when (loop time) to fail at once, and why.
        self._start_failed: tuple[float, str] | None = None

    @property
    def pid(self) -> int | None:
        """The writer process's id, while there is one."""
        return self._proc.pid if self._proc is not None and self._proc.alive else None

    async def _start(self, create: bool) -> None:
        loop = asyncio.get_running_loop()
        read_fd, write_fd = os.pipe()
        made: list[_WriterProcess] = []  # the protocol, once made, owns write_fd

        def protocol() -> _WriterProcess:
            made.append(_WriterProcess(loop, write_fd))
            return made[0]

        try:
            with contextlib.suppress(AttributeError, OSError):  # Linux only; a hint
                import fcntl

                fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
            os.set_blocking(write_fd, False)
            _transport, proc = await loop.subprocess_exec(
                protocol, sys.executable, "-I", WRITER_SCRIPT,
                stdin=read_fd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
        except BaseException as exc:  # cancelled too: no descriptor may leak, none close twice
            if made:
                made[0].kill()
            else:
                os.close(write_fd)
            if isinstance(exc, OSError):
                raise AuditError(f"audit writer process cannot start: {_reason(exc)}") from exc
            raise
        finally:
            os.close(read_fd)  # the child has its copy
        options = {
            "path": self.path,
            "synchronous": self.synchronous,
            "timeout_s": self.timeout_s,
            "create": create,
        }
        try:
            reply = await proc.request(
                b"O", json.dumps(options).encode(), timeout_s=self.reply_timeout_s
            )
        except BaseException:
            await proc.close(1.0)
            raise
        self.pragmas = json.loads(reply)
        self._proc = proc

    async def open(self) -> None:
        with contextlib.suppress(OSError):  # 0600 from the start; the writer reports what fails
            create_private(self.path)
        await self._start(True)

    async def _ready(self) -> _WriterProcess:
        """The running writer, started again if it died; after a failed start, the same
        failure again for :data:`RESTART_BACKOFF_S` without trying (commits and health probes
        would otherwise start an interpreter each, on a database that is not there)."""
        proc = self._proc
        if proc is not None and proc.alive:
            return proc
        loop = asyncio.get_running_loop()
        if self._start_failed is not None and loop.time() < self._start_failed[0]:
            raise AuditError(self._start_failed[1])
        if proc is not None:
            self._proc = None
            await proc.close(1.0)
        try:
            await self._start(False)
        except AuditError as exc:
            self._start_failed = (loop.time() + RESTART_BACKOFF_S, str(exc))
            raise
        self._start_failed = None
        proc = self._proc
        assert proc is not None
        return proc

    async def commit(self, count: int, keys: bytes, group: bytes) -> None:
        proc = await self._ready()
        reply = await proc.request(
            b"C", _w.COMMIT_HEAD.pack(count, len(keys)), keys, group, timeout_s=self.reply_timeout_s
        )
        if len(reply) != _w.HEAD_SEQ.size + 64:  # never seen: the replies would be out of step
            proc.kill()
            raise AuditError("the audit writer's reply does not answer a commit")

    async def probe(self) -> None:
        proc = await self._ready()
        if await proc.request(b"P", timeout_s=self.reply_timeout_s) != b"":
            proc.kill()
            raise AuditError("the audit writer's reply does not answer a probe")

    async def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            await proc.close(self.timeout_s + 10.0)


class _PgWriter:
    """One asyncpg connection in the hub's process; a commit is four round trips under the
    advisory lock."""

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

    async def commit(self, count: int, keys: bytes, group: bytes) -> None:
        _w.bodies_of(count, group)  # MalformedGroup before any round trip
        # Every 12th item from the (j+1)-th is field j of each entry (item 0 is the 0xFF mark).
        items = group.decode("utf-8", "surrogateescape").split("\x00")
        columns = [items[j + 1 :: _NFIELDS + 1] for j in range(_NFIELDS)]
        async with self._session("commit") as conn:
            # BEGIN and the lock in one round trip (simple query protocol); the tail must be
            # read by a later statement, whose snapshot sees the previous holder's commit.
            await conn.execute(f"BEGIN; SELECT pg_advisory_xact_lock({PG_LOCK_KEY})")
            tail = await conn.fetchrow(_TAIL_SQL)
            seq, prev = (tail[0], tail[1]) if tail else (0, GENESIS)
            seqs = list(range(seq + 1, seq + 1 + count))
            digests = _w.link(prev.encode("ascii"), seq, count, group)[0]
            hashes = [digests[i : i + 32].hex() for i in range(0, 32 * count, 32)]
            await conn.execute(_PG_INSERT, seqs, [prev, *hashes[:-1]], hashes, *columns)
            await conn.execute("COMMIT")

    async def probe(self) -> None:
        """What a commit needs, without adding an entry: the connection, the advisory lock,
        the table's insert lock, a transaction id (refused by a read-only standby) and a
        commit (a WAL record)."""
        async with self._session("probe") as conn:
            await conn.execute(
                f"BEGIN; SELECT pg_advisory_xact_lock({PG_LOCK_KEY}); "
                f"LOCK TABLE {TABLE} IN ROW EXCLUSIVE MODE; SELECT txid_current(); COMMIT"
            )

    @contextlib.asynccontextmanager
    async def _session(self, what: str) -> AsyncIterator[Any]:
        """The connection (reconnected if lost) for one transaction, within ``timeout_s``.
        On any failure the connection is dropped, whatever state the transaction is in: a
        fresh one is simplest and safe (the server rolls back what this one left open)."""
        conn = self._conn
        if conn is None or conn.is_closed():
            self._conn = conn = await self._connect()
        try:
            async with asyncio.timeout(self.timeout_s):
                yield conn
        except BaseException as exc:
            self._conn = None
            conn.terminate()
            if isinstance(exc, TimeoutError):
                raise AuditError(
                    f"no {what} within {self.timeout_s:g} s (database locked, slow or gone)"
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


def encode_group(entries: Sequence[AuditEntry]) -> tuple[bytes, bytes]:
    """(keys, group): entries in the writers' wire form (:mod:`rmas.audit.writer`), as
    :func:`rmas.audit.entry.encode_entries` makes them from check results; AuditError if a field
    is not text, holds a NUL or cannot be encoded."""
    try:
        group = b"\x00".join(
            [b"\xff\x00" + "\x00".join(entry_fields(e)).encode("utf-8") for e in entries]
        )
        keys = encode_keys([e.check_id for e in entries], [e.document_key for e in entries])
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise AuditError(f"audit entry cannot be stored: {exc}") from None
    if not _well_formed(len(entries), group):
        raise AuditError("audit entry cannot be stored: a field holds a NUL character")
    return keys, group


def _well_formed(count: int, group: bytes) -> bool:
    """``count`` entries of 11 fields each: the separators are where they must be."""
    return (
        group.count(b"\x00") == count * (_NFIELDS + 1) - 1
        and group.count(b"\xff") == count
        and group.startswith(b"\xff\x00")
    )


@dataclass(slots=True)
class _Waiting:
    #: Entries, and their wire form.
    count: int
    keys: bytes
    group: bytes
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
        linger_s: float = LINGER_S,
    ) -> None:
        """``url``: ``sqlite+aiosqlite:///FILE`` (relative to the working directory) or
        ``postgresql+asyncpg://...``. ``synchronous``: SQLite's pragma, NORMAL, FULL or EXTRA
        (PostgreSQL follows the server's ``synchronous_commit``). ``timeout_s``: longest wait for
        a lock or a connection (SQLite's busy timeout; PostgreSQL's whole commit) before the
        commit fails. ``linger_s``: see the module docstring (0: never linger)."""
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
        self.linger_s = max(0.0, linger_s)
        self._writer: _Writer = (
            _SqliteWriter(self._target.location, sync, timeout_s)
            if self._target.kind == "sqlite"
            else _PgWriter(self._target, timeout_s)
        )
        self._queue: collections.deque[_Waiting] = collections.deque()
        self._drainer: asyncio.Task[None] | None = None
        self._state: Literal["new", "open", "closing", "closed"] = "new"
        self._last_start = -1e9  # loop time the last commit started
        #: Serialises the writer's use: commits (the writer task) and probes.
        self._io = asyncio.Lock()
        self._last_ok = time.monotonic()  # the last successful commit or probe
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
        log.info(
            "audit_started",
            database=self._target.shown,
            # Whether the per-entry hashing runs in C (rmas.audit._speedups) or in Python.
            compiled=_w.speedups is not None,
            writer_compiled=getattr(self._writer, "pragmas", {}).get("speedups"),
        )

    async def record(self, entries: Sequence[AuditEntry]) -> None:
        """Return once ``entries`` are committed durably; AuditError when they were not."""
        if entries:
            self._check_open()
            keys, group = encode_group(entries)
            await self._enqueue(len(entries), keys, group)

    def submit_encoded(
        self, count: int, keys: bytes, group: bytes, *, encoded_here: bool = False
    ) -> asyncio.Future[None]:
        """Queue ``count`` entries in wire form now; the future is done once they are durable
        (AuditError when they were not). :meth:`record_encoded` is this, awaited; the
        servicers queue first and build their answer while the commit runs.

        ``encoded_here``: the group comes straight from
        :func:`rmas.audit.entry.encode_entries` (:class:`rmas.audit.trail.AuditTrail`), so the
        scans of its separators are skipped (0.3 µs a document); the writers check every
        entry either way.
        """
        self._check_open()
        if len(keys) != _w.KEYS_PER_ENTRY * count or (
            not encoded_here and not _well_formed(count, group)
        ):
            raise AuditError(f"audit entries not written: malformed group of {count}")
        return self._enqueue(count, keys, group)

    async def record_encoded(self, count: int, keys: bytes, group: bytes) -> None:
        """:meth:`record` for ``count`` entries already in wire form, as
        :func:`rmas.audit.entry.encode_entries` makes them (no AuditEntry objects). They are
        well formed by construction; the counts of separators and keys are checked here (a few
        scans of the bytes, C speed), so that a malformed call fails alone and not the calls it
        would share a commit with; the writers check each entry in full."""
        if count:
            await self.submit_encoded(count, keys, group)

    def _check_open(self) -> None:
        if self._state not in ("open", "closing"):
            raise AuditError(
                "audit sink is closed" if self._state == "closed" else "audit sink not started"
            )

    def _enqueue(self, count: int, keys: bytes, group: bytes) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue.append(_Waiting(count, keys, group, future))
        self.backlog += count
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain(), name="rmas-audit-writer")
            self._drainer.add_done_callback(self._drained)
        return future

    def _drained(self, task: asyncio.Task[None]) -> None:
        """A writer task cancelled before it ran fails what is queued. (Once running, it
        fails what it holds itself and clears ``_drainer``; the queue may then belong to a
        newer writer task, which this must not touch.)"""
        if self._drainer is task:
            self._drainer = None
            if task.cancelled() or task.exception() is not None:
                self._fail_queued()

    def _fail_queued(self, *more: _Waiting) -> None:
        for w in (*more, *self._queue):
            self.backlog -= w.count
            if not w.future.done():
                w.future.set_exception(AuditError("audit sink stopped"))
        self._queue.clear()

    async def _drain(self) -> None:
        """Commit everything queued, batch after batch, until the queue is empty."""
        queue = self._queue
        batch: list[_Waiting] = []
        loop = asyncio.get_running_loop()
        try:
            while queue:
                if self.backlog < LINGER_BELOW and self._state == "open":
                    wait = self._last_start + self.linger_s - loop.time()
                    if wait > 0:  # a tiny group while commits follow each other: let it grow
                        await asyncio.sleep(wait)
                self._last_start = loop.time()
                first = queue.popleft()
                batch = [first]
                size = first.count
                while queue and size + queue[0].count <= self.max_batch:
                    w = queue.popleft()
                    batch.append(w)
                    size += w.count
                if len(batch) == 1:
                    keys, group = first.keys, first.group
                else:  # the calls' groups joined by NUL form one group, their keys too
                    group = b"\x00".join([w.group for w in batch])
                    keys = b"".join([w.keys for w in batch])
                started = time.perf_counter()
                try:
                    async with self._io:
                        await self._writer.commit(size, keys, group)
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
                self._last_ok = time.monotonic()
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

    @property
    def idle_s(self) -> float:
        """Seconds since the last commit or probe that succeeded."""
        return time.monotonic() - self._last_ok

    async def probe(self) -> bool:
        """Whether the trail can be written now, found without adding an entry (see the
        writers' ``probe``); sets :attr:`healthy` accordingly. For health checks: a hub whose
        trail failed learns it works again without waiting for a check, and an idle hub learns
        that it stopped working before a check fails. While commits are running, they answer
        instead (the current :attr:`healthy`)."""
        if self._state != "open":
            return False
        if self._drainer is not None:
            return self.healthy
        async with self._io:
            try:
                await self._writer.probe()
            except Exception as exc:
                reason = exc if isinstance(exc, AuditError) else _reason(exc)
                if self.healthy:
                    log.error("audit_probe_failed", database=self._target.shown,
                              error=str(reason))  # fmt: skip
                self.healthy = False
                return False
        self._last_ok = time.monotonic()
        if not self.healthy:
            self.healthy = True
            log.info("audit_recovered", database=self._target.shown, by="probe")
        return True

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


def _sqlite_reader(path: str) -> tuple[sqlite3.Connection, int]:
    """A read-only connection to an existing audit database (never creates a file), and its
    layout (:func:`rmas.audit.writer.layout`: 1, a row per entry; 2, blocks)."""
    if not os.path.exists(path):
        raise AuditError(f"audit database {path} does not exist")
    try:
        db = sqlite3.connect(f"file:{urllib.parse.quote(path)}?mode=ro", uri=True)
        version = _w.layout(db)
    except sqlite3.Error as exc:
        raise AuditError(f"audit database {path} cannot be read: {exc}") from exc
    if version == 0:
        db.close()
        raise AuditError(f"{path} holds no audit trail (no table {TABLE})")
    return db, version


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


def _feed_blocks(db: sqlite3.Connection, verifier: ChainVerifier) -> None:
    """Feed every entry of every block, in order; and check each block's lookup keys."""
    for first, last, prev_hash, hashes, body, keys in db.execute(_w.BLOCKS_SQL):
        raw = hashes if isinstance(hashes, bytes) else str(hashes).encode("utf-8", "replace")
        text = body if isinstance(body, bytes) else str(body).encode("utf-8", "replace")
        try:
            block = list(_w.block_entries(first, last, str(prev_hash), raw, text))
        except ValueError as exc:  # json.JSONDecodeError is one
            why = f"block {first!r} altered ({exc})"
            if isinstance(first, int) and isinstance(last, int) and last >= first:
                verifier.unreadable(first, last, raw[-32:].hex(), why)
            else:
                verifier.report(why)
            continue
        for seq, prev, digest, fields in block:
            verifier.feed(seq, prev, digest, fields)
        if not _w.keys_agree([b[3] for b in block], keys):
            span = f"entry {first}" if first == last else f"entries {first}-{last}"
            verifier.report(f"{span}: lookup keys altered (rmas audit find would not find them)")


def _verify_sqlite(path: str, verifier: ChainVerifier, chunk: int) -> None:
    db, version = _sqlite_reader(path)
    try:
        if version == _w.SCHEMA_VERSION:
            _feed_blocks(db, verifier)
            return
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


def _lookup_blocks(db: sqlite3.Connection, column: str, value: str) -> list[tuple[Any, ...]]:
    """Entries whose ``column`` (check_id or document_key) is ``value``, found by their tag in
    the blocks' keys (:mod:`rmas.audit.writer`), then compared in full."""
    which = 0 if column == "check_id" else 1
    seqs = _w.seqs_tagged(db, _w.key_tag(value), which) if value else []
    at = COLUMNS.index(column)
    rows = []
    for seq in sorted(seqs):
        block = db.execute(_w.BLOCK_SQL, (seq,)).fetchone()
        if block is None:
            continue
        first, last, prev_hash, hashes, body = block
        try:
            found = list(_w.block_entries(first, last, prev_hash, hashes, body))
        except ValueError:  # an altered block (verify names it): the others are still found
            continue
        for n, prev, digest, fields in found:
            if n == seq:
                row = (seq, prev, digest, *fields)
                # The index said so; the entry must agree (a tag is only part of a key).
                if len(row) == len(COLUMNS) and row[at] == value:
                    rows.append(row)
                break
    return rows


async def _select(url: str, column: str, value: str) -> list[dict[str, Any]]:
    """Entries whose ``column`` (check_id or document_key) equals ``value``, by seq."""
    target = _target(url, "--url")
    if target.kind == "sqlite":
        sql = _SQLITE_LOOKUP.format(column=column)

        def run() -> list[tuple[Any, ...]]:
            db, version = _sqlite_reader(target.location)
            try:
                if version == _w.SCHEMA_VERSION:
                    return _lookup_blocks(db, column, value)
                last = db.execute(_MAX_SEQ_SQL).fetchone()[0] or 0
                return db.execute(sql, (last >> BUCKET_BITS, value)).fetchall()
            except (sqlite3.Error, ValueError) as exc:
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
            db, version = _sqlite_reader(target.location)
            try:
                return db.execute(_w.TAIL_SQL if version == 2 else _TAIL_SQL).fetchone()
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


@dataclass(frozen=True, slots=True)
class MigrationReport:
    """What :func:`migrate` did: the chain as verified before, and after."""

    entries: int
    before: VerifyReport
    after: VerifyReport | None


async def migrate(url: str) -> MigrationReport:
    """Convert an SQLite audit trail of layout 1 (a row per entry) to blocks.

    The chain is verified first, and nothing is converted unless it is intact (converting would
    keep every stored value, but a problem is best examined in the file as it was); then it is
    verified again, and must have the same head. AuditError if the trail cannot be converted
    (not SQLite, not layout 1, broken, or the file is busy); no hub may write to it meanwhile.
    """
    target = _target(url, "--url")
    if target.kind != "sqlite":
        raise AuditError("only SQLite audit trails have an earlier layout to migrate")
    before = await verify(url)
    if not before.ok:
        return MigrationReport(0, before, None)
    try:
        entries = await asyncio.to_thread(_w.migrate, target.location)
    except _w.WriterError as exc:
        raise AuditError(str(exc)) from None
    after = await verify(url)
    if after.head != before.head or after.count != before.count:
        raise AuditError(
            f"migration changed the chain: head {before.head} became {after.head}"
        )  # a bug: the transaction is committed, but verify says what is wrong
    return MigrationReport(entries, before, after)
