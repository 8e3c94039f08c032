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
    Float,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from rmas.errors import ConfigError, StoreError
from rmas.fileperm import create_private

__all__ = [
    "SCHEMA_VERSION",
    "STATUSES",
    "abtc_cards",
    "change_log",
    "documents",
    "feeds",
    "make_engine",
    "metadata",
    "missing_store",
    "resolve_url",
    "sqlite_file",
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
    # The lookup key. Every batch lookup joins on exactly these two columns. On SQLite, since
    # revision 0005, it is the primary key of a WITHOUT ROWID table (the table is the key's
    # B-tree); on PostgreSQL a unique constraint. Queries see no difference.
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

#: One row per document a write changed (``kind`` "change"), or a bulk import's single "reload"
#: row; read by high-water mark on ``id`` (adapters.sqlstore.changelog).
_LOG_ID = BigInteger().with_variant(Integer, "sqlite")
change_log = Table(
    "change_log",
    metadata,
    Column("id", _LOG_ID, primary_key=True, autoincrement=True),
    Column("kind", String(8), nullable=False),
    Column("issuing_state", String(3), nullable=False, server_default=""),
    Column("number", String(20), nullable=False, server_default=""),
    Column("recorded_at", Float, nullable=False),
    sqlite_autoincrement=True,
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


def sqlite_file(url: str) -> Path | None:
    """The file of an SQLite store URL; None for other databases and in-memory SQLite."""
    try:
        u = make_url(url)
    except Exception as exc:
        raise ConfigError("url", f"not a database URL: {exc}") from None
    if u.get_backend_name() != "sqlite" or not u.database or u.database.startswith(":memory:"):
        return None
    if u.database.startswith("file:"):  # a URI filename (mode=ro...): SQLite's business
        return None
    return Path(u.database)


def missing_store(path: Path, url: str) -> str:
    return (
        f"no store at {path}: check the path, or create the store with "
        f"`rmas store import --url {url} FILE.csv`"
    )


def make_engine(url: str, *, create: bool = True) -> AsyncEngine:
    """An async engine for a store URL (``sqlite+aiosqlite://`` by default).

    A missing SQLite file is created (0600) only with ``create=True`` (import, feeds), and its
    folder must exist; with ``create=False`` (serving, statistics) a missing store is refused,
    so that a mistyped path never leaves an empty store behind.
    """
    path = sqlite_file(url)
    u = make_url(url)
    if u.get_backend_name() == "sqlite" and u.get_driver_name() != "aiosqlite":
        raise ConfigError("url", "SQLite stores use the async driver: sqlite+aiosqlite:///PATH")
    if path is not None:
        if not create and not path.is_file():
            raise StoreError(missing_store(path, url))
        folder = path.parent
        if create and not folder.is_dir():
            raise StoreError(
                f"no folder {folder} for the store: create it first (mkdir -p {folder})"
            )
        if create:
            # Created here, readable by its owner only (rmas.fileperm): SQLite would create
            # it with the umask's mode.
            with contextlib.suppress(OSError):
                create_private(path)
    try:
        return create_async_engine(url)
    except Exception as exc:  # an unknown dialect or driver, a malformed option
        raise ConfigError("url", f"not a usable database URL: {exc}") from None
