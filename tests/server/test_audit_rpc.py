"""The audit trail through the real gRPC path: one entry per document on every channel, written
before the answer leaves, and no answer when a required trail cannot be written."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from rmas.audit.entry import DocumentKeyer
from rmas.audit.reader import verify
from rmas.audit.sink import AuditSink
from rmas.audit.trail import AuditTrail
from rmas.client import document_pb
from rmas.security.access import CallerRule, Role
from rmas.testing import FakeProvider, HubHandle, running_hub
from rmas.v1 import check_pb2, check_pb2_grpc
from rmas.verdict import RecordStatus
from tests.audit import stored_entries
from tests.conftest import Pki

FIX = Path(__file__).resolve().parents[2] / "fixtures"
CALLERS = (
    CallerRule("rmas://airline/QF", Role.AIRLINE),
    CallerRule("rmas://officer/*", Role.OFFICER),
)
KEY = os.urandom(32)


def providers() -> list[Any]:
    stolen = {
        ("NZL", "LA000002"): RecordStatus.STOLEN,
        ("AUS", "PA9999999"): RecordStatus.NOT_ISSUED,
    }
    return [
        FakeProvider.issuer("NZL", ["NZL"], stolen),
        FakeProvider.issuer("AUS", ["AUS"], stolen),
        FakeProvider.issuer("PHL", ["PHL"]),
        FakeProvider.global_("SLTD"),
    ]


async def rows(db: Path) -> list[dict[str, Any]]:
    return [dataclasses.asdict(e) for e in await stored_entries(f"sqlite+aiosqlite:///{db}")]


@pytest.fixture
async def audited(tmp_path: Path, pki: Pki) -> AsyncIterator[tuple[HubHandle, Path]]:
    db = tmp_path / "audit.db"
    trail = AuditTrail(AuditSink(f"sqlite+aiosqlite:///{db}"), DocumentKeyer(KEY), hub_id="hub-t1")
    async with running_hub(providers(), tls=pki.tls("hub"), callers=CALLERS, audit=trail) as hub:
        yield hub, db


async def test_every_document_of_every_channel_has_one_entry_naming_the_caller(
    audited: tuple[HubHandle, Path], pki: Pki
) -> None:
    hub, db = audited
    manifest = check_pb2.CheckManifestRequest()
    for i in range(60):
        number = "LA000002" if i == 7 else f"LA1{i:05d}"
        manifest.travellers.add(ref=f"p{i}", document=document_pb(number=number, state="NZL"))
    manifest.travellers.add(ref="bad", document=document_pb(number="", state="NZL"))
    async with grpc.aio.secure_channel(hub.target, pki.creds("airline")) as ch:
        stub = check_pb2_grpc.DocumentCheckStub(ch)
        many = await stub.CheckManifest(manifest, timeout=10)
        pax = await stub.CheckPaxlst(
            check_pb2.CheckPaxlstRequest(
                message=(FIX / "paxlst" / "four_passengers.edi").read_bytes()
            ),
            timeout=10,
        )
        again = await stub.CheckPaxlst(
            check_pb2.CheckPaxlstRequest(
                message=(FIX / "paxlst" / "four_passengers.edi").read_bytes()
            ),
            timeout=10,
        )
    async with grpc.aio.secure_channel(hub.target, pki.creds("officer")) as ch:
        one = await check_pb2_grpc.DocumentCheckStub(ch).CheckDocument(
            check_pb2.CheckDocumentRequest(document=document_pb(number="LA000002", state="NZ")),
            timeout=10,
        )
    entries = await rows(db)
    assert {e["hub"] for e in entries} == {"hub-t1"}
    by_id = {e["check_id"]: e for e in entries}
    # One entry per document: 61 manifest travellers, 4 PAXLST documents, 1 single check, and
    # the resent PAXLST's 4 documents: a resend is checked again and audited, even when it gets
    # the very same CUSRES.
    assert again.duplicate and len(entries) == 61 + 4 + 4 + 1
    for r in many.results:
        e = by_id[r.check_id]
        assert (e["caller"], e["role"], e["channel"], e["reference"]) == (
            "rmas://airline/QF", "airline", "manifest", many.manifest_id,
        )  # fmt: skip
        assert e["directive"] == check_pb2.Directive.Name(r.directive).removeprefix("DIRECTIVE_")
    stolen = by_id[many.results[7].check_id]
    assert stolen["verdict"] == "ALERT" and stolen["issuing_state"] == "NZL"
    assert stolen["document_key"] == DocumentKeyer(KEY).key_of("NZL", "LA000002")
    assert '"NZL","ANSWERED","STOLEN"' in stolen["sources"].replace(" ", "")
    bad = by_id[many.results[-1].check_id]
    assert (bad["verdict"], bad["document_key"]) == ("INVALID_DATA", "")
    pax_ids = [c for p in pax.passengers for c in p.check_ids]
    assert [by_id[c]["channel"] for c in pax_ids] == ["paxlst"] * 4
    assert {by_id[c]["reference"].split(" TN ")[1] for c in pax_ids} == {pax.transaction_ref}
    again_ids = [c for p in again.passengers for c in p.check_ids]
    assert not set(again_ids) & set(pax_ids)
    assert {by_id[c]["reference"].endswith(" RESEND") for c in again_ids} == {True}
    single = by_id[one.result.check_id]
    assert (single["caller"], single["role"], single["channel"]) == (
        "rmas://officer/AKL-T1", "officer", "document",
    )  # fmt: skip
    # Same document, same key, whichever code the caller used for the state.
    assert single["document_key"] == stolen["document_key"]
    # Never the number in clear.
    dump = repr(entries)
    assert "LA000002" not in dump and "LA100000" not in dump
    report = await verify(f"sqlite+aiosqlite:///{db}")
    assert report.ok and report.count == len(entries)


async def test_a_required_trail_that_cannot_be_written_gets_no_answer_out_and_recovers(
    tmp_path: Path,
) -> None:
    db = tmp_path / "audit.db"
    trail = AuditTrail(AuditSink(f"sqlite+aiosqlite:///{db}", timeout_s=0.2), DocumentKeyer(KEY))
    request = check_pb2.CheckDocumentRequest(document=document_pb(number="LA000002", state="NZL"))
    async with (
        running_hub(providers(), audit=trail) as hub,
        grpc.aio.insecure_channel(hub.target) as ch,
    ):
        stub = check_pb2_grpc.DocumentCheckStub(ch)
        first = await stub.CheckDocument(request, timeout=10)
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the file: commits time out
        try:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.CheckDocument(request, timeout=10)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "audit trail cannot be written" in (err.value.details() or "")
            assert not trail.healthy
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        second = await stub.CheckDocument(request, timeout=10)
        assert trail.healthy
    ids = [e["check_id"] for e in await rows(db)]
    assert ids == [first.result.check_id, second.result.check_id]


async def test_an_optional_trail_that_cannot_be_written_still_answers(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    sink = AuditSink(f"sqlite+aiosqlite:///{db}", timeout_s=0.2)
    trail = AuditTrail(sink, DocumentKeyer(KEY), required=False)
    request = check_pb2.CheckDocumentRequest(document=document_pb(number="LA000002", state="NZL"))
    async with (
        running_hub(providers(), audit=trail) as hub,
        grpc.aio.insecure_channel(hub.target) as ch,
    ):
        await check_pb2_grpc.DocumentCheckStub(ch).CheckDocument(request, timeout=10)
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            resp = await check_pb2_grpc.DocumentCheckStub(ch).CheckDocument(request, timeout=10)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
    assert resp.result.verdict == check_pb2.VERDICT_ALERT
    assert sink.failures >= 1
