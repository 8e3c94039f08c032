"""The conformance kit passes against our own node and fails, saying why, against broken ones."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Sequence

import grpc

from rmas.documents import DocumentQuery
from rmas.remote.conformance import run_conformance
from rmas.remote.node import ProviderNode
from rmas.testing import FakeProvider
from rmas.v1 import common_pb2, provider_pb2, provider_pb2_grpc
from rmas.verdict import Record, RecordStatus


async def test_our_node_passes_every_check() -> None:
    records = {("NZL", "LA000002"): RecordStatus.STOLEN, ("NZL", "LA000003"): RecordStatus.REVOKED}
    fake = FakeProvider.issuer("NZL", ["NZL"], records)
    node = ProviderNode(fake, "127.0.0.1:0", max_batch=200)
    port = await node.start()
    try:
        results = await run_conformance(
            f"127.0.0.1:{port}",
            known=[("NZL", "LA000002", "STOLEN"), ("NZL", "LA000003", "REVOKED")],
        )
        # The CLI, as a user runs it, against the same node.
        out = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "rmas.cli", "conformance", "--target", f"127.0.0.1:{port}",
             "--known", "NZL:LA000002:STOLEN", "--json"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        await node.stop(0)
    assert [r.name for r in results if not r.passed] == [], results
    assert len(results) == 10
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["passed"] is True


class Broken(provider_pb2_grpc.DocumentStatusProviderServicer):
    """Reorders results, accepts anything, and ignores deadlines."""

    async def Describe(self, request: object, context: object) -> provider_pb2.DescribeResponse:
        return provider_pb2.DescribeResponse(provider_id="BAD", issuing_states=["NZL"],
                                             max_batch_size=50)  # fmt: skip

    async def LookupBatch(
        self, request: provider_pb2.LookupBatchRequest, context: object
    ) -> provider_pb2.LookupBatchResponse:
        if len(request.items) > 40:
            time.sleep(0.5)  # noqa: ASYNC251 - the fault under test: blocking work past the deadline
        out = provider_pb2.LookupBatchResponse()
        for item in reversed(request.items):
            out.results.add(ref=item.ref).record.status = common_pb2.RECORD_STATUS_NO_RECORD
        return out


async def test_a_broken_node_fails_with_clear_messages() -> None:
    server = grpc.aio.server()
    provider_pb2_grpc.add_DocumentStatusProviderServicer_to_server(Broken(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        results = {r.name: r for r in await run_conformance(f"127.0.0.1:{port}")}
        out = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "rmas.cli", "conformance", "--target", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        await server.stop(0)
    assert not results["refs_in_order"].passed
    assert "refs" in results["refs_in_order"].detail
    assert not results["malformed_requests"].passed
    assert "unknown state code: answered" in results["malformed_requests"].detail
    assert not results["deadline"].passed
    assert not results["batch_limit"].passed
    assert results["describe"].passed
    assert out.returncode == 1
    assert "FAIL  refs_in_order" in out.stdout


async def test_a_wrong_known_status_fails() -> None:
    class Forgetful(FakeProvider):
        async def lookup_many(
            self, queries: Sequence[DocumentQuery], deadline: float
        ) -> list[Record]:
            return [Record(RecordStatus.NO_RECORD) for _ in queries]

    node = ProviderNode(Forgetful.issuer("NZL", ["NZL"]), "127.0.0.1:0")
    port = await node.start()
    try:
        results = {r.name: r for r in await run_conformance(
            f"127.0.0.1:{port}", known=[("NZL", "LA000002", "STOLEN")])}  # fmt: skip
    finally:
        await node.stop(0)
    assert not results["known_statuses"].passed
    assert "NZL:LA000002 answered NO_RECORD, expected STOLEN" in results["known_statuses"].detail
