"""CheckPaxlst through the real gRPC path, with SQL store providers loaded from the demo records."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from adapters.sqlstore.provider import SqlStoreProvider
from rmas.iapi.cusres import read_cusres
from rmas.testing import running_hub
from rmas.v1 import check_pb2, check_pb2_grpc
from tests.conftest import EconomyStores

FIX = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.fixture
async def stores(economy_stores: EconomyStores) -> list[SqlStoreProvider]:
    return await economy_stores("NZL", "AUS", "PHL")


async def check_paxlst(target: str, data: bytes) -> check_pb2.CheckPaxlstResponse:
    async with grpc.aio.insecure_channel(target) as ch:
        resp: check_pb2.CheckPaxlstResponse = await check_pb2_grpc.DocumentCheckStub(
            ch
        ).CheckPaxlst(check_pb2.CheckPaxlstRequest(message=data), timeout=10)
    return resp


async def test_stolen_never_issued_clean_and_malformed_get_1z_1z_0z_and_4z(
    stores: list[SqlStoreProvider],
) -> None:
    async with running_hub(stores) as hub:
        resp = await check_paxlst(hub.target, (FIX / "paxlst" / "four_passengers.edi").read_bytes())
    back = read_cusres(resp.cusres)
    assert [(p[1], p[2]) for p in back.passengers] == [
        ("P1", "1Z"), ("P2", "1Z"), ("P3", "0Z"), ("P4", "4Z"),
    ]  # fmt: skip
    assert back.errors == ()
    assert back.transaction_ref == resp.transaction_ref
    text = resp.cusres.decode()
    # Need to know: the airline sees directives, never statuses or who reported what.
    for secret in ("STOLEN", "NOT_ISSUED", "NZL", "AUS", "LA000002", "PA9999999"):
        assert secret not in text
    assert [p.directive for p in resp.passengers] == [
        check_pb2.DIRECTIVE_DO_NOT_BOARD, check_pb2.DIRECTIVE_DO_NOT_BOARD,
        check_pb2.DIRECTIVE_OK_TO_BOARD, check_pb2.DIRECTIVE_INSUFFICIENT_DATA,
    ]  # fmt: skip
    assert all(len(p.check_ids) == 1 for p in resp.passengers)


async def test_a_480_passenger_manifest_is_one_call_per_provider(
    stores: list[SqlStoreProvider],
) -> None:
    async with running_hub(stores) as hub:
        resp = await check_paxlst(hub.target, (FIX / "paxlst" / "manifest_480.edi").read_bytes())
    assert len(read_cusres(resp.cusres).passengers) == 480
    assert [s.calls for s in stores] == [1, 1, 1]


async def test_a_resent_interchange_is_checked_again_and_gets_the_same_cusres_if_unchanged(
    stores: list[SqlStoreProvider],
) -> None:
    data = (FIX / "paxlst" / "four_passengers.edi").read_bytes()
    changed = data.replace(b"LA900001", b"LA900003")
    async with running_hub(stores) as hub:
        first = await check_paxlst(hub.target, data)
        again = await check_paxlst(hub.target, data)
        clash = await check_paxlst(hub.target, changed)
    assert not first.duplicate
    assert again.duplicate
    assert again.cusres == first.cusres
    # Checked again (never replayed unchecked): one more batch call per provider.
    assert [s.calls for s in stores[:2]] == [2, 2]
    assert clash.errors
    assert "already used" in clash.errors[0]
    assert read_cusres(clash.cusres).errors


async def test_an_unreadable_paxlst_gets_an_erp_1_cusres(stores: list[SqlStoreProvider]) -> None:
    broken = (FIX / "paxlst" / "broken_unt_count.edi").read_bytes()
    async with running_hub(stores) as hub:
        resp = await check_paxlst(hub.target, broken)
        garbage = await check_paxlst(hub.target, b"\x00\x01 not edifact")
    back = read_cusres(resp.cusres)
    assert back.passengers == ()
    ((code, text),) = back.errors
    assert code == "1"
    assert "SEGMENT 49 (UNT)" in text  # UNOA: upper case only
    # The envelope could be read, so the answer goes back to the sender.
    assert b"RMASHUB+AIRNZ" in resp.cusres
    assert read_cusres(garbage.cusres).errors
