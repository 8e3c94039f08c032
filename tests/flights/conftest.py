"""Fixtures shared by the flight store's tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from rmas.flights.store import metadata


@pytest.fixture(params=["sqlite", "postgres"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty flight store's URL: a SQLite file, or the test PostgreSQL database with the
    flight tables dropped."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'flights.db'}"
    url: str = request.getfixturevalue("postgres_url")
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)
    await engine.dispose()
    return url
