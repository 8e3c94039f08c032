"""National nodes and the hub's remote client, through real gRPC servers and processes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc
import pytest

from rmas.client import check_document_request, result_to_dict
from rmas.documents import DocumentQuery
from rmas.errors import ProviderError, ProviderTimeout, ProviderUnavailable
from rmas.providers import ProviderInfo
from rmas.remote.client import RemoteProvider
from rmas.remote.node import ProviderNode
from rmas.resilience import BreakerState
from rmas.testing import FakeProvider, running_hub
from rmas.v1 import check_pb2, check_pb2_grpc, common_pb2, provider_pb2, provider_pb2_grpc
from rmas.verdict import Record, RecordStatus
from tests.hubproc import free_port

NZL = ProviderInfo(id="NZL", issuing_states=frozenset({"NZL"}))


async def node_for(provider: object, max_batch: int = 1000) -> ProviderNode:
    node = ProviderNode(provider, "127.0.0.1:0", max_batch=max_batch)  # type: ignore[arg-type]
    await node.start()
    return node


@pytest.fixture
async def nzl_node() -> AsyncIterator[tuple[ProviderNode, FakeProvider]]:
    fake = FakeProvider.issuer("NZL", ["NZL"], {("NZL", "LA000002"): RecordStatus.STOLEN})
    node = await node_for(fake, max_batch=3)
    try:
        yield node, fake
    finally:
        await node.stop(0)


def remote(port: int, **kw: object) -> RemoteProvider:
    return RemoteProvider(NZL, f"127.0.0.1:{port}", **kw)  # type: ignore[arg-type]


def qs(*numbers: str) -> list[DocumentQuery]:
    return [DocumentQuery("NZL", n) for n in numbers]


async def hub_check(target: str, number: str) -> dict[str, object]:
    async with grpc.aio.insecure_channel(target) as ch:
        resp = await check_pb2_grpc.DocumentCheckStub(ch).CheckDocument(
            check_document_request(number=number, state="NZL"), timeout=5
        )
    return result_to_dict(resp.result)


async def test_a_remote_node_answers_like_a_local_provider_and_batches_are_split(
    nzl_node: tuple[ProviderNode, FakeProvider],
) -> None:
    node, fake = nzl_node
    client = remote(node.port)
    try:
        recs = await client.lookup_many(qs("LA1", "LA000002", "LA3", "LA4", "LA5"),
                                        time.monotonic() + 5)  # fmt: skip
        assert client.described is not None
        assert list(client.described.issuing_states) == ["NZL"]
        assert client.max_batch == 3
    finally:
        await client.aclose()
    assert [r.status for r in recs] == [RecordStatus.NO_RECORD, RecordStatus.STOLEN] + [
        RecordStatus.NO_RECORD
    ] * 3
    assert [len(c) for c in fake.calls] == [3, 2]


async def test_the_node_refuses_malformed_requests_naming_each_item(
    nzl_node: tuple[ProviderNode, FakeProvider],
) -> None:
    node, _ = nzl_node
    from rmas.client import field_violations

    async with grpc.aio.insecure_channel(f"127.0.0.1:{node.port}") as ch:
        stub = provider_pb2_grpc.DocumentStatusProviderStub(ch)
        req = provider_pb2.LookupBatchRequest(items=[
            provider_pb2.LookupItem(ref="a", document=common_pb2.Document(issuing_state="QQQ",
                                                                          number="A1")),
            provider_pb2.LookupItem(ref="b", document=common_pb2.Document(issuing_state="NZL")),
            provider_pb2.LookupItem(ref="c"),
        ])  # fmt: skip
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await stub.LookupBatch(req)
        too_many = provider_pb2.LookupBatchRequest(items=[
            provider_pb2.LookupItem(ref=str(i), document=common_pb2.Document(
                issuing_state="NZL", number=f"A{i}")) for i in range(4)
        ])  # fmt: skip
        with pytest.raises(grpc.aio.AioRpcError) as big:
            await stub.LookupBatch(too_many)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(bad.value)] == [
        "items[0].document.issuing_state", "items[1].document.number", "items[2].document",
    ]  # fmt: skip
    assert big.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_hanging_node_times_out_while_other_providers_answer() -> None:
    hang = await node_for(FakeProvider.issuer("NZL", ["NZL"], failure="hang"))
    sltd = FakeProvider.global_("SLTD")
    try:
        async with running_hub([remote(hang.port), sltd], deadline_ms=300) as hub:
            start = time.monotonic()
            r = await hub_check(hub.target, "LA1")
            elapsed = time.monotonic() - start
    finally:
        await hang.stop(0)
    outcomes = {s["provider"]: s["outcome"] for s in r["sources"]}  # type: ignore[attr-defined]
    assert outcomes == {"NZL": "TIMEOUT", "SLTD": "ANSWERED"}
    assert r["verdict"] == "INCOMPLETE"
    assert elapsed < 1.0


async def test_a_slow_node_is_waited_for_within_the_deadline_and_no_longer() -> None:
    slow = await node_for(FakeProvider.issuer("NZL", ["NZL"], latency_s=0.15))
    sltd = FakeProvider.global_("SLTD")
    try:
        async with running_hub([remote(slow.port), sltd], deadline_ms=400) as hub:
            in_time = await hub_check(hub.target, "LA1")
        async with running_hub([remote(slow.port), sltd], deadline_ms=100) as hub:
            start = time.monotonic()
            too_slow = await hub_check(hub.target, "LA1")
            elapsed = time.monotonic() - start
    finally:
        await slow.stop(0)
    assert in_time["verdict"] == "CLEAR"
    assert in_time["sources"][0]["latency_ms"] >= 150  # type: ignore[index]
    assert too_slow["verdict"] == "INCOMPLETE"
    assert [s["outcome"] for s in too_slow["sources"]] == ["TIMEOUT", "ANSWERED"]  # type: ignore[attr-defined]
    assert elapsed < 0.5


async def test_the_node_stops_work_when_the_callers_deadline_passes() -> None:
    cancelled = asyncio.Event()

    class Slow(FakeProvider):
        async def lookup_many(
            self, queries: Sequence[DocumentQuery], deadline: float
        ) -> list[Record]:
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                cancelled.set()
                raise
            return []

    node = await node_for(Slow(info=NZL))
    client = remote(node.port, retries=0)
    try:
        start = time.monotonic()
        with pytest.raises(ProviderTimeout):
            await client.lookup_many(qs("LA1"), start + 0.2)
        assert time.monotonic() - start < 0.6
        await asyncio.wait_for(cancelled.wait(), 2)
    finally:
        await client.aclose()
        await node.stop(0)


async def _raw_server(handler: object) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)  # type: ignore[arg-type]
    return server, server.sockets[0].getsockname()[1]


async def test_a_node_that_resets_connections_or_speaks_garbage_is_unavailable() -> None:
    async def reset(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.transport.abort()

    async def garbage(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"HTTP/1.0 200 OK\r\n\r\nthis is not gRPC" * 10)
        await w.drain()
        w.close()

    for handler in (reset, garbage):
        server, port = await _raw_server(handler)
        client = remote(port, retries=1)
        try:
            with pytest.raises(ProviderUnavailable):
                await client.lookup_many(qs("LA1"), time.monotonic() + 1)
        finally:
            await client.aclose()
            server.close()


async def test_a_node_that_answers_nonsense_is_an_error() -> None:
    class Liar(provider_pb2_grpc.DocumentStatusProviderServicer):
        async def Describe(self, request: object, context: object) -> provider_pb2.DescribeResponse:
            return provider_pb2.DescribeResponse(provider_id="NZL", issuing_states=["NZL"])

        async def LookupBatch(
            self, request: provider_pb2.LookupBatchRequest, context: object
        ) -> provider_pb2.LookupBatchResponse:
            out = provider_pb2.LookupBatchResponse()
            for item in reversed(request.items):  # wrong order
                out.results.add(ref=item.ref).record.status = common_pb2.RECORD_STATUS_STOLEN
            return out

    server = grpc.aio.server()
    provider_pb2_grpc.add_DocumentStatusProviderServicer_to_server(Liar(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    client = remote(port)
    try:
        with pytest.raises(ProviderError, match="ref"):
            await client.lookup_many(qs("LA1", "LA2"), time.monotonic() + 2)
    finally:
        await client.aclose()
        await server.stop(0)


async def test_the_bulkhead_refuses_at_once_past_its_limit() -> None:
    node = await node_for(FakeProvider.issuer("NZL", ["NZL"], latency_s=0.3))
    client = remote(node.port, max_in_flight=1)
    try:
        first = asyncio.create_task(client.lookup_many(qs("LA1"), time.monotonic() + 2))
        await asyncio.sleep(0.1)
        start = time.monotonic()
        with pytest.raises(ProviderUnavailable, match="in flight"):
            await client.lookup_many(qs("LA2"), time.monotonic() + 2)
        assert time.monotonic() - start < 0.05
        assert len(await first) == 1
    finally:
        await client.aclose()
        await node.stop(0)


async def test_a_hedged_request_answers_before_a_slow_first_one() -> None:
    class FirstSlow(FakeProvider):
        async def lookup_many(
            self, queries: Sequence[DocumentQuery], deadline: float
        ) -> list[Record]:
            self.calls.append(list(queries))
            if len(self.calls) == 1:
                await asyncio.sleep(1.0)
            return [Record(RecordStatus.NO_RECORD) for _ in queries]

    fake = FirstSlow(info=NZL)
    node = await node_for(fake)
    client = remote(node.port, hedge_after_s=0.05)
    try:
        start = time.monotonic()
        recs = await client.lookup_many(qs("LA1"), start + 2)
        assert time.monotonic() - start < 0.5
        assert recs[0].status is RecordStatus.NO_RECORD
        assert len(fake.calls) == 2
    finally:
        await client.aclose()
        await node.stop(0)


def _node_process(tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    cfg = tmp_path / "node.toml"
    cfg.write_text(
        '[[providers]]\nid = "NZL"\nkind = "fake"\nissuing_states = ["NZL"]\n'
        'records = { "NZL:LA000002" = "STOLEN" }\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "rmas.cli", "provider", "serve", "--config", str(cfg),
         "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("node did not start")


async def test_a_killed_node_opens_the_breaker_and_the_hub_recovers_when_it_returns(
    tmp_path: Path,
) -> None:
    port = free_port()
    proc = await asyncio.to_thread(_node_process, tmp_path, port)
    client = remote(port, breaker_failures=2, breaker_reset_s=0.3, retries=0)
    sltd = FakeProvider.global_("SLTD")
    try:
        async with running_hub([client, sltd], deadline_ms=500) as hub:
            assert (await hub_check(hub.target, "LA000002"))["verdict"] == "ALERT"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
            outcomes = []
            for _ in range(4):
                r = await hub_check(hub.target, "LA1")
                outcomes.append(r["sources"][0]["outcome"])  # type: ignore[index]
                assert r["verdict"] == "INCOMPLETE"
                assert r["sources"][1]["outcome"] == "ANSWERED"  # type: ignore[index]
            assert client.breaker.state is BreakerState.OPEN
            assert set(outcomes) <= {"UNAVAILABLE", "TIMEOUT"}
            async with grpc.aio.insecure_channel(hub.target) as ch:
                st = await check_pb2_grpc.HubAdminStub(ch).Status(check_pb2.StatusRequest())
            nzl = next(p for p in st.providers if p.provider_id == "NZL")
            assert (nzl.breaker, nzl.health, nzl.target) == ("open", "down", f"127.0.0.1:{port}")
            assert nzl.failures >= 1
            assert list(nzl.described_states) == ["NZL"]
            proc = await asyncio.to_thread(_node_process, tmp_path, port)
            await asyncio.sleep(0.4)  # past the breaker's reset interval
            recovered = None
            for _ in range(20):
                r = await hub_check(hub.target, "LA000002")
                if r["verdict"] == "ALERT":
                    recovered = r
                    break
                await asyncio.sleep(0.2)
            assert recovered is not None
            assert client.breaker.state is BreakerState.CLOSED
            assert client.snapshot()["times_opened"] >= 1
    finally:
        proc.kill()
        proc.wait(5)
