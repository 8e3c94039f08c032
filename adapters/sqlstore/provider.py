"""The ``sql`` provider kind: an economy's SQL store answering batched document lookups.

Why it looks the way it does (figures: ../shared/design/performance.md and docs/benchmarks.md):

- SQLAlchemy's async engine manages connections and the schema, but a per-key lookup through
  SQLAlchemy costs about ten worker-thread round trips and reaches only 350-900 lookups/s. The hot
  path therefore runs on the driver connection the engine hands out, one round trip per query.
- A batch is one query: ``WITH k(c, n) AS (VALUES (?,?), ...) SELECT ... FROM k JOIN documents d
  ON d.issuing_state = k.c AND d.number = k.n``, which SQLite answers with the unique index. The
  row-value forms (``(a, b) IN (VALUES ...)``, ``tuple_().in_()``) silently scan the whole table.
- Concurrent ``lookup_many`` calls are coalesced, so sixty-four single-document checks in flight
  become a handful of queries. Two ways to run them (option ``io``):

  ``"inline"`` (default): the keys that arrive within one event-loop iteration are looked up
  together in one query, run on the loop's own thread at the end of that iteration. No thread hop,
  no timer: an indexed batch costs 3-9 µs a key on a warm store (a 400-document manifest blocks
  the loop for about a millisecond), against 20-40 µs of cross-thread wake-ups per aiosqlite round
  trip. Measured: +15% checks/s and +18% manifest documents/s over ``"thread"``. A single key
  asked while no query is waiting is read at once instead (``read_one``: a plain SELECT, no
  future, no loop turn): gRPC hands the loop one call per iteration, so single checks almost
  never shared a query anyway.

  ``"thread"``: aiosqlite reader threads; while a reader runs one query the keys that arrive queue
  up for the next. Choose it when the store file is on slow or network storage, where one cold
  read could stall every check on the loop.

- PostgreSQL (``postgresql+asyncpg://``): the same coalescing over ``readers`` asyncpg connections
  taken from the engine, and the batch form ``JOIN unnest($1::varchar[], $2::varchar[])``: the
  arrays must be typed like the columns, or PostgreSQL scans the table (a test asserts the plan).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.sqlstore import cards, changelog
from adapters.sqlstore.lookup import (
    MAX_KEYS_PER_QUERY,
    PG_BATCH_SQL,
    READER_PRAGMAS,
    Coalescer,
    InlineCoalescer,
    batch_sql,
    pg_rows,
    sqlite_rows,
)
from adapters.sqlstore.migrate import HEAD, SERVED, current_revision
from adapters.sqlstore.schema import (
    documents,
    make_engine,
    missing_store,
    resolve_url,
    sqlite_file,
)
from rmas.abtc import UNKNOWN_CARD, CardQuery, CardRecord
from rmas.changes import DocumentChange
from rmas.documents import EMPTY_HOLDER, DocumentQuery, Holder, match_holder
from rmas.errors import ConfigError, ProviderTimeout, ProviderUnavailable, StoreError
from rmas.providers import ProviderConfig, ProviderInfo, Registry
from rmas.verdict import HolderMatch, Record, RecordStatus

__all__ = ["MAX_KEYS_PER_QUERY", "PG_BATCH_SQL", "SqlStoreProvider", "batch_sql"]

log = structlog.get_logger("adapters.sqlstore")

_STATUS = {s.value: s for s in RecordStatus}
_NOT_CHECKED = HolderMatch.NOT_CHECKED


def _holder_match(q: DocumentQuery, row: Sequence[Any]) -> HolderMatch:
    """The record's holder (a row laid out as adapters.sqlstore.lookup.ROW_LAYOUT says) against
    the query's (the one rule: rmas.documents.match_holder)."""
    birth = row[8]
    if isinstance(birth, str):
        birth = dt.date.fromisoformat(birth) if birth else None
    known = Holder(row[6] or "", row[7] or "", birth, row[9] or "")
    return match_holder(q.holder, known)


class SqlStoreProvider:
    """Answers lookups from an economy's SQL store. See the module docstring for the design."""

    def __init__(
        self,
        info: ProviderInfo,
        url: str,
        *,
        registry: Registry = Registry.ALERTS,
        readers: int = 2,
        io: str = "inline",
        poll_interval: float = 0.5,
        change_batch: int = 500,
    ) -> None:
        if io not in ("inline", "thread"):
            raise ValueError(f"io must be 'inline' or 'thread', not {io!r}")
        self.io = io
        self._info = info
        self.url = url
        self.registry = registry
        self._missing = Record(
            RecordStatus.NOT_ISSUED if registry is Registry.COMPLETE else RecordStatus.NO_RECORD,
            detail="not in the issuing economy's registry" if registry is Registry.COMPLETE else "",
        )
        self._n_readers = readers
        #: How the change log is followed (adapters.sqlstore.changelog).
        self.poll_interval, self.change_batch = poll_interval, change_batch
        self._waker = changelog.Waker()
        self._engine: AsyncEngine | None = None
        self._count: tuple[int, float] | None = None
        self._has_cards: tuple[bool, float] | None = None
        self._conns: list[AsyncConnection] = []
        self._coalescer: Coalescer | InlineCoalescer | None = None
        self._lock = asyncio.Lock()
        #: lookup_many calls served (tests assert one per manifest).
        self.calls = 0

    @classmethod
    def from_config(cls, cfg: ProviderConfig) -> SqlStoreProvider:
        url = resolve_url(cfg.option("url", str), cfg.base_dir)
        u = make_url(url)
        if (u.get_backend_name(), u.get_driver_name()) not in (
            ("sqlite", "aiosqlite"),
            ("postgresql", "asyncpg"),
        ):
            raise ConfigError(
                f"providers[{cfg.index}].url",
                "use sqlite+aiosqlite:///PATH or postgresql+asyncpg://HOST/DB",
            )
        raw_registry = cfg.option("registry", str, Registry.ALERTS.value)
        try:
            registry = Registry(raw_registry)
        except ValueError:
            raise ConfigError(
                f"providers[{cfg.index}].registry", 'must be "alerts" or "complete"'
            ) from None
        readers = cfg.option("readers", int, 2)
        if not 1 <= readers <= 16:
            raise ConfigError(f"providers[{cfg.index}].readers", "must be between 1 and 16")
        io = cfg.option("io", str, "inline")
        if io not in ("inline", "thread"):
            raise ConfigError(f"providers[{cfg.index}].io", 'must be "inline" or "thread"')
        poll = cfg.option("poll_interval", float, 0.5)
        if not 0.01 <= poll <= 60:
            raise ConfigError(f"providers[{cfg.index}].poll_interval", "must be 0.01 to 60 seconds")
        change_batch = cfg.option("change_batch", int, 500)
        if not 1 <= change_batch <= 10_000:
            raise ConfigError(f"providers[{cfg.index}].change_batch", "must be 1 to 10000")
        path = sqlite_file(url)
        if path is not None and not path.is_file():
            raise ConfigError(f"providers[{cfg.index}].url", missing_store(path, url))
        return cls(cfg.info, url, registry=registry, readers=readers, io=io,
                   poll_interval=poll, change_batch=change_batch)  # fmt: skip

    @property
    def info(self) -> ProviderInfo:
        return self._info

    async def record_count(self) -> int | None:
        """Records the store holds (withdrawn ones left out), for Describe and ``rmas status``.

        Counting ten million rows takes a second, so the figure is kept for a minute.
        """
        now = time.monotonic()
        if self._count is not None and now - self._count[1] < 60.0:
            return self._count[0]
        if self._engine is None:
            await self.start()
        assert self._engine is not None
        async with self._engine.connect() as conn:
            n = (
                await conn.execute(
                    select(func.count())
                    .select_from(documents)
                    .where(documents.c.withdrawn.is_(False))
                )
            ).scalar_one()
        self._count = (int(n), now)
        return int(n)

    @property
    def queries(self) -> int:
        """Queries sent so far (coalescing makes this fewer than lookups)."""
        return self._coalescer.queries if self._coalescer else 0

    async def start(self) -> None:
        """Open the reader connections (done lazily by the first lookup otherwise)."""
        async with self._lock:
            if self._coalescer is not None:
                return
            engine = make_engine(self.url, create=False)  # a missing store is not created
            await self._check_schema(engine)
            readers: list[Any] = []
            postgres = engine.dialect.name == "postgresql"
            try:
                if self.io == "inline" and not postgres:
                    self._coalescer = InlineCoalescer(await self._inline_connection(engine))
                    self._engine = engine
                    return
                for _ in range(self._n_readers):
                    conn = await engine.connect()
                    self._conns.append(conn)
                    raw = await conn.get_raw_connection()
                    driver: Any = raw.driver_connection
                    if postgres:
                        # Fail now, with a clear message, if the database holds no store.
                        await pg_rows(driver, [("", "")])
                    else:
                        for pragma in READER_PRAGMAS:
                            await driver.execute(pragma)
                        await driver.execute_fetchall(batch_sql(1), ["", ""])
                    readers.append(driver)
            except Exception as exc:
                for conn in self._conns:
                    await conn.close()
                self._conns.clear()
                await engine.dispose()
                log.error("store_unavailable", provider=self._info.id, error=type(exc).__name__)
                raise ProviderUnavailable(
                    f"store {self._info.id} cannot be opened: {type(exc).__name__}"
                ) from exc
            self._engine = engine
            self._coalescer = Coalescer(readers, pg_rows if postgres else sqlite_rows)

    async def _log_engine(self) -> AsyncEngine:
        if self._engine is None:
            await self.start()
        if self._engine is None:
            raise ProviderUnavailable(f"store {self._info.id} is closed")
        return self._engine

    async def current_position(self) -> str:
        """ChangeFeed (rmas.changes): the newest id of the store's change log."""
        return await changelog.read_position(await self._log_engine())

    async def watch_changes(self, since: str) -> AsyncIterator[Sequence[DocumentChange]]:
        """ChangeFeed (rmas.changes): the change log after ``since``, polled every
        ``poll_interval`` seconds (adapters.sqlstore.changelog)."""
        await self._waker.start(await self._log_engine())  # PostgreSQL: LISTEN, read at once
        async for batch in changelog.watch(
            self._open_engine, since, poll_interval=self.poll_interval,
            batch=self.change_batch, waker=self._waker,
        ):  # fmt: skip
            yield batch

    def _open_engine(self) -> AsyncEngine:
        if self._engine is None:
            raise ProviderUnavailable(f"store {self._info.id} is closed")
        return self._engine

    async def _check_schema(self, engine: AsyncEngine) -> None:
        """Refuse to serve a store whose schema is older than this code expects."""
        try:
            revision = await current_revision(engine)
        except Exception as exc:
            await engine.dispose()
            raise ProviderUnavailable(
                f"store {self._info.id} cannot be opened: {type(exc).__name__}"
            ) from exc
        if revision is not None and revision not in SERVED:
            await engine.dispose()
            raise StoreError(
                f"store {self._info.id} has schema revision {revision}, this rmas needs {HEAD}: "
                f"run `rmas store migrate --url {make_url(self.url).render_as_string()}`"
            )

    async def _inline_connection(self, engine: AsyncEngine) -> sqlite3.Connection:
        """A read-only sqlite3 connection to the file the engine points at, for the loop thread.

        Opened through the engine's URL, after the engine has checked the store is readable.
        """
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            await driver.execute_fetchall(batch_sql(1), ["", ""])  # fails now if not a store
        path = make_url(self.url).database
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, cached_statements=256)
        for pragma in READER_PRAGMAS:
            db.execute(pragma)
        return db

    async def lookup_many(self, queries: Sequence[DocumentQuery], deadline: float) -> list[Record]:
        self.calls += 1
        coalescer = self._coalescer
        if coalescer is None:
            await self.start()
            coalescer = self._coalescer
            assert coalescer is not None
        if time.monotonic() >= deadline:
            raise ProviderTimeout("deadline passed before the lookup started")
        keys = [q.key for q in queries]  # computed once per document
        if len(keys) == 1 and type(coalescer) is InlineCoalescer and not coalescer.scheduled:
            found = coalescer.read_one(keys[0])  # a single check, nobody to share a query with
        else:
            found = await coalescer.fetch(keys)
        missing, get = self._missing, found.get
        out: list[Record] = []
        for q, key in zip(queries, keys, strict=True):
            # A row is laid out as adapters.sqlstore.lookup.ROW_LAYOUT says; row[10] is the
            # withdrawn flag. Built here, not in a method of its own: the call cost 0.15 µs a hit
            # (benchmarks/store_micro.py). Record's fields go by position (0.3 µs less).
            row = get(key)
            if row is None or row[10]:
                out.append(missing)
                continue
            reported = row[2]
            if reported and not isinstance(reported, dt.date):
                reported = dt.date.fromisoformat(reported)
            out.append(
                Record(
                    _STATUS[row[1]],  # status
                    _NOT_CHECKED if q.holder is EMPTY_HOLDER else _holder_match(q, row),
                    reported or None,  # reported_on
                    row[3] or "",  # record_ref
                    row[4] or "",  # reporting_authority
                    row[5] or "",  # detail
                    row[11] or "",  # document_type
                )
            )
        return out

    async def lookup_cards(self, queries: Sequence[CardQuery], deadline: float) -> list[CardRecord]:
        """ABTC cards, one batched query on the (home_economy, number) unique index. The card
        table is a complete registry: a number it does not hold is NOT_ISSUED."""
        if self._coalescer is None:
            await self.start()
        if time.monotonic() >= deadline:
            raise ProviderTimeout("deadline passed before the lookup started")
        keys = cards.card_rows(queries)
        found: dict[tuple[str, str], CardRecord | None] = {}
        try:
            rows = await self._card_rows(keys)
            if not rows and not await self._holds_cards():
                # A store without a single card is no card registry: calling every card a
                # counterfeit would be a lie; the card's check is INCOMPLETE instead.
                raise ProviderUnavailable(f"store {self._info.id} holds no ABTC cards")
            for row in rows:
                found[(row[0], row[1])] = cards.card_from_row(row)
        except (sqlite3.Error, OSError) as exc:
            raise ProviderUnavailable(f"store query failed: {type(exc).__name__}") from None
        return [found.get(q.key) or UNKNOWN_CARD for q in queries]

    async def _holds_cards(self) -> bool:
        """Whether the store holds any card (kept for a minute: a first card import is seen
        within one)."""
        now = time.monotonic()
        if self._has_cards is not None and now - self._has_cards[1] < 60.0:
            return self._has_cards[0]
        sql = "SELECT 1 FROM abtc_cards WHERE withdrawn = false LIMIT 1"
        coalescer = self._coalescer
        if isinstance(coalescer, InlineCoalescer):
            held = coalescer.conn.execute(sql).fetchone() is not None
        else:
            assert self._engine is not None
            async with self._engine.connect() as conn:
                held = (await conn.exec_driver_sql(sql)).first() is not None
        self._has_cards = (held, now)
        return held

    async def _card_rows(self, keys: list[tuple[str, str]]) -> list[Any]:
        rows: list[Any] = []
        coalescer = self._coalescer
        for i in range(0, len(keys), MAX_KEYS_PER_QUERY):
            chunk = keys[i : i + MAX_KEYS_PER_QUERY]
            params = [v for key in chunk for v in key]
            if isinstance(coalescer, InlineCoalescer):  # the loop's own read-only connection
                rows.extend(coalescer.conn.execute(cards.sqlite_batch(len(chunk)), params))
                continue
            assert self._engine is not None
            async with self._engine.connect() as conn:
                raw = await conn.get_raw_connection()
                driver: Any = raw.driver_connection
                if self._engine.dialect.name == "postgresql":
                    rows.extend(await driver.fetch(
                        cards.PG_BATCH, [k[0] for k in chunk], [k[1] for k in chunk]))  # fmt: skip
                else:
                    rows.extend(await driver.execute_fetchall(
                        cards.sqlite_batch(len(chunk)), params))  # fmt: skip
        return rows

    async def aclose(self) -> None:
        async with self._lock:
            await self._waker.aclose()
            for conn in self._conns:
                await conn.close()
            self._conns.clear()
            if isinstance(self._coalescer, InlineCoalescer):
                self._coalescer.conn.close()
            self._coalescer = None
            if self._engine is not None:
                await self._engine.dispose()
                self._engine = None
