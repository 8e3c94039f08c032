"""The SQLite writer process: appends blocks (:mod:`rmas.audit.format`) to the audit file.

:class:`rmas.audit.sink.AuditSink` runs it as a process of its own (``python -I .../writer.py``):
the hub's event loop never shares its interpreter lock with SQLite (every sqlite3 call releases
and retakes the GIL), and on a host with more than one core the writer's CPU is off the hub's
core. It imports the standard library and :mod:`rmas.audit.format` only (loaded by file path,
not through the ``rmas`` package, whose import would cost every start), writes nothing to
standard output but reply frames, and ignores SIGINT and SIGTERM (a Ctrl-C or a service manager
signals the whole process group; the hub drains its checks, then closes the pipe, which ends
this process, as a hub killed outright does).

**A commit**, in one transaction under SQLite's write lock (``BEGIN IMMEDIATE``): read the
chain's tail, seal the entries onto it (:func:`rmas.audit.format.seal`, in the format of new
blocks, :data:`rmas.audit.format.FORMAT`: the hub's bytes must be in it), insert the block,
commit (WAL mode, ``synchronous = FULL`` by default: on the disk when the reply leaves); then
check that the file and its write-ahead log are still the ones opened (SQLite in WAL mode
writes on into a deleted file). Checkpoints of the write-ahead log are made between commits
(:meth:`SqliteChainWriter.maintain`), never inside one.

**Frames**, both ways: a 5-byte header (payload length, unsigned 32-bit big-endian; kind, one
byte) then the payload. To the writer: ``O`` open (JSON: path, synchronous, timeout_s,
create); ``C`` commit (the entry count, unsigned 32-bit big-endian, then the entries' bytes in
:data:`rmas.audit.format.FORMAT`); ``P`` probe (no payload); end of input: close. From the
writer: ``K`` done (after open: JSON with the pragmas in force; after a commit: the new head,
seq as unsigned 64-bit big-endian then its block's hash in hex; after a probe: nothing);
``E`` failed (a message for the operator).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import select
import signal
import sqlite3
import struct
import sys
import time
import urllib.parse
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING or __package__:
    from rmas.audit import format as fmt
else:  # run as a script: the format module next to this file, without the rmas package
    _spec = importlib.util.spec_from_file_location(
        "rmas_audit_format", os.path.join(os.path.dirname(os.path.abspath(__file__)), "format.py")
    )
    assert _spec is not None
    assert _spec.loader is not None
    fmt = importlib.util.module_from_spec(_spec)
    sys.modules[_spec.name] = fmt  # its dataclasses look their module up there
    _spec.loader.exec_module(fmt)

__all__ = [
    "COMMIT_HEAD",
    "HEADER",
    "HEAD_SEQ",
    "SqliteChainWriter",
    "WriterError",
    "connect",
    "main",
    "reason",
]

#: Bytes of write-ahead log after which it is checkpointed.
CHECKPOINT_BYTES = 4_000_000
#: Page size of a trail created by this writer (SQLite's default is 4,096; an existing file
#: keeps its own): a manifest's block is then written in fewer, larger pages.
PAGE_SIZE = 16_384

#: Frame header: payload length and kind.
HEADER = struct.Struct(">IB")
#: A commit's payload starts with its entry count.
COMMIT_HEAD = struct.Struct(">I")
#: A commit's reply: the new head's seq (its hash follows, 64 hex digits).
HEAD_SEQ = struct.Struct(">Q")

#: The probe's one row (not part of the chain; verify and find never read it).
PROBE_DDL = "CREATE TABLE IF NOT EXISTS audit_probe (id INTEGER PRIMARY KEY, at TEXT NOT NULL)"
PROBE_SQL = "INSERT OR REPLACE INTO audit_probe VALUES (1, ?)"


class WriterError(Exception):
    """A failure already worded for the operator (it becomes the hub's AuditError)."""


class MalformedGroup(WriterError):
    """Entries not in the byte format: that call fails, nothing else does."""


def reason(exc: BaseException) -> str:
    """An exception as a short message (driver messages name tables and codes, never numbers)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return f"{name}: {text[:300]}" if text else name


def connect(path: str, *, create: bool, timeout_s: float = 5.0) -> sqlite3.Connection:
    """The one place an audit file is opened for writing (and created, when ``create``):
    autocommit mode, with a busy timeout. Without ``create`` a missing file is an error."""
    if create:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    else:
        uri = f"file:{urllib.parse.quote(path)}?mode=rw"
        db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    db.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
    return db


def old_layout(db: sqlite3.Connection) -> bool:
    """Whether the database holds a trail of an earlier layout (to migrate first)."""
    marks = ", ".join("?" * len(fmt.OLD_TABLES))
    sql = f"SELECT 1 FROM sqlite_master WHERE type = 'table' AND name IN ({marks})"
    return db.execute(sql, fmt.OLD_TABLES).fetchone() is not None


def _tail(db: sqlite3.Connection) -> tuple[int, str]:
    row = db.execute(fmt.TAIL_SQL).fetchone()
    if row is None:
        return 0, fmt.GENESIS
    last, digest = row
    if not (isinstance(last, int) and isinstance(digest, str) and len(digest) == 64):
        raise WriterError(
            f"audit trail damaged: its last block (last_seq {last!r}) is malformed; "
            "nothing is appended to it (run rmas audit verify)"
        )
    return last, digest


class SqliteChainWriter:
    """One sqlite3 connection appending blocks to the chain (see the module docstring)."""

    def __init__(self, path: str, synchronous: str, timeout_s: float) -> None:
        self.path = path
        self.synchronous = synchronous
        self.timeout_s = timeout_s
        self._db: sqlite3.Connection | None = None
        self._file_id: tuple[int, int] | None = None
        self._wal_id: tuple[int, int] | None = None
        # For maintain(): the log's growth since the last checkpoint (about: whole pages).
        self._unsynced = 0
        self._page_size = PAGE_SIZE

    def open(self, create: bool) -> dict[str, Any]:
        """Connect (creating the file and table when ``create``); the pragmas now in force.

        Without ``create`` a missing file is an error: a lost database must never be replaced by
        a fresh, empty chain.
        """
        path = self.path
        if not create and not os.path.exists(path):
            raise WriterError(f"audit database {path} no longer exists")
        try:
            db = connect(path, create=create, timeout_s=self.timeout_s)
        except sqlite3.Error as exc:
            hint = "" if os.path.isdir(os.path.dirname(path)) else " (its directory does not exist)"
            raise WriterError(f"audit database {path} cannot be opened: {exc}{hint}") from exc
        try:
            # Before WAL mode, which fixes it (a no-op for a file that has pages already).
            db.execute(f"PRAGMA page_size = {PAGE_SIZE}")
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise WriterError(f"audit database {path} cannot use WAL mode (got {mode})")
            db.execute(f"PRAGMA synchronous = {self.synchronous}")
            db.execute("PRAGMA wal_autocheckpoint = 0")  # maintain() does it, between commits
            db.execute("BEGIN IMMEDIATE")
            try:
                if old_layout(db):
                    raise WriterError(
                        f"audit database {path} has the layout of an earlier rmas: with no hub "
                        "writing to it, run `rmas audit migrate --url sqlite+aiosqlite:///FILE` "
                        "once"
                    )
                if create:
                    db.execute(fmt.table_ddl("sqlite"))
                db.execute("COMMIT")
            except BaseException:
                db.rollback()
                raise
            tail = _tail(db)  # fails now if the table is missing or its last block damaged
            # A log left by an earlier writer is checkpointed at the first quiet moment.
            self._unsynced = CHECKPOINT_BYTES + 1 if tail[0] else 0
            st = os.stat(path)
            page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
            pragmas = {
                "journal_mode": str(db.execute("PRAGMA journal_mode").fetchone()[0]),
                "synchronous": int(db.execute("PRAGMA synchronous").fetchone()[0]),
                "page_size": page_size,
            }
        except WriterError:
            db.close()
            raise
        except (sqlite3.Error, OSError) as exc:
            db.close()
            raise WriterError(f"audit database {path} unusable: {reason(exc)}") from exc
        self._db = db
        self._file_id = (st.st_dev, st.st_ino)
        self._page_size = page_size
        return pragmas

    def commit(self, count: int, body: bytes) -> tuple[int, str]:
        """Seal and commit ``count`` entries as one block; the new head (seq, hash).

        Nothing is written unless all are: any failure rolls back (see :meth:`_write`).
        """
        with self._write() as db:
            seq, prev = _tail(db)
            try:
                block = fmt.seal(prev, seq, count, body)
            except ValueError as exc:
                raise MalformedGroup(f"malformed entries: {exc}") from None
            db.execute(fmt.INSERT_SQL, block.row())
        # The block's pages and the table page that points to it.
        self._unsynced += self._page_size * (
            2 + (len(body) + len(block.digests)) // self._page_size
        )
        return block.last_seq, block.hash

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction under SQLite's write lock, committed when the block ends; then the
        file is checked (:meth:`_check_file`). Any failure rolls back and, unless it was the
        call's own malformed entries, drops the connection (the next call reopens the file, if
        it still exists)."""
        if self._db is None:
            self.open(False)
        db = self._db
        assert db is not None
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.rollback()
                raise
            self._check_file()
        except MalformedGroup:
            raise
        except BaseException:
            self._drop()
            raise

    def probe(self) -> None:
        """Prove that a commit could be made now, without adding an entry: take the write lock,
        write and commit one row of ``audit_probe``, check the file is still the one opened."""
        with self._write() as db:
            db.execute(PROBE_DDL)
            db.execute(PROBE_SQL, (f"{time.time():.3f}",))
        self._unsynced += 2 * self._page_size

    @property
    def maintenance_due(self) -> bool:
        """Write-ahead log to move into the database."""
        return self._db is not None and self._unsynced > CHECKPOINT_BYTES

    @property
    def maintenance_overdue(self) -> bool:
        """So much is pending that it must be done even before the next commit."""
        return self._db is not None and self._unsynced > 16 * CHECKPOINT_BYTES

    def maintain(self) -> None:
        """Checkpoint the write-ahead log (``PASSIVE``: it waits for no reader), between
        commits, when no request is waiting (see :func:`serve`)."""
        db = self._db
        if db is None:
            return
        try:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:
            self._drop()  # the next commit reopens (and reports) whatever is wrong
        self._unsynced = 0

    def _check_file(self) -> None:
        """Refuse to count a commit written into a deleted or replaced file or write-ahead log
        (the log is the same file for as long as a connection is open)."""
        try:
            st = os.stat(self.path)
        except OSError:
            raise WriterError(f"audit database {self.path} was removed while in use") from None
        if (st.st_dev, st.st_ino) != self._file_id:
            raise WriterError(f"audit database {self.path} was replaced while in use")
        try:
            wal = os.stat(self.path + "-wal")
        except OSError:
            raise WriterError(
                f"audit database {self.path}: its write-ahead log was removed while in use"
            ) from None
        if self._wal_id is None:
            self._wal_id = (wal.st_dev, wal.st_ino)
        elif (wal.st_dev, wal.st_ino) != self._wal_id:
            raise WriterError(
                f"audit database {self.path}: its write-ahead log was replaced while in use"
            )

    def _drop(self) -> None:
        self._wal_id = None
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()

    def close(self) -> None:
        """Close (the last connection to close checkpoints the log, and removes it)."""
        self._drop()


# -- the process ----------------------------------------------------------------------------------


def _reply(out: BinaryIO, kind: bytes, payload: bytes) -> None:
    out.write(HEADER.pack(len(payload), kind[0]) + payload)
    out.flush()


class _Input:
    """Frames from a pipe, with a way to ask whether one is already waiting.

    Reads are exact (a header, then its payload), so a commit's entries arrive in one bytes
    object of their own, copied once, by the kernel: reading ahead into a buffer and cutting
    the frame out of it cost three more copies of a manifest's 100-250 KB.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def waiting(self) -> bool:
        return bool(select.select([self.fd], [], [], 0)[0])

    def _read(self, size: int) -> bytes | None:
        """The next ``size`` bytes; None at the end of input."""
        data = os.read(self.fd, size) if size else b""
        if len(data) == size:
            return data
        if not data:
            return None
        parts = [data]
        missing = size - len(data)
        while missing:
            chunk = os.read(self.fd, missing)
            if not chunk:
                return None
            parts.append(chunk)
            missing -= len(chunk)
        return b"".join(parts)

    def frame(self) -> tuple[int, int, bytes] | None:
        """The next (kind, entry count, payload); None at the end of input. A commit's count
        (:data:`COMMIT_HEAD`) is read apart from its entries; other kinds have count 0."""
        head = self._read(HEADER.size)
        if head is None:
            return None
        size, kind = HEADER.unpack(head)
        count = 0
        if kind == ord("C") and size >= COMMIT_HEAD.size:
            got = self._read(COMMIT_HEAD.size)
            if got is None:
                return None
            (count,) = COMMIT_HEAD.unpack(got)
            size -= COMMIT_HEAD.size
        payload = self._read(size)
        return None if payload is None else (kind, count, payload)


def _answer(
    writer: SqliteChainWriter | None, kind: int, count: int, payload: bytes
) -> tuple[Any, bytes]:
    """Do one request; (the writer, now opened if it was an open, the reply's payload)."""
    if kind == ord("C") and writer is not None:
        seq, digest = writer.commit(count, payload)
        return writer, HEAD_SEQ.pack(seq) + digest.encode("ascii")
    if kind == ord("P") and writer is not None:
        writer.probe()
        return writer, b""
    if kind == ord("O") and writer is None:
        o = json.loads(payload)
        opened = SqliteChainWriter(o["path"], o["synchronous"], o["timeout_s"])
        return opened, json.dumps(opened.open(bool(o["create"]))).encode()
    raise WriterError(f"unexpected request {kind!r}")


def serve(fd: int, out: BinaryIO) -> None:
    """Answer the frames read from ``fd`` on ``out`` until ``fd`` ends; between requests, when
    none is waiting, do the writer's maintenance."""
    inp = _Input(fd)
    writer: SqliteChainWriter | None = None
    try:
        while True:
            if (
                writer is not None
                and writer.maintenance_due
                and (writer.maintenance_overdue or not inp.waiting())
            ):
                writer.maintain()
                continue
            got = inp.frame()
            if got is None:
                return  # the hub closed the pipe (or is gone): nothing is half-done here
            try:
                writer, reply = _answer(writer, *got)
                _reply(out, b"K", reply)
            except WriterError as exc:
                _reply(out, b"E", str(exc).encode("utf-8", "replace"))
            except Exception as exc:  # an SQLite error, a full disk...: the hub reports it
                _reply(out, b"E", reason(exc).encode("utf-8", "replace"))
    finally:
        if writer is not None:
            writer.close()


def main() -> None:
    # The hub decides when this process ends (by closing the pipe), see the module docstring.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # SCHED_BATCH (Linux): woken by a commit, the writer does not preempt the hub's event loop
    # on a shared core but runs when the loop yields (docs/benchmarks.md).
    # RMAS_AUDIT_WRITER_SCHED=other keeps the default policy (for comparison).
    if os.environ.get("RMAS_AUDIT_WRITER_SCHED", "batch") == "batch":
        with contextlib.suppress(AttributeError, OSError):
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    with contextlib.suppress(BrokenPipeError):  # the hub is gone
        serve(sys.stdin.fileno(), sys.stdout.buffer)


if __name__ == "__main__":
    main()
