"""``rmas audit migrate``: convert a trail of an earlier layout into blocks (:mod:`.format`).

Earlier rmas wrote three layouts, all with a hash chain defined per entry
(``SHA-256(prev_hash NUL seq NUL field NUL ... NUL field)``, 11 fields, no hub id):

- SQLite layout 1: table ``audit_entries``, a row per entry;
- SQLite layout 2: table ``audit_blocks``, a row per commit: ``hashes`` (32 bytes an entry) and
  ``body``, either the fields joined by 0x1F, entries by 0x1F 0x1E 0x1F after a leading
  0x1E 0x1F, or a JSON array of arrays (a view ``audit_entries`` showed it as rows);
- PostgreSQL: table ``audit_entries``, a row per entry.

Migration reads the old entries in order and checks their chain as it goes (every hash, every
link, no gap): nothing is converted unless it is intact. It writes them again as blocks of
:data:`BLOCK` entries in the format of new blocks (:func:`rmas.audit.format.encode`), with
``hub`` empty (those layouts did not record it), drops the old tables, and commits, all in one
transaction; then it verifies the new chain, which must hold as many entries. The new chain's
hashes are not the old ones: the report gives both heads, so that an operator who kept an old
anchor can record the new one.

Blocks of ``rmas-audit-entries/1`` are not rewritten: they are the current layout, read and
verified as they are (a chain may hold them followed by blocks of ``rmas-audit-entries/2``), and
rewriting them would change every later hash and void the anchors operators kept.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from rmas.audit.chain import VerifyReport
from rmas.audit.format import GENESIS, INSERT_SQL, TABLE, Sealed, clean, encode, seal, table_ddl
from rmas.audit.reader import verify
from rmas.audit.target import reason, target
from rmas.audit.writer import connect
from rmas.errors import AuditError

__all__ = ["BLOCK", "MigrationReport", "migrate"]

#: Entries per block written by a migration.
BLOCK = 4096
#: Rows (layout 1, PostgreSQL) read at a time; layout 2's blocks, of up to 5,000 entries each.
_READ = 4096
_READ_BLOCKS = 64
_OLD_FIELDS = 11
_V1_SQL = "SELECT * FROM audit_entries WHERE seq > ? ORDER BY seq LIMIT ?"
_V2_SQL = (
    "SELECT first_seq, last_seq, prev_hash, hashes, body FROM audit_blocks "
    "WHERE first_seq > ? ORDER BY first_seq LIMIT ?"
)

#: An old entry: seq, prev_hash, hash, its 11 fields.
OldEntry = tuple[int, str, str, list[str]]


@dataclass(frozen=True, slots=True)
class MigrationReport:
    """What :func:`migrate` did."""

    #: ``sqlite v1``, ``sqlite blocks`` or ``postgresql rows``.
    layout: str
    entries: int
    #: (seq, hash) of the old chain's last entry, and of the new chain's.
    old_head: tuple[int, str]
    after: VerifyReport


class _Broken(Exception):
    """The old chain is not intact: nothing is converted."""


class _Converter:
    """Checks old entries fed in order, and seals them into new blocks."""

    def __init__(self, hub: str, store: Callable[[Sealed], None]) -> None:
        self.hub = clean(hub)
        self.store = store
        self.seq = 0
        self.old_hash = GENESIS
        self.new_hash = GENESIS
        self._rows: list[tuple[str, ...]] = []

    def feed(self, seq: Any, prev: Any, digest: Any, fields: Any) -> None:
        if seq != self.seq + 1:
            raise _Broken(f"entry {self.seq + 1} missing or out of order (found {seq!r})")
        if prev != self.old_hash:
            raise _Broken(f"entry {seq} does not follow entry {self.seq}: prev_hash mismatch")
        if not (isinstance(fields, list) and len(fields) == _OLD_FIELDS
                and all(isinstance(f, str) for f in fields)):  # fmt: skip
            raise _Broken(f"entry {seq} is not an entry")
        text = b"%s\x00%d\x00%s" % (str(prev).encode(), seq, "\x00".join(fields).encode())
        if hashlib.sha256(text).hexdigest() != digest:
            raise _Broken(f"entry {seq} edited: hash mismatch")
        self.seq, self.old_hash = seq, digest
        time, *rest = fields
        self._rows.append((time, self.hub, *(clean(f) for f in rest)))
        if len(self._rows) == BLOCK:
            self.flush()

    def flush(self) -> None:
        if self._rows:
            block = seal(self.new_hash, self.seq - len(self._rows), len(self._rows),
                         encode(self._rows))  # fmt: skip
            self.store(block)
            self.new_hash = block.hash
            self._rows = []


def _v2_entries(first: int, last: int, prev: str, hashes: bytes, body: bytes) -> Iterator[Any]:
    """The entries of a layout 2 block, as (seq, prev_hash, hash, fields)."""
    if body[:1] == b"[":
        entries = json.loads(body)
    elif body[:2] == b"\x1e\x1f":
        entries = [e.split("\x1f") for e in body[2:].decode().split("\x1f\x1e\x1f")]
    else:
        raise _Broken(f"block {first}: its body has no known form")
    if (
        not isinstance(entries, list)
        or len(entries) != last - first + 1
        or len(hashes) != 32 * len(entries)
    ):
        raise _Broken(f"block {first}: its entries, hashes and seq range disagree")
    for i, fields in enumerate(entries):
        digest = hashes[32 * i : 32 * i + 32].hex()
        yield first + i, prev, digest, fields
        prev = digest


def _sqlite_old(db: sqlite3.Connection) -> tuple[str, Iterable[Any], list[str]]:
    """(layout, its entries, the statements that drop it)."""
    kinds = dict(db.execute("SELECT name, type FROM sqlite_master WHERE name LIKE 'audit_%'"))
    if kinds.get("audit_blocks") == "table":
        return "sqlite blocks", _paged(db, _V2_SQL, True), [
            "DROP VIEW IF EXISTS audit_entries", "DROP TABLE audit_blocks"]  # fmt: skip
    if kinds.get("audit_entries") == "table":
        return "sqlite v1", _paged(db, _V1_SQL, False), ["DROP TABLE audit_entries"]
    if kinds.get(TABLE) == "table":
        raise AuditError("this trail already has the current layout: nothing to migrate")
    raise AuditError("this database holds no audit trail")


def _paged(db: sqlite3.Connection, sql: str, blocks: bool) -> Iterator[Any]:
    after = 0
    while rows := db.execute(sql, (after, _READ_BLOCKS if blocks else _READ)).fetchall():
        for row in rows:
            if blocks:
                yield from _v2_entries(row[0], row[1], row[2], bytes(row[3]), bytes(row[4]))
            else:
                yield row[0], row[1], row[2], list(row[3:])
        after = rows[-1][0]


def _migrate_sqlite(path: str, hub: str) -> tuple[str, int, tuple[int, str]]:
    try:
        db = connect(path, create=False)
    except sqlite3.Error as exc:
        raise AuditError(f"audit database {path} cannot be migrated: {reason(exc)}") from exc
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            layout, old, drops = _sqlite_old(db)
            db.execute(table_ddl("sqlite"))

            def store(block: Sealed) -> None:
                db.execute(INSERT_SQL, block.row())

            conv = _Converter(hub, store)
            for entry in old:
                conv.feed(*entry)
            conv.flush()
            for statement in drops:
                db.execute(statement)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.rollback()
            raise
    except sqlite3.Error as exc:
        raise AuditError(f"audit database {path} cannot be migrated: {reason(exc)}") from exc
    finally:
        db.close()
    return layout, conv.seq, (conv.seq, conv.old_hash)


async def _migrate_pg(dsn: str, shown: str, hub: str) -> tuple[str, int, tuple[int, str]]:
    import asyncpg

    from rmas.audit.writers import PG_LOCK_KEY

    try:
        conn = await asyncpg.connect(dsn, timeout=10.0)
    except Exception as exc:
        raise AuditError(f"audit database {shown} unreachable: {reason(exc)}") from exc
    insert = f"INSERT INTO {TABLE} VALUES ($1, $2, $3, $4, $5, $6, $7)"
    try:
        async with conn.transaction():
            await conn.execute(f"SELECT pg_advisory_xact_lock({PG_LOCK_KEY})")
            if await conn.fetchval("SELECT to_regclass('audit_entries')") is None:
                raise AuditError(
                    "this trail already has the current layout: nothing to migrate"
                    if await conn.fetchval(f"SELECT to_regclass('{TABLE}')") is not None
                    else "this database holds no audit trail"
                )
            await conn.execute(table_ddl("postgresql"))
            blocks: list[Sealed] = []
            conv = _Converter(hub, blocks.append)
            after = 0
            while rows := await conn.fetch(_V1_SQL.replace("?", "$1", 1).replace("?", "$2"),
                                           after, _READ):  # fmt: skip
                for r in rows:
                    conv.feed(r[0], r[1], r[2], list(r)[3:])
                after = rows[-1][0]
                for b in blocks:
                    await conn.execute(insert, *b.row())
                blocks.clear()
            conv.flush()
            for b in blocks:
                await conn.execute(insert, *b.row())
            await conn.execute("DROP TABLE audit_entries")
    except (AuditError, _Broken):
        raise
    except Exception as exc:
        raise AuditError(f"audit database {shown} cannot be migrated: {reason(exc)}") from exc
    finally:
        await conn.close()
    return "postgresql rows", conv.seq, (conv.seq, conv.old_hash)


async def migrate(url: str, *, hub: str = "") -> MigrationReport:
    """Convert the trail at ``url`` (SQLite layout 1 or 2, PostgreSQL rows) into blocks.

    AuditError, with nothing converted, when the old chain is not intact (the first problem
    named) or the trail cannot be converted; no hub may write to it meanwhile. ``hub``: the
    hub id to record in the converted entries (default: none, "").
    """
    t = target(url, "--url")
    try:
        if t.kind == "sqlite":
            layout, count, old_head = await asyncio.to_thread(_migrate_sqlite, t.location, hub)
        else:
            layout, count, old_head = await _migrate_pg(t.location, t.shown, hub)
    except _Broken as exc:
        raise AuditError(
            f"the earlier trail is broken ({exc}); nothing was converted: keep it as it is for "
            "examination (`rmas audit verify` of an earlier rmas), and start a new trail"
        ) from None
    after = await verify(url)
    if not after.ok or after.count != count:
        raise AuditError(f"migration left a trail that does not verify: {after.first_problem}")
    return MigrationReport(layout, count, old_head, after)
