"""A hub's life as an operator sees it: drain on SIGTERM, reload on SIGHUP, shed load when
overloaded, and report NOT_SERVING while it cannot answer. Real ``rmas serve`` processes."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rmas.audit.entry import DocumentKeyer
from rmas.audit.format import decode
from rmas.audit.sink import AuditSink
from rmas.audit.trail import AuditTrail
from rmas.client import document_pb
from rmas.config import HubConfig
from rmas.server.app import HubServer
from rmas.testing import FakeProvider
from rmas.v1 import check_pb2, check_pb2_grpc
from rmas.verdict import RecordStatus
from tests.hubproc import free_port, serve

BASE = """
[hub]
listen = "127.0.0.1:{port}"
deadline_ms = {deadline_ms}
drain_grace_ms = {grace_ms}

[audit]
url = "sqlite+aiosqlite:///audit.db"
key_file = "audit.key"
"""
NZL = """
[[providers]]
id = "NZL"
kind = "fake"
issuing_states = ["NZL"]
records = {{ "NZL:LA000002" = "STOLEN" }}
latency_ms = {latency_ms}
failure = "{failure}"
"""
AUS = """
[[providers]]
id = "AUS"
kind = "fake"
issuing_states = ["AUS"]
records = { "AUS:PA9999999" = "NOT_ISSUED" }
"""


class Hub:
    """An ``rmas serve`` process in a folder of its own."""

    def __init__(self, folder: Path, config: str) -> None:
        self.folder = folder
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        (folder / "audit.key").write_text(os.urandom(32).hex())
        self.write(config)
        self.proc = serve(folder / "hub.toml", self.port, stdout=subprocess.PIPE)

    def write(self, config: str) -> None:
        text = config.replace("{port}", str(getattr(self, "port", 0)))
        (self.folder / "hub.toml").write_text(text)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def finish(self, timeout: float = 20) -> tuple[int, str]:
        _out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err

    def audit_ids(self) -> set[str]:
        with sqlite3.connect(self.folder / "audit.db") as conn:
            blocks = conn.execute("SELECT format, body FROM audit_block").fetchall()
        return {e.check_id for (fmt, body) in blocks for e in decode(fmt, body)}


def config(*, deadline_ms: int = 1500, grace_ms: int = 10_000, latency_ms: int = 0,
           failure: str = "", aus: bool = False) -> str:  # fmt: skip
    text = BASE.replace("{deadline_ms}", str(deadline_ms)).replace("{grace_ms}", str(grace_ms))
    text += NZL.format(latency_ms=latency_ms, failure=failure).replace("{{", "{").replace("}}", "}")
    return text + (AUS if aus else "")


async def check(
    target: str, number: str = "LA000002", state: str = "NZL", wait_s: float = 10
) -> check_pb2.CheckDocumentResponse:
    async with grpc.aio.insecure_channel(target) as ch:
        resp: check_pb2.CheckDocumentResponse = await check_pb2_grpc.DocumentCheckStub(
            ch
        ).CheckDocument(
            check_pb2.CheckDocumentRequest(document=document_pb(number=number, state=state)),
            timeout=wait_s,
        )
    return resp


# --- SIGTERM ------------------------------------------------------------------------------------


async def test_sigterm_answers_every_check_in_flight_refuses_new_ones_and_exits_0(
    tmp_path: Path,
) -> None:
    hub = Hub(tmp_path, config(latency_ms=700))
    try:
        in_flight = [asyncio.create_task(check(hub.target)) for _ in range(20)]
        await asyncio.sleep(0.3)  # all twenty are waiting for the slow provider
        hub.signal(signal.SIGTERM)
        await asyncio.sleep(0.1)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await check(hub.target, wait_s=2)
        answers = await asyncio.gather(*in_flight)
    finally:
        code, err = hub.finish()
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert [a.result.verdict for a in answers] == [check_pb2.VERDICT_ALERT] * 20
    assert code == 0, err[-2000:]
    assert '"drained": true' in err
    # The drain wrote the audit trail before exiting: every answer is in it.
    assert {a.result.check_id for a in answers} <= hub.audit_ids()


async def test_the_grace_period_cuts_off_what_is_left_and_exits_1(tmp_path: Path) -> None:
    hub = Hub(tmp_path, config(deadline_ms=60_000, grace_ms=500, failure="hang"))
    try:
        stuck = [asyncio.create_task(check(hub.target, wait_s=30)) for _ in range(3)]
        await asyncio.sleep(0.3)
        hub.signal(signal.SIGTERM)
        started = time.monotonic()
        results = await asyncio.gather(*stuck, return_exceptions=True)
    finally:
        code, err = hub.finish()
    assert time.monotonic() - started < 5
    assert all(isinstance(r, grpc.aio.AioRpcError) for r in results)
    assert code == 1, err[-2000:]
    assert '"drained": false' in err


async def test_a_second_sigterm_stops_at_once(tmp_path: Path) -> None:
    hub = Hub(tmp_path, config(deadline_ms=60_000, grace_ms=60_000, failure="hang"))
    try:
        stuck = asyncio.create_task(check(hub.target, wait_s=60))
        await asyncio.sleep(0.3)
        hub.signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        assert hub.proc.poll() is None  # draining, and would for a minute
        hub.signal(signal.SIGTERM)
        started = time.monotonic()
        code, err = hub.finish(timeout=10)
        assert time.monotonic() - started < 5
        with pytest.raises(grpc.aio.AioRpcError):
            await stuck
    finally:
        if hub.proc.poll() is None:
            hub.proc.kill()
    assert code == 1 and "forced_stop" in err


# --- SIGHUP -------------------------------------------------------------------------------------


async def test_sighup_adds_a_provider_without_dropping_a_check_and_refuses_a_bad_config(
    tmp_path: Path,
) -> None:
    hub = Hub(tmp_path, config(latency_ms=600))
    try:
        before = await check(hub.target, "PA9999999", "AUS")
        assert before.result.verdict == check_pb2.VERDICT_INCOMPLETE  # nobody answers for AUS
        slow = asyncio.create_task(check(hub.target))
        await asyncio.sleep(0.2)
        hub.write(config(latency_ms=600, aus=True))
        hub.signal(signal.SIGHUP)
        assert (await slow).result.verdict == check_pb2.VERDICT_ALERT  # not dropped
        for _ in range(50):
            after = await check(hub.target, "PA9999999", "AUS")
            if after.result.verdict != check_pb2.VERDICT_INCOMPLETE:
                break
            await asyncio.sleep(0.1)
        assert after.result.verdict == check_pb2.VERDICT_ALERT
        assert [s.provider_id for s in after.result.sources] == ["AUS"]

        # A broken file, and a change only a restart may make: refused, the old config serves.
        (tmp_path / "hub.toml").write_text("[hub\nlisten = ")
        hub.signal(signal.SIGHUP)
        await asyncio.sleep(0.5)
        hub.write(
            config(latency_ms=600, aus=True).replace(
                "deadline_ms", "max_message_bytes = 2048\ndeadline_ms"
            )
        )
        hub.signal(signal.SIGHUP)
        await asyncio.sleep(0.5)
        still = await check(hub.target, "PA9999999", "AUS")
        assert still.result.verdict == check_pb2.VERDICT_ALERT
    finally:
        hub.signal(signal.SIGTERM)
        code, err = hub.finish()
    assert code == 0
    assert err.count('"event": "config_reload_rejected"') == 2
    assert "not valid TOML" in err and "hub.max_message_bytes: changes only with a restart" in err
    assert '"event": "config_reloaded"' in err and '"added": ["AUS"]' in err


# --- overload and health (in-process) -------------------------------------------------------------


async def test_past_its_concurrency_a_hub_answers_resource_exhausted_at_once_and_recovers() -> None:
    slow = FakeProvider.issuer("NZL", ["NZL"], {("NZL", "LA000002"): RecordStatus.STOLEN},
                               latency_s=0.8)  # fmt: skip
    cfg = HubConfig(listen="127.0.0.1:0", deadline_ms=4000, max_manifest=5, max_in_flight=10)
    server = HubServer(cfg, [slow])
    port = await server.start()
    target = f"127.0.0.1:{port}"

    async def timed() -> tuple[str, float]:
        started = time.monotonic()
        try:
            await check(target, wait_s=4)
            return "OK", time.monotonic() - started
        except grpc.aio.AioRpcError as exc:
            return exc.code().name, time.monotonic() - started

    try:
        outcomes = await asyncio.gather(*(timed() for _ in range(40)))
        later = [await timed() for _ in range(3)]
    finally:
        await server.stop(grace=0.5)
    codes = [c for c, _ in outcomes]
    assert codes.count("OK") >= 10 and codes.count("RESOURCE_EXHAUSTED") >= 20, codes
    assert set(codes) == {"OK", "RESOURCE_EXHAUSTED"}  # none ran into its deadline
    # Refused at once: every refusal came back before any admitted check could (those wait for
    # the provider's 0.8 s), rather than queueing until a slot freed. Relative, not a timing
    # bound, so a loaded machine cannot fail it.
    assert max(t for c, t in outcomes if c == "RESOURCE_EXHAUSTED") < min(
        t for c, t in outcomes if c == "OK"
    )
    assert [c for c, _ in later] == ["OK"] * 3


async def test_health_is_not_serving_while_a_required_audit_trail_cannot_be_written(
    tmp_path: Path,
) -> None:
    db = tmp_path / "audit.db"
    server = audited_hub(db)
    port = await server.start()
    target = f"127.0.0.1:{port}"
    try:
        assert await health_of(target) == health_pb2.HealthCheckResponse.SERVING
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(grpc.aio.AioRpcError):
                await check(target)
            await health_until(target, health_pb2.HealthCheckResponse.NOT_SERVING)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        # No check is sent: the watch's probe finds the trail writable again.
        await health_until(target, health_pb2.HealthCheckResponse.SERVING)
        await check(target)
        assert await audited(db) == 1  # the probes added no entry; the check did
    finally:
        await server.stop(grace=0.5)


async def test_an_idle_hub_whose_audit_trail_stops_working_reports_not_serving(
    tmp_path: Path,
) -> None:
    db = tmp_path / "audit.db"
    server = audited_hub(db)
    server.audit_idle_probe_s = 0.5
    port = await server.start()
    target = f"127.0.0.1:{port}"
    try:
        await check(target)
        assert await health_of(target) == health_pb2.HealthCheckResponse.SERVING
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:  # no check is sent: only the idle probe can tell
            await health_until(target, health_pb2.HealthCheckResponse.NOT_SERVING)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        await health_until(target, health_pb2.HealthCheckResponse.SERVING)
        assert await audited(db) == 1
    finally:
        await server.stop(grace=0.5)


def audited_hub(db: Path) -> HubServer:
    """A hub with a required SQLite audit trail whose writes give up after 0.2 s."""
    trail = AuditTrail(
        AuditSink(f"sqlite+aiosqlite:///{db}", timeout_s=0.2), DocumentKeyer(os.urandom(32))
    )
    return HubServer(HubConfig(listen="127.0.0.1:0"), [FakeProvider.issuer("NZL", ["NZL"])],
                     audit=trail)  # fmt: skip


async def health_of(target: str) -> Any:
    async with grpc.aio.insecure_channel(target) as ch:
        r = await health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service="rmas.v1.DocumentCheck"), timeout=2
        )
    return r.status


async def health_until(target: str, status: Any) -> None:
    for _ in range(60):
        if await health_of(target) == status:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"health never became {status}")


async def audited(db: Path) -> int:
    from rmas.audit.reader import verify

    report = await verify(f"sqlite+aiosqlite:///{db}")
    assert report.ok, report.problems
    return report.count
