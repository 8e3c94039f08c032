"""The store's change log: what every write records, and how the ``sql`` provider follows it.

Table ``change_log`` (migration 0004): ``id`` (increasing, never reused: the feed's position),
``kind``, ``issuing_state``, ``number``, ``recorded_at`` (Unix seconds).

- ``rmas store apply`` (delta feeds) writes one ``change`` row per document it changed, in the
  transaction that changes it. Stale changes and a file applied twice write nothing.
- ``rmas store import`` (CSV, bulk) writes a single ``reload`` row in its transaction: after a
  bulk load any record may have changed, and logging millions of keys would halve the import's
  speed. A feed that meets a ``reload`` row hands over the changes before it, then raises
  :class:`~rmas.changes.ChangesLost`: the hub re-checks every open passenger this store answers
  for and goes on from the current position.
- Pruning: each write (and ``rmas store prune``) removes the rows older than the store's
  retention (``store_meta.change_log_retention_s``, 7 days unless set with ``rmas store prune
  --retention``) and keeps the highest id it removed in ``store_meta.change_log_pruned_through``.
  A position below it cannot be served (:class:`ChangesLost`), nor can one above the newest id
  (the store was rebuilt from scratch).
- On PostgreSQL a writer locks the log (``SHARE ROW EXCLUSIVE``, readers unaffected) before it
  takes ids, until its commit: ids then become visible in their own order, so a reader that has
  seen id N has seen every id below it.

The reader polls by high-water mark (``id > position``, ``poll_interval`` seconds apart, pages
of ``change_batch`` rows; a full page is followed at once by the next). On PostgreSQL a writer
also sends ``NOTIFY rmas_store_changes`` (delivered at its commit), and the provider listens on
one connection of its own (:class:`Waker`) to read at once instead of at the next poll; the poll
stays, so a lost notification (or a listener connection that dropped) costs only latency.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sqlstore.schema import change_log, store_meta
from rmas.changes import ChangesLost, DocumentChange
from rmas.errors import ProviderUnavailable

__all__ = [
    "CHANNEL",
    "DEFAULT_RETENTION_S",
    "Waker",
    "log_changes",
    "log_reload",
    "prune",
    "read_position",
    "retention",
    "watch",
]

log = structlog.get_logger("adapters.sqlstore")

#: How long log rows are kept unless the store says otherwise.
DEFAULT_RETENTION_S = 7 * 86400
RETENTION_KEY = "change_log_retention_s"
PRUNED_KEY = "change_log_pruned_through"


class _Sql:
    """The few statements the log needs, on a raw aiosqlite or asyncpg connection (the writers
    work on the driver connection, inside their own transaction)."""

    def __init__(self, driver: Any, dialect: str) -> None:
        self.driver, self.pg = driver, dialect == "postgresql"

    def _sql(self, sql: str) -> str:
        if not self.pg:
            return sql
        parts = sql.split("?")
        return "".join(p + (f"${i + 1}" if i < len(parts) - 1 else "") for i, p in enumerate(parts))

    async def value(self, sql: str, *args: Any) -> Any:
        if self.pg:
            return await self.driver.fetchval(self._sql(sql), *args)
        rows = await self.driver.execute_fetchall(sql, args)
        return rows[0][0] if rows else None

    async def execute(self, sql: str, *args: Any) -> None:
        if self.pg:
            await self.driver.execute(self._sql(sql), *args)
        else:
            await self.driver.execute(sql, args)

    async def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        await self.driver.executemany(self._sql(sql), rows)


_INSERT = "INSERT INTO change_log (kind, issuing_state, number, recorded_at) VALUES (?, ?, ?, ?)"
_SET_META = (
    "INSERT INTO store_meta (key, value) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)


#: The PostgreSQL notification channel writers signal on (payload empty: readers read the log).
CHANNEL = "rmas_store_changes"


async def _lock(sql: _Sql) -> None:
    if sql.pg:
        await sql.execute("LOCK TABLE change_log IN SHARE ROW EXCLUSIVE MODE")
        await sql.execute(f"NOTIFY {CHANNEL}")  # sent at commit, dropped on rollback


async def log_changes(driver: Any, dialect: str, keys: Iterable[tuple[str, str]]) -> int:
    """Record one ``change`` row per document key, and prune; in the caller's transaction."""
    now = time.time()
    rows = [("change", state, number, now) for state, number in keys]
    if not rows:
        return 0
    sql = _Sql(driver, dialect)
    await _lock(sql)
    await sql.executemany(_INSERT, rows)
    await _prune(sql, now)
    return len(rows)


async def log_reload(driver: Any, dialect: str) -> None:
    """Record that any record may have changed (a bulk import), and prune; in the caller's
    transaction."""
    sql = _Sql(driver, dialect)
    await _lock(sql)
    now = time.time()
    await sql.execute(_INSERT, "reload", "", "", now)
    await _prune(sql, now)


async def _prune(sql: _Sql, now: float) -> int:
    raw = await sql.value("SELECT value FROM store_meta WHERE key = ?", RETENTION_KEY)
    retention = float(raw) if raw is not None else DEFAULT_RETENTION_S
    cutoff = now - retention
    through = await sql.value("SELECT max(id) FROM change_log WHERE recorded_at < ?", cutoff)
    if through is None:
        return 0
    before = await sql.value("SELECT count(*) FROM change_log WHERE id <= ?", through)
    await sql.execute("DELETE FROM change_log WHERE id <= ?", through)
    old = await sql.value("SELECT value FROM store_meta WHERE key = ?", PRUNED_KEY)
    await sql.execute(_SET_META, PRUNED_KEY, str(max(int(through), int(old or 0))))
    return int(before or 0)


async def prune(engine: AsyncEngine, retention_s: float | None = None) -> int:
    """Remove the rows older than the retention (set it first when given); returns how many."""
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        sql = _Sql(driver, engine.dialect.name)
        if sql.pg:
            async with driver.transaction():
                return await _prune_in(sql, retention_s)
        await driver.execute("BEGIN IMMEDIATE")
        try:
            removed = await _prune_in(sql, retention_s)
            await driver.commit()
        except BaseException:
            await driver.rollback()
            raise
        return removed


async def _prune_in(sql: _Sql, retention_s: float | None) -> int:
    await _lock(sql)
    if retention_s is not None:
        await sql.execute(_SET_META, RETENTION_KEY, repr(float(retention_s)))
    return await _prune(sql, time.time())


async def retention(engine: AsyncEngine) -> float:
    """The store's change-log retention, in seconds."""
    async with engine.connect() as conn:
        raw = (
            await conn.execute(select(store_meta.c.value).where(store_meta.c.key == RETENTION_KEY))
        ).scalar()
    return float(raw) if raw is not None else DEFAULT_RETENTION_S


async def _bounds(conn: Any) -> tuple[int, int]:
    """(highest id pruned, highest id recorded): positions outside them cannot be served."""
    pruned = (
        await conn.execute(select(store_meta.c.value).where(store_meta.c.key == PRUNED_KEY))
    ).scalar()
    newest = (await conn.execute(select(func.max(change_log.c.id)))).scalar()
    low = int(pruned or 0)
    return low, max(low, int(newest or 0))


async def read_position(engine: AsyncEngine) -> str:
    """The position just after the newest change recorded so far."""
    try:
        async with engine.connect() as conn:
            return str((await _bounds(conn))[1])
    except Exception as exc:
        raise ProviderUnavailable(f"change log unreadable: {type(exc).__name__}") from exc


class Waker:
    """Wakes the provider's change feeds when a PostgreSQL writer commits (LISTEN on one
    connection of the provider's engine); on SQLite, or without a listener, feeds just poll."""

    def __init__(self) -> None:
        self._events: set[asyncio.Event] = set()
        self._conn: Any = None
        self._driver: Any = None
        self._starting = asyncio.Lock()

    async def start(self, engine: AsyncEngine) -> None:
        if engine.dialect.name != "postgresql":
            return
        async with self._starting:
            if self._conn is None:
                await self._listen(engine)

    async def _listen(self, engine: AsyncEngine) -> None:
        try:
            conn = await engine.connect()
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            await driver.add_listener(CHANNEL, self._notified)
        except Exception as exc:  # polling still works
            log.warning("change_listener_failed", error=type(exc).__name__)
            return
        self._conn, self._driver = conn, driver

    def _notified(self, *_args: Any) -> None:
        for event in self._events:
            event.set()

    async def sleep(self, seconds: float, event: asyncio.Event) -> None:
        """Sleep until a writer's notification, at most ``seconds``."""
        self._events.add(event)
        try:
            async with asyncio.timeout(seconds):
                await event.wait()
        except TimeoutError:
            pass
        finally:
            event.clear()
            self._events.discard(event)

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await self._driver.remove_listener(CHANNEL, self._notified)
            except Exception as exc:  # the connection may be gone already
                log.debug("change_listener_close_failed", error=type(exc).__name__)
            await conn.invalidate()  # not back to the pool with a LISTEN on it
            await conn.close()


def _parse(since: str) -> int:
    try:
        position = int(since)
    except ValueError:
        raise ChangesLost(f"not a position of this store: {since[:40]!r}") from None
    if position < 0:
        raise ChangesLost("not a position of this store: negative")
    return position


async def _page(engine_of: Callable[[], AsyncEngine], position: int, limit: int) -> Sequence[Any]:
    engine = engine_of()  # raises ProviderUnavailable once the provider is closed
    try:
        async with engine.connect() as conn:
            low, high = await _bounds(conn)
            if position < low:
                raise ChangesLost(f"position {position} was pruned (kept from {low + 1})")
            if position > high:
                raise ChangesLost(f"position {position} is ahead of the store's log ({high})")
            q = (
                select(change_log.c.id, change_log.c.kind, change_log.c.issuing_state,
                       change_log.c.number)
                .where(change_log.c.id > position)
                .order_by(change_log.c.id)
                .limit(limit)
            )  # fmt: skip
            return (await conn.execute(q)).all()
    except ChangesLost:
        raise
    except Exception as exc:
        raise ProviderUnavailable(f"change log unreadable: {type(exc).__name__}") from exc


async def watch(
    engine_of: Callable[[], AsyncEngine],
    since: str,
    *,
    poll_interval: float,
    batch: int,
    waker: Waker | None = None,
) -> AsyncIterator[Sequence[DocumentChange]]:
    """The changes after ``since``, oldest first, polled without end (rmas.changes contract).

    ``engine_of`` gives the provider's engine at each read, and fails once it is closed (a
    disposed engine would quietly open a fresh pool)."""
    position = _parse(since)
    woken = asyncio.Event()
    while True:
        rows = await _page(engine_of, position, batch)
        changes: list[DocumentChange] = []
        for row_id, kind, state, number in rows:
            if kind == "reload":
                if changes:
                    yield changes
                raise ChangesLost("the store's records were reloaded in bulk")
            changes.append(DocumentChange(state, number, str(row_id)))
            position = int(row_id)
        if changes:
            yield changes
        if len(rows) < batch:
            if waker is None:
                await asyncio.sleep(poll_interval)
            else:
                await waker.sleep(poll_interval, woken)
