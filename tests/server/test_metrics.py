"""Prometheus metrics: a real hub, its real HTTP endpoint scraped before and after real RPCs.

Every test reads the scrape through prometheus-client's own parser (so the text is valid
exposition format) and asserts differences between two scrapes, exactly.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from rmas.audit.entry import DocumentKeyer
from rmas.audit.sink import AuditSink
from rmas.audit.trail import AuditTrail
from rmas.client import document_pb
from rmas.config import HubConfig, parse_config
from rmas.errors import ConfigError
from rmas.providers import ProviderInfo
from rmas.remote.client import RemoteProvider
from rmas.security.access import CallerRule, Role
from rmas.server.app import HubServer
from rmas.testing import FakeProvider, running_hub
from rmas.v1 import check_pb2, check_pb2_grpc
from rmas.verdict import RecordStatus
from tests.conftest import Pki

FIX = Path(__file__).resolve().parents[2] / "fixtures"
ON = "127.0.0.1:0"


@dataclass(frozen=True)
class Scrape:
    text: str
    samples: Mapping[tuple[str, frozenset[tuple[str, str]]], float]
    types: Mapping[str, str]

    def get(self, name: str, **labels: str) -> float:
        """One sample's value; 0 when the series is absent (not yet seen)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def total(self, name: str, **labels: str) -> float:
        """The sum over every series of ``name`` whose labels include ``labels``."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and want <= ls)


async def scrape(port: int, path: str = "/metrics") -> Scrape:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}{path}") as resp,
    ):
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = await resp.text()
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in samples, f"duplicate series {key}"
            samples[key] = s.value
    return Scrape(text, samples, types)


def delta(after: Scrape, before: Scrape, name: str, **labels: str) -> float:
    return after.get(name, **labels) - before.get(name, **labels)


def providers() -> list[FakeProvider]:
    nzl = FakeProvider.issuer("NZL", ["NZL"], {("NZL", "LA000002"): RecordStatus.STOLEN})
    aus = FakeProvider.issuer("AUS", ["AUS"], {("AUS", "PA9999999"): RecordStatus.NOT_ISSUED})
    return [nzl, aus, FakeProvider.global_("SLTD")]


def doc(number: str, state: str = "NZL") -> check_pb2.CheckDocumentRequest:
    return check_pb2.CheckDocumentRequest(document=document_pb(number=number, state=state))


# --- checks, providers, RPCs ------------------------------------------------------------------


async def test_checks_are_counted_by_channel_verdict_and_directive_on_every_rpc() -> None:
    paxlst = (FIX / "paxlst" / "four_passengers.edi").read_bytes()
    manifest = check_pb2.CheckManifestRequest()
    for i, number in enumerate(["LA100001", "LA100002", "LA100003", "LA000002"]):
        manifest.travellers.add(ref=f"seat-{i}A", document=document_pb(number=number, state="NZL"))
    manifest.travellers.add(ref="seat-9Z")  # no document: INVALID_DATA, nobody asked
    async with (
        running_hub(providers(), metrics_listen=ON) as hub,
        grpc.aio.insecure_channel(hub.target) as ch,
    ):
        assert hub.metrics_port > 0
        stub = check_pb2_grpc.DocumentCheckStub(ch)
        before = await scrape(hub.metrics_port)
        one = await stub.CheckDocument(doc("LA100009"), timeout=5)
        many = await stub.CheckManifest(manifest, timeout=5)
        pax = await stub.CheckPaxlst(check_pb2.CheckPaxlstRequest(message=paxlst), timeout=10)
        after = await scrape(hub.metrics_port)

    def checks(channel: str, verdict: str, directive: str) -> float:
        return delta(after, before, "rmas_checks_total", channel=channel, verdict=verdict,
                     directive=directive)  # fmt: skip

    assert checks("document", "CLEAR", "OK_TO_BOARD") == 1
    assert checks("manifest", "CLEAR", "OK_TO_BOARD") == 3
    assert checks("manifest", "ALERT", "DO_NOT_BOARD") == 1
    assert checks("manifest", "INVALID_DATA", "INSUFFICIENT_DATA") == 1
    # four_passengers.edi: a stolen NZL passport, a never-issued AUS one, a clean one, and a
    # passenger whose document has no number.
    assert checks("paxlst", "ALERT", "DO_NOT_BOARD") == 2
    assert checks("paxlst", "CLEAR", "OK_TO_BOARD") == 1
    assert checks("paxlst", "INVALID_DATA", "INSUFFICIENT_DATA") == 1
    assert after.total("rmas_checks_total") - before.total("rmas_checks_total") == 1 + 5 + 4
    for channel in ("document", "manifest", "paxlst"):
        assert delta(after, before, "rmas_check_requests_total", channel=channel) == 1
    assert delta(after, before, "rmas_manifest_documents_count", channel="manifest") == 1
    assert delta(after, before, "rmas_manifest_documents_sum", channel="manifest") == 5
    assert delta(after, before, "rmas_manifest_documents_bucket", channel="manifest", le="1.0") == 0
    assert delta(after, before, "rmas_manifest_documents_bucket", channel="manifest", le="5.0") == 1
    assert delta(after, before, "rmas_manifest_documents_sum", channel="paxlst") == 4

    # One call per provider per RPC that routed documents to it: the invalid documents go nowhere.
    calls = {p: delta(after, before, "rmas_provider_calls_total", provider=p, outcome="ANSWERED")
             for p in ("NZL", "AUS", "SLTD")}  # fmt: skip
    assert calls == {"NZL": 3, "AUS": 1, "SLTD": 3}
    for p, n in calls.items():
        assert delta(after, before, "rmas_provider_call_duration_seconds_count", provider=p) == n
        assert delta(after, before, "rmas_provider_call_duration_seconds_bucket", provider=p,
                     le="+Inf") == n  # fmt: skip
        for outcome in ("TIMEOUT", "UNAVAILABLE", "ERROR"):
            assert after.get("rmas_provider_calls_total", provider=p, outcome=outcome) == 0

    for method in ("CheckDocument", "CheckManifest", "CheckPaxlst"):
        assert delta(after, before, "rmas_grpc_server_handled_total",
                     grpc_service="rmas.v1.DocumentCheck", grpc_method=method,
                     grpc_code="OK") == 1  # fmt: skip
        assert delta(after, before, "rmas_grpc_server_handling_seconds_count",
                     grpc_service="rmas.v1.DocumentCheck", grpc_method=method) == 1  # fmt: skip
    assert after.get("rmas_hub_in_flight_documents") == 0

    # Need to know: no document number, reference, name or id reaches the metrics.
    ids = [one.result.check_id, many.manifest_id, pax.transaction_ref,
           *(r.check_id for r in many.results)]  # fmt: skip
    secrets = ["LA100009", "LA100001", "LA000002", "PA9999999", "LA900001", "seat-", "ABC123",
               "ICR0001", "AIRNZ", "TAYLOR", "SMITH", *ids]  # fmt: skip
    for secret in secrets:
        assert secret not in after.text, secret


async def test_provider_failures_show_their_outcome_and_the_incomplete_verdicts() -> None:
    slow = FakeProvider.issuer("NZL", ["NZL"], latency_s=0.03)
    down = FakeProvider.issuer("AUS", ["AUS"], failure="unavailable")
    late = FakeProvider.issuer("PHL", ["PHL"], failure="timeout")
    broken = FakeProvider.issuer("FJI", ["FJI"], failure="error")
    async with (
        running_hub([slow, down, late, broken], metrics_listen=ON) as hub,
        grpc.aio.insecure_channel(hub.target) as ch,
    ):
        stub = check_pb2_grpc.DocumentCheckStub(ch)
        before = await scrape(hub.metrics_port)
        for state in ("NZL", "AUS", "PHL", "FJI"):
            await stub.CheckDocument(doc("X1234567", state), timeout=5)
        after = await scrape(hub.metrics_port)

    def calls(provider: str, outcome: str) -> float:
        return delta(after, before, "rmas_provider_calls_total", provider=provider,
                     outcome=outcome)  # fmt: skip

    assert calls("NZL", "ANSWERED") == 1
    assert calls("AUS", "UNAVAILABLE") == 1
    assert calls("PHL", "TIMEOUT") == 1
    assert calls("FJI", "ERROR") == 1
    assert after.total("rmas_provider_calls_total") - before.total("rmas_provider_calls_total") == 4
    # Seconds, not milliseconds: a 30 ms call is above the 25 ms bound and within +Inf.
    hist = "rmas_provider_call_duration_seconds"
    assert delta(after, before, f"{hist}_bucket", provider="NZL", le="0.025") == 0
    assert delta(after, before, f"{hist}_bucket", provider="NZL", le="+Inf") == 1
    assert 0.025 < delta(after, before, f"{hist}_sum", provider="NZL") < 5
    assert (
        delta(after, before, "rmas_checks_total", channel="document", verdict="INCOMPLETE",
              directive="CONTACT_AUTHORITY") == 3
    )  # fmt: skip


async def test_refused_and_unknown_calls_are_counted_by_code_without_caller_text() -> None:
    async with (
        running_hub(providers(), metrics_listen=ON) as hub,
        grpc.aio.insecure_channel(hub.target) as ch,
    ):
        stub = check_pb2_grpc.DocumentCheckStub(ch)
        before = await scrape(hub.metrics_port)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.CheckDocument(check_pb2.CheckDocumentRequest(), timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        nope = ch.unary_unary("/rmas.v1.DocumentCheck/NoSuchMethodXyzzy")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await nope(b"", timeout=5)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
        after = await scrape(hub.metrics_port)
    assert (
        delta(after, before, "rmas_grpc_server_handled_total",
              grpc_service="rmas.v1.DocumentCheck", grpc_method="CheckDocument",
              grpc_code="INVALID_ARGUMENT") == 1
    )  # fmt: skip
    assert after.total("rmas_grpc_server_handled_total", grpc_code="OK") == before.total(
        "rmas_grpc_server_handled_total", grpc_code="OK"
    )
    assert after.total("rmas_checks_total") == before.total("rmas_checks_total") == 0
    assert (
        delta(after, before, "rmas_grpc_server_handled_total", grpc_service="unknown",
              grpc_method="unknown", grpc_code="UNIMPLEMENTED") == 1
    )  # fmt: skip
    assert "Xyzzy" not in after.text


async def test_health_and_streaming_reflection_calls_are_counted_too() -> None:
    async with (
        running_hub(providers(), metrics_listen=ON) as hub,
        grpc.aio.insecure_channel(hub.target) as ch,
    ):
        before = await scrape(hub.metrics_port)
        await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
        stream = reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        answers = [a async for a in stream]
        assert len(answers) == 1
        after = await scrape(hub.metrics_port)
    assert (
        delta(after, before, "rmas_grpc_server_handled_total",
              grpc_service="grpc.health.v1.Health", grpc_method="Check", grpc_code="OK") == 1
    )  # fmt: skip
    assert (
        delta(after, before, "rmas_grpc_server_handled_total",
              grpc_service="grpc.reflection.v1alpha.ServerReflection",
              grpc_method="ServerReflectionInfo", grpc_code="OK") == 1
    )  # fmt: skip


async def test_a_call_the_access_check_refuses_is_counted_permission_denied(pki: Pki) -> None:
    callers = (CallerRule("rmas://airline/QF", Role.AIRLINE),)
    async with running_hub(
        providers(), tls=pki.tls("hub"), callers=callers, metrics_listen=ON
    ) as hub:
        before = await scrape(hub.metrics_port)
        async with grpc.aio.secure_channel(hub.target, pki.creds("stranger")) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await check_pb2_grpc.DocumentCheckStub(ch).CheckDocument(doc("LA1"), timeout=5)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        after = await scrape(hub.metrics_port)
    assert (
        delta(after, before, "rmas_grpc_server_handled_total",
              grpc_service="rmas.v1.DocumentCheck", grpc_method="CheckDocument",
              grpc_code="PERMISSION_DENIED") == 1
    )  # fmt: skip
    assert "rmas://" not in after.text


async def test_a_national_nodes_breaker_and_in_flight_are_exposed() -> None:
    with socket.socket() as s:  # a port nothing listens on: every call is UNAVAILABLE
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    node = RemoteProvider(
        ProviderInfo(id="NZL", issuing_states=frozenset({"NZL"})),
        dead,
        breaker_failures=1,
        retries=0,
    )
    async with (
        running_hub([node], metrics_listen=ON) as hub,
        grpc.aio.insecure_channel(hub.target) as ch,
    ):
        before = await scrape(hub.metrics_port)
        await check_pb2_grpc.DocumentCheckStub(ch).CheckDocument(doc("LA1"), timeout=5)
        after = await scrape(hub.metrics_port)
    breaker = "rmas_provider_breaker_state"
    # Exactly one state at a time (the node's Describe, read at start-up, may already have
    # opened it: the node is down from the start).
    assert sum(before.get(breaker, provider="NZL", state=st) for st in
               ("closed", "open", "half_open")) == 1  # fmt: skip
    assert after.get(breaker, provider="NZL", state="closed") == 0
    assert after.get(breaker, provider="NZL", state="open") == 1
    assert after.get(breaker, provider="NZL", state="half_open") == 0
    assert after.get("rmas_provider_in_flight", provider="NZL") == 0
    assert ("rmas_provider_in_flight", frozenset({("provider", "NZL")})) in after.samples
    dropped = ("rmas_provider_changes_dropped_total", frozenset({("provider", "NZL")}))
    assert dropped in after.samples and after.samples[dropped] == 0
    assert delta(after, before, "rmas_provider_calls_total", provider="NZL",
                 outcome="UNAVAILABLE") == 1  # fmt: skip


async def test_audit_commits_wait_and_backlog_are_exposed(tmp_path: Path) -> None:
    trail = AuditTrail(
        AuditSink(f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"), DocumentKeyer(b"k" * 32)
    )
    async with (
        running_hub(providers(), audit=trail, metrics_listen=ON) as hub,
        grpc.aio.insecure_channel(hub.target) as ch,
    ):
        before = await scrape(hub.metrics_port)
        await check_pb2_grpc.DocumentCheckStub(ch).CheckDocument(doc("LA1"), timeout=5)
        after = await scrape(hub.metrics_port)
    assert delta(after, before, "rmas_audit_commits_total") == 1
    assert delta(after, before, "rmas_audit_write_duration_seconds_count") == 1
    assert delta(after, before, "rmas_audit_write_duration_seconds_sum") > 0
    assert after.get("rmas_audit_failures_total") == 0
    assert after.get("rmas_audit_backlog_entries") == 0
    assert after.get("rmas_audit_healthy") == 1


async def test_answers_held_together_are_counted() -> None:
    async with running_hub(providers(), metrics_listen=ON, coalesce_ms=20) as hub:
        assert hub.server is not None
        coalescer = hub.server.service.coalescer
        coalescer.engage_share = 0.0  # any CPU share counts as saturated, on any test machine
        before = await scrape(hub.metrics_port)
        async with grpc.aio.insecure_channel(hub.target) as ch:
            stub = check_pb2_grpc.DocumentCheckStub(ch)
            await asyncio.gather(*(stub.CheckDocument(doc(f"LA{k:06d}"), timeout=10)
                                   for k in range(64)))  # fmt: skip
        after = await scrape(hub.metrics_port)
    assert before.types["rmas_answers_held"] == "counter"
    assert delta(after, before, "rmas_answers_held_total") == coalescer.held > 0
    assert delta(after, before, "rmas_answer_batches_total") == coalescer.released >= 1
    assert after.get("rmas_loop_saturated") in (0.0, 1.0)


async def test_the_endpoint_is_valid_text_with_process_basics_and_nothing_else() -> None:
    async with running_hub(providers(), metrics_listen=ON) as hub:
        got = await scrape(hub.metrics_port)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{hub.metrics_port}/") as resp,
        ):
            assert resp.status == 404
    assert got.types["rmas_checks"] == "counter"
    assert got.types["rmas_provider_call_duration_seconds"] == "histogram"
    assert got.types["rmas_hub_uptime_seconds"] == "gauge"
    assert got.get("process_cpu_seconds_total") > 0
    assert got.get("process_resident_memory_bytes") > 0
    assert got.total("python_info") == 1
    assert got.total("rmas_build_info") == 1
    assert got.get("rmas_hub_uptime_seconds") >= 0
    # Every provider's series exist from the start, at zero, so rate() works from the first call.
    assert got.get("rmas_provider_calls_total", provider="SLTD", outcome="TIMEOUT") == 0
    assert ("rmas_provider_calls_total",
            frozenset({("provider", "SLTD"), ("outcome", "TIMEOUT")})) in got.samples  # fmt: skip
    assert "rmas_audit_backlog_entries" not in got.types  # no audit trail configured


async def test_two_hubs_in_one_process_keep_their_own_series() -> None:
    async with (
        running_hub(providers(), metrics_listen=ON) as a,
        running_hub(providers(), metrics_listen=ON) as b,
        grpc.aio.insecure_channel(a.target) as ch,
    ):
        await check_pb2_grpc.DocumentCheckStub(ch).CheckDocument(doc("LA1"), timeout=5)
        on_a, on_b = await scrape(a.metrics_port), await scrape(b.metrics_port)
    assert on_a.get("rmas_check_requests_total", channel="document") == 1
    assert on_b.get("rmas_check_requests_total", channel="document") == 0


async def test_metrics_are_off_unless_configured() -> None:
    async with running_hub(providers()) as hub:
        assert hub.metrics_port == 0


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ['"9464"', '"127.0.0.1"', '"127.0.0.1:99999"', "9464", '"0.0.0.0:9464"', '"10.1.2.3:9464"',
     '"127.0.0.1:50051"'],
)  # fmt: skip
def test_a_bad_metrics_listen_names_its_key(value: str) -> None:
    text = f'[hub]\nlisten = "127.0.0.1:50051"\nmetrics_listen = {value}\n'
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert info.value.key == "hub.metrics_listen"


def test_metrics_listen_is_parsed_and_off_by_default() -> None:
    assert parse_config("").hub.metrics_listen == ""
    cfg = parse_config('[hub]\nmetrics_listen = "[::1]:9464"\n')
    assert cfg.hub.metrics_listen == "[::1]:9464"


def test_with_tls_metrics_may_listen_on_any_interface(pki: Pki) -> None:
    d = pki.dir
    cfg = parse_config(
        f'[hub]\nlisten = "0.0.0.0:50051"\nmetrics_listen = "0.0.0.0:9464"\n'
        f'[tls]\ncert = "{d / "hub.pem"}"\nkey = "{d / "hub.key"}"\nca = "{d / "ca.pem"}"\n'
        '[[callers]]\nidentity = "rmas://airline/*"\nrole = "airline"\n'
    )
    assert cfg.hub.metrics_listen == "0.0.0.0:9464"


def test_a_hub_built_directly_refuses_a_non_loopback_metrics_port_without_tls() -> None:
    with pytest.raises(ConfigError) as info:
        HubServer(HubConfig(metrics_listen="0.0.0.0:9464"), providers())
    assert info.value.key == "hub.metrics_listen"


async def test_a_metrics_port_in_use_stops_the_hub_with_the_key() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = f"127.0.0.1:{s.getsockname()[1]}"
        with pytest.raises(ConfigError) as info:
            async with running_hub(providers(), metrics_listen=taken):
                pass
    assert info.value.key == "hub.metrics_listen"
