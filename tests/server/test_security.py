"""mTLS, identities, roles and need-to-know, through a real hub over real TLS on loopback.

The PKI is a throw-away CA from ``rmas certs init`` (the ``pki`` fixture in conftest.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rmas.client import document_pb
from rmas.providers import ProviderInfo, Scope
from rmas.remote.client import RemoteProvider
from rmas.remote.node import ProviderNode
from rmas.security.access import CallerRule, Role
from rmas.testing import FakeProvider, HubHandle, running_hub
from rmas.v1 import check_pb2, check_pb2_grpc
from rmas.verdict import Record, RecordStatus
from tests.conftest import EconomyStores, Pki

FIX = Path(__file__).resolve().parents[2] / "fixtures"

CALLERS = (
    CallerRule("rmas://airline/QF", Role.AIRLINE),
    CallerRule("rmas://officer/*", Role.OFFICER),
    CallerRule("rmas://operator/ops", Role.OPERATOR),
    CallerRule("rmas://node/NZL", Role.NODE),
)
STOLEN = ("NZL", "LA000002")


@pytest.fixture
async def stores(economy_stores: EconomyStores) -> list[Any]:
    """The demo's NZL, AUS and PHL stores (PAXLST fixtures name their documents), and an SLTD
    fake that reports nothing."""
    return [*await economy_stores("NZL", "AUS", "PHL", contact=True), FakeProvider.global_("SLTD")]


@pytest.fixture
async def hub(pki: Pki, stores: list[Any]) -> AsyncIterator[HubHandle]:
    async with running_hub(stores, tls=pki.tls("hub"), callers=CALLERS) as h:
        yield h


def stub(hub: HubHandle, pki: Pki, who: str) -> tuple[grpc.aio.Channel, Any]:
    ch = grpc.aio.secure_channel(hub.target, pki.creds(who))
    return ch, check_pb2_grpc.DocumentCheckStub(ch)


def one_document(number: str = STOLEN[1], state: str = STOLEN[0]) -> check_pb2.CheckDocumentRequest:
    return check_pb2.CheckDocumentRequest(document=document_pb(number=number, state=state))


def manifest(n: int) -> check_pb2.CheckManifestRequest:
    req = check_pb2.CheckManifestRequest()
    for i in range(n):
        number = STOLEN[1] if i == 0 else f"LA9{i:05d}"
        req.travellers.add(ref=f"seat-{i}", document=document_pb(number=number, state="NZL"))
    return req


async def call(hub: HubHandle, pki: Pki, who: str, rpc: str) -> Any:
    """Call one RPC as ``who``; returns the response (or raises AioRpcError)."""
    async with grpc.aio.secure_channel(hub.target, pki.creds(who)) as ch:
        check = check_pb2_grpc.DocumentCheckStub(ch)
        if rpc == "CheckDocument":
            return await check.CheckDocument(one_document(), timeout=10)
        if rpc == "CheckManifest":
            return await check.CheckManifest(manifest(3), timeout=10)
        if rpc == "CheckPaxlst":
            data = (FIX / "paxlst" / "four_passengers.edi").read_bytes()
            return await check.CheckPaxlst(check_pb2.CheckPaxlstRequest(message=data), timeout=10)
        if rpc == "Status":
            return await check_pb2_grpc.HubAdminStub(ch).Status(
                check_pb2.StatusRequest(), timeout=10
            )
        assert rpc == "Health"
        return await health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=10
        )


# --- who gets in ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "who", ["no certificate", "foreign", "expired"], ids=["no-cert", "other-CA", "expired"]
)
async def test_a_caller_without_a_valid_client_certificate_is_refused_at_the_handshake(
    hub: HubHandle, pki: Pki, who: str
) -> None:
    if who == "no certificate":
        creds = grpc.ssl_channel_credentials((pki.dir / "ca.pem").read_bytes())
    else:
        creds = pki.creds(who)
    async with grpc.aio.secure_channel(hub.target, creds) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await check_pb2_grpc.DocumentCheckStub(ch).CheckDocument(one_document(), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_certified_identity_no_caller_table_names_is_denied(
    hub: HubHandle, pki: Pki
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(hub, pki, "stranger", "CheckDocument")
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "rmas://airline/ZZ is not a known caller" in (err.value.details() or "")


async def test_a_certificate_without_an_rmas_identity_is_unauthenticated(
    hub: HubHandle, pki: Pki
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(hub, pki, "anonymous", "CheckDocument")
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_plain_text_client_cannot_talk_to_a_tls_hub(hub: HubHandle) -> None:
    async with grpc.aio.insecure_channel(hub.target) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await check_pb2_grpc.DocumentCheckStub(ch).CheckDocument(one_document(), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


# --- each role, each RPC ----------------------------------------------------------------------

ALLOWED = {
    "airline": {"CheckDocument", "CheckManifest", "CheckPaxlst", "Health"},
    "officer": {"CheckDocument", "CheckManifest", "CheckPaxlst", "Health"},
    "operator": {"Status", "Health"},
    "node": {"Health"},
}
RPCS = ["CheckDocument", "CheckManifest", "CheckPaxlst", "Status", "Health"]


@pytest.mark.parametrize("rpc", RPCS)
@pytest.mark.parametrize("role", sorted(ALLOWED))
async def test_each_role_may_call_exactly_its_rpcs(
    hub: HubHandle, pki: Pki, role: str, rpc: str
) -> None:
    if rpc in ALLOWED[role]:
        assert await call(hub, pki, role, rpc) is not None
    else:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(hub, pki, role, rpc)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert f"({role}) may not call" in (err.value.details() or "")


def fields(msg: Any) -> set[str]:
    return {f.name for f, _ in msg.ListFields()}


async def test_an_airline_sees_directive_and_check_id_only_on_every_rpc(
    hub: HubHandle, pki: Pki
) -> None:
    single = await call(hub, pki, "airline", "CheckDocument")
    assert fields(single.result) == {"check_id", "directive"}
    assert single.result.directive == check_pb2.DIRECTIVE_DO_NOT_BOARD

    many = await call(hub, pki, "airline", "CheckManifest")
    assert [fields(r) for r in many.results] == [{"check_id", "ref", "directive"}] * 3
    assert [r.ref for r in many.results] == ["seat-0", "seat-1", "seat-2"]
    assert many.results[0].directive == check_pb2.DIRECTIVE_DO_NOT_BOARD

    pax = await call(hub, pki, "airline", "CheckPaxlst")
    assert len(pax.results) == 0
    assert [p.directive for p in pax.passengers] == [
        check_pb2.DIRECTIVE_DO_NOT_BOARD, check_pb2.DIRECTIVE_DO_NOT_BOARD,
        check_pb2.DIRECTIVE_OK_TO_BOARD, check_pb2.DIRECTIVE_INSUFFICIENT_DATA,
    ]  # fmt: skip
    wire = single.SerializeToString() + many.SerializeToString() + pax.SerializeToString()
    for secret in (b"STOLEN", b"NZL", b"LA000002", b"24/7", b"SLTD"):
        assert secret not in wire


async def test_an_officer_sees_every_source_with_authority_date_reference_and_contact(
    hub: HubHandle, pki: Pki
) -> None:
    single = (await call(hub, pki, "officer", "CheckDocument")).result
    assert single.verdict == check_pb2.VERDICT_ALERT
    nzl = next(s for s in single.sources if s.provider_id == "NZL")
    assert nzl.record.status != 0 and nzl.contact == "NZL 24/7 desk"
    assert nzl.record.reporting_authority and nzl.record.reported_on and nzl.record.record_ref
    assert {s.provider_id for s in single.sources} == {"NZL", "SLTD"}
    assert single.document.number == STOLEN[1]

    many = await call(hub, pki, "officer", "CheckManifest")
    assert all(len(r.sources) == 2 for r in many.results)

    pax = await call(hub, pki, "officer", "CheckPaxlst")
    assert len(pax.results) == sum(len(p.check_ids) for p in pax.passengers) == 4
    assert [r.check_id for r in pax.results] == [c for p in pax.passengers for c in p.check_ids]
    assert pax.results[0].verdict == check_pb2.VERDICT_ALERT


# --- limits ------------------------------------------------------------------------------------


def retry_delay(err: grpc.aio.AioRpcError) -> float | None:
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                    info = error_details_pb2.RetryInfo()
                    detail.Unpack(info)
                    return float(info.retry_delay.ToNanoseconds()) / 1e9
    return None


async def test_per_identity_rate_limits_answer_resource_exhausted_with_retry_info(
    pki: Pki, stores: list[Any]
) -> None:
    callers = (CallerRule("rmas://airline/QF", Role.AIRLINE, documents_per_s=0.5, burst=3),
               CallerRule("rmas://officer/*", Role.OFFICER))  # fmt: skip
    async with running_hub(stores, tls=pki.tls("hub"), callers=callers) as hub:
        ch, airline = stub(hub, pki, "airline")
        async with ch:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await airline.CheckManifest(manifest(4), timeout=10)
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "exceed the 3 this caller may check at once" in (err.value.details() or "")

            await airline.CheckManifest(manifest(3), timeout=10)  # the whole burst
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await airline.CheckDocument(one_document(), timeout=10)
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            delay = retry_delay(err.value)
            assert delay is not None and 0 < delay <= 2.0
        # Another identity has its own bucket (and the officers' rule sets no limit).
        ch, officer = stub(hub, pki, "officer")
        async with ch:
            for _ in range(5):
                await officer.CheckManifest(manifest(3), timeout=10)


# --- links to national nodes ------------------------------------------------------------------


async def test_the_hub_reaches_a_national_node_over_mutual_tls_and_the_node_admits_only_its_hubs(
    pki: Pki,
) -> None:
    fake = FakeProvider.issuer("NZL", ["NZL"], {STOLEN: Record(RecordStatus.STOLEN)})
    outcomes = {}
    for allow in (("rmas://hub/hub-1",), ("rmas://hub/another",)):
        node = ProviderNode(fake, "127.0.0.1:0", tls=pki.tls("node"), allow=allow)
        port = await node.start()
        info = ProviderInfo(id="NZL", issuing_states=frozenset({"NZL"}), scope=Scope.ISSUER)
        remote = RemoteProvider(info, f"127.0.0.1:{port}", tls=pki.tls("hub"), retries=0)
        try:
            async with running_hub([remote], tls=pki.tls("hub"), callers=CALLERS) as hub:
                result = (await call(hub, pki, "officer", "CheckDocument")).result
        finally:
            await node.stop(grace=0.1)
        (source,) = result.sources
        outcomes[allow[0]] = (result.verdict, source.outcome, source.error)
    assert outcomes["rmas://hub/hub-1"][:2] == (check_pb2.VERDICT_ALERT, check_pb2.OUTCOME_ANSWERED)
    verdict, outcome, error = outcomes["rmas://hub/another"]
    assert verdict == check_pb2.VERDICT_INCOMPLETE
    # The refusal comes at the node's Describe, before any document is sent: not asked.
    assert outcome == check_pb2.OUTCOME_UNAVAILABLE and "PERMISSION_DENIED" in error


async def test_a_hub_without_a_client_certificate_cannot_reach_a_tls_node(pki: Pki) -> None:
    node = ProviderNode(FakeProvider.issuer("NZL", ["NZL"]), "127.0.0.1:0", tls=pki.tls("node"))
    port = await node.start()
    info = ProviderInfo(id="NZL", issuing_states=frozenset({"NZL"}), scope=Scope.ISSUER)
    remote = RemoteProvider(info, f"127.0.0.1:{port}", retries=0)
    try:
        async with running_hub([remote]) as hub, grpc.aio.insecure_channel(hub.target) as ch:
            resp = await check_pb2_grpc.DocumentCheckStub(ch).CheckDocument(
                one_document(), timeout=10
            )
    finally:
        await node.stop(grace=0.1)
    assert resp.result.verdict == check_pb2.VERDICT_INCOMPLETE
    assert resp.result.sources[0].outcome == check_pb2.OUTCOME_UNAVAILABLE
