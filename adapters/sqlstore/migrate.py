"""Schema migrations with Alembic (``rmas store migrate``), and the check that a store is current.

Revisions live in ``adapters/sqlstore/migrations/versions``. A store created before migrations
existed (it has ``documents`` but no ``alembic_version``) is stamped as revision 0001 first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["HEAD", "SERVED", "current_revision", "migrate_engine"]

HEAD = "0005"
#: Revisions a store may have to be served. 0005 only re-lays ``documents`` out on SQLite (the
#: same columns, the same key, the same queries): a 0004 store answers the same, a little slower,
#: until `rmas store migrate` or its next import brings it to 0005.
SERVED = frozenset({"0004", HEAD})
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _config(sync_conn: Any) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = sync_conn
    return cfg


def _upgrade(sync_conn: Any, target: str) -> tuple[str | None, str | None]:
    before = _current(sync_conn)
    insp = inspect(sync_conn)
    cfg = _config(sync_conn)
    if before is None and insp.has_table("documents"):
        command.stamp(cfg, "0001")
        before = "0001"
    command.upgrade(cfg, target)
    return before, _current(sync_conn)


def _current(sync_conn: Any) -> str | None:
    rev: str | None = MigrationContext.configure(sync_conn).get_current_revision()
    return rev


async def migrate_engine(
    engine: AsyncEngine, target: str = "head"
) -> tuple[str | None, str | None]:
    """Bring the store to ``target``; returns (revision before, revision after)."""
    async with engine.begin() as conn:
        result: tuple[str | None, str | None] = await conn.run_sync(_upgrade, target)
    return result


async def current_revision(engine: AsyncEngine) -> str | None:
    """The store's schema revision; "0001" for a store that predates migrations; None if empty."""
    async with engine.connect() as conn:

        def probe(sync_conn: Any) -> str | None:
            rev = _current(sync_conn)
            if rev is None and inspect(sync_conn).has_table("documents"):
                return "0001"
            return rev

        result: str | None = await conn.run_sync(probe)
    return result
