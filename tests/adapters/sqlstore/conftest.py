"""Store tests run on both engines: SQLite files, and the PostgreSQL of RMAS_TEST_POSTGRES_URL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import POSTGRES_SKIP


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL with no store in it yet, on each engine."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    url = os.environ.get("RMAS_TEST_POSTGRES_URL", "")
    if not url:
        pytest.skip(POSTGRES_SKIP)
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "DROP TABLE IF EXISTS documents, abtc_cards, store_meta, feeds, change_log, "
                "alembic_version "
                "CASCADE"
            )
        )
    await engine.dispose()
    return url
