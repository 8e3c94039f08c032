"""A government officer's override, the airline's acknowledgments, and who may do what: through
a real hub, the real ``rmas override`` process, a real audit trail and real mTLS identities."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import grpc
import pytest

from rmas.audit.reader import find_check
from rmas.audit.trail import AuditTrail
from rmas.security.access import CallerRule, Role
from rmas.testing import ChangingProvider, running_hub
from rmas.v1 import check_pb2, check_pb2_grpc
from rmas.verdict import RecordStatus
from tests.conftest import Pki
from tests.flights.kit import (
    TAYLOR,
    WIREMU,
    Subscriber,
    flight_hub,
    flights_config,
    key_file,
    paxlst,
    read_status_change,
)

FIX = Path(__file__).resolve().parents[2] / "fixtures"


def acknowledgment(*change_ids: str, ref: str = "ACK1") -> bytes:
    """A CUSRES BGM+312, as the airline acknowledges a status change by EDIFACT."""
    msgs = "".join(
        f"UNH+{i}+CUSRES:D:05B:UN:IATA'BGM+312'RFF+TN:{cid}'UNT+4+{i}'"
        for i, cid in enumerate(change_ids, 1)
    )
    return (
        f"UNA:+.? 'UNB+UNOA:4+AIRNZ+RMASHUB+261124:0701+{ref}++IAPI'{msgs}"
        f"UNZ+{len(change_ids)}+{ref}'"
    ).encode()


async def test_an_officer_overrides_no_board_and_the_trail_says_who_when_why(
    tmp_path: Path,
) -> None:
    nzl = ChangingProvider.issuer("NZL", ["NZL"], {("NZL", WIREMU.number): RecordStatus.STOLEN})
    audit_url = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    audit = AuditTrail.from_config(
        audit_url, str(key_file(tmp_path)), required=True, synchronous="NORMAL"
    )
    cfg = flights_config(tmp_path)
    async with flight_hub([nzl], cfg, audit=audit) as (hub, stub, _channel):
        answer = await stub.CheckPaxlst(
            check_pb2.CheckPaxlstRequest(message=paxlst([WIREMU, TAYLOR]))
        )
        wiremu = answer.passengers[0]
        assert wiremu.directive == check_pb2.DIRECTIVE_DO_NOT_BOARD
        sub = Subscriber(stub)
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "rmas.cli", "override", "--hub", hub.target,
                "--check-id", wiremu.check_ids[0], "--reason", "holder identified at desk 3",
                "--json", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode == 0, err.decode()
            done = json.loads(out)
            assert (done["original"], done["directive"]) == ("DO_NOT_BOARD", "OK_TO_BOARD")
            change = await sub.get()
            assert change.change_id == done["change_id"]
            assert change.overridden
            assert change.passenger_ref == WIREMU.abo
            got = read_status_change(change.cusres)
            assert (got["BGM"], got["ERC"], got["RFF+ABO"]) == ("132", "0Z", WIREMU.abo)
            # Taylor was OK TO BOARD: there is nothing to override.
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.OverrideDirective(
                    check_pb2.OverrideDirectiveRequest(
                        check_id=answer.passengers[1].check_ids[0], reason="no reason"
                    )
                )
            assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                await stub.OverrideDirective(
                    check_pb2.OverrideDirectiveRequest(check_id=wiremu.check_ids[0])
                )
            assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        finally:
            await sub.close()
    # The provider's record is never changed.
    assert nzl.records[("NZL", WIREMU.number)].status is RecordStatus.STOLEN
    entries = await find_check(audit_url, wiremu.check_ids[0])
    overrides = [e for e in entries if e["channel"] == "override"]
    assert len(overrides) == 1
    # The officer's view of the check (rmas audit find --check-id, the console): the original
    # answer with the provider's status, and the override.
    (original,) = [e for e in entries if e["channel"] == "paxlst"]
    assert original["directive"] == "DO_NOT_BOARD" and "STOLEN" in original["sources"]
    entry = overrides[0]
    assert entry["caller"].startswith("insecure:")
    assert entry["role"] == "officer"
    assert "holder identified at desk 3" in entry["reference"]
    assert entry["directive"] == "OK_TO_BOARD"
    assert entry["time"] and entry["document_key"]  # found by the passport, like its checks


async def test_a_bgm_312_acknowledges_a_status_change(tmp_path: Path) -> None:
    nzl = ChangingProvider.issuer("NZL", ["NZL"])
    async with flight_hub([nzl], flights_config(tmp_path)) as (_hub, stub, _channel):
        await stub.CheckPaxlst(check_pb2.CheckPaxlstRequest(message=paxlst([WIREMU])))
        sub = Subscriber(stub)
        try:
            await nzl.watched()
            nzl.change("NZL", WIREMU.number, RecordStatus.STOLEN)
            change = await sub.get()
        finally:
            await sub.close()
        unknown = await stub.CheckPaxlst(
            check_pb2.CheckPaxlstRequest(message=acknowledgment("0123456789ABCD"))
        )
        assert unknown.errors and b"ERP+1" in unknown.cusres
        acked = await stub.CheckPaxlst(
            check_pb2.CheckPaxlstRequest(message=acknowledgment(change.change_id))
        )
        assert list(acked.errors) == []
        assert acked.cusres == b""
        again = Subscriber(stub)
        try:
            assert await again.nothing(1.5)
        finally:
            await again.close()


CALLERS = (
    CallerRule("rmas://airline/QF", Role.AIRLINE),
    CallerRule("rmas://airline/ZZ", Role.AIRLINE),
    CallerRule("rmas://officer/*", Role.OFFICER),
    CallerRule("rmas://operator/ops", Role.OPERATOR),
)


async def test_an_airline_sees_only_its_own_flights_and_can_never_override(
    tmp_path: Path, pki: Pki
) -> None:
    nzl = ChangingProvider.issuer("NZL", ["NZL"], {("NZL", WIREMU.number): RecordStatus.STOLEN})
    async with (
        running_hub(
            [nzl], tls=pki.tls("hub"), callers=CALLERS, flights=flights_config(tmp_path)
        ) as hub,
        grpc.aio.secure_channel(hub.target, pki.creds("airline")) as qf_ch,
        grpc.aio.secure_channel(hub.target, pki.creds("stranger")) as zz_ch,
        grpc.aio.secure_channel(hub.target, pki.creds("officer")) as officer_ch,
    ):
        qf = check_pb2_grpc.DocumentCheckStub(qf_ch)
        zz = check_pb2_grpc.DocumentCheckStub(zz_ch)
        answer = await qf.CheckPaxlst(check_pb2.CheckPaxlstRequest(message=paxlst([WIREMU])))
        check_id = answer.passengers[0].check_ids[0]
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await qf.OverrideDirective(
                check_pb2.OverrideDirectiveRequest(check_id=check_id, reason="we say so")
            )
        assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
        qf_sub, zz_sub = Subscriber(qf), Subscriber(zz)
        try:
            officer = check_pb2_grpc.DocumentCheckStub(officer_ch)
            done = await officer.OverrideDirective(
                check_pb2.OverrideDirectiveRequest(check_id=check_id, reason="cleared by CBSA")
            )
            change = await qf_sub.get()
            assert change.change_id == done.change_id
            assert change.directive == check_pb2.DIRECTIVE_OK_TO_BOARD
            assert await zz_sub.nothing(1.5)  # another airline's flight
            with pytest.raises(grpc.aio.AioRpcError) as not_yours:
                await zz.AckStatusChange(
                    check_pb2.AckStatusChangeRequest(change_id=change.change_id)
                )
            assert not_yours.value.code() is grpc.StatusCode.PERMISSION_DENIED
            ack = await qf.AckStatusChange(
                check_pb2.AckStatusChangeRequest(change_id=change.change_id)
            )
            assert not ack.already
        finally:
            await qf_sub.close()
            await zz_sub.close()


async def test_broken_messages_are_still_refused_with_an_erp_1(tmp_path: Path) -> None:
    """With [flights] a CUSRES is read as an acknowledgment; anything broken still gets the
    ERP+1 it got before, never a crash."""
    nzl = ChangingProvider.issuer("NZL", ["NZL"])
    async with flight_hub([nzl], flights_config(tmp_path)) as (_hub, stub, _channel):
        broken = sorted((FIX / "paxlst").glob("broken_*.edi"))
        assert broken
        bad_acks = [
            acknowledgment("X").replace(b"BGM+312", b"BGM+962"),
            acknowledgment("X").replace(b"UNT+4", b"UNT+9"),
            b"UNA:+.? 'UNB+UNOA:4+A+B+1:1+R'UNH+1+CUSRES:D:05B:UN:IATA'BGM+312'UNT+3+1'UNZ+1+R'",
        ]
        for data in [p.read_bytes() for p in broken] + bad_acks:
            answer = await stub.CheckPaxlst(check_pb2.CheckPaxlstRequest(message=data))
            assert answer.errors, data[:80]
            assert b"ERP+1" in answer.cusres


async def test_a_hub_without_flights_says_so() -> None:
    async with (
        running_hub([ChangingProvider.issuer("NZL", ["NZL"])]) as hub,
        grpc.aio.insecure_channel(hub.target) as channel,
    ):
        stub = check_pb2_grpc.DocumentCheckStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as watch:
            async for _change in stub.WatchStatusChanges(check_pb2.WatchStatusChangesRequest()):
                pass
        assert watch.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert "[flights]" in (watch.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as ack:
            await stub.AckStatusChange(check_pb2.AckStatusChangeRequest(change_id="X"))
        assert ack.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        # A BGM+312 is then no acknowledgment: a CUSRES is not a PAXLST (ERP+1).
        answer = await stub.CheckPaxlst(check_pb2.CheckPaxlstRequest(message=acknowledgment("X")))
        assert answer.errors
