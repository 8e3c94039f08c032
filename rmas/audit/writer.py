"""The SQLite audit trail's storage, and the writer that appends to it (run as its own process).

**Layout** (schema version 2, ``PRAGMA user_version = 2``). A group commit stores its entries as
one row, not one row each: with a row per entry and two indexes, SQLite cost 7 to 10 µs of CPU
an entry (B-tree inserts into the table and into both indexes, each dirtying pages of the
write-ahead log); a block row costs 1.8 µs an entry, hashing included (docs/benchmarks.md,
"mTLS and audit").

- ``audit_blocks``: ``first_seq`` (primary key) and ``last_seq`` of the block's entries;
  ``prev_hash``, the chain's hash (hex) before its first entry; ``hashes``, each entry's
  SHA-256, 32 bytes each, concatenated; ``keys``, 32 characters per entry: the tags
  (:func:`key_tag`, 16 characters) of its check id and of its document key; ``body``, the
  entries' fields (:func:`store_body`).
- ``audit_entries``: a view with one row per entry and the columns of version 1 (seq,
  prev_hash, hash, then the fields), for ad-hoc SQL. The chain and its hashes are unchanged:
  :mod:`rmas.audit.chain` defines them per entry, whatever the storage.

Lookups by document key or check id (:func:`rmas.audit.sink.find`) scan the ``keys`` of every
block, 32 bytes an entry, for the tag, then compare the entries found in full: about 100 ms for
2,000,000 entries. An index (bucketed as version 1 had, built a bucket at a time) cost another
1.0 µs an entry at every commit, which is more than the hub could spare; lookups are an
operator's, rare and offline.

Version 1 databases (a table ``audit_entries``, one row per entry, with its indexes) are still
read by :mod:`rmas.audit.sink`; :func:`migrate` converts one (``rmas audit migrate``) and the
writer refuses to append to one.

**The writer.** :class:`SqliteChainWriter` holds one ``sqlite3`` connection. A commit takes a
group of entries in wire form (below) and, in one transaction under SQLite's write lock
(``BEGIN IMMEDIATE``), reads the chain's tail, hashes the entries from there, inserts the block
and commits; then it checks that the file and its write-ahead log are still the ones it
opened. It appends only to a chain whose last block is well formed. Checkpoints of the
write-ahead log are made between commits (:meth:`SqliteChainWriter.maintain`), never inside a
commit's transaction. :class:`rmas.audit.sink.AuditSink` runs the writer in a
process of its own (:func:`main`, started as ``python -I .../writer.py``): the hub's event loop
never shares its interpreter lock with SQLite (every sqlite3 call releases and retakes the GIL),
and on a host with more than one core the writer's CPU is off the hub's core. Hence the rules
of this module: the standard library only (loading the ``rmas`` package would cost the child
0.3 s of CPU and 40 MB at every start), nothing written to standard output but reply frames,
and SIGINT and SIGTERM ignored (a Ctrl-C or a service manager signals the whole process group;
the hub drains its checks, then closes the pipe, which ends this process, as a hub killed
outright does).

**Wire form** of a group: for each entry, the byte 0xFF, NUL, then its 11 fields joined by NUL;
entries joined by NUL; UTF-8. So an entry's canonical body (:func:`rmas.audit.chain.entry_body`,
what its hash covers) is what lies between the separators ``NUL 0xFF NUL``; 0xFF occurs in no
UTF-8 text, and no field holds a NUL (:func:`rmas.audit.entry.entries_for` guarantees it, the
sink counts them). With the group go its ``keys`` (as stored).

**Frames**, both ways: a 5-byte header (payload length, unsigned 32-bit big-endian; kind, one
byte) then the payload. To the writer: ``O`` open (JSON: path, synchronous, timeout_s,
create); ``C`` commit (entry count and the length of ``keys``, two unsigned 32-bit big-endian,
then ``keys``, then the group); ``P`` probe (no payload: :meth:`SqliteChainWriter.probe`); end
of input: close. From the writer: ``K`` done (after open: JSON with the pragmas in force and
whether :data:`speedups` are loaded; after a commit: the new head, seq as unsigned 64-bit
big-endian then its hash in hex; after a probe: nothing); ``E`` failed (a UTF-8 message for the
operator).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
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
from typing import Any, BinaryIO

__all__ = [
    "DDL",
    "SCHEMA_VERSION",
    "SqliteChainWriter",
    "WriterError",
    "layout",
    "link_hash",
    "main",
    "migrate",
]

#: ``PRAGMA user_version`` of the block layout.
SCHEMA_VERSION = 2
#: Entries per block when a version 1 trail is migrated.
MIGRATE_BLOCK = 4096
#: Bytes of write-ahead log after which it is checkpointed.
CHECKPOINT_BYTES = 4_000_000
#: Page size of a trail created by this writer (SQLite's default is 4,096; an existing file
#: keeps its own). A block of 400 entries (about 110 KB) is 7 pages instead of 28, written with
#: 25 calls instead of 86 (and 4 instead of 7 for a block of 16): measured about 0.2 µs of CPU
#: an entry less. 65,536 saves a few more calls but writes 64 KB for every small commit.
PAGE_SIZE = 16_384
#: A key's tag when it has none (an entry without a usable document number).
NO_TAG = "-" * 16
#: Bytes of ``keys`` per entry: two tags.
KEYS_PER_ENTRY = 32
#: Fields per entry (len(rmas.audit.chain.FIELDS)).
NFIELDS = 11
GENESIS = "0" * 64

#: Frame header: payload length and kind.
HEADER = struct.Struct(">IB")
#: A commit's payload starts with its entry count and the length of its keys.
COMMIT_HEAD = struct.Struct(">II")
#: A commit's reply: the new head's seq (its hash follows, 64 hex digits).
HEAD_SEQ = struct.Struct(">Q")

_FIELD_NAMES = (
    "time", "caller", "role", "channel", "check_id", "issuing_state", "document_key", "sources",
    "verdict", "directive", "reference",
)  # fmt: skip

# A block's body as JSON text, whichever form it is stored in (see store_body): SQL has no
# other way to split text.
_AS_JSON = (
    "CASE WHEN substr({body}, 1, 1) = x'5b' THEN CAST({body} AS TEXT) "
    "ELSE '[[\"' || replace(replace(replace(replace(CAST(substr({body}, 3) AS TEXT), "
    "'\\', '\\\\'), '\"', '\\\"'), char(31, 30, 31), '\"],[\"'), char(31), '\",\"') "
    "|| '\"]]' END"
)

_VIEW = (
    "CREATE VIEW IF NOT EXISTS audit_entries AS SELECT b.first_seq + e.key AS seq, "
    "CASE e.key WHEN 0 THEN b.prev_hash "
    "ELSE lower(hex(substr(b.hashes, 32 * e.key - 31, 32))) END AS prev_hash, "
    "lower(hex(substr(b.hashes, 32 * e.key + 1, 32))) AS hash, "
    + ", ".join(f"json_extract(e.value, '$[{i}]') AS {n}" for i, n in enumerate(_FIELD_NAMES))
    + f" FROM audit_blocks AS b, json_each({_AS_JSON.format(body='b.body')}) AS e"
)

#: The schema, created in one transaction (every statement may run again).
DDL = (
    "CREATE TABLE IF NOT EXISTS audit_blocks (first_seq INTEGER PRIMARY KEY, "
    "last_seq INTEGER NOT NULL, prev_hash TEXT NOT NULL, hashes BLOB NOT NULL, "
    "keys BLOB NOT NULL, body BLOB NOT NULL)",
    _VIEW,
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)

#: (seq, hash) of the last entry.
TAIL_SQL = (
    "SELECT last_seq, lower(hex(substr(hashes, -32))) FROM audit_blocks "
    "ORDER BY first_seq DESC LIMIT 1"
)
#: The last block, with what :func:`_tail` checks of it.
TAIL_SQL_CHECKED = (
    "SELECT first_seq, last_seq, length(hashes), lower(hex(substr(hashes, -32))) "
    "FROM audit_blocks ORDER BY first_seq DESC LIMIT 1"
)
INSERT_SQL = "INSERT INTO audit_blocks VALUES (?, ?, ?, ?, ?, ?)"
#: The probe's one row (not part of the chain; verify and find never read it).
PROBE_DDL = "CREATE TABLE IF NOT EXISTS audit_probe (id INTEGER PRIMARY KEY, at TEXT NOT NULL)"
PROBE_SQL = "INSERT OR REPLACE INTO audit_probe VALUES (1, ?)"
_sha256 = hashlib.sha256
# Control characters: JSON strings may not hold them raw, and two of them separate the stored
# form of a block (NUL never occurs in a field: it separates them in the wire form).
_CONTROL = bytes(range(1, 32))
# The wire form's separators, NUL and 0xFF, become the unit and record separators.
_STORE = bytes.maketrans(b"\x00\xff", b"\x1f\x1e")


def link_hash(prev_hash: str, seq: int, body: bytes) -> str:
    """:func:`rmas.audit.chain.link_hash`, restated here because this module imports no
    ``rmas`` code (tests hold the two equal)."""
    return _sha256(b"%s\x00%d\x00%s" % (prev_hash.encode("ascii"), seq, body)).hexdigest()


class WriterError(Exception):
    """A failure already worded for the operator (it becomes the hub's AuditError)."""


class MalformedGroup(WriterError):
    """A group not in the wire form: that call fails, nothing else does."""


def _load_speedups() -> Any:
    """The compiled ``rmas.audit._speedups`` (next to this file), or None when it was not built
    or ``RMAS_AUDIT_SPEEDUPS=0``. Run as a script, this process loads it from its file, so as
    not to import the ``rmas`` package (see above)."""
    if os.environ.get("RMAS_AUDIT_SPEEDUPS", "1") == "0":
        return None
    if __package__:
        try:
            from rmas.audit import _speedups
        except ImportError:
            return None
        return _speedups
    import importlib.machinery
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = os.path.join(here, "_speedups" + suffix)
        spec = importlib.util.spec_from_file_location("rmas.audit._speedups", path)
        if spec is None or spec.loader is None or not os.path.exists(path):
            continue
        try:
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        except ImportError:
            return None
        return module
    return None


#: ``rmas.audit._speedups``, or None: :func:`link` then works in Python.
speedups = _load_speedups()


def reason(exc: BaseException) -> str:
    """An exception as a short message (driver messages name tables and codes, never numbers)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return f"{name}: {text[:300]}" if text else name


def layout(db: sqlite3.Connection) -> int:
    """1 (a table per entry), 2 (blocks) or 0 (no audit trail) of an open database."""
    row = db.execute("SELECT type FROM sqlite_master WHERE name = 'audit_entries'").fetchone()
    if row is None:
        return 0
    return 1 if row[0] == "table" else SCHEMA_VERSION


def bodies_of(count: int, group: bytes) -> list[bytes]:
    """The entries' canonical bodies; MalformedGroup unless ``group`` holds ``count`` entries
    of :data:`NFIELDS` fields each, in UTF-8: what is committed must read back as entries."""
    if count < 1 or not group.startswith(b"\xff\x00") or group.count(b"\xff") != count:
        raise MalformedGroup(f"malformed group: not {count} entries")
    if group.count(b"\x00") != count * (NFIELDS + 1) - 1:
        raise MalformedGroup(f"malformed group: not {NFIELDS} fields in each entry")
    bodies = group[2:].split(b"\x00\xff\x00")
    if len(bodies) != count:  # a 0xFF out of place
        raise MalformedGroup(f"malformed group: not {count} entries")
    # The totals can balance while one entry has a field too many and the next one too few.
    if set(map(bytes.count, bodies, itertools.repeat(b"\x00", count))) != {NFIELDS - 1}:
        raise MalformedGroup(f"malformed group: not {NFIELDS} fields in each entry")
    try:
        group[2:].replace(b"\xff", b"").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedGroup(f"malformed group: not UTF-8 at byte {exc.start + 2}") from None
    return bodies


def link(prev: bytes, tail_seq: int, count: int, group: bytes) -> tuple[bytes, bytes, bytes]:
    """Chain a group onto the entry ``tail_seq`` whose hash (hex) is ``prev``: the entries'
    hashes (32 bytes each), the last one's hash (hex), and the block's ``body`` as stored
    (:func:`store_body`). MalformedGroup (:func:`bodies_of`) before anything is hashed.

    One pass in C when :data:`speedups` is there (about 1 µs an entry less), else in Python;
    the two give the same bytes and refuse the same groups (tests/audit/test_speedups.py).
    """
    if speedups is not None:
        got = speedups.chain(prev, tail_seq, count, group)
        if got is None:
            bodies_of(count, group)  # says what is wrong
            raise MalformedGroup("malformed group")
        hashes, head, body = got
        return hashes, head, store_body(group) if body is None else body
    bodies = bodies_of(count, group)
    digests: list[bytes] = []
    append = digests.append
    for seq, entry in enumerate(bodies, tail_seq + 1):
        digest = _sha256(b"%s\x00%d\x00%s" % (prev, seq, entry)).digest()
        append(digest)
        prev = digest.hex().encode()
    return b"".join(digests), prev, store_body(group)


def key_tag(value: str) -> str:
    """What a block's ``keys`` hold of a check id or document key: its first 16 characters
    when they are lower-case hex (the hub's ids and keys are), else 16 hex digits of its
    SHA-256; :data:`NO_TAG` for "". Lookups compare the entries found in full."""
    head = value[:16]
    if len(head) == 16 and head.isascii() and head.isalnum() and head == head.lower():
        try:
            int(head, 16)
        except ValueError:
            pass
        else:
            return head
    return _sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:16] if value else NO_TAG


def store_body(group: bytes) -> bytes:
    """A block's ``body`` as stored: usually the wire form with NUL and 0xFF translated to the
    unit (0x1F) and record (0x1E) separators, in one pass; as a JSON array of 11-string arrays
    when a field holds a control character (rare: caller texts), which JSON stores escaped.

    The first is about 0.6 µs an entry cheaper to write than JSON (three byte replacements
    and the escapes); SQL reads it as JSON through four ``replace()`` calls (the view) and
    Python through two splits (:func:`block_fields`). A JSON body starts with "[", the other
    with 0x1E.
    """
    text = group[2:]
    if len(text.translate(None, _CONTROL)) == len(text):
        return group.translate(_STORE)
    entries = text.decode("utf-8", "surrogateescape").split("\x00\udcff\x00")
    return json.dumps([e.split("\x00") for e in entries], ensure_ascii=False).encode()


def block_fields(body: bytes) -> list[Any]:
    """The entries of a stored ``body`` (lists of fields, unless altered); ValueError if it is
    neither form."""
    if body[:1] == b"[":
        entries = json.loads(body)
        if not isinstance(entries, list):
            raise ValueError("its body is not a list of entries")
        return entries
    if body[:2] != b"\x1e\x1f":
        raise ValueError("its body has no known form")
    return [e.split("\x1f") for e in body[2:].decode("utf-8").split("\x1f\x1e\x1f")]


def _tail(db: sqlite3.Connection) -> tuple[int, str] | None:
    """(seq, hash) of the chain's last entry; WriterError if the last block is not one the
    writer could have stored (a damaged trail is examined, with ``rmas audit verify``, before
    anything is appended to it)."""
    row = db.execute(TAIL_SQL_CHECKED).fetchone()
    if row is None:
        return None
    first, last, size, digest = row
    if not (
        isinstance(first, int)
        and isinstance(last, int)
        and last >= first
        and size == 32 * (last - first + 1)
        and isinstance(digest, str)
        and len(digest) == 64
    ):
        raise WriterError(
            f"audit trail damaged: its last block (first_seq {first!r}) is malformed; "
            "nothing is appended to it (run rmas audit verify)"
        )
    return last, digest


class SqliteChainWriter:
    """One sqlite3 connection appending to the chain (see the module docstring)."""

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
        """Connect (creating the file and schema when ``create``); the pragmas now in force.

        Without ``create`` a missing file is an error: a lost database must never be replaced by
        a fresh, empty chain.
        """
        path = self.path
        if not create and not os.path.exists(path):
            raise WriterError(f"audit database {path} no longer exists")
        try:
            if create:
                db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            else:
                uri = f"file:{urllib.parse.quote(path)}?mode=rw"
                db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            hint = "" if os.path.isdir(os.path.dirname(path)) else " (its directory does not exist)"
            raise WriterError(f"audit database {path} cannot be opened: {exc}{hint}") from exc
        try:
            db.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")
            # Before WAL mode, which fixes it (a no-op for a file that has pages already).
            db.execute(f"PRAGMA page_size = {PAGE_SIZE}")
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise WriterError(f"audit database {path} cannot use WAL mode (got {mode})")
            db.execute(f"PRAGMA synchronous = {self.synchronous}")
            # Checkpoints are run by maintain(), between commits, not inside one.
            db.execute("PRAGMA wal_autocheckpoint = 0")
            db.execute("BEGIN IMMEDIATE")
            try:
                found = layout(db)
                if found == 1:
                    raise WriterError(
                        f"audit database {path} has the layout of an earlier rmas (a row per "
                        "entry): with no hub writing to it, run `rmas audit migrate --url "
                        "sqlite+aiosqlite:///FILE` once"
                    )
                if found == 0 and create:
                    for statement in DDL:
                        db.execute(statement)
                db.execute("COMMIT")
            except BaseException:
                db.rollback()
                raise
            tail = _tail(db)  # fails now if the table is missing or its last block damaged
            # A log left by an earlier writer is checkpointed at the first quiet moment.
            self._unsynced = CHECKPOINT_BYTES + 1 if tail else 0
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

    def commit(self, count: int, keys: bytes, group: bytes) -> tuple[int, str]:
        """Chain and commit ``count`` entries in wire form; the new head (seq, hash).

        Nothing is written unless all are: any failure rolls back (see :meth:`_write`).
        """
        if len(keys) != KEYS_PER_ENTRY * count:
            raise MalformedGroup(f"malformed group: {len(keys)} bytes of keys for {count} entries")
        with self._write() as db:
            tail = _tail(db)
            seq, prev = (tail[0], tail[1].encode("ascii")) if tail else (0, GENESIS.encode())
            hashes, head, body = link(prev, seq, count, group)
            db.execute(INSERT_SQL, (seq + 1, seq + count, prev.decode(), hashes, keys, body))
        # The block's pages (hashes, keys, body) and the table page that points to it.
        self._unsynced += self._page_size * (2 + (len(body) + 64 * count) // self._page_size)
        return seq + count, head.decode()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction under SQLite's write lock, committed when the block ends; then the
        file is checked (:meth:`_check_file`). Any failure rolls back and, unless it was the
        call's own malformed group, drops the connection (the next call reopens the file, if it
        still exists)."""
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
        write and commit one row of ``audit_probe`` (with ``synchronous = FULL``, it reaches the
        disk), check the file is still the one opened. Raises what a commit would raise."""
        with self._write() as db:
            db.execute(PROBE_DDL)
            db.execute(PROBE_SQL, (f"{time.time():.3f}",))
        # A page or two of log each: counted, so that an idle hub's probes are checkpointed too.
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
        """Checkpoint the write-ahead log (``PASSIVE``: it waits for no reader).

        Done between commits, when no request is waiting (see :func:`serve`), rather than by
        SQLite inside the commit that fills the log, so that it is never part of a commit's
        transaction; a commit arriving meanwhile waits for it (once per
        :data:`CHECKPOINT_BYTES` of log, some 12,000 entries in blocks of 400).
        """
        db = self._db
        if db is None:
            return
        try:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:
            self._drop()  # the next commit reopens (and reports) whatever is wrong
        self._unsynced = 0

    def _check_file(self) -> None:
        """SQLite in WAL mode writes on into a deleted or replaced file, and into a deleted or
        replaced write-ahead log (where commits wait for the next checkpoint): refuse to count
        that. The log is the same file for as long as a connection is open (SQLite removes it
        only when the last one closes), so after a commit it must exist and be the one this
        connection's first commit found."""
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


# -- migration from version 1 ---------------------------------------------------------------------


def migrate(path: str, timeout_s: float = 5.0) -> int:
    """Convert a version 1 database to blocks, in one transaction; the entries converted.

    Blocks of :data:`MIGRATE_BLOCK` entries. Hashes and fields are copied as stored, so the
    chain is the same (the caller verifies it before and after). WriterError if the database is
    not a version 1 trail or its seqs are not 1, 2, 3... (verify first). The old table and its
    indexes are dropped.
    """
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
        db.execute("BEGIN IMMEDIATE")
        try:
            found = layout(db)
            if found != 1:
                raise WriterError(
                    f"{path} holds no audit trail to migrate"
                    if found == 0
                    else f"{path} already has the current layout"
                )
            last = db.execute("SELECT max(seq) FROM audit_entries").fetchone()[0] or 0
            db.execute("ALTER TABLE audit_entries RENAME TO audit_entries_v1")
            for statement in DDL:
                db.execute(statement)
            done = 0
            for lo in range(1, last + 1, MIGRATE_BLOCK):
                hi = min(lo + MIGRATE_BLOCK - 1, last)
                rows = _v1_rows(db, lo, hi)
                if [r[0] for r in rows] != list(range(lo, hi + 1)):
                    raise WriterError(f"entries {lo}-{hi} are not all there: verify")
                group = b"\x00".join(b"\xff\x00" + "\x00".join(r[3:]).encode("utf-8") for r in rows)
                keys = "".join(key_tag(r[7]) + key_tag(r[9]) for r in rows).encode("ascii")
                db.execute(
                    INSERT_SQL,
                    (
                        lo,
                        hi,
                        rows[0][1],
                        b"".join(bytes.fromhex(r[2]) for r in rows),
                        keys,
                        store_body(group),
                    ),
                )
                done += len(rows)
            db.execute("DROP TABLE audit_entries_v1")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.rollback()
            raise
    except sqlite3.Error as exc:
        raise WriterError(f"audit database {path} cannot be migrated: {reason(exc)}") from exc
    finally:
        db.close()
    return done


def _v1_rows(db: sqlite3.Connection, lo: int, hi: int) -> list[tuple[Any, ...]]:
    columns = ", ".join(("seq", "prev_hash", "hash", *_FIELD_NAMES))
    sql = f"SELECT {columns} FROM audit_entries_v1 WHERE seq BETWEEN ? AND ? ORDER BY seq"
    return db.execute(sql, (lo, hi)).fetchall()


# -- reading (used by rmas.audit.sink) -------------------------------------------------------------

#: Every block, in order.
BLOCKS_SQL = (
    "SELECT first_seq, last_seq, prev_hash, hashes, body, keys FROM audit_blocks ORDER BY first_seq"
)
#: Every block's first_seq and keys (searched in Python: bytes.find beat SQLite's instr by
#: two, 100 against 200 ms for 2,000,000 entries).
KEYS_SQL = "SELECT first_seq, keys FROM audit_blocks"
#: The block holding entry ?1: first_seq, last_seq, prev_hash, hashes, body.
BLOCK_SQL = (
    "SELECT first_seq, last_seq, prev_hash, hashes, body FROM audit_blocks "
    "WHERE first_seq <= ?1 ORDER BY first_seq DESC LIMIT 1"
)


def seqs_tagged(db: sqlite3.Connection, tag: str, which: int) -> list[int]:
    """Seqs of the entries whose check id (``which`` 0) or document key (1) has ``tag``."""
    wanted = tag.encode("ascii")
    offset = 16 * which
    found = []
    for first, keys in db.execute(KEYS_SQL):
        raw = bytes(keys)
        at = raw.find(wanted)
        while at >= 0:
            if at % KEYS_PER_ENTRY == offset:
                found.append(first + at // KEYS_PER_ENTRY)
            at = raw.find(wanted, at + 1)
    return found


def block_entries(
    first: int, last: int, prev_hash: str, hashes: bytes, body: bytes
) -> Iterator[tuple[int, str, str, Any]]:
    """(seq, prev_hash, hash, fields) of a stored block; ValueError if it is malformed (its
    entries, hashes and seq range disagree, or its body is not JSON), before any entry."""
    if not (isinstance(first, int) and isinstance(last, int) and last >= first):
        raise ValueError(f"its seq range {first!r}-{last!r} is not one")
    if not isinstance(hashes, bytes):
        raise ValueError("its hashes are not bytes")
    try:
        entries = block_fields(body)
    except RecursionError:
        raise ValueError("its body is not a list of entries") from None
    n = last - first + 1
    if len(entries) != n or len(hashes) != 32 * n:
        raise ValueError("its entries, hashes and seq range disagree")
    prev = prev_hash
    for i, fields in enumerate(entries):
        digest = hashes[32 * i : 32 * i + 32].hex()
        yield first + i, prev, digest, fields
        prev = digest


def keys_agree(entries: list[Any], keys: Any) -> bool:
    """Whether a block's stored ``keys`` are the tags of its entries' check ids and document
    keys (``keys`` are not covered by the chain's hashes: :func:`rmas.audit.sink.verify`
    compares them, so that altered keys cannot hide an entry from a lookup unnoticed)."""
    try:
        expected = "".join(key_tag(f[4]) + key_tag(f[6]) for f in entries).encode("ascii")
    except (TypeError, AttributeError, IndexError, KeyError, UnicodeError):
        return False
    return isinstance(keys, bytes) and keys == expected


# -- the process ----------------------------------------------------------------------------------


def _reply(out: BinaryIO, kind: bytes, payload: bytes) -> None:
    out.write(HEADER.pack(len(payload), kind[0]) + payload)
    out.flush()


class _Input:
    """Frames from a pipe, with a way to ask whether one is already waiting."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buf = bytearray()

    def waiting(self) -> bool:
        return bool(self._buf) or bool(select.select([self.fd], [], [], 0)[0])

    def _fill(self, size: int) -> bool:
        while len(self._buf) < size:
            chunk = os.read(self.fd, max(1 << 16, size - len(self._buf)))
            if not chunk:
                return False
            self._buf += chunk
        return True

    def frame(self) -> tuple[int, bytes] | None:
        """The next (kind, payload); None at the end of input."""
        if not self._fill(HEADER.size):
            return None
        size, kind = HEADER.unpack_from(self._buf)
        if not self._fill(HEADER.size + size):
            return None
        payload = bytes(self._buf[HEADER.size : HEADER.size + size])
        del self._buf[: HEADER.size + size]
        return kind, payload


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
            kind, payload = got
            try:
                if kind == ord("C") and writer is not None:
                    count, key_size = COMMIT_HEAD.unpack_from(payload)
                    start = COMMIT_HEAD.size
                    keys = payload[start : start + key_size]
                    seq, digest = writer.commit(count, keys, payload[start + key_size :])
                    _reply(out, b"K", HEAD_SEQ.pack(seq) + digest.encode("ascii"))
                elif kind == ord("P") and writer is not None:
                    writer.probe()
                    _reply(out, b"K", b"")
                elif kind == ord("O") and writer is None:
                    o = json.loads(payload)
                    writer = SqliteChainWriter(o["path"], o["synchronous"], o["timeout_s"])
                    pragmas = writer.open(bool(o["create"]))
                    pragmas["speedups"] = speedups is not None
                    _reply(out, b"K", json.dumps(pragmas).encode())
                else:
                    raise WriterError(f"unexpected request {kind!r}")
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
    # on a shared core but runs when the loop yields or at the next tick. Measured on one core:
    # the hub's CPU per manifest document 28-30 µs instead of 33-42 (fewer switches, caches
    # kept), mTLS+audit/plain 0.76 instead of 0.62-0.64 (docs/benchmarks.md).
    # RMAS_AUDIT_WRITER_SCHED=other keeps the default policy (for comparison).
    if os.environ.get("RMAS_AUDIT_WRITER_SCHED", "batch") == "batch":
        with contextlib.suppress(AttributeError, OSError):
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    with contextlib.suppress(BrokenPipeError):  # the hub is gone
        serve(sys.stdin.fileno(), sys.stdout.buffer)


if __name__ == "__main__":
    main()
