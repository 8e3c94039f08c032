"""``HubAdmin.Status`` reports how many records each provider covers: an in-process SQL store
counts its own, a national node says so in Describe."""

from __future__ import annotations

from pathlib import Path

import grpc

from adapters.sqlstore.importer import import_csv
from adapters.sqlstore.provider import SqlStoreProvider
from rmas.providers import ProviderInfo, Scope
from rmas.remote.client import RemoteProvider
from rmas.remote.node import ProviderNode
from rmas.testing import FakeProvider, running_hub
from rmas.v1 import check_pb2, check_pb2_grpc, provider_pb2, provider_pb2_grpc

FIX = Path(__file__).resolve().parents[2] / "fixtures"


async def test_status_shows_the_records_each_provider_covers(tmp_path: Path) -> None:
    stores = {}
    for state in ("NZL", "AUS"):
        url = f"sqlite+aiosqlite:///{tmp_path / state}.db"
        report = await import_csv(url, FIX / "records" / f"{state.lower()}.csv")
        info = ProviderInfo(id=state, issuing_states=frozenset({state}), scope=Scope.ISSUER)
        stores[state] = (SqlStoreProvider(info, url), report.loaded)
    node = ProviderNode(stores["AUS"][0], "127.0.0.1:0")
    port = await node.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            described = await provider_pb2_grpc.DocumentStatusProviderStub(ch).Describe(
                provider_pb2.DescribeRequest(), timeout=5
            )
        assert described.record_count == stores["AUS"][1]
        info = ProviderInfo(id="AUS", issuing_states=frozenset({"AUS"}), scope=Scope.ISSUER)
        remote = RemoteProvider(info, f"127.0.0.1:{port}")
        providers = [stores["NZL"][0], remote, FakeProvider.global_("SLTD")]
        async with running_hub(providers) as hub, grpc.aio.insecure_channel(hub.target) as ch:
            await remote.describe()
            st = await check_pb2_grpc.HubAdminStub(ch).Status(check_pb2.StatusRequest(), timeout=5)
    finally:
        await node.stop(grace=0.1)
    counts = {p.provider_id: p.record_count for p in st.providers}
    assert counts == {"NZL": stores["NZL"][1], "AUS": stores["AUS"][1], "SLTD": 0}
