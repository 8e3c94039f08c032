"""The SLTD-style service over real HTTP on loopback, with a real SQLite file, seeded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.sltd.service import RunningService, ServiceConfig, start_service
from tests.adapters.sltd import ADMIN, SEED, TOKENS


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[RunningService]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'sltd.db'}"
    svc = await start_service(url, ServiceConfig(dict(TOKENS), ADMIN))
    await svc.store.bulk_load(SEED)
    try:
        yield svc
    finally:
        await svc.close()
