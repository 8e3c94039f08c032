"""The SQL store's tables, and the URL handling every part of the store shares.

The tables are created and changed by Alembic migrations (adapters/sqlstore/migrations); these
definitions describe the current revision for queries. ``documents`` is keyed by
(issuing_state, number): the issuing *economy* (ICAO ``D`` is stored as
``DEU``) and the number normalised as an MRZ writes it. Holder columns are filled only where the
economy's registry holds them; they let the issuer say whether a query's holder matches.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from rmas.errors import ConfigError
from rmas.fileperm import create_private

__all__ = [
    "SCHEMA_VERSION",
    "STATUSES",
    "abtc_cards",
    "documents",
    "feeds",
    "make_engine",
    "metadata",
    "resolve_url",
    "store_meta",
]

#: Kept in store_meta; the schema revision proper is Alembic's (adapters.sqlstore.migrate).
SCHEMA_VERSION = 2

#: Statuses a record may carry. NO_RECORD and NOT_ISSUED are answers, never stored.
STATUSES = frozenset({"VALID", "LOST", "STOLEN", "STOLEN_BLANK", "REVOKED", "INVALID"})

metadata = MetaData()

documents = Table(
    "documents",
    metadata,
    Column("issuing_state", String(3), nullable=False),
    Column("number", String(20), nullable=False),
    Column("document_type", String(1), nullable=False, default=""),
    Column("status", String(12), nullable=False),
    Column("reported_on", Date),
    Column("record_ref", String(64), nullable=False, default=""),
    Column("reporting_authority", String(128), nullable=False, default=""),
    Column("detail", String(512), nullable=False, default=""),
    Column("surname", String(64), nullable=False, default=""),
    Column("given_names", String(64), nullable=False, default=""),
    Column("birth_date", Date),
    Column("sex", String(1), nullable=False, default=""),
    Column("expiry_date", Date),
    # Delta feeds: an older version never overwrites a newer one; a withdrawal is a tombstone
    # (so that a stale upsert arriving later cannot bring the record back).
    Column("version", BigInteger, nullable=False, server_default="0"),
    Column("withdrawn", Boolean, nullable=False, server_default=false()),
    # The lookup key. Every batch lookup joins on exactly these two columns.
    UniqueConstraint("issuing_state", "number", name="uq_documents_key"),
)

#: APEC Business Travel Cards (rmas.abtc): the complete registry of the cards the economy issued,
#: keyed by (home_economy, number). ``pre_cleared`` holds alpha-3 codes, space-separated, sorted.
abtc_cards = Table(
    "abtc_cards",
    metadata,
    Column("home_economy", String(3), nullable=False),
    Column("number", String(20), nullable=False),
    Column("passport_number", String(20), nullable=False, default=""),
    Column("passport_issuing_state", String(3), nullable=False, default=""),
    Column("status", String(12), nullable=False),
    Column("expiry_date", Date),
    Column("pre_cleared", String(256), nullable=False, default=""),
    Column("record_ref", String(64), nullable=False, default=""),
    Column("reporting_authority", String(128), nullable=False, default=""),
    Column("version", BigInteger, nullable=False, server_default="0"),
    Column("withdrawn", Boolean, nullable=False, server_default=false()),
    UniqueConstraint("home_economy", "number", name="uq_abtc_cards_key"),
)

feeds = Table(
    "feeds",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("applied_at", String(32), nullable=False),
    Column("changes", Integer, nullable=False),
    Column("stale", Integer, nullable=False),
)

store_meta = Table(
    "store_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
)


def resolve_url(url: str, base_dir: str | Path = ".") -> str:
    """Make a relative SQLite path absolute against ``base_dir``; other URLs pass unchanged."""
    try:
        u = make_url(url)
    except Exception as exc:
        raise ConfigError("url", f"not a database URL: {exc}") from None
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:":
        path = Path(u.database)
        if not path.is_absolute():
            return u.set(database=str((Path(base_dir) / path).resolve())).render_as_string(
                hide_password=False
            )
    return url


def make_engine(url: str) -> AsyncEngine:
    """An async engine for a store URL (``sqlite+aiosqlite://`` by default).

    A SQLite store file that does not exist yet is created here, readable by its owner only
    (rmas.fileperm); SQLite would create it with the umask's mode."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.get_driver_name() != "aiosqlite":
            raise ConfigError("url", "SQLite stores use the async driver: sqlite+aiosqlite:///PATH")
        db = u.database or ""
        if db and db != ":memory:" and not db.startswith("file:") and "mode" not in u.query:
            with contextlib.suppress(OSError):  # a missing folder: SQLite's error says it
                create_private(db)
    return create_async_engine(url)
