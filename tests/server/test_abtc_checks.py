"""APEC Business Travel Card checks end to end: a real hub on loopback, the SQL stores of two
economies (their passports and their cards), remote nodes, and TLS callers."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from adapters.sqlstore.cards import import_cards
from adapters.sqlstore.importer import import_csv
from adapters.sqlstore.provider import SqlStoreProvider
from rmas.client import check_document_request, field_violations, result_to_dict
from rmas.providers import ProviderInfo, Registry
from rmas.remote.client import RemoteProvider
from rmas.remote.node import ProviderNode
from rmas.security.access import CallerRule, Role
from rmas.testing import running_hub
from rmas.v1 import check_pb2_grpc
from tests.conftest import Pki

NEXT_YEAR = (dt.date.today() + dt.timedelta(days=365)).isoformat()
LAST_MONTH = (dt.date.today() - dt.timedelta(days=30)).isoformat()

DOCS = "issuing_state,document_number,document_type,status,reported_on,record_ref\n"
AUS_DOCS = DOCS + "".join(f"AUS,PA{k:07d},P,VALID,,AU-{k}\n" for k in range(1, 200))
NZL_DOCS = DOCS + "NZL,LA000002,P,STOLEN,2024-01-03,NZ-2\n"

CARDS = "home_economy,card_number,passport_number,status,expiry_date,pre_cleared\n"
AUS_CARDS = (
    CARDS
    + f"""AUS,AU0000001,PA0000101,VALID,{NEXT_YEAR},NZL JPN CHN
AUS,AU0000002,PA0000102,VALID,{NEXT_YEAR},JPN CHN
AUS,AU0000003,PA0000103,EXPIRED,{LAST_MONTH},NZL
AUS,AU0000004,PA0000104,CANCELLED,{NEXT_YEAR},NZL
AUS,AU0000005,PA0000105,STOLEN,{NEXT_YEAR},NZL
AUS,AU0000006,PA0000006,VALID,{NEXT_YEAR},NZL
AUS,AU0000007,PA0000107,VALID,{LAST_MONTH},NZL
"""
)
NZL_CARDS = CARDS + f"NZL,NZ0000001,LA123456,VALID,{NEXT_YEAR},AUS SGP\n"


async def economy(tmp_path: Path, state: str, docs: str, cards: str, **kw: Any) -> SqlStoreProvider:
    (tmp_path / f"{state}.csv").write_text(docs)
    (tmp_path / f"{state}-cards.csv").write_text(cards)
    url = f"sqlite+aiosqlite:///{tmp_path / state}.db"
    assert (await import_csv(url, tmp_path / f"{state}.csv")).rejected == ()
    assert (await import_cards(url, tmp_path / f"{state}-cards.csv")).rejected == ()
    info = ProviderInfo(id=state, issuing_states=frozenset({state}), contact=f"{state} desk",
                        abtc=True)  # fmt: skip
    return SqlStoreProvider(info, url, **kw)


@pytest.fixture
async def stores(tmp_path: Path) -> list[SqlStoreProvider]:
    return [
        await economy(tmp_path, "AUS", AUS_DOCS, AUS_CARDS, registry=Registry.COMPLETE),
        await economy(tmp_path, "NZL", NZL_DOCS, NZL_CARDS),
    ]


@pytest.fixture
async def hub(stores: list[SqlStoreProvider]) -> AsyncIterator[str]:
    async with running_hub(stores, economy="NZL") as h:
        yield h.target


async def check(target: str, state: str, number: str, card: str = "", **kw: str) -> Any:
    async with grpc.aio.insecure_channel(target) as ch:
        resp = await check_pb2_grpc.DocumentCheckStub(ch).CheckDocument(
            check_document_request(number=number, state=state, abtc=card, **kw), timeout=5
        )
    return result_to_dict(resp.result)


def lane(r: dict[str, Any]) -> tuple[Any, ...]:
    a = r["abtc"]
    return a["usable"], a["reason"], a["status"], a["pre_cleared_for_us"]


async def test_a_genuine_pre_cleared_card_is_usable_beside_a_clear_passport(hub: str) -> None:
    r = await check(hub, "AUS", "PA0000101", "AU0000001")
    assert (r["verdict"], r["directive"]) == ("CLEAR", "OK_TO_BOARD")
    assert lane(r) == (True, None, "VALID", True)
    a = r["abtc"]
    assert (a["provider"], a["outcome"], a["expiry"]) == ("AUS", "ANSWERED", NEXT_YEAR)
    assert (a["passport_match"], a["home_economy"], a["checking_economy"]) == (
        "MATCH", "AUS", "NZL",
    )  # fmt: skip
    # Without a card there is no card verdict at all.
    assert "abtc" not in await check(hub, "AUS", "PA0000101")


async def test_a_card_not_pre_cleared_for_the_checking_economy(hub: str) -> None:
    r = await check(hub, "AUS", "PA0000102", "AU0000002")
    assert lane(r) == (False, "NOT_PRE_CLEARED", "VALID", False)
    assert r["verdict"] == "CLEAR"
    # The same card at a Japanese lane: the request names the checking economy.
    japan = await check(hub, "AUS", "PA0000102", "AU0000002", checking_economy="JPN")
    assert lane(japan) == (True, None, "VALID", True)
    assert japan["abtc"]["checking_economy"] == "JPN"


@pytest.mark.parametrize(
    ("passport", "card", "reason", "status"),
    [
        ("PA0000103", "AU0000003", "EXPIRED", "EXPIRED"),
        ("PA0000107", "AU0000007", "EXPIRED", "VALID"),  # VALID, but its expiry date passed
        ("PA0000104", "AU0000004", "CANCELLED", "CANCELLED"),
        ("PA0000105", "AU0000005", "STOLEN", "STOLEN"),
    ],
)
async def test_expired_cancelled_and_stolen_cards_are_refused_without_touching_the_passport(
    hub: str, passport: str, card: str, reason: str, status: str
) -> None:
    r = await check(hub, "AUS", passport, card)
    assert lane(r)[:3] == (False, reason, status)
    # A card problem decides the lane, never the passport's verdict or directive.
    assert (r["verdict"], r["directive"]) == ("CLEAR", "OK_TO_BOARD")


async def test_a_card_tied_to_an_older_passport(hub: str) -> None:
    r = await check(hub, "AUS", "PA0000106", "AU0000006")
    assert lane(r) == (False, "TIED_TO_OTHER_PASSPORT", "VALID", True)
    assert r["abtc"]["passport_match"] == "MISMATCH"
    # With the passport it is tied to, the same card is usable.
    tied = await check(hub, "AUS", "PA0000006", "AU0000006")
    assert lane(tied) == (True, None, "VALID", True)


async def test_a_card_number_the_home_economy_never_issued_is_a_counterfeit(hub: str) -> None:
    r = await check(hub, "AUS", "PA0000101", "AU9999999")
    assert lane(r) == (False, "NOT_ISSUED", "NOT_ISSUED", False)
    assert "never issued" in r["abtc"]["detail"]
    assert r["verdict"] == "CLEAR"


async def test_the_home_economy_is_the_passports_unless_named(hub: str) -> None:
    # A New Zealand card with a New Zealand passport, checked at an Australian lane.
    r = await check(hub, "NZL", "LA123456", "NZ0000001", checking_economy="AUS")
    assert lane(r) == (True, None, "VALID", True)
    assert (r["abtc"]["provider"], r["abtc"]["home_economy"]) == ("NZL", "NZL")
    # Named explicitly, the home economy decides where the card is asked: Australia never
    # issued NZ0000001.
    named = await check(hub, "NZL", "LA123456", "NZ0000001", abtc_economy="AUS",
                        checking_economy="AUS")  # fmt: skip
    assert lane(named)[:2] == (False, "NOT_ISSUED")


async def test_a_usable_card_never_clears_a_stolen_passport(hub: str) -> None:
    r = await check(hub, "NZL", "LA000002", "NZ0000001", checking_economy="AUS")
    assert (r["verdict"], r["directive"]) == ("ALERT", "DO_NOT_BOARD")
    assert r["abtc"]["passport_match"] == "MISMATCH"


async def test_bad_card_fields_are_invalid_argument_naming_them(
    stores: list[SqlStoreProvider],
) -> None:
    # No [hub] economy: the request must name one.
    async with running_hub(stores) as h, grpc.aio.insecure_channel(h.target) as ch:
        stub = check_pb2_grpc.DocumentCheckStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.CheckDocument(check_document_request(
                number="PA0000101", state="AUS", abtc="AU-00!", abtc_economy="QQQ"),
                timeout=5)  # fmt: skip
        ok = await stub.CheckDocument(check_document_request(
            number="PA0000101", state="AUS", abtc="AU0000001", checking_economy="JPN"),
            timeout=5)  # fmt: skip
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(err.value)] == [
        "abtc.home_economy", "abtc.number", "checking_economy",
    ]  # fmt: skip
    assert ok.result.abtc.usable


# -- the home economy's node ------------------------------------------------------------------


async def node(provider: SqlStoreProvider) -> ProviderNode:
    n = ProviderNode(provider, "127.0.0.1:0")
    await n.start()
    return n


def remote(state: str, port: int) -> RemoteProvider:
    info = ProviderInfo(id=state, issuing_states=frozenset({state}), abtc=True)
    return RemoteProvider(info, f"127.0.0.1:{port}", retries=0)


async def test_cards_through_the_home_economys_remote_node(
    stores: list[SqlStoreProvider],
) -> None:
    aus, nzl = stores
    aus_node = await node(aus)
    try:
        async with running_hub([remote("AUS", aus_node.port), nzl], economy="NZL") as h:
            genuine = await check(h.target, "AUS", "PA0000101", "AU0000001")
            stolen = await check(h.target, "AUS", "PA0000105", "AU0000005")
            fake = await check(h.target, "AUS", "PA0000101", "AU9999999")
    finally:
        await aus_node.stop(0)
    assert lane(genuine) == (True, None, "VALID", True)
    assert genuine["abtc"]["expiry"] == NEXT_YEAR
    assert lane(stolen)[:2] == (False, "STOLEN")
    assert lane(fake)[:2] == (False, "NOT_ISSUED")


async def test_the_home_economys_node_down_leaves_the_card_incomplete_only(
    stores: list[SqlStoreProvider],
) -> None:
    aus, nzl = stores
    aus_node = await node(aus)
    port = aus_node.port
    await aus_node.stop(0)  # Australia's node goes down
    async with running_hub([remote("AUS", port), nzl], economy="NZL") as h:
        # A New Zealand passport, clear at its own store, with an Australian card.
        r = await check(h.target, "NZL", "LA999999", "AU0000001", abtc_economy="AUS")
        alone = await check(h.target, "NZL", "LA999999")
    assert lane(r) == (False, "INCOMPLETE", None, False)
    a = r["abtc"]
    assert (a["provider"], a["outcome"]) == ("AUS", "UNAVAILABLE")
    assert (r["verdict"], r["directive"]) == (alone["verdict"], alone["directive"])
    assert (r["verdict"], r["directive"]) == ("CLEAR", "OK_TO_BOARD")


async def test_a_node_that_does_not_describe_abtc_is_not_asked_about_cards(
    tmp_path: Path,
) -> None:
    plain = await economy(tmp_path, "AUS", AUS_DOCS, AUS_CARDS, registry=Registry.COMPLETE)
    plain._info = ProviderInfo(id="AUS", issuing_states=frozenset({"AUS"}), abtc=False)
    n = await node(plain)
    try:
        async with running_hub([remote("AUS", n.port)], economy="NZL") as h:
            r = await check(h.target, "AUS", "PA0000101", "AU0000001")
    finally:
        await n.stop(0)
    assert r["verdict"] == "CLEAR"
    assert lane(r) == (False, "INCOMPLETE", None, False)
    assert "does not answer ABTC" in r["abtc"]["detail"]


# -- need to know ---------------------------------------------------------------------------------

CALLERS = (
    CallerRule("rmas://airline/QF", Role.AIRLINE),
    CallerRule("rmas://officer/*", Role.OFFICER),
)


async def test_an_airline_never_sees_card_data(pki: Pki, stores: list[SqlStoreProvider]) -> None:
    request = check_document_request(number="PA0000105", state="AUS", abtc="AU0000005")
    answers = {}
    async with running_hub(stores, economy="NZL", tls=pki.tls("hub"), callers=CALLERS) as h:
        for who in ("airline", "officer"):
            async with grpc.aio.secure_channel(h.target, pki.creds(who)) as ch:
                resp = await check_pb2_grpc.DocumentCheckStub(ch).CheckDocument(request, timeout=5)
            answers[who] = resp
    officer, airline = answers["officer"], answers["airline"]
    assert officer.result.HasField("abtc")
    assert result_to_dict(officer.result)["abtc"]["reason"] == "STOLEN"
    assert not airline.result.HasField("abtc")
    wire = airline.SerializeToString()
    for secret in (b"AU0000005", b"NZL", b"AUS", b"STOLEN"):
        assert secret not in wire
    # The airline's directive is the passport's, as the officer's is.
    assert airline.result.directive == officer.result.directive


async def test_a_store_without_cards_is_no_card_registry(tmp_path: Path) -> None:
    """A passport store nobody loaded cards into must not call every card a counterfeit."""
    (tmp_path / "aus.csv").write_text(AUS_DOCS)
    url = f"sqlite+aiosqlite:///{tmp_path / 'aus.db'}"
    await import_csv(url, tmp_path / "aus.csv")
    info = ProviderInfo(id="AUS", issuing_states=frozenset({"AUS"}))  # abtc not configured
    store = SqlStoreProvider(info, url, registry=Registry.COMPLETE)
    async with running_hub([store], economy="NZL") as h:
        r = await check(h.target, "AUS", "PA0000101", "AU0000001")
    assert r["verdict"] == "CLEAR"
    assert lane(r) == (False, "INCOMPLETE", None, False)
    assert "holds no ABTC cards" in r["abtc"]["detail"]


async def test_cards_from_a_tls_node_reach_an_officer_over_mutual_tls(
    pki: Pki, stores: list[SqlStoreProvider]
) -> None:
    """Production shape: the hub reaches Australia's node over mutual TLS (the node admits the
    hub's identity for LookupCards as for LookupBatch), and an officer calls the hub over TLS."""
    aus, nzl = stores
    node = ProviderNode(aus, "127.0.0.1:0", tls=pki.tls("node"))
    port = await node.start()
    info = ProviderInfo(id="AUS", issuing_states=frozenset({"AUS"}))
    remote_aus = RemoteProvider(info, f"127.0.0.1:{port}", tls=pki.tls("hub"), retries=0)
    request = check_document_request(number="PA0000105", state="AUS", abtc="AU0000005")
    try:
        async with (
            running_hub([remote_aus, nzl], economy="NZL", tls=pki.tls("hub"),
                        callers=CALLERS) as h,
            grpc.aio.secure_channel(h.target, pki.creds("officer")) as ch,
        ):  # fmt: skip
            resp = await check_pb2_grpc.DocumentCheckStub(ch).CheckDocument(request, timeout=5)
    finally:
        await node.stop(0)
    r = result_to_dict(resp.result)
    assert r["verdict"] == "CLEAR"
    assert lane(r)[:3] == (False, "STOLEN", "STOLEN")
    assert (r["abtc"]["provider"], r["abtc"]["outcome"]) == ("AUS", "ANSWERED")
