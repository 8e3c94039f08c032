"""Helpers for the national-node tests."""

from __future__ import annotations

import grpc

from rmas.v1 import common_pb2, provider_pb2, provider_pb2_grpc


async def node_echoes_keys(port: int) -> bool:
    """Whether our node on ``port`` echoes each result's key (issuing_state, normalised number):
    the lead's change for issue 15 adds it to rmas/remote/node.py. Until it is in, conformance
    tests of our node expect ``key_echo`` to be the one check that fails."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        resp = await provider_pb2_grpc.DocumentStatusProviderStub(ch).LookupBatch(
            provider_pb2.LookupBatchRequest(items=[provider_pb2.LookupItem(
                ref="x", document=common_pb2.Document(issuing_state="NZL", number="ab-1"))]),
            timeout=5,
        )  # fmt: skip
    return resp.results[0].number == "AB1"
