"""A national node serving ABTC cards (LookupCards): our node against the conformance kit, the
hub's client against nodes that answer about another card, and nodes without the capability."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from adapters.sqlstore.cards import import_cards
from adapters.sqlstore.provider import SqlStoreProvider
from rmas.abtc import CardQuery, CardStatus
from rmas.errors import ProviderError
from rmas.providers import ProviderInfo, Registry
from rmas.remote.client import RemoteProvider
from rmas.remote.conformance import run_conformance
from rmas.remote.node import ProviderNode
from rmas.testing import FakeProvider
from rmas.v1 import common_pb2, provider_pb2, provider_pb2_grpc

NEXT_YEAR = (dt.date.today() + dt.timedelta(days=365)).isoformat()
CARDS = f"""home_economy,card_number,passport_number,status,expiry_date,pre_cleared
AUS,AU0000001,PA0000101,VALID,{NEXT_YEAR},NZL JPN
AUS,AU0000005,PA0000105,STOLEN,{NEXT_YEAR},NZL
"""
AUS = ProviderInfo(id="AUS", issuing_states=frozenset({"AUS"}), abtc=True)


async def card_store(tmp_path: Path) -> SqlStoreProvider:
    (tmp_path / "cards.csv").write_text(CARDS)
    url = f"sqlite+aiosqlite:///{tmp_path / 'aus.db'}"
    assert (await import_cards(url, tmp_path / "cards.csv")).rejected == ()
    return SqlStoreProvider(AUS, url, registry=Registry.COMPLETE)


async def test_our_card_node_passes_the_conformance_kit(tmp_path: Path) -> None:
    node = ProviderNode(await card_store(tmp_path), "127.0.0.1:0")
    port = await node.start()
    try:
        results = await run_conformance(
            f"127.0.0.1:{port}",
            known_cards=[("AUS", "AU0000001", "VALID"), ("AUS", "AU0000005", "STOLEN")],
        )
        wrong = await run_conformance(f"127.0.0.1:{port}",
                                      known_cards=[("AUS", "AU0000005", "VALID")])  # fmt: skip
        out = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "rmas.cli", "conformance", "--target", f"127.0.0.1:{port}",
             "--known-card", "AUS:AU0000005:STOLEN", "--json"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        await node.stop(0)
    by_name = {r.name: r for r in results}
    assert by_name["abtc_cards"].passed, by_name["abtc_cards"].detail
    assert "2 known card(s)" in by_name["abtc_cards"].detail
    # Nothing fails (known_statuses is skipped: no --known document given).
    assert [r.name for r in results if r.status == "FAIL"] == []
    bad = {r.name: r for r in wrong}["abtc_cards"]
    assert not bad.passed
    assert "AUS:AU0000005 answered STOLEN, expected VALID" in bad.detail
    assert out.returncode == 0, out.stdout + out.stderr
    checks = {c["name"]: c for c in json.loads(out.stdout)["checks"]}
    assert checks["abtc_cards"]["passed"]


async def test_a_node_without_abtc_answers_unimplemented() -> None:
    node = ProviderNode(FakeProvider.issuer("NZL", ["NZL"]), "127.0.0.1:0")
    port = await node.start()
    try:
        results = {r.name: r for r in await run_conformance(f"127.0.0.1:{port}")}
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = provider_pb2_grpc.DocumentStatusProviderStub(ch)
            described = await stub.Describe(provider_pb2.DescribeRequest(), timeout=5)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.LookupCards(provider_pb2.LookupCardsRequest(), timeout=5)
    finally:
        await node.stop(0)
    assert not described.abtc
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert results["abtc_cards"].passed
    assert "UNIMPLEMENTED" in results["abtc_cards"].detail


async def test_a_card_node_refuses_malformed_and_misrouted_cards(tmp_path: Path) -> None:
    node = ProviderNode(await card_store(tmp_path), "127.0.0.1:0")
    port = await node.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = provider_pb2_grpc.DocumentStatusProviderStub(ch)
            req = provider_pb2.LookupCardsRequest()
            req.items.add(ref="a", home_economy="NZL", number="AU0000001")
            req.items.add(ref="b", home_economy="AUS", number="")
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.LookupCards(req, timeout=5)
    finally:
        await node.stop(0)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "items[0].home_economy" in str(err.value.trailing_metadata())
    assert "items[1].number" in str(err.value.trailing_metadata())


class Liar(provider_pb2_grpc.DocumentStatusProviderServicer):
    """Describes ABTC and answers every card as a VALID card with another number."""

    async def Describe(self, request: object, context: object) -> provider_pb2.DescribeResponse:
        return provider_pb2.DescribeResponse(provider_id="AUS", issuing_states=["AUS"], abtc=True)

    async def LookupCards(
        self, request: provider_pb2.LookupCardsRequest, context: object
    ) -> provider_pb2.LookupCardsResponse:
        out = provider_pb2.LookupCardsResponse()
        for item in request.items:
            res = out.results.add(ref=item.ref, home_economy=item.home_economy, number="AU0000001")
            res.card.status = common_pb2.CARD_STATUS_VALID
        return out


async def test_the_hub_refuses_an_answer_about_another_card() -> None:
    server = grpc.aio.server()
    provider_pb2_grpc.add_DocumentStatusProviderServicer_to_server(Liar(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    client = RemoteProvider(AUS, f"127.0.0.1:{port}")
    try:
        same = await client.lookup_cards(
            [CardQuery("AUS", "AU0000001", "NZL")], time.monotonic() + 5
        )
        with pytest.raises(ProviderError, match="about another card"):
            await client.lookup_cards([CardQuery("AUS", "AU0000999", "NZL")], time.monotonic() + 5)
    finally:
        await client.aclose()
        await server.stop(0)
    assert same[0].status is CardStatus.VALID
