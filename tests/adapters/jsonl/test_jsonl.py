"""The worked example adapter, through the real hub and as a remote node passing conformance."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import grpc

from adapters.jsonl.provider import JsonlProvider
from rmas.client import check_document_request, result_to_dict
from rmas.config import parse_config
from rmas.plugins import build_providers
from rmas.remote.conformance import run_conformance
from rmas.remote.node import ProviderNode
from rmas.resilience import Guarded
from rmas.testing import running_hub
from rmas.v1 import check_pb2_grpc

LINES = [
    {"issuing_state": "NZL", "number": "LA000002", "status": "STOLEN", "reported_on": "2024-03-05",
     "record_ref": "DIA-77"},
    {"issuing_state": "nz", "number": "la-000003", "status": "revoked"},
    {"issuing_state": "QQQ", "number": "X", "status": "STOLEN"},
    "not json",
]  # fmt: skip


def write(path: Path, lines: list[object]) -> None:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")


async def test_the_example_adapter_serves_its_export_and_reloads_it(tmp_path: Path) -> None:
    export = tmp_path / "nzl.jsonl"
    write(export, LINES)
    cfg = parse_config(
        "[[providers]]\nid='NZL'\nkind='jsonl'\npath='nzl.jsonl'\nissuing_states=['NZL']\n",
        base_dir=tmp_path,
    )
    (guarded,) = build_providers(cfg.providers)  # through the entry point, as the hub does
    assert isinstance(guarded, Guarded)  # behind the breaker the hub puts around every provider
    provider = guarded.provider
    assert isinstance(provider, JsonlProvider)
    async with running_hub([guarded]) as hub, grpc.aio.insecure_channel(hub.target) as ch:
        stub = check_pb2_grpc.DocumentCheckStub(ch)

        async def verdict(number: str) -> str:
            r = await stub.CheckDocument(check_document_request(number=number, state="NZL"))
            return str(result_to_dict(r.result)["verdict"])

        assert [await verdict(n) for n in ("LA000002", "LA000003", "LA000004")] == [
            "ALERT", "ALERT", "CLEAR",
        ]  # fmt: skip
        write(export, [*LINES, {"issuing_state": "NZL", "number": "LA000004", "status": "LOST"}])
        os.utime(export, (time.time() + 5, time.time() + 5))
        provider._checked = 0.0  # skip the once-a-second check interval
        assert await verdict("LA000004") == "ALERT"


async def test_the_example_adapter_passes_conformance_as_a_node(tmp_path: Path) -> None:
    export = tmp_path / "nzl.jsonl"
    write(export, LINES)
    from rmas.providers import ProviderInfo

    provider = JsonlProvider(ProviderInfo(id="NZL", issuing_states=frozenset({"NZL"})), export)
    node = ProviderNode(provider, "127.0.0.1:0", max_batch=100)
    port = await node.start()
    try:
        results = await run_conformance(
            f"127.0.0.1:{port}",
            known=[("NZL", "LA000002", "STOLEN"), ("NZL", "LA000003", "REVOKED")],
        )
    finally:
        await node.stop(0)
    assert [r.name for r in results if not r.passed] == []
