"""The SLTD-style store's change list and the adapter's change feed, over real HTTP (issue 17)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.sltd.adapter import SltdProvider
from adapters.sltd.service import RunningService, ServiceConfig, start_service
from rmas.changes import ChangesLost, DocumentChange, change_capable
from rmas.changewatch import ChangeWatcher, MemoryPositions
from rmas.providers import ProviderInfo, Scope

TOKENS = {"nz-token": "NZ", "au-token": "AU"}
SEED = [{"country": "NZ", "doc_type": "PASSPORT", "number": "LS900001", "status": "STOLEN",
         "event_date": "", "circumstances": "", "reporting_country": "NZ"}]  # fmt: skip


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[RunningService]:
    svc = await start_service(f"sqlite+aiosqlite:///{tmp_path / 'sltd.db'}",
                              ServiceConfig(dict(TOKENS), "admin"))  # fmt: skip
    await svc.store.bulk_load(SEED)
    try:
        yield svc
    finally:
        await svc.close()


def provider(svc: RunningService) -> SltdProvider:
    info = ProviderInfo(id="SLTD", scope=Scope.GLOBAL)
    return SltdProvider(info, svc.url, "nz-token", poll_interval=0.05)


async def call(svc: RunningService, method: str, path: str, body: Any = None,
               token: str = "nz-token") -> tuple[int, Any]:  # fmt: skip
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as s,
        s.request(method, svc.url + path, json=body) as resp,
    ):
        return resp.status, await resp.json()


async def submit(svc: RunningService, number: str, country: str = "NZ", token: str = "nz-token"
                 ) -> str:  # fmt: skip
    body = {"country": country, "type": "PASSPORT", "number": number, "status": "STOLEN"}
    status, rec = await call(svc, "POST", "/v1/records", body, token)
    assert status == 201, rec
    return str(rec["record_id"])


async def take(it: Any, n: int) -> list[DocumentChange]:
    out: list[DocumentChange] = []
    while len(out) < n:
        out.extend(await asyncio.wait_for(anext(it), 10))
    return out


async def test_submits_changes_and_withdrawals_are_listed_and_followed(
    service: RunningService,
) -> None:
    p = provider(service)
    try:
        assert change_capable(p)
        start = await p.current_position()
        it = p.watch_changes(start)
        rid = await submit(service, "LA000010")
        await submit(service, "PA000020", country="AU", token="au-token")
        assert (await call(service, "PUT", f"/v1/records/{rid}", {"number": "LA000011"}))[0] == 200
        assert (await call(service, "DELETE", f"/v1/records/{rid}"))[0] == 200
        got = await take(it, 5)
        await it.aclose()
        assert [(c.issuing_state, c.number) for c in got] == [
            ("NZL", "LA000010"), ("AUS", "PA000020"), ("NZL", "LA000010"), ("NZL", "LA000011"),
            ("NZL", "LA000011")]  # fmt: skip
        positions = [int(c.position) for c in got]
        assert positions == sorted(positions) and len(set(positions)) == 5
        assert await p.current_position() == got[-1].position
        it = p.watch_changes(got[2].position)  # resume after the third
        assert [c.number for c in await take(it, 2)] == ["LA000011", "LA000011"]
        await it.aclose()
    finally:
        await p.aclose()


async def test_a_bulk_load_and_unknown_cursors_are_changes_lost(service: RunningService) -> None:
    p = provider(service)
    try:
        start = await p.current_position()
        await submit(service, "LA000010")
        await service.store.bulk_load([{**SEED[0], "number": "LS900002"}])
        it = p.watch_changes(start)
        assert [c.number for c in await take(it, 1)] == ["LA000010"]
        with pytest.raises(ChangesLost):
            await asyncio.wait_for(anext(it), 10)
        for since in ("999999", "not-a-cursor", "-1"):
            with pytest.raises(ChangesLost):
                await asyncio.wait_for(anext(p.watch_changes(since)), 10)
        status, body = await call(service, "GET", "/v1/records/changes?since=999999")
        assert (status, body["error"]["code"]) == (410, "cursor_gone")
        status, body = await call(service, "GET", "/v1/records/changes?since=x")
        assert (status, body["error"]["field"]) == (422, "since")
    finally:
        await p.aclose()


async def test_a_hub_watcher_sees_a_record_reported_through_the_api(
    service: RunningService,
) -> None:
    p = SltdProvider(ProviderInfo(id="SLTD", scope=Scope.GLOBAL), service.url, "nz-token")
    seen: asyncio.Queue[DocumentChange] = asyncio.Queue()

    async def on_changes(pid: str, batch: Sequence[DocumentChange]) -> None:
        for c in batch:
            seen.put_nowait(c)

    async def on_lost(pid: str) -> None:
        raise AssertionError("nothing was lost")

    watcher = ChangeWatcher([p], MemoryPositions(), on_changes, on_lost)
    watcher.start()
    try:
        for _ in range(200):
            if watcher.states()[0].connected:
                break
            await asyncio.sleep(0.05)
        await submit(service, "LA000077")
        change = await asyncio.wait_for(seen.get(), 10)
        assert (change.issuing_state, change.number) == ("NZL", "LA000077")
    finally:
        await watcher.aclose()
        await p.aclose()
