"""The airline channel as a departure-control system meets it, through a real hub over gRPC.

Each interactive API shape of fixtures/paxlst/iapi_*.edi is answered by a hub over the demo
stores; the CUSRES is compared segment by segment with its golden file (fixtures/cusres, date and
time aside), read back by an independent EDIFACT parser, and applied by a DCS-side client
(tests/iapi/dcs.py) that matches it by its references and requires the flight DTMs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.sqlstore.provider import SqlStoreProvider
from rmas.iapi.syntax import segment_texts
from rmas.iapiconfig import IapiConfig
from rmas.testing import running_hub
from rmas.v1 import common_pb2
from tests.conftest import EconomyStores
from tests.iapi.dcs import DcsRejects, apply, send

FIX = Path(__file__).resolve().parents[2] / "fixtures"
PAX = FIX / "paxlst"
GOLDEN = FIX / "cusres"

# Expected DCS action per passenger (RFF+ABO) for each shape.
SHAPES = {
    "iapi_correlated.edi": {"1001": "BOARD", "1003": "NO BOARD"},
    "iapi_progressive.edi": {"1002": "BOARD"},
    "iapi_visa_no_issuer.edi": {"1004": "BOARD"},
    "iapi_empty_loc91_stolen.edi": {"1005": "NO BOARD", "1001": "BOARD"},
    "iapi_trailer_after_unz.edi": {"1001": "BOARD"},
}
PARTS = {
    "iapi_part_01.edi": {"1001": "BOARD", "1002": "BOARD"},
    "iapi_part_02.edi": {"1003": "NO BOARD", "1006": "BOARD"},
    "iapi_part_03.edi": {"1007": "BOARD"},
}


@pytest.fixture
async def stores(economy_stores: EconomyStores) -> list[SqlStoreProvider]:
    return await economy_stores("NZL", "AUS")


def masked(data: bytes) -> list[bytes]:
    """Segments, with the preparation date and time of UNB and UNG blanked (they are now)."""
    out = []
    for seg in segment_texts(data):
        parts = seg.split(b"+")
        if seg[:3] in (b"UNB", b"UNG"):
            parts[4] = b"*"  # UNB and UNG element 4: date:time of preparation
        out.append(b"+".join(parts))
    return out


def check_golden(name: str, cusres: bytes) -> None:
    expected = masked((GOLDEN / name).read_bytes())
    got = masked(cusres)
    for i, (e, g) in enumerate(zip(expected, got, strict=False)):
        assert g == e, f"segment {i + 1}: {g!r} != {e!r}"
    assert len(got) == len(expected)


@pytest.mark.parametrize("name", sorted(SHAPES))
async def test_each_shape_is_answered_as_its_golden_file_and_a_dcs_applies_it(
    stores: list[SqlStoreProvider], name: str
) -> None:
    data = (PAX / name).read_bytes()
    async with running_hub(stores) as hub:
        resp, applied = await send(hub.target, data)
    check_golden(name, resp.cusres)
    assert applied.actions == SHAPES[name]
    assert all(dep and arr for _f, dep, arr in applied.flights)
    assert resp.errors == []


async def test_a_split_flight_is_answered_part_by_part_and_its_total_checked(
    stores: list[SqlStoreProvider],
) -> None:
    async with running_hub(stores) as hub:
        for name, expected in PARTS.items():
            resp, applied = await send(hub.target, (PAX / name).read_bytes())
            check_golden(name, resp.cusres)
            assert applied.actions == expected
        calls = [s.calls for s in stores]
        # The last part again, with another flight total than the other parts declared...
        last = (PAX / "iapi_part_03.edi").read_bytes().replace(b"NZ00000203", b"NZ00000204")
        resp, applied = await send(hub.target, last.replace(b"CNT+42:5'", b"CNT+42:6'"))
        assert applied.actions == {"1007": "REJECTED"}
        assert "AN EARLIER PART DECLARED 5" in resp.cusres.decode()
        # ... or with one traveller more than the flight total allows: refused, nothing checked.
        start = last.index(b"NAD+FL")
        block = last[start : last.index(b"CNT+42")]
        extra = block.replace(b"ABO:1007", b"ABO:1008").replace(b"LA910007", b"LA910008")
        more = last.replace(block, block + extra).replace(b"UNT+21+", b"UNT+30+")
        resp, applied = await send(hub.target, more)
    assert applied.actions == {"1007": "REJECTED", "1008": "REJECTED"}
    assert "ITS 3 PARTS HOLD 6" in resp.cusres.decode()
    assert [s.calls for s in stores] == calls


async def test_a_progressive_flight_answers_one_flight_group_per_leg(
    stores: list[SqlStoreProvider],
) -> None:
    async with running_hub(stores) as hub:
        _resp, applied = await send(hub.target, (PAX / "iapi_progressive.edi").read_bytes())
    assert applied.flights == [
        ("NZ145", "2611241400", "2611241545"),
        ("NZ145", "2611241700", "2611241820"),
    ]


async def test_the_dcs_rejects_an_answer_that_does_not_echo_its_references(
    stores: list[SqlStoreProvider],
) -> None:
    """The client is strict: an answer with another RFF+TN or UNH reference is not applied."""
    data = (PAX / "iapi_correlated.edi").read_bytes()
    async with running_hub(stores) as hub:
        resp, _ = await send(hub.target, data)
    with pytest.raises(DcsRejects):
        apply(data, resp.cusres.replace(b"RFF+TN:7100201", b"RFF+TN:9999999"))
    with pytest.raises(DcsRejects):
        apply(data, resp.cusres.replace(b"UNH+NZ103P1", b"UNH+1").replace(b"UNT+19+NZ103P1",
                                                                          b"UNT+19+1"))  # fmt: skip
    with pytest.raises(DcsRejects):
        apply(data, resp.cusres.replace(b"DTM+189:2611240815:201'", b""))


async def test_a_visa_without_issuer_is_checked_as_the_configured_state_when_set(
    stores: list[SqlStoreProvider],
) -> None:
    data = (PAX / "iapi_visa_no_issuer.edi").read_bytes()
    async with running_hub(stores, iapi=IapiConfig(visa_issuer="AUS")) as hub:
        resp, applied = await send(hub.target, data)
    # AUS keeps a complete registry: a visa number it never issued is NO BOARD.
    assert applied.actions == {"1004": "NO BOARD"}
    assert len(resp.passengers[0].check_ids) == 2


async def test_a_doc_code_is_passed_through_to_the_document_rules(
    stores: list[SqlStoreProvider],
) -> None:
    data = (
        (PAX / "iapi_empty_loc91_stolen.edi")
        .read_bytes()
        .replace(b"DOC+P:110:111+LA000002", b"DOC+C:110:111+LA000002")
    )
    async with running_hub(stores) as hub:
        resp, applied = await send(hub.target, data)
    assert applied.actions["1005"] == "NO BOARD"
    types = {r.document.number: r.document.type for r in resp.results if r.document.number}
    assert types["LA000002"] == common_pb2.DOCUMENT_TYPE_IDENTITY_CARD


async def test_a_dcs_writing_its_own_syntax_identifier_and_extra_segments_is_answered(
    stores: list[SqlStoreProvider],
) -> None:
    """As a DCS in service writes it: syntax identifier SIRE, the carrier's document-issuer code
    ZZZ in DOC, GEI and ports of embarkation per traveller, a ticket reference, a visa without
    LOC+91; the answer echoes the syntax identifier."""
    from rmas.iapi.syntax import write_segments

    body: list[list[object]] = [
        ["BGM", "745"], ["RFF", ["TN", "0000731"]], ["NAD", "MS", "", "", "DCS DESK"],
        ["TDT", "20", "NZ7", "", "", ["NZ"]], ["LOC", "125", "AKL"],
        ["DTM", ["189", "2611241620", "201"]], ["LOC", "87", "SYD"],
        ["DTM", ["232", "2611241835", "201"]],
        ["NAD", "FL", "", "", ["ONE", "TWO WI"]], ["ATT", "2", "", "M"], ["DTM", ["329", "560620"]],
        ["GEI", "4", "173"], ["LOC", "178", "AKL"], ["LOC", "179", "SYD"], ["NAT", "2", "NZL"],
        ["RFF", ["AVF", "MWZRDQ"]], ["RFF", ["ABO", "31337"]], ["RFF", ["YZY", "7842836432717C2"]],
        ["DOC", ["P", "110", "ZZZ"], "LA933001"], ["DTM", ["36", "301215"]], ["LOC", "91", "NZL"],
        ["DOC", ["V", "110", "ZZZ"], "5576"],
        ["CNT", ["42", "1"]],
    ]  # fmt: skip
    segs = [
        ["UNB", ["SIRE", "4"], "NZ", "RMASHUB", ["261124", "1000"], "00007310001", "", "IAPI", "O"],
        ["UNG", "PAXLST", "NZ", "RMASHUB", ["261124", "1000"], "1", "UN", ["D", "05B"]],
        ["UNH", "A1B2C3", ["PAXLST", "D", "05B", "UN", "IATA"], "0000731", ["01", "F"]],
        *body,
        ["UNT", str(len(body) + 2), "A1B2C3"],
        ["UNE", "1", "1"],
        ["UNZ", "1", "00007310001"],
    ]
    data = write_segments(segs, una=False).encode()
    async with running_hub(stores) as hub:
        resp, applied = await send(hub.target, data)
    assert applied.actions == {"31337": "BOARD"}
    assert resp.cusres.startswith(b"UNB+SIRE:4+RMASHUB+NZ+")  # no UNA, as the request


async def test_a_traveller_level_fault_never_hides_a_stolen_passport(
    stores: list[SqlStoreProvider],
) -> None:
    data = (PAX / "iapi_correlated.edi").read_bytes()
    bad_dobs = data.replace(b"DTM+329:800101", b"DTM+329:801399").replace(
        b"DTM+329:881012", b"DTM+329:881399"
    )
    async with running_hub(stores) as hub:
        resp, applied = await send(hub.target, bad_dobs)
    # The stolen passport is still checked (NO BOARD); the clean one cannot board on bad data.
    assert applied.actions == {"1001": "INSUFFICIENT", "1003": "NO BOARD"}
    assert [len(p.check_ids) for p in resp.passengers] == [2, 2]


async def test_the_parts_of_a_flight_in_one_interchange_get_one_cusres_message_each(
    stores: list[SqlStoreProvider],
) -> None:
    texts = [(PAX / name).read_bytes() for name in PARTS]
    bodies = [t[t.index(b"UNH+") : t.index(b"UNE+")] for t in texts]
    first = texts[0]
    data = first[: first.index(b"UNH+")] + b"".join(bodies) + b"UNE+3+1'UNZ+1+NZ00000201'"
    async with running_hub(stores) as hub:
        resp, applied = await send(hub.target, data)
    assert applied.actions == {k: v for expected in PARTS.values() for k, v in expected.items()}
    assert resp.cusres.count(b"UNH+") == 3 and b"UNE+3+1'" in resp.cusres
