"""What a verdict rests on is visible: whether the issuer was consulted, and, for airlines under a
fail-open policy, whether an OK_TO_BOARD was checked at all. Through real hubs, with and without
mutual TLS (the airline's view is only reachable with a certificate)."""

from __future__ import annotations

import grpc

from rmas.client import check_document_request
from rmas.security.access import CallerRule, Role
from rmas.testing import FakeProvider, running_hub
from rmas.v1 import check_pb2, check_pb2_grpc
from tests.conftest import Pki


async def test_a_clear_from_the_global_stores_alone_says_the_issuer_was_not_consulted() -> None:
    providers = [FakeProvider.issuer("NZL", ["NZL"]), FakeProvider.global_("SLTD")]
    async with (
        running_hub(providers) as hub,
        grpc.aio.insecure_channel(hub.target) as ch,
    ):
        stub = check_pb2_grpc.DocumentCheckStub(ch)
        nzl = (await stub.CheckDocument(check_document_request(number="A1", state="NZL"))).result
        fra = (await stub.CheckDocument(check_document_request(number="A1", state="FRA"))).result
    assert (nzl.verdict, nzl.issuer_consulted) == (check_pb2.VERDICT_CLEAR, True)
    assert (fra.verdict, fra.issuer_consulted) == (check_pb2.VERDICT_CLEAR, False)
    assert any("not consulted" in w for w in fra.warnings)
    assert not any("not consulted" in w for w in nzl.warnings)


async def test_an_issuer_that_was_asked_but_failed_was_still_consulted() -> None:
    providers = [FakeProvider.issuer("NZL", ["NZL"], failure="unavailable"),
                 FakeProvider.global_("SLTD")]  # fmt: skip
    async with (
        running_hub(providers) as hub,
        grpc.aio.insecure_channel(hub.target) as ch,
    ):
        r = (
            await check_pb2_grpc.DocumentCheckStub(ch).CheckDocument(
                check_document_request(number="A1", state="NZL")
            )
        ).result
    assert (r.verdict, r.issuer_consulted) == (check_pb2.VERDICT_INCOMPLETE, True)


async def test_an_airline_tells_an_unchecked_ok_to_board_from_a_checked_one(pki: Pki) -> None:
    providers = [FakeProvider.issuer("NZL", ["NZL"]),
                 FakeProvider.issuer("AUS", ["AUS"], failure="unavailable")]  # fmt: skip
    callers = (CallerRule("rmas://airline/QF", Role.AIRLINE),)
    async with (
        running_hub(providers, tls=pki.tls("hub"), callers=callers, on_incomplete="board") as hub,
        grpc.aio.secure_channel(hub.target, pki.creds("airline")) as ch,
    ):
        stub = check_pb2_grpc.DocumentCheckStub(ch)
        ok = (await stub.CheckDocument(check_document_request(number="A1", state="NZL"))).result
        unchecked = (
            await stub.CheckDocument(check_document_request(number="A1", state="AUS"))
        ).result
    assert (ok.directive, ok.unchecked) == (check_pb2.DIRECTIVE_OK_TO_BOARD, False)
    assert (unchecked.directive, unchecked.unchecked) == (check_pb2.DIRECTIVE_OK_TO_BOARD, True)
    # Still the airline's view: no verdict, no sources.
    assert unchecked.verdict == check_pb2.VERDICT_UNSPECIFIED
    assert not unchecked.sources
