"""The conformance kit passes against our own node and fails, saying why, against broken ones."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import grpc

from rmas.documents import DocumentQuery, normalise_number
from rmas.remote.conformance import run_conformance
from rmas.remote.node import ProviderNode
from rmas.testing import FakeProvider
from rmas.v1 import common_pb2, provider_pb2, provider_pb2_grpc
from rmas.verdict import Record, RecordStatus
from tests.conftest import Pki


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
    # Our node passes every check, key_echo included (it echoes each result's key).
    assert [r.name for r in results if not r.passed] == [], results
    assert len(results) == 12
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["passed"] is True
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses["known_statuses"] == "PASS"


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
    assert ["FAIL", "refs_in_order"] in [line.split()[:2] for line in out.stdout.splitlines()]


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


class Echoing(provider_pb2_grpc.DocumentStatusProviderServicer):
    """A tiny node answering NO_RECORD for everything; ``echo`` says whether each result
    carries its item's key (issuing_state, normalised number)."""

    def __init__(self, echo: bool) -> None:
        self.echo = echo

    async def Describe(self, request: object, context: object) -> provider_pb2.DescribeResponse:
        return provider_pb2.DescribeResponse(provider_id="TINY", issuing_states=["NZL"])

    async def LookupBatch(
        self,
        request: provider_pb2.LookupBatchRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> provider_pb2.LookupBatchResponse:
        out = provider_pb2.LookupBatchResponse()
        for item in request.items:
            d = item.document
            if not d.number or len(d.number) > 20 or d.issuing_state != "NZL":
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad item")
            r = out.results.add(ref=item.ref)
            r.record.status = common_pb2.RECORD_STATUS_NO_RECORD
            if self.echo:
                r.issuing_state = d.issuing_state
                r.number = normalise_number(d.number)
        return out


async def _tiny(echo: bool) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    provider_pb2_grpc.add_DocumentStatusProviderServicer_to_server(Echoing(echo), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


async def test_key_echo_passes_a_node_that_echoes_and_fails_one_that_does_not() -> None:
    good, good_target = await _tiny(echo=True)
    bad, bad_target = await _tiny(echo=False)
    try:
        ok = {r.name: r for r in await run_conformance(good_target)}
        out = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "rmas.cli", "conformance", "--target", bad_target],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        await good.stop(0)
        await bad.stop(0)
    assert ok["key_echo"].status == "PASS", ok["key_echo"]
    assert "Traceback" not in out.stderr
    assert out.returncode == 1
    line = next(x for x in out.stdout.splitlines() if "key_echo" in x)
    assert line.startswith("FAIL")
    assert "issuing_state" in line and "normalised number" in line


async def test_checks_that_cannot_run_are_skipped_never_passed() -> None:
    """No --known documents, no declared batch limit: SKIPPED, and said why."""
    server, target = await _tiny(echo=True)
    try:
        out = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "rmas.cli", "conformance", "--target", target, "--json"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        await server.stop(0)
    report = json.loads(out.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    for name in ("known_statuses", "batch_limit"):
        assert checks[name]["status"] == "SKIPPED", checks[name]
        assert checks[name]["passed"] is False
    assert "--known" in checks["known_statuses"]["detail"]
    assert report["skipped"] == 2


async def test_a_node_that_cannot_be_reached_fails_every_check() -> None:
    from tests.hubproc import free_port

    results = await run_conformance(f"127.0.0.1:{free_port()}", call_timeout_s=1.0)
    assert results[0].status == "FAIL"
    assert all(r.status in ("FAIL", "SKIPPED") for r in results)
    assert not any(r.passed for r in results)


def test_a_tls_node_without_callers_passes_the_kit_over_tls(tmp_path: Path, pki: Pki) -> None:
    """`rmas provider serve` with [tls] and no [[callers]] (a hub's table), and the kit
    connecting as a hub does: --tls-cert/--tls-key/--tls-ca."""
    from tests.hubproc import free_port

    d = pki.dir
    port = free_port()
    cfg = tmp_path / "node.toml"
    cfg.write_text(
        f"[tls]\ncert = '{d}/node.pem'\nkey = '{d}/node.key'\nca = '{d}/ca.pem'\n"
        "[[providers]]\nid = 'NZL'\nkind = 'fake'\nissuing_states = ['NZL']\n"
        "records = { 'NZL:LA000002' = 'STOLEN' }\n"
    )
    node = subprocess.Popen(
        [sys.executable, "-m", "rmas.cli", "provider", "serve", "--config", str(cfg),
         "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _wait_for(node, port)
        target = f"127.0.0.1:{port}"
        tls = ["--tls-cert", str(d / "hub.pem"), "--tls-key", str(d / "hub.key"),
               "--tls-ca", str(d / "ca.pem")]  # fmt: skip
        secure = subprocess.run(
            [sys.executable, "-m", "rmas.cli", "conformance", "--target", target, *tls,
             "--known", "NZL:LA000002:STOLEN", "--json"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        plain = subprocess.run(
            [sys.executable, "-m", "rmas.cli", "conformance", "--target", target,
             "--timeout", "3"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    finally:
        node.send_signal(signal.SIGTERM)
        node.wait(20)
    assert "Traceback" not in secure.stderr + plain.stderr
    report = json.loads(secure.stdout)
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    # Everything passes over TLS but the key echo the lead's node change adds (issue 15).
    assert {n for n, s in statuses.items() if s != "PASS"} <= {"key_echo"}, report
    assert statuses["describe"] == statuses["known_statuses"] == "PASS"
    # Without certificates nothing passes, and the kit says which options to pass.
    assert plain.returncode == 1
    describe = next(x for x in plain.stdout.splitlines() if "describe" in x)
    assert describe.startswith("FAIL")
    assert "--tls-cert" in describe
    assert "0 passed" in plain.stdout


def test_a_hub_config_with_tls_and_no_callers_says_why(tmp_path: Path, pki: Pki) -> None:
    d = pki.dir
    cfg = tmp_path / "hub.toml"
    cfg.write_text(f"[tls]\ncert = '{d}/hub.pem'\nkey = '{d}/hub.key'\nca = '{d}/ca.pem'\n")
    out = subprocess.run([sys.executable, "-m", "rmas.cli", "serve", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "[[callers]]" in out.stderr and "national node" in out.stderr


def _wait_for(proc: subprocess.Popen[str], port: int) -> None:
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(proc.communicate()[1][-2000:])
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"node did not listen on {port}")
