"""The SQL store's tables, and the URL handling every part of the store shares.

``documents`` is keyed by (issuing_state, number): the issuing *economy* (ICAO ``D`` is stored as
``DEU``) and the number normalised as an MRZ writes it. Holder columns are filled only where the
economy's registry holds them; they let the issuer say whether a query's holder matches.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Column, Date, MetaData, String, Table, UniqueConstraint
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from rmas.errors import ConfigError

__all__ = [
    "SCHEMA_VERSION",
    "STATUSES",
    "documents",
    "make_engine",
    "metadata",
    "resolve_url",
    "store_meta",
]

SCHEMA_VERSION = 1

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
    # The lookup key. Every batch lookup joins on exactly these two columns.
    UniqueConstraint("issuing_state", "number", name="uq_documents_key"),
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
    """An async engine for a store URL (``sqlite+aiosqlite://`` by default)."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite" and u.get_driver_name() != "aiosqlite":
        raise ConfigError("url", "SQLite stores use the async driver: sqlite+aiosqlite:///PATH")
    return create_async_engine(url)
