"""The adapter kit on the SLTD-style adapter, with a real service over HTTP: the breaker the hub
puts around every configured provider (the service goes down, the real hub stops calling it),
and the in-process conformance checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc

from adapters.sltd.adapter import SltdProvider
from adapters.sltd.service import RunningService
from rmas.client import check_document_request, result_to_dict
from rmas.config import parse_config
from rmas.plugins import build_providers
from rmas.providers import ProviderInfo, Scope
from rmas.resilience import BreakerState, Guarded
from rmas.testing import FakeProvider, check_provider, running_hub
from rmas.v1 import check_pb2, check_pb2_grpc


def configured(url: str, tmp_path: Path, extra: str = "") -> Guarded:
    cfg = parse_config(
        f"[[providers]]\nid = 'SLTD'\nkind = 'sltd'\nscope = 'global'\nurl = '{url}'\n"
        f"token = 'nz-token'\n{extra}",
        base_dir=tmp_path,
    )
    (sltd,) = build_providers(cfg.providers)  # as the hub builds its configured providers
    assert isinstance(sltd, Guarded)
    return sltd


async def check(target: str) -> dict[str, Any]:
    async with grpc.aio.insecure_channel(target) as ch:
        resp = await check_pb2_grpc.DocumentCheckStub(ch).CheckDocument(
            check_document_request(number="LA000001", state="NZL")
        )
    return result_to_dict(resp.result)


async def test_a_central_store_that_goes_down_opens_its_breaker_in_the_hub(
    service: RunningService, tmp_path: Path
) -> None:
    sltd = configured(service.url, tmp_path, "breaker_failures = 2\nbreaker_reset_ms = 60000\n")
    nzl = FakeProvider.issuer("NZL", ["NZL"])
    async with running_hub([nzl, sltd], deadline_ms=2000) as hub:
        assert (await check(hub.target))["verdict"] == "CLEAR"
        await service.close()  # the central store goes down
        errors = []
        for _ in range(3):
            r = await check(hub.target)
            assert r["verdict"] == "INCOMPLETE"  # a required store that does not answer
            source = next(s for s in r["sources"] if s["provider"] == "SLTD")
            assert source["outcome"] == "UNAVAILABLE"
            errors.append(source.get("error", ""))
        # Two calls failed against the dead store; the third was refused by the open breaker.
        assert "circuit open for SLTD" not in errors[0] + errors[1]
        assert errors[2] == "circuit open for SLTD"
        assert sltd.guard.breaker.state is BreakerState.OPEN
        async with grpc.aio.insecure_channel(hub.target) as ch:
            st = await check_pb2_grpc.HubAdminStub(ch).Status(check_pb2.StatusRequest())
        shown = next(p for p in st.providers if p.provider_id == "SLTD")
        assert (shown.breaker, shown.health) == ("open", "down")
    await sltd.aclose()


def test_the_breaker_and_bulkhead_keys_are_common_to_every_kind(tmp_path: Path) -> None:
    sltd = configured(
        "http://127.0.0.1:1",
        tmp_path,
        "max_in_flight = 3\nbreaker_failures = 4\nbreaker_reset_ms = 700\n"
        "breaker_min_budget_ms = 20\n",
    )
    guard = sltd.guard
    assert (guard.bulkhead.limit, guard.breaker.failures, guard.breaker.reset_s) == (3, 4, 0.7)
    assert guard.min_budget_s == 0.02
    # Absent: no bulkhead bound for a local or HTTP store, the breaker's defaults.
    plain = configured("http://127.0.0.1:1", tmp_path).guard
    assert (plain.bulkhead.limit, plain.breaker.failures, plain.breaker.reset_s) == (0, 5, 5.0)


async def test_the_sltd_adapter_conforms(service: RunningService) -> None:
    p = SltdProvider(ProviderInfo(id="SLTD", scope=Scope.GLOBAL), service.url, "nz-token")
    try:
        results = await check_provider(p, states=["NZL"], known=[("NZL", "LS900001", "STOLEN")])
    finally:
        await p.aclose()
    status = {r.name: r.status for r in results}
    assert {r.name: r.detail for r in results if r.status == "FAIL"} == {}
    assert status["known_statuses"] == "PASS"
    assert status["abtc_cards"] == "SKIPPED"  # no cards in an SLTD-style store
