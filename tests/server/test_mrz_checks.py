"""Checks by MRZ through the real gRPC path, with a real SQLite store behind the issuer."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from adapters.sqlstore.importer import import_csv
from adapters.sqlstore.provider import SqlStoreProvider
from rmas.client import check_document_request, field_violations, result_to_dict
from rmas.mrz import Layout
from rmas.providers import ProviderInfo
from rmas.testing import compose, running_hub
from rmas.v1 import check_pb2, check_pb2_grpc

# The issuer (Utopia) has L898902C3 on record as STOLEN.
CSV = (
    "issuing_state,document_number,document_type,status,reported_on,record_ref\n"
    "UTO,L898902C3,P,STOLEN,2025-01-02,UTO-1\n"
)
LINE1 = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<"
GOOD = "L898902C36UTO7408122F1204159ZE184226B<<<<<10"
MISREAD = "L8989O2C36UTO7408122F1204159ZE184226B<<<<<10"  # '0' read as 'O'


@pytest.fixture
async def uto(tmp_path: Path) -> SqlStoreProvider:
    (tmp_path / "uto.csv").write_text(CSV)
    url = f"sqlite+aiosqlite:///{tmp_path / 'uto.db'}"
    await import_csv(url, tmp_path / "uto.csv")
    return SqlStoreProvider(ProviderInfo(id="UTO", issuing_states=frozenset({"UTO"})), url)


async def check_mrz(target: str, *lines: str) -> dict[str, object]:
    async with grpc.aio.insecure_channel(target) as ch:
        resp = await check_pb2_grpc.DocumentCheckStub(ch).CheckDocument(
            check_document_request(mrz=list(lines)), timeout=5
        )
    return result_to_dict(resp.result)


async def test_a_misread_character_cannot_hide_a_stolen_passport(uto: SqlStoreProvider) -> None:
    async with running_hub([uto]) as hub:
        r = await check_mrz(hub.target, LINE1, MISREAD)
    assert (r["verdict"], r["directive"]) == ("ALERT", "DO_NOT_BOARD")
    mrz = r["mrz"]
    assert mrz["check_digits"]["document_number"] == "REFUTED"  # type: ignore[index]
    assert mrz["suggestions"] == [  # type: ignore[index]
        {"field": "document_number", "line": 2, "column": 6, "found": "O", "replacement": "0",
         "document_number": "L898902C3"},
    ]  # fmt: skip
    answers = {s.get("queried_number", "as read"): s["status"] for s in r["sources"]}  # type: ignore[attr-defined]
    assert answers == {"as read": "NO_RECORD", "L898902C3": "STOLEN"}
    assert any("possible misread at line 2, column 6" in w for w in r["warnings"])  # type: ignore[attr-defined]


async def test_a_clean_zone_is_checked_and_expiry_is_a_warning_not_an_alert(
    uto: SqlStoreProvider,
) -> None:
    clean = compose(Layout.TD3, document_code="P", issuing_state="UTO", surname="DOE",
                    given_names="JANE", document_number="X1234567", nationality="UTO",
                    birth_date="800101", sex="F", expiry_date="200101")  # fmt: skip
    async with running_hub([uto]) as hub:
        r = await check_mrz(hub.target, "\n".join(clean).lower())
        stolen = await check_mrz(hub.target, LINE1, GOOD)
    assert (r["verdict"], r["directive"]) == ("CLEAR", "OK_TO_BOARD")
    assert r["mrz"]["expired"] is True  # type: ignore[index]
    assert "document expired on 2020-01-01" in r["warnings"]  # type: ignore[operator]
    assert stolen["verdict"] == "ALERT"


async def test_a_refuted_zone_with_no_hit_is_invalid_data(uto: SqlStoreProvider) -> None:
    wrong_composite = GOOD[:43] + "1"
    async with running_hub([uto]) as hub:
        r = await check_mrz(hub.target, LINE1, wrong_composite)
        other = await check_mrz(hub.target, LINE1.replace("ANNA", "ANNE"),
                                "X999999905UTO7408122F1204159ZE184226B<<<<<14")  # fmt: skip
    # The number as read is stolen: the alert wins over the bad composite digit.
    assert r["verdict"] == "ALERT"
    assert other["mrz"]["check_digits"]["composite"] == "REFUTED"  # type: ignore[index]
    assert (other["verdict"], other["directive"]) == ("INVALID_DATA", "INSUFFICIENT_DATA")
    assert {p["field"] for p in other["problems"]} >= {"mrz.composite_check_digit"}  # type: ignore[attr-defined]


async def test_an_unreadable_zone_is_invalid_argument_saying_where(uto: SqlStoreProvider) -> None:
    async with running_hub([uto]) as hub, grpc.aio.insecure_channel(hub.target) as ch:
        stub = check_pb2_grpc.DocumentCheckStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as short:
            await stub.CheckDocument(check_document_request(mrz=[LINE1, GOOD[:40]]))
        with pytest.raises(grpc.aio.AioRpcError) as state:
            await stub.CheckDocument(
                check_document_request(mrz=[LINE1.replace("UTO", "QQQ"), GOOD])
            )
    assert short.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(short.value)[0][0] == "mrz_lines"
    assert "2 line(s) of 44 x 40" in field_violations(short.value)[0][1]
    ((fld, desc),) = field_violations(state.value)
    assert fld == "mrz_lines"
    assert "line 1, columns 3-5 (issuing_state)" in desc


async def test_a_manifest_mixes_fields_and_zones(uto: SqlStoreProvider) -> None:
    travellers = [
        check_pb2.Traveller(ref="a", mrz_lines=[LINE1, MISREAD]),
        check_pb2.Traveller(ref="b", mrz_lines=["garbage"]),
        check_pb2.Traveller(ref="c", document={"issuing_state": "UTO", "number": "X1"}),
    ]
    async with running_hub([uto]) as hub, grpc.aio.insecure_channel(hub.target) as ch:
        resp = await check_pb2_grpc.DocumentCheckStub(ch).CheckManifest(
            check_pb2.CheckManifestRequest(travellers=travellers)
        )
    rs = [result_to_dict(r) for r in resp.results]
    assert [r["verdict"] for r in rs] == ["ALERT", "INVALID_DATA", "CLEAR"]
    assert rs[1]["problems"][0]["field"] == "travellers[1].mrz_lines"  # type: ignore[index]
    assert uto.calls == 1


async def test_td1_long_number_conventions_and_national_zones_through_grpc() -> None:
    from rmas.testing import FakeProvider
    from tests.test_mrz import FRENCH_ID, LONG, td1_long

    bel = FakeProvider.issuer("BEL", ["BEL"])
    nzl = FakeProvider.issuer("NZL", ["NZL"])
    async with running_hub([bel, nzl]) as hub, grpc.aio.insecure_channel(hub.target) as ch:
        stub = check_pb2_grpc.DocumentCheckStub(ch)

        async def digits(lines: list[str]) -> dict[str, tuple[int, str]]:
            resp = await stub.CheckDocument(check_document_request(mrz=lines), timeout=5)
            return {d.name: (d.state, d.covers) for d in resp.result.mrz.check_digits}

        verified, refuted, absent = (
            check_pb2.EVIDENCE_STATE_VERIFIED, check_pb2.EVIDENCE_STATE_REFUTED,
            check_pb2.EVIDENCE_STATE_ABSENT,
        )  # fmt: skip
        # Belgium counts the filler: verified, and the evidence says so.
        got = await digits(td1_long("BEL", LONG, filler=True))
        assert got["document_number"] == (verified, "document_number+filler_at_15")
        assert (await digits(td1_long("BEL", LONG, filler=False)))["document_number"] == (
            verified, "",
        )  # fmt: skip
        # Another issuer does not get the second convention.
        assert (await digits(td1_long("NZL", LONG, filler=True)))["document_number"][0] == refuted
        got = await digits(td1_long("BEL", LONG, filler=False, expiry="<<<<<<"))
        assert got["expiry_date"][0] == absent
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.CheckDocument(
                check_document_request(mrz=FRENCH_ID),
                timeout=5,
            )
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert any("French" in d for _f, d in field_violations(info.value))
