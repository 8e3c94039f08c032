"""The store's batch lookup: the query text, and the two ways of running it (``io`` option).

See :mod:`adapters.sqlstore.provider` for why the lookup looks the way it does.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from rmas.errors import ProviderUnavailable

__all__ = [
    "MAX_KEYS_PER_QUERY",
    "ONE_SQL",
    "PG_BATCH_SQL",
    "READER_PRAGMAS",
    "ROW_LAYOUT",
    "Coalescer",
    "InlineCoalescer",
    "Row",
    "batch_sql",
    "pg_rows",
    "sqlite_rows",
]

#: Keys per query: two bound variables each, far below SQLite's variable limit (32766).
MAX_KEYS_PER_QUERY = 500

# The withdrawn flag is selected, not filtered in SQL: an extra condition on the joined table
# can make SQLite's planner build an automatic index instead of using the unique one.
_COLUMNS = (
    "d.status, d.reported_on, d.record_ref, d.reporting_authority, d.detail, d.surname, "
    "d.given_names, d.birth_date, d.sex, d.withdrawn, d.document_type"
)

#: Where each value sits in a row the runners hand over. The key is not selected: a row starts
#: with the key's position in the chunk asked (keys are distinct within a chunk).
ROW_LAYOUT = (
    "index", "status", "reported_on", "record_ref", "reporting_authority", "detail", "surname",
    "given_names", "birth_date", "sex", "withdrawn", "document_type",
)  # fmt: skip


@functools.lru_cache(maxsize=MAX_KEYS_PER_QUERY)
def batch_sql(n: int) -> str:
    """The batch query for ``n`` distinct keys (parameters: state, number, state, number...).

    SQLite answers with one value: a JSON array of the rows found, each ``[position, columns]``
    (:data:`ROW_LAYOUT`). One ``json.loads`` of it costs less than the sqlite3 module's row and
    value objects (measured in benchmarks/store_micro.py: 2.4 against 2.9 µs a hit, the same
    columns), and the position saves selecting the key back.
    """
    values = ",".join([f"({i},?,?)" for i in range(n)])
    return (
        f"WITH k(i, c, n) AS (VALUES {values}) "
        f"SELECT json_group_array(json_array(k.i, {_COLUMNS})) "
        "FROM k JOIN documents d ON d.issuing_state = k.c AND d.number = k.n"
    )


#: One key, looked up at once on the loop (:meth:`InlineCoalescer.read_one`): the row in
#: :data:`ROW_LAYOUT` (position 0), as the sqlite3 module returns it.
ONE_SQL = f"SELECT 0, {_COLUMNS} FROM documents d WHERE d.issuing_state = ? AND d.number = ?"


#: PostgreSQL's batch form: arrays typed like the columns, or the planner does not use the index
#: (performance.md: an untyped or text[] unnest falls back to a sequential scan). Rows in
#: :data:`ROW_LAYOUT` (the ordinality counts from 1).
PG_BATCH_SQL = (
    f"SELECT k.i - 1, {_COLUMNS} "
    "FROM unnest($1::varchar[], $2::varchar[]) WITH ORDINALITY AS k(c, n, i) "
    "JOIN documents d ON d.issuing_state = k.c AND d.number = k.n"
)

# Readers never write; a larger page cache and memory-mapped reads keep the index's hot pages out
# of the read() path.
READER_PRAGMAS = (
    "PRAGMA query_only = 1",
    "PRAGMA cache_size = -65536",
    "PRAGMA mmap_size = 268435456",
    "PRAGMA temp_store = MEMORY",
)


#: A row found (ROW_LAYOUT): a list from SQLite's JSON, an asyncpg Record from PostgreSQL.
Row = Sequence[Any]


@dataclass(slots=True)
class _Waiter:
    keys: list[tuple[str, str]]
    future: asyncio.Future[dict[tuple[str, str], Row]]


async def sqlite_rows(reader: Any, chunk: list[tuple[str, str]]) -> Any:
    rows = await reader.execute_fetchall(batch_sql(len(chunk)), list(chain.from_iterable(chunk)))
    return json.loads(rows[0][0])


async def pg_rows(reader: Any, chunk: list[tuple[str, str]]) -> Any:
    return await reader.fetch(PG_BATCH_SQL, [k[0] for k in chunk], [k[1] for k in chunk])


@dataclass(slots=True)
class Coalescer:
    """Merges concurrent key lookups into as few queries as the reader connections allow."""

    readers: list[Any]
    run: Any = sqlite_rows
    queries: int = 0
    pending: list[_Waiter] = field(default_factory=list)
    idle: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.idle = list(self.readers)

    async def fetch(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Row]:
        fut: asyncio.Future[dict[tuple[str, str], Row]] = asyncio.get_running_loop().create_future()
        self.pending.append(_Waiter(keys, fut))
        if self.idle:
            # Drain in a task of its own: a caller cancelled by its deadline must not cancel the
            # query that other callers' answers ride on.
            asyncio.get_running_loop().create_task(self._drain(self.idle.pop()))
        return await fut

    async def _drain(self, reader: Any) -> None:
        try:
            while self.pending:
                batch: list[_Waiter] = []
                keys: dict[tuple[str, str], None] = {}
                while self.pending and len(keys) < MAX_KEYS_PER_QUERY:
                    w = self.pending.pop(0)
                    if w.future.done():  # its caller gave up
                        continue
                    batch.append(w)
                    keys.update(dict.fromkeys(w.keys))
                if not batch:
                    continue
                try:
                    found = await self._query(reader, list(keys))
                except Exception as exc:
                    for w in batch:
                        if not w.future.done():
                            w.future.set_exception(
                                ProviderUnavailable(f"store query failed: {type(exc).__name__}")
                            )
                    continue
                for w in batch:
                    if not w.future.done():
                        w.future.set_result(found)
        finally:
            self.idle.append(reader)

    async def _query(self, reader: Any, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Row]:
        found: dict[tuple[str, str], Row] = {}
        for i in range(0, len(keys), MAX_KEYS_PER_QUERY):
            chunk = keys[i : i + MAX_KEYS_PER_QUERY]
            self.queries += 1
            for row in await self.run(reader, chunk):
                found[chunk[row[0]]] = row
        return found


@dataclass(slots=True)
class InlineCoalescer:
    """Looks up, in one query at the end of the loop iteration, every key asked for during it;
    or one key at once (:meth:`read_one`) when no lookup is waiting for that query."""

    conn: sqlite3.Connection
    queries: int = 0
    pending: list[_Waiter] = field(default_factory=list)
    scheduled: bool = False

    def read_one(self, key: tuple[str, str]) -> dict[tuple[str, str], Row]:
        """The row of one key, read now: what :meth:`fetch` would give, without its future, its
        loop turn and its batch query's JSON (issue 20).

        gRPC hands the loop one call per iteration, so at 64 single checks in flight 96% of
        flushes carried one key (4,656 of 4,828 in a 5,000-check run): for single checks the
        turn bought nothing. Raises ProviderUnavailable as a flush does.
        """
        self.queries += 1
        try:
            row = self.conn.execute(ONE_SQL, key).fetchone()
        except sqlite3.Error as exc:
            raise ProviderUnavailable(f"store query failed: {type(exc).__name__}") from None
        return {} if row is None else {key: row}

    def fetch(self, keys: list[tuple[str, str]]) -> asyncio.Future[dict[tuple[str, str], Row]]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[dict[tuple[str, str], Row]] = loop.create_future()
        self.pending.append(_Waiter(keys, fut))
        if not self.scheduled:
            self.scheduled = True
            loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        self.scheduled = False
        batch, self.pending = self.pending, []
        live = [w for w in batch if not w.future.done()]
        keys = list(dict.fromkeys(k for w in live for k in w.keys))
        found: dict[tuple[str, str], Row] = {}
        try:
            for i in range(0, len(keys), MAX_KEYS_PER_QUERY):
                chunk = keys[i : i + MAX_KEYS_PER_QUERY]
                self.queries += 1
                cur = self.conn.execute(batch_sql(len(chunk)), list(chain.from_iterable(chunk)))
                for row in json.loads(cur.fetchone()[0]):
                    found[chunk[row[0]]] = row
        except sqlite3.Error as exc:
            error = ProviderUnavailable(f"store query failed: {type(exc).__name__}")
            for w in live:
                if not w.future.done():
                    w.future.set_exception(error)
            return
        for w in live:
            if not w.future.done():
                w.future.set_result(found)
