"""DocumentCheck over real gRPC (grpc.aio on an ephemeral loopback port), scripted providers.

The SQL-store-backed scenarios live in tests/server/test_hub_sql.py.
"""

from __future__ import annotations

import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from rmas.client import check_document_request, document_pb, field_violations, result_to_dict
from rmas.testing import FakeProvider, running_hub
from rmas.v1 import check_pb2, check_pb2_grpc
from rmas.verdict import RecordStatus


def nzl_and_sltd() -> tuple[FakeProvider, FakeProvider]:
    nzl = FakeProvider.issuer(
        "NZL", ["NZL"], {("NZL", "LA000002"): RecordStatus.LOST}, latency_s=0.001
    )
    sltd = FakeProvider.global_("SLTD", {("NZL", "LA000003"): RecordStatus.STOLEN})
    return nzl, sltd


async def test_a_clean_document_is_clear_with_every_source_shown() -> None:
    nzl, sltd = nzl_and_sltd()
    async with running_hub([nzl, sltd]) as hub, grpc.aio.insecure_channel(hub.target) as ch:
        stub = check_pb2_grpc.DocumentCheckStub(ch)
        resp = await stub.CheckDocument(
            check_document_request(number="la000001", state="nz", type_code="P"), timeout=5
        )
    r = result_to_dict(resp.result)
    assert (r["verdict"], r["directive"]) == ("CLEAR", "OK_TO_BOARD")
    assert len(r["check_id"]) == 32
    assert [(s["provider"], s["outcome"], s["status"]) for s in r["sources"]] == [
        ("NZL", "ANSWERED", "NO_RECORD"),
        ("SLTD", "ANSWERED", "NO_RECORD"),
    ]
    assert all(s["latency_ms"] >= 0 for s in r["sources"])
    assert resp.result.document.issuing_state == "NZL"
    assert resp.result.document.number == "LA000001"


async def test_an_issuer_alert_and_a_global_alert_both_say_do_not_board() -> None:
    nzl, sltd = nzl_and_sltd()
    async with running_hub([nzl, sltd]) as hub, grpc.aio.insecure_channel(hub.target) as ch:
        stub = check_pb2_grpc.DocumentCheckStub(ch)
        lost = await stub.CheckDocument(check_document_request(number="LA000002", state="NZL"))
        stolen = await stub.CheckDocument(check_document_request(number="LA000003", state="NZL"))
    for resp, provider, status in ((lost, "NZL", "LOST"), (stolen, "SLTD", "STOLEN")):
        r = result_to_dict(resp.result)
        assert (r["verdict"], r["directive"]) == ("ALERT", "DO_NOT_BOARD")
        assert status == next(s["status"] for s in r["sources"] if s["provider"] == provider)


@pytest.mark.parametrize(
    ("failure", "outcome"),
    [("hang", "TIMEOUT"), ("error", "ERROR"), ("unavailable", "UNAVAILABLE")],
)
async def test_a_failing_issuer_gives_incomplete_by_the_deadline(
    failure: str, outcome: str
) -> None:
    nzl = FakeProvider.issuer("NZL", ["NZL"], failure=failure)
    sltd = FakeProvider.global_("SLTD")
    async with (
        running_hub([nzl, sltd], deadline_ms=300) as hub,
        grpc.aio.insecure_channel(hub.target) as ch,
    ):
        stub = check_pb2_grpc.DocumentCheckStub(ch)
        start = time.monotonic()
        resp = await stub.CheckDocument(
            check_document_request(number="LA1", state="NZL"), timeout=5
        )
        elapsed = time.monotonic() - start
        # The hub keeps serving after the failure.
        again = await stub.CheckDocument(check_document_request(number="LA1", state="NZL"))
    r = result_to_dict(resp.result)
    assert (r["verdict"], r["directive"]) == ("INCOMPLETE", "CONTACT_AUTHORITY")
    assert {"NZL": outcome, "SLTD": "ANSWERED"} == {
        s["provider"]: s["outcome"] for s in r["sources"]
    }
    assert elapsed < 1.0  # the hub's 300 ms deadline, not the caller's 5 s
    assert result_to_dict(again.result)["verdict"] == "INCOMPLETE"


async def test_the_callers_shorter_deadline_wins() -> None:
    nzl = FakeProvider.issuer("NZL", ["NZL"], failure="hang")
    async with (
        running_hub([nzl], deadline_ms=5000) as hub,
        grpc.aio.insecure_channel(hub.target) as ch,
    ):
        stub = check_pb2_grpc.DocumentCheckStub(ch)
        start = time.monotonic()
        resp = await stub.CheckDocument(
            check_document_request(number="LA1", state="NZL"), timeout=0.4
        )
    assert time.monotonic() - start < 0.4
    assert result_to_dict(resp.result)["sources"][0]["outcome"] == "TIMEOUT"


async def test_fail_open_policy_boards_flagged_unchecked() -> None:
    nzl = FakeProvider.issuer("NZL", ["NZL"], failure="error")
    async with (
        running_hub([nzl], on_incomplete="board") as hub,
        grpc.aio.insecure_channel(hub.target) as ch,
    ):
        resp = await check_pb2_grpc.DocumentCheckStub(ch).CheckDocument(
            check_document_request(number="LA1", state="NZL")
        )
    r = result_to_dict(resp.result)
    assert (r["verdict"], r["directive"], r["unchecked"]) == ("INCOMPLETE", "OK_TO_BOARD", True)


async def test_a_document_no_provider_covers_is_incomplete() -> None:
    nzl, _ = nzl_and_sltd()
    async with running_hub([nzl]) as hub, grpc.aio.insecure_channel(hub.target) as ch:
        resp = await check_pb2_grpc.DocumentCheckStub(ch).CheckDocument(
            check_document_request(number="123456789", state="USA")
        )
    r = result_to_dict(resp.result)
    assert (r["verdict"], r["directive"], r["sources"]) == ("INCOMPLETE", "CONTACT_AUTHORITY", [])
    assert r["warnings"]


async def test_bad_input_is_invalid_argument_naming_each_field_and_the_hub_keeps_serving() -> None:
    nzl, _ = nzl_and_sltd()
    async with running_hub([nzl]) as hub, grpc.aio.insecure_channel(hub.target) as ch:
        stub = check_pb2_grpc.DocumentCheckStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.CheckDocument(
                check_document_request(number="AB#1", state="QQQ", birth_date="1999-02-30")
            )
        with pytest.raises(grpc.aio.AioRpcError) as empty:
            await stub.CheckDocument(check_pb2.CheckDocumentRequest())
        ok = await stub.CheckDocument(check_document_request(number="LA1", state="NZL"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {
        "document.issuing_state",
        "document.number",
        "document.holder.birth_date",
    } == {f for f, _ in field_violations(info.value)}
    assert field_violations(empty.value) == [("document", "required (or mrz_lines)")]
    assert result_to_dict(ok.result)["verdict"] == "CLEAR"


async def test_a_manifest_is_one_batch_call_per_provider_and_bad_travellers_are_invalid_data() -> (
    None
):
    nzl, sltd = nzl_and_sltd()
    aus = FakeProvider.issuer("AUS", ["AUS"])
    travellers = [
        check_pb2.Traveller(ref="p0", document=document_pb(number="LA000002", state="NZL")),
        check_pb2.Traveller(ref="p1", document=document_pb(number="PA1", state="AUS")),
        check_pb2.Traveller(ref="p2", document=document_pb(number="", state="AUS")),
        check_pb2.Traveller(ref="p3"),
        check_pb2.Traveller(ref="p4", document=document_pb(number="X1", state="USA")),
    ]
    async with running_hub([nzl, aus, sltd]) as hub, grpc.aio.insecure_channel(hub.target) as ch:
        resp = await check_pb2_grpc.DocumentCheckStub(ch).CheckManifest(
            check_pb2.CheckManifestRequest(travellers=travellers)
        )
    rs = [result_to_dict(r) for r in resp.results]
    assert [r["ref"] for r in rs] == ["p0", "p1", "p2", "p3", "p4"]
    assert [r["verdict"] for r in rs] == ["ALERT", "CLEAR", "INVALID_DATA", "INVALID_DATA", "CLEAR"]
    assert rs[2]["directive"] == "INSUFFICIENT_DATA"
    assert rs[2]["problems"] == [
        {"field": "travellers[2].document.number", "description": "required"}
    ]
    assert 1 == len(nzl.calls) == len(aus.calls) == len(sltd.calls)
    assert len(sltd.calls[0]) == 3
    assert len({r["check_id"] for r in rs}) == 5


async def test_an_oversized_manifest_is_refused() -> None:
    nzl, _ = nzl_and_sltd()
    travellers = [
        check_pb2.Traveller(ref=str(i), document=document_pb(number=f"LA{i}", state="NZL"))
        for i in range(11)
    ]
    async with (
        running_hub([nzl], max_manifest=10) as hub,
        grpc.aio.insecure_channel(hub.target) as ch,
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await check_pb2_grpc.DocumentCheckStub(ch).CheckManifest(
                check_pb2.CheckManifestRequest(travellers=travellers)
            )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(info.value)[0][0] == "travellers"
    assert not nzl.calls


async def test_health_and_reflection_are_served() -> None:
    nzl, _ = nzl_and_sltd()
    async with running_hub([nzl]) as hub, grpc.aio.insecure_channel(hub.target) as ch:
        health = await health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service="rmas.v1.DocumentCheck")
        )
        refl = reflection_pb2_grpc.ServerReflectionStub(ch)
        names: list[str] = []
        async for reply in refl.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        ):
            names = [s.name for s in reply.list_services_response.service]
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert "rmas.v1.DocumentCheck" in names
    assert "grpc.health.v1.Health" in names


async def test_providers_are_closed_when_the_hub_stops() -> None:
    nzl, sltd = nzl_and_sltd()
    async with running_hub([nzl, sltd]):
        pass
    assert nzl.closed and sltd.closed


def test_the_answer_bound_counts_scanned_travellers_only_when_it_must() -> None:
    from rmas.server.check_service import _answer_size

    request = check_pb2.CheckManifestRequest()
    for i in range(10):
        t = request.travellers.add(ref=str(i))
        if i < 3:
            t.mrz_lines.extend(["P<UTO", "L898902C3"])
        else:
            t.document.issuing_state, t.document.number = "NZL", f"A{i}"
    plain = _answer_size(request, True, 2, 1 << 30)  # far under: every traveller counted scanned
    exact = request.ByteSize() + 10 * (1200 + 800 * 2) + 3 * 3000
    assert plain == exact + 7 * 3000
    # Between the exact bound and the worst case: the exact bound, so the manifest is not refused.
    assert _answer_size(request, True, 2, exact + 1) == exact
    assert _answer_size(request, True, 2, exact - 1) == exact  # over: refused as before
    assert _answer_size(request, False, 2, 0) == 10 * (64 + 70)
