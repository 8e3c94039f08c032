"""Reading an audit trail, on SQLite and PostgreSQL alike: :func:`verify`, :func:`find`,
:func:`find_check`, :func:`head` (``rmas audit verify | find | head``).

Both engines hold the same table (:data:`rmas.audit.format.TABLE`) and are read with the same
statements, a chunk of blocks at a time in ``first_seq`` order, so that memory stays flat for
millions of entries. SQLite files are opened read-only (never created).

Lookups (:func:`find`, :func:`find_check`) ask the database for the blocks whose bytes contain
the value (``instr`` on SQLite, ``position`` on PostgreSQL: a scan, with no index to maintain
at every commit; lookups are an operator's, rare and offline), then decode those blocks, each by
its ``format`` column, and compare each entry's field in full. Fields are stored verbatim in
both formats, so the bytes searched for are the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import urllib.parse
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from typing import Any

from rmas.audit.chain import BlockVerifier, VerifyReport
from rmas.audit.format import GENESIS, OLD_TABLES, TABLE, TAIL_SQL, decode
from rmas.audit.target import Target, reason, target
from rmas.errors import AuditError

__all__ = ["VERIFY_CHUNK", "find", "find_card", "find_check", "head", "verify"]

#: Blocks per read (a block holds up to ``max_batch`` entries, 5,000 by default: about 1.5 MB).
VERIFY_CHUNK = 64

_COLUMNS = "first_seq, last_seq, format, prev_hash, hash, digests, body"
_CHUNK_SQL = (
    f"SELECT {_COLUMNS} FROM {TABLE} WHERE first_seq > ? {{where}} ORDER BY first_seq LIMIT ?"
)
_CONTAINS = {"sqlite": "AND instr(body, ?) > 0", "postgresql": "AND position(?::bytea in body) > 0"}


def _numbered(sql: str) -> str:
    """``?`` parameters as PostgreSQL's ``$1, $2...``."""
    count = iter(range(1, 1000))
    return re.sub(r"\?", lambda _m: f"${next(count)}", sql)


class _Conn:
    """A read-only connection to an existing trail, on either engine."""

    def __init__(self, t: Target) -> None:
        self.target = t
        self._db: Any = None

    async def __aenter__(self) -> _Conn:
        t = self.target
        if t.kind == "sqlite":
            if not await asyncio.to_thread(os.path.exists, t.location):
                raise AuditError(f"audit database {t.location} does not exist")
            import sqlite3

            try:
                self._db = sqlite3.connect(
                    f"file:{urllib.parse.quote(t.location)}?mode=ro", uri=True,
                    check_same_thread=False,
                )  # fmt: skip
            except sqlite3.Error as exc:
                raise AuditError(f"audit database {t.location} cannot be read: {exc}") from exc
        else:
            import asyncpg

            try:
                self._db = await asyncpg.connect(t.location, timeout=10.0)
            except Exception as exc:
                raise AuditError(f"audit database {t.shown} unreachable: {reason(exc)}") from exc
        try:
            await self._check_table()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *_exc: object) -> None:
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(Exception):
                await (asyncio.to_thread(db.close) if self.target.kind == "sqlite" else db.close())

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Rows of one statement (``?`` parameters); AuditError when it cannot be read."""
        try:
            if self.target.kind == "sqlite":
                return await asyncio.to_thread(lambda: self._db.execute(sql, args).fetchall())
            return [tuple(r) for r in await self._db.fetch(_numbered(sql), *args)]
        except Exception as exc:
            raise AuditError(
                f"audit database {self.target.shown} cannot be read: {reason(exc)}"
            ) from exc

    async def _check_table(self) -> None:
        if self.target.kind == "sqlite":
            sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?"
            found = {n for name in (TABLE, *OLD_TABLES) for (n,) in await self.fetch(sql, name)}
        else:
            found = set()
            for name in (TABLE, *OLD_TABLES):
                if (await self.fetch("SELECT to_regclass(?)", name))[0][0] is not None:
                    found.add(name)
        if found & set(OLD_TABLES):
            raise AuditError(
                f"{self.target.shown} holds an audit trail of an earlier layout: convert it "
                "with `rmas audit migrate` first"
            )
        if TABLE not in found:
            raise AuditError(f"{self.target.shown} holds no audit trail (no table {TABLE})")

    async def blocks(
        self, *, contains: bytes | None = None, chunk: int = VERIFY_CHUNK
    ) -> AsyncIterator[tuple[Any, ...]]:
        """Every block in ``first_seq`` order (only those whose bytes hold ``contains``)."""
        where = "" if contains is None else _CONTAINS[self.target.kind]
        sql = _CHUNK_SQL.format(where=where)
        after: Any = -1
        while True:
            args = (after, chunk) if contains is None else (after, contains, chunk)
            rows = await self.fetch(sql, *args)
            for row in rows:
                yield tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
            if len(rows) < chunk or not isinstance(rows[-1][0], int):
                return
            after = rows[-1][0]


async def verify(
    url: str, *, expect_head: tuple[int, str] | None = None, chunk: int = VERIFY_CHUNK
) -> VerifyReport:
    """Check the whole chain: every block's hash, every link, no gap; and the anchor if one is
    given. A deleted tail leaves a valid chain: only ``expect_head`` (a ``(seq, hash)`` an
    operator kept, from :func:`head`) detects it. AuditError when the database cannot be read.
    """
    verifier = BlockVerifier(expect_head=expect_head)
    async with _Conn(target(url, "--url")) as conn:
        async for row in conn.blocks(chunk=chunk):
            verifier.feed(*row)
    return verifier.finish()


async def _select(url: str, column: str, value: str) -> list[dict[str, Any]]:
    """Entries whose ``column`` equals ``value``, by seq: each a dict of ``seq``, ``block``
    (its block's ``first_seq``) and the entry's fields."""
    return await _scan(url, value, lambda entry: getattr(entry, column) == value)


async def _scan(url: str, needle: str, match: Callable[[Any], bool]) -> list[dict[str, Any]]:
    """Entries for which ``match`` holds, among the blocks whose bytes contain ``needle``."""
    if not needle:
        return []
    found: list[dict[str, Any]] = []
    async with _Conn(target(url, "--url")) as conn:
        async for first, _last, fmt, _prev, _hash, _sums, body in conn.blocks(
            contains=needle.encode("utf-8")
        ):
            try:
                entries = decode(fmt, body)
            except (ValueError, TypeError):  # an altered block (verify names it)
                continue
            for i, entry in enumerate(entries):
                if match(entry):
                    found.append({"seq": first + i, "block": first, **asdict(entry)})
    return found


async def find(url: str, document_key: str) -> list[dict[str, Any]]:
    """Every entry about the document with this key (:meth:`DocumentKeyer.key_of`), by seq."""
    return await _select(url, "document_key", document_key)


async def find_check(url: str, check_id: str) -> list[dict[str, Any]]:
    """The entry (normally one) of the check with this id, as :func:`find` returns them."""
    return await _select(url, "check_id", check_id)


async def find_card(url: str, card_key: str) -> list[dict[str, Any]]:
    """Every entry whose check was presented the APEC Business Travel Card with this key (the
    keyer's hash of ``"ABTC:<home economy>"`` and the card number; rmas.audit.entry), by seq."""
    item = f"card:{card_key} "
    return await _scan(url, item, lambda entry: item in entry.sources)


async def head(url: str) -> tuple[int, str]:
    """(last seq, its block's hash), (0, GENESIS) when empty: the anchor an operator keeps."""
    async with _Conn(target(url, "--url")) as conn:
        rows = await conn.fetch(TAIL_SQL)
    return (int(rows[0][0]), str(rows[0][1])) if rows else (0, GENESIS)
