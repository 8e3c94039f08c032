"""Shared helpers and fixtures of the audit tests (imported by the test modules).

PostgreSQL tests run in a private database created for the session next to the one
RMAS_TEST_POSTGRES_URL names (dropped at the end), so they never touch tables that other test
runs use; each test starts without audit tables. Without the privilege to create databases they
fall back to the named database itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from rmas.audit import AuditSink, Caller, Channel, DocumentKeyer, entries_for
from rmas.audit.format import AuditEntry, Sealed, decode
from rmas.documents import validate_document
from rmas.hub import CheckResult, new_check_id
from rmas.verdict import Directive, Outcome, Record, RecordStatus, SourceAnswer, Verdict

KEY = bytes(range(32))
KEYER = DocumentKeyer(KEY)
CALLER = Caller("rmas://airline/QF", "airline")
NOW = dt.datetime(2026, 11, 22, 10, 4, 5, 123456, tzinfo=dt.UTC)


def answer(
    provider: str,
    status: RecordStatus | None = RecordStatus.NO_RECORD,
    outcome: Outcome = Outcome.ANSWERED,
    *,
    queried_number: str = "",
) -> SourceAnswer:
    record = Record(status) if status is not None and outcome is Outcome.ANSWERED else None
    return SourceAnswer(
        provider, outcome, required=True, issuer=True, latency_ms=1.5, record=record,
        queried_number=queried_number,
    )  # fmt: skip


def result(
    number: str = "LA1234567",
    state: str = "NZL",
    verdict: Verdict = Verdict.CLEAR,
    directive: Directive = Directive.OK_TO_BOARD,
    sources: tuple[SourceAnswer, ...] | None = None,
) -> CheckResult:
    query = validate_document(issuing_state=state, number=number)
    if sources is None:
        sources = (answer("NZL", RecordStatus.VALID), answer("SLTD"))
    return CheckResult(new_check_id(), "", verdict, directive, sources=sources, document=query)


def entries(
    n: int, *, number: str = "", state: str = "NZL", reference: str = ""
) -> list[AuditEntry]:
    """``n`` entries of distinct documents (or all of ``number`` when given)."""
    results = [result(number or f"X{secrets.token_hex(4).upper()}", state) for _ in range(n)]
    return entries_for(results, CALLER, Channel.DOCUMENT, KEYER, reference=reference, now=NOW)


# -- databases ------------------------------------------------------------------------------------


def sql_url(url: str) -> str:
    """The asyncpg DSN of a SQLAlchemy PostgreSQL URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def with_database(url: str, name: str) -> str:
    head, _, _ = url.rpartition("/")
    return f"{head}/{name}"


async def pg_execute(url: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(sql_url(url))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _create_private(base: str, name: str) -> bool:
    import asyncpg

    try:
        await pg_execute(base, f"CREATE DATABASE {name}")
    except asyncpg.InsufficientPrivilegeError:
        return False
    return True


class PgDatabases:
    """Private databases created on demand for this session, dropped at its end."""

    def __init__(self) -> None:
        self.created: list[tuple[str, str]] = []
        self._private: dict[str, str] = {}
        self.can_create = True

    async def create(self, base: str) -> str | None:
        """A new database next to ``base``'s; None without the privilege to create one."""
        name = f"rmas_audit_test_{os.getpid()}_{secrets.token_hex(3)}"
        if not self.can_create or not await _create_private(base, name):
            self.can_create = False
            return None
        self.created.append((base, name))
        return with_database(base, name)

    def private(self, base: str) -> str:
        """This session's database (created once; ``base`` itself when none can be created)."""
        if base not in self._private:
            self._private[base] = asyncio.run(self.create(base)) or base
        return self._private[base]

    def drop_all(self) -> None:
        for base, name in self.created:
            asyncio.run(pg_execute(base, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PgDatabases]:
    dbs = PgDatabases()
    yield dbs
    dbs.drop_all()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, pg_databases: PgDatabases) -> str:
    """An audit database URL with no audit trail in it yet, on each engine."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    base = request.getfixturevalue("postgres_url")
    url = pg_databases.private(base)
    asyncio.run(pg_execute(url, "DROP TABLE IF EXISTS audit_block, audit_entries"))
    return url


@pytest.fixture
def pg_url(postgres_url: str, pg_databases: PgDatabases) -> str:
    """A PostgreSQL audit database URL with no audit trail in it yet."""
    url = pg_databases.private(postgres_url)
    asyncio.run(pg_execute(url, "DROP TABLE IF EXISTS audit_block, audit_entries"))
    return url


async def raw_execute(url: str, sql: str, *args: Any) -> None:
    """Run one statement outside the sink (an attacker's or an operator's edit). ``?`` params."""
    if url.startswith("sqlite"):
        import sqlite3

        path = url.split(":///", 1)[1]
        db = sqlite3.connect(path, isolation_level=None)
        try:
            db.execute(sql, args)
        finally:
            db.close()
        return
    import asyncpg

    n = 0

    def numbered(_m: Any) -> str:
        nonlocal n
        n += 1
        return f"${n}"

    conn = await asyncpg.connect(sql_url(url))
    try:
        await conn.execute(re.sub(r"\?", numbered, sql), *args)
    finally:
        await conn.close()


async def raw_rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    if url.startswith("sqlite"):
        import sqlite3

        db = sqlite3.connect(url.split(":///", 1)[1])
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()
    import asyncpg

    conn = await asyncpg.connect(sql_url(url))
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


# -- what an attacker with write access does (the same table on both engines) ---------------------


def _sqlite_path(url: str) -> str:
    return url.split(":///", 1)[1]


async def block_of(url: str, seq: int) -> Sealed:
    """The stored block holding entry ``seq``."""
    (row,) = await raw_rows(
        url,
        "SELECT first_seq, last_seq, format, prev_hash, hash, digests, body FROM audit_block "
        f"WHERE first_seq <= {int(seq)} AND last_seq >= {int(seq)}",
    )
    return Sealed(*(bytes(v) if isinstance(v, memoryview) else v for v in row))


async def edit_entry(url: str, seq: int, **fields: str) -> None:
    """Change stored fields of entry ``seq`` (its block's hash and digests left as they were),
    in the block's own format (tests.audit.spec.edited: in format 2, a call field is changed in
    the call record of the entry's group)."""
    from tests.audit import spec

    block = await block_of(url, seq)
    body = spec.edited(block.format, block.body, seq - block.first_seq, fields)
    await raw_execute(url, "UPDATE audit_block SET body = ? WHERE first_seq = ?", body,
                      block.first_seq)  # fmt: skip


async def set_hash(url: str, seq: int, digest: str) -> None:
    """Overwrite the stored hash of the block holding entry ``seq``."""
    block = await block_of(url, seq)
    await raw_execute(url, "UPDATE audit_block SET hash = ? WHERE first_seq = ?", digest,
                      block.first_seq)  # fmt: skip


async def delete_entries(url: str, first: int, last: int) -> None:
    """Delete entries ``first`` to ``last``: they must be whole stored blocks."""
    assert (await block_of(url, first)).first_seq == first
    assert (await block_of(url, last)).last_seq == last
    await raw_execute(url, "DELETE FROM audit_block WHERE first_seq BETWEEN ? AND ?", first, last)


async def stored_entries(url: str) -> list[AuditEntry]:
    """Every entry stored, in order (read straight from the blocks)."""
    rows = await raw_rows(url, "SELECT format, body FROM audit_block ORDER BY first_seq")
    return [e for (fmt, body) in rows for e in decode(fmt, bytes(body))]


async def stored_check_ids(url: str) -> set[str]:
    """The check id of every entry stored."""
    return {e.check_id for e in await stored_entries(url)}


# -- a started sink -------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def started(url: str, **options: object) -> AsyncIterator[AuditSink]:
    sink = AuditSink(url, **options)  # type: ignore[arg-type]
    await sink.start()
    try:
        yield sink
    finally:
        await sink.aclose()
