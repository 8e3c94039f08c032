"""The flight store's database: its engine (SQLite with WAL and a busy timeout, or PostgreSQL
shared by several hubs), the tables created at opening, and the change watcher's positions.

:class:`FlightDatabase` is the base of :class:`~rmas.flights.store.FlightStore`; it is also the
change watcher's :class:`~rmas.changewatch.PositionStore` (per provider, the position of the
last record change the hubs acted on).
"""

from __future__ import annotations

import contextlib
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from rmas.errors import ConfigError
from rmas.fileperm import create_private
from rmas.flights.schema import DROPPED_INDEXES, metadata, positions

__all__ = ["CANCELLED", "CLOSED", "OPEN", "FlightDatabase"]

#: SQLite: parameters of one multi-row INSERT at most (SQLite before 3.32 allows no more).
_PARAMETERS = 999

#: A flight's states.
OPEN = "open"
CLOSED = "closed"
CANCELLED = "cancelled"


class FlightDatabase:
    """The connection to the flight store, and the watch positions kept in it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: AsyncEngine | None = None
        #: The driver's SQL of the inserts made through _insert_many, per (table, ignore).
        self._inserts: dict[tuple[str, bool], str] = {}
        u = make_url(url)
        self.kind = u.get_backend_name()
        if self.kind not in ("sqlite", "postgresql"):
            raise ConfigError("flights.url", "must be sqlite+aiosqlite or postgresql+asyncpg")

    async def open(self) -> None:
        if self._engine is not None:
            return
        if self.kind == "sqlite":
            path = make_url(self.url).database or ""
            if path and not path.startswith(":memory:"):
                with contextlib.suppress(OSError):
                    create_private(path)
            engine = create_async_engine(self.url, connect_args={"timeout": 30})

            @sa.event.listens_for(engine.sync_engine, "connect")
            def _pragmas(dbapi: Any, _record: Any) -> None:
                cur = dbapi.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()
        else:
            engine = create_async_engine(self.url, pool_size=5, max_overflow=5)
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.run_sync(_drop_indexes)
        self._engine = engine

    async def aclose(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("the flight store is not open")
        return self._engine

    # -- PositionStore ---------------------------------------------------------------------

    async def load_position(self, provider_id: str) -> str | None:
        async with self.engine.connect() as conn:
            r = (
                await conn.execute(
                    sa.select(positions.c.position).where(positions.c.provider_id == provider_id)
                )
            ).first()
        return str(r.position) if r is not None else None

    async def save_position(self, provider_id: str, position: str) -> None:
        async with self.engine.begin() as conn:
            done = await conn.execute(
                positions.update()
                .where(positions.c.provider_id == provider_id)
                .values(position=position)
            )
            if done.rowcount == 0:
                await conn.execute(
                    self._insert_ignore(
                        positions, {"provider_id": provider_id, "position": position}
                    )
                )

    def _insert_ignore(self, table: sa.Table, values: dict[str, Any]) -> Any:
        return self._insert_ignore_stmt(table).values(**values)

    def _insert_ignore_stmt(self, table: sa.Table) -> Any:
        """INSERT that skips rows whose unique key exists (another hub inserted them)."""
        if self.kind == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table).on_conflict_do_nothing()
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing()

    async def _insert_many(
        self,
        conn: AsyncConnection,
        table: sa.Table,
        columns: tuple[str, ...],
        rows: list[tuple[Any, ...]],
        *,
        ignore: bool = False,
        constants: dict[str, int] | None = None,
    ) -> None:
        """Insert ``rows`` (tuples of ``columns``, in the table's column order, each value of the
        type the driver takes: str, int, float, bool, bytes) without SQLAlchemy's per-row
        parameter processing. ``constants``: columns set to the same integer in every row;
        ``ignore``: see _insert_ignore_stmt.

        PostgreSQL: the driver's ``executemany``. SQLite: one multi-row ``VALUES`` statement per
        ``_PARAMETERS`` parameters, so that the SQLite thread lets go of the GIL once per
        statement, not once per row (an ``executemany`` steps each row apart; with the hub on
        one core, every handover of the GIL between it and the event loop is a context switch)."""
        sql = self._inserts.get((table.name, ignore))
        if sql is None:
            stmt = self._insert_ignore_stmt(table) if ignore else table.insert()
            if constants:
                stmt = stmt.values(
                    {c: sa.literal_column(str(int(v))) for c, v in constants.items()}
                )
            compiled = stmt.compile(dialect=conn.dialect, column_keys=list(columns))
            if tuple(compiled.positiontup or ()) != columns:
                raise RuntimeError(f"{table.name}: columns out of the table's order")
            sql = self._inserts[(table.name, ignore)] = compiled.string
        if self.kind != "sqlite":
            await conn.exec_driver_sql(sql, rows)
            return
        head, _, tail = sql.partition(" VALUES ")
        row, close, rest = tail.partition(")")  # "(?, 1, ?" and what follows the row
        step = max(1, _PARAMETERS // len(columns))
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            values = ", ".join([row + close] * len(chunk))
            flat = tuple(v for r in chunk for v in r)
            await conn.exec_driver_sql(f"{head} VALUES {values}{rest}", flat)


def _drop_indexes(conn: sa.Connection) -> None:
    """The migration of a store an earlier release created: drop the indexes it no longer
    needs (looked up first, so that an up-to-date store takes no lock for it)."""
    inspector = sa.inspect(conn)
    found = {
        ix["name"]
        for table in ("flight_passengers", "flight_documents")
        for ix in inspector.get_indexes(table)
    }
    for name in DROPPED_INDEXES:
        if name in found:
            conn.execute(sa.text(f"DROP INDEX IF EXISTS {name}"))
