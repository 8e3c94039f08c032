"""The airline channel's safety rules through a real hub: no stale answer on a resend, bounded
and refused input before anything is checked, unchecked OK TO BOARD told apart, senders bound to
the calling airline's certificate."""

from __future__ import annotations

import dataclasses
import os
import re
import sqlite3
from pathlib import Path
from typing import Any

import grpc
import pytest

from rmas.audit.entry import DocumentKeyer
from rmas.audit.format import decode
from rmas.audit.sink import AuditSink
from rmas.audit.trail import AuditTrail
from rmas.iapi.cusres import read_cusres
from rmas.iapi.syntax import write_segments
from rmas.iapiconfig import CusresCodes, IapiConfig
from rmas.security.access import CallerRule, Role
from rmas.testing import FakeProvider, running_hub
from rmas.v1 import check_pb2, check_pb2_grpc
from rmas.verdict import Record, RecordStatus
from tests.conftest import Pki
from tests.iapi.dcs import send

FIX = Path(__file__).resolve().parents[2] / "fixtures"
PAX = FIX / "paxlst"
KEY = os.urandom(32)


def nzl(**kwargs: Any) -> FakeProvider:
    return FakeProvider.issuer("NZL", ["NZL"], **kwargs)


def rows(db: Path) -> list[dict[str, Any]]:
    """Every audit entry stored, in order, as a dict of its fields."""
    with sqlite3.connect(db) as conn:
        bodies = conn.execute("SELECT format, body FROM audit_block ORDER BY first_seq").fetchall()
    return [dataclasses.asdict(e) for (fmt, body) in bodies for e in decode(fmt, bytes(body))]


def manifest(n: int, *, abo: str = "", cnt: str = "") -> bytes:
    """A PAXLST of ``n`` clean NZL travellers (``abo`` replaces the first one's RFF+ABO)."""
    body: list[list[Any]] = [
        ["BGM", "745"],
        ["RFF", ["TN", "8800001"]],
        ["TDT", "20", "NZ103"],
        ["LOC", "125", "AKL"],
        ["DTM", ["189", "2611240815", "201"]],
        ["LOC", "87", "SYD"],
        ["DTM", ["232", "2611240955", "201"]],
    ]
    for i in range(n):
        body += [
            ["NAD", "FL", "", "", [f"PAX{i}", "TEST"]],
            ["RFF", ["ABO", abo if abo and i == 0 else str(2000 + i)]],
            ["DOC", ["P", "110", "111"], f"LA92{i:04d}"],
            ["LOC", "91", "NZL"],
        ]
    body.append(["CNT", ["42", cnt or str(n)]])
    segs = [
        ["UNB", ["UNOA", "4"], "AIRNZ", "RMASHUB", ["261124", "0700"], "NZ00009001", "", "IAPI"],
        ["UNH", "M1", ["PAXLST", "D", "05B", "UN", "IATA"], "NZ103X", ["01", "F"]],
        *body,
        ["UNT", str(len(body) + 2), "M1"],
        ["UNZ", "1", "NZ00009001"],
    ]
    return write_segments(segs).encode()


# -- resends: never a stale answer (issue 15, item 5) ---------------------------------------------


async def test_a_resend_after_the_passport_was_reported_stolen_is_no_board(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    trail = AuditTrail(AuditSink(f"sqlite+aiosqlite:///{db}"), DocumentKeyer(KEY))
    store = nzl()
    data = (PAX / "iapi_correlated.edi").read_bytes()
    async with running_hub([store], audit=trail) as hub:
        first, applied = await send(hub.target, data)
        assert applied.actions == {"1001": "BOARD", "1003": "BOARD"}
        store.records[("NZL", "LA910001")] = Record(RecordStatus.STOLEN)
        again, applied = await send(hub.target, data)  # a resend, within the window
    assert applied.actions == {"1001": "NO BOARD", "1003": "BOARD"}
    assert not again.duplicate and again.cusres != first.cusres
    # Both answers are audited, the resend as one.
    entries = rows(db)
    assert len(entries) == 4
    assert [e["reference"].endswith(" RESEND") for e in entries] == [False, False, True, True]


async def test_an_unchanged_resend_gets_the_same_bytes_within_the_window_only() -> None:
    store = nzl()
    data = (PAX / "iapi_correlated.edi").read_bytes()
    async with running_hub([store]) as hub:
        first, _ = await send(hub.target, data)
        again, _ = await send(hub.target, data)
    assert again.duplicate and again.cusres == first.cusres
    assert len(store.calls) == 2  # checked again all the same
    async with running_hub([nzl()], iapi=IapiConfig(resend_window_s=0)) as hub:
        first, _ = await send(hub.target, data)
        late, applied = await send(hub.target, data)
        reused = await send(hub.target, data.replace(b"LA910001", b"LA910009"))
    assert not late.duplicate  # answered afresh (the same bytes only because nothing changed)
    assert applied.actions == {"1001": "BOARD", "1003": "BOARD"}
    # After the window the control reference may be reused for another message.
    assert reused[0].errors == []


# -- bounded input, refused before anything is checked (issue 15, item 7) ------------------------


async def test_a_count_of_thousands_of_digits_is_a_syntax_error_cusres() -> None:
    store = nzl()
    huge = "9" * 5000
    data = manifest(2, cnt=huge)
    bad_unt = re.sub(rb"UNT\+\d+\+M1", b"UNT+" + b"1" * 5000 + b"+M1", manifest(2))
    assert bad_unt != manifest(2)
    async with running_hub([store]) as hub:
        resp, applied = await send(hub.target, data)
        resp2, applied2 = await send(hub.target, bad_unt)
    assert applied.actions == applied2.actions == {"2000": "REJECTED", "2001": "REJECTED"}
    assert "1-6 DIGITS" in read_cusres(resp.cusres).errors[0][1]
    assert len(resp.errors[0]) <= 300 and len(resp2.errors[0]) <= 300
    assert store.calls == []


async def test_error_texts_stay_bounded_whatever_the_input_size() -> None:
    long_tag = manifest(1).replace(b"BGM+745", b"X" * 200_000 + b"+745")
    long_ref = manifest(1).replace(b"UNZ+1+NZ00009001", b"UNZ+1+" + b"R" * 200_000)
    async with running_hub([nzl()]) as hub:
        for bad in (long_tag, long_ref):
            resp = await _raw(hub.target, bad)
            assert len(resp.errors[0]) <= 300
            assert len(resp.cusres) < 1000


async def _raw(target: str, data: bytes) -> check_pb2.CheckPaxlstResponse:
    async with grpc.aio.insecure_channel(target) as ch:
        resp: check_pb2.CheckPaxlstResponse = await check_pb2_grpc.DocumentCheckStub(
            ch
        ).CheckPaxlst(check_pb2.CheckPaxlstRequest(message=data), timeout=10)
    return resp


async def test_a_paxlst_whose_answer_would_not_fit_is_refused_before_checking_or_audit(
    tmp_path: Path,
) -> None:
    db = tmp_path / "audit.db"
    trail = AuditTrail(AuditSink(f"sqlite+aiosqlite:///{db}"), DocumentKeyer(KEY))
    store = nzl()
    data = manifest(60)  # about 8 KB; an officer's answer carries 60 full results
    assert len(data) < 16 * 1024
    async with running_hub([store], audit=trail, max_message_bytes=64 * 1024) as hub:
        resp = await _raw(hub.target, data)
    assert "MESSAGE LIMIT" in read_cusres(resp.cusres).errors[0][1]
    assert resp.passengers == []
    assert store.calls == []
    assert rows(db) == []


async def test_traveller_refs_are_bounded() -> None:
    data = manifest(2, abo="A" * 5000)
    async with running_hub([nzl()]) as hub:
        resp = await _raw(hub.target, data)
    back = read_cusres(resp.cusres)
    assert [p[2] for p in back.passengers] == ["4Z", "0Z"]
    assert max(len(p.passenger_ref) for p in resp.passengers) <= 70
    assert len(resp.cusres) < 2000


# -- an unchecked OK TO BOARD is told apart (issue 15, item 8) -------------------------------------


async def test_with_on_incomplete_board_an_unchecked_ok_to_board_is_marked() -> None:
    down = FakeProvider.issuer("AUS", ["AUS"], failure="unavailable")
    data = manifest(1)
    aus = data.replace(b"LOC+91+NZL", b"LOC+91+AUS")
    async with running_hub([nzl(), down], on_incomplete="board") as hub:
        checked, applied = await send(hub.target, data)
        unchecked, applied2 = await send(hub.target, aus.replace(b"NZ00009001", b"NZ00009002"))
    # Both may board (the operator's choice), but only one was checked, in the CUSRES...
    assert applied.actions == applied2.actions == {"2000": "BOARD"}
    assert applied.texts == {"2000": "OK TO BOARD"}
    assert applied2.texts == {"2000": "OK TO BOARD - NOT CHECKED"}
    # ... and in PassengerDirective.
    assert [p.unchecked for p in checked.passengers] == [False]
    assert [p.unchecked for p in unchecked.passengers] == [True]


# -- the UNB/UNG sender is the calling airline's (issue 16, item 9) --------------------------------


@pytest.mark.parametrize("sender", ["AIRNZ", "QANTAS"])
async def test_a_paxlst_under_another_airlines_sender_is_refused(pki: Pki, sender: str) -> None:
    store = nzl()
    callers = [CallerRule("rmas://airline/QF", Role.AIRLINE, senders=("QANTAS", "QF"))]
    data = (PAX / "iapi_correlated.edi").read_bytes().replace(b"AIRNZ", sender.encode())
    async with running_hub([store], tls=pki.tls("hub"), callers=callers) as hub:
        resp, applied = await send(hub.target, data, pki.creds("airline"))
    if sender == "QANTAS":
        assert applied.actions == {"1001": "BOARD", "1003": "BOARD"}
    else:
        assert applied.actions == {"1001": "REJECTED", "1003": "REJECTED"}
        assert "SENDER 'AIRNZ'" in read_cusres(resp.cusres).errors[0][1]
        assert store.calls == []


# -- texts fit the character set (issue 16, item 7) ----------------------------------------------


async def test_texts_in_a_unoa_cusres_use_only_unoa_characters() -> None:
    codes = CusresCodes(ok_to_board=("0Z", "Ok to board – Bitte einsteigen ✓"))
    unoa = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,-()/='+:?!\"%&*;<>")
    async with running_hub([nzl()], iapi=IapiConfig(codes=codes)) as hub:
        ok = await _raw(hub.target, manifest(1))
        bad = await _raw(hub.target, manifest(1).replace(b"BGM+745", b"bgm+745"))
    for resp in (ok, bad):
        assert set(resp.cusres) <= unoa, set(resp.cusres) - unoa
    assert read_cusres(ok.cusres).passengers[0][3] == "OK TO BOARD BITTE EINSTEIGEN"
    assert read_cusres(bad.cusres).errors[0][1].startswith("MESSAGE REJECTED: SEGMENT")
