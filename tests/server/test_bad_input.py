"""Bad input from a stranger never becomes UNKNOWN, a traceback, an unbounded error or a lost
answer.

Everything goes through a real hub (and a real node) on loopback ports, as raw bytes where the
point is bytes no client library would send.
"""

from __future__ import annotations

import logging

import grpc
import pytest

from rmas.client import check_document_request, field_violations
from rmas.remote.node import ProviderNode
from rmas.testing import FakeProvider, running_hub
from rmas.v1 import check_pb2, check_pb2_grpc, common_pb2
from rmas.verdict import RecordStatus

#: Not a message of any type (a length running past the end).
CORRUPT = b"\x0a\xff\xff\xff\xff"
#: Field 1 a message whose field 1 is a string holding invalid UTF-8 (Document.issuing_state,
#: Flight.carrier, LookupItem.ref), and field 2 a string of invalid UTF-8 (mrz_lines).
BAD_UTF8_IN_1_1 = b"\x0a\x04\x0a\x02\xc3\x28"
BAD_UTF8_IN_2 = b"\x12\x02\xff\xfe"


def raw(ch: grpc.aio.Channel, method: str) -> grpc.aio.UnaryUnaryMultiCallable:
    return ch.unary_unary(method, request_serializer=lambda b: b, response_deserializer=lambda b: b)


@pytest.mark.parametrize(
    ("method", "payloads"),
    [("/rmas.v1.DocumentCheck/CheckDocument", [CORRUPT, BAD_UTF8_IN_1_1, BAD_UTF8_IN_2]),
     ("/rmas.v1.DocumentCheck/CheckManifest", [CORRUPT, BAD_UTF8_IN_1_1, BAD_UTF8_IN_2]),
     ("/rmas.v1.DocumentCheck/CheckPaxlst", [CORRUPT]),
     ("/rmas.v1.HubAdmin/Status", [CORRUPT])],
)  # fmt: skip
async def test_undecodable_requests_are_invalid_argument_without_a_traceback(
    method: str,
    payloads: list[bytes],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    async with (
        running_hub([FakeProvider.issuer("NZL", ["NZL"])]) as hub,
        grpc.aio.insecure_channel(hub.target) as ch,
    ):
        for payload in payloads:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await raw(ch, method)(payload, timeout=5)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
            assert "cannot be decoded" in (err.value.details() or "")
        # The hub is still there and answers a good request.
        resp = await check_pb2_grpc.DocumentCheckStub(ch).CheckDocument(
            check_document_request(number="LA1", state="NZL"), timeout=5
        )
        assert resp.result.verdict == check_pb2.VERDICT_CLEAR
    out, errs = capfd.readouterr()
    assert "Traceback" not in out + errs + caplog.text


async def test_a_node_answers_undecodable_batches_with_invalid_argument() -> None:
    node = ProviderNode(FakeProvider.issuer("NZL", ["NZL"]), "127.0.0.1:0")
    await node.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{node.port}") as ch:
            for payload in (CORRUPT, BAD_UTF8_IN_1_1):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await raw(ch, "/rmas.v1.DocumentStatusProvider/LookupBatch")(payload, timeout=5)
                assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        await node.stop(0)


async def test_errors_stay_bounded_whatever_the_input_size() -> None:
    # 1,500 bad MRZ lines once produced an error bigger than gRPC's metadata limit: the caller
    # got RESOURCE_EXHAUSTED from its own library instead of the hub's INVALID_ARGUMENT.
    async with (
        running_hub([FakeProvider.issuer("NZL", ["NZL"])]) as hub,
        grpc.aio.insecure_channel(hub.target) as ch,
    ):
        stub = check_pb2_grpc.DocumentCheckStub(ch)
        for lines in (["P<X" * 20] * 1500, ["X" * 100_000, "Y" * 100_000]):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.CheckDocument(check_pb2.CheckDocumentRequest(mrz_lines=lines),
                                         timeout=5)  # fmt: skip
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert len(err.value.details() or "") <= 1000
            trailer = sum(len(k) + len(v) for k, v in err.value.trailing_metadata() or ())
            assert trailer < 6000
            assert field_violations(err.value)


async def test_a_manifest_whose_answer_would_not_fit_is_refused_before_anything_is_checked() -> (
    None
):
    nzl = FakeProvider.issuer("NZL", ["NZL"])
    request = check_pb2.CheckManifestRequest()
    for i in range(900):
        t = request.travellers.add(ref=f"P{i}")
        t.document.CopyFrom(common_pb2.Document(issuing_state="NZL", number=f"LA{i:06d}"))
    async with (
        running_hub([nzl], max_message_bytes=1 << 20) as hub,
        grpc.aio.insecure_channel(hub.target) as ch,
    ):
        stub = check_pb2_grpc.DocumentCheckStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.CheckManifest(request, timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "message limit" in (err.value.details() or "")
        assert nzl.calls == []  # nothing was checked
        # Half of it fits, and is answered in full.
        del request.travellers[450:]
        resp = await stub.CheckManifest(request, timeout=10)
    assert len(resp.results) == 450
    assert len(nzl.calls) == 1


async def test_an_overlong_reference_invalidates_its_traveller_only() -> None:
    nzl = FakeProvider.issuer("NZL", ["NZL"], {("NZL", "LA000002"): RecordStatus.STOLEN})
    request = check_pb2.CheckManifestRequest()
    for ref, number in (("R" * 10_000, "LA000001"), ("P2", "LA000002")):
        t = request.travellers.add(ref=ref)
        t.document.CopyFrom(common_pb2.Document(issuing_state="NZL", number=number))
    async with running_hub([nzl]) as hub, grpc.aio.insecure_channel(hub.target) as ch:
        resp = await check_pb2_grpc.DocumentCheckStub(ch).CheckManifest(request, timeout=5)
    long_ref, stolen = resp.results
    assert long_ref.verdict == check_pb2.VERDICT_INVALID_DATA
    assert len(long_ref.ref) == 70
    assert long_ref.problems[0].field == "travellers[0].ref"
    assert (stolen.ref, stolen.verdict) == ("P2", check_pb2.VERDICT_ALERT)
