"""The console's server over real HTTP, in-process with a real hub: configuration, the shared
check path (audit first, then the answer) and the listener rules."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import ssl
from pathlib import Path

import aiohttp
import pytest

from rmas.audit.entry import DocumentKeyer
from rmas.audit.sink import AuditSink
from rmas.audit.trail import AuditTrail
from rmas.config import HubConfig, parse_config
from rmas.errors import ConfigError
from rmas.security.access import CallerRule, Role
from rmas.server.app import HubServer
from rmas.testing import FakeProvider, running_hub
from rmas.verdict import RecordStatus
from tests.conftest import Pki

STOLEN = {("NZL", "LA000002"): RecordStatus.STOLEN}
FORM = {"mode": "fields", "issuing_state": "NZL", "number": "LA000002"}


def test_console_listen_is_off_by_default_and_read_from_hub() -> None:
    assert parse_config("").hub.console_listen == ""
    cfg = parse_config('[hub]\nconsole_listen = "127.0.0.1:8443"\n')
    assert cfg.hub.console_listen == "127.0.0.1:8443"
    with pytest.raises(ConfigError) as info:
        parse_config('[hub]\nconsole_listen = "8443"\n')
    assert info.value.key == "hub.console_listen"


def test_without_tls_the_console_binds_loopback_only() -> None:
    with pytest.raises(ConfigError) as info:
        HubServer(HubConfig(console_listen="0.0.0.0:8443"), [FakeProvider.issuer("N", ["NZL"])])
    assert info.value.key == "hub.console_listen"
    assert "loopback" in info.value.message
    assert HubServer(HubConfig(), [FakeProvider.issuer("N", ["NZL"])]).console is None


async def test_a_console_port_in_use_stops_the_hub_with_the_key() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = f"127.0.0.1:{s.getsockname()[1]}"
        with pytest.raises(ConfigError) as info:
            async with running_hub([FakeProvider.issuer("N", ["NZL"])], console_listen=taken):
                pass
    assert info.value.key == "hub.console_listen"


async def test_a_console_check_is_audited_and_counted_like_a_grpc_one(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    trail = AuditTrail(AuditSink(f"sqlite+aiosqlite:///{db}"), DocumentKeyer(os.urandom(32)))
    nzl = FakeProvider.issuer("NZL", ["NZL"], STOLEN)
    async with (
        running_hub([nzl], audit=trail, console_listen="127.0.0.1:0") as hub,
        aiohttp.ClientSession(f"http://127.0.0.1:{hub.console_port}") as http,
    ):
        async with http.post("/check", data=FORM) as r:
            assert r.status == 200
            assert r.headers["Cache-Control"] == "no-store"
            page = await r.text()
        assert 'id="verdict-value">ALERT<' in page
        async with http.get("/status") as r:
            assert 'id="checks">1<' in await r.text()
    assert len(nzl.calls) == 1
    with sqlite3.connect(db) as conn:
        (count,) = conn.execute("SELECT sum(last_seq - first_seq + 1) FROM audit_block").fetchone()
    assert count == 1


async def test_no_answer_leaves_while_a_required_trail_cannot_be_written(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    sink = AuditSink(f"sqlite+aiosqlite:///{db}", timeout_s=0.2)
    trail = AuditTrail(sink, DocumentKeyer(os.urandom(32)))
    async with (
        running_hub(
            [FakeProvider.issuer("NZL", ["NZL"], STOLEN)], audit=trail, console_listen="127.0.0.1:0"
        ) as hub,
        aiohttp.ClientSession(f"http://127.0.0.1:{hub.console_port}") as http,
    ):
        async with http.post("/check", data=FORM) as r:
            assert r.status == 200
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the file: commits time out
        try:
            async with http.post("/check", data=FORM) as r:
                assert r.status == 503
                page = await r.text()
            assert "audit trail cannot be written" in page
            assert "verdict-value" not in page and "STOLEN" not in page
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        async with http.post("/check", data=FORM) as r:
            assert r.status == 200
            assert 'id="verdict-value">ALERT<' in await r.text()


async def test_the_status_stream_sends_the_live_part_of_the_page() -> None:
    async with (
        running_hub([FakeProvider.issuer("NZL", ["NZL"])], console_listen="127.0.0.1:0") as hub,
        aiohttp.ClientSession(f"http://127.0.0.1:{hub.console_port}") as http,
        http.get("/status/events") as stream,
    ):
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        assert stream.headers["Cache-Control"] == "no-store"
        first = await stream.content.readuntil(b"\n\n")
        assert first.startswith(b"data: ")
        html = json.loads(first[len(b"data: ") :])["html"]
        assert 'data-provider="NZL"' in html and 'id="checks">0<' in html


async def test_the_console_address_changes_only_with_a_restart() -> None:
    base = '[[providers]]\nid = "N"\nkind = "fake"\nissuing_states = ["NZL"]\n'
    old = parse_config('[hub]\nconsole_listen = "127.0.0.1:8443"\n' + base)
    server = HubServer.from_config(old, [FakeProvider.issuer("N", ["NZL"])])
    with pytest.raises(ConfigError) as info:
        await server.reload(parse_config('[hub]\nconsole_listen = "127.0.0.1:9443"\n' + base))
    assert info.value.key == "hub.console_listen"


def _client_ssl(pki: Pki, party: str) -> ssl.SSLContext:
    """A TLS client that verifies the hub against the test CA and presents ``party``'s
    certificate (what the browser does in tests/console/test_tls.py, with server checks on)."""
    ctx = ssl.create_default_context(cafile=str(pki.dir / "ca.pem"))
    ctx.load_cert_chain(pki.dir / f"{party}.pem", pki.dir / f"{party}.key")
    return ctx


async def test_over_mutual_tls_the_officer_is_rate_limited_like_on_grpc(pki: Pki) -> None:
    callers = [CallerRule("rmas://officer/*", Role.OFFICER, documents_per_s=0.01, burst=1)]
    nzl = FakeProvider.issuer("NZL", ["NZL"], STOLEN)
    async with (
        running_hub([nzl], tls=pki.tls("hub"), callers=callers, console_listen="127.0.0.1:0")
        as hub,
        aiohttp.ClientSession(f"https://127.0.0.1:{hub.console_port}") as http,
    ):  # fmt: skip
        ssl_ctx = _client_ssl(pki, "officer")
        async with http.post("/check", data=FORM, ssl=ssl_ctx) as r:
            assert r.status == 200
            assert 'id="verdict-value">ALERT<' in await r.text()
            assert "rmas://officer/AKL-T1 (officer)" in await r.text()
        async with http.post("/check", data=FORM, ssl=ssl_ctx) as r:
            assert r.status == 429
            assert "rate limit" in await r.text()
    assert len(nzl.calls) == 1  # the refused check asked nobody


async def test_over_mutual_tls_a_certificate_without_identity_or_from_another_ca_is_refused(
    pki: Pki,
) -> None:
    callers = [CallerRule("rmas://officer/*", Role.OFFICER)]
    async with (
        running_hub([FakeProvider.issuer("NZL", ["NZL"])], tls=pki.tls("hub"), callers=callers,
                    console_listen="127.0.0.1:0") as hub,
        aiohttp.ClientSession(f"https://127.0.0.1:{hub.console_port}") as http,
    ):  # fmt: skip
        async with http.get("/check", ssl=_client_ssl(pki, "anonymous")) as r:
            assert r.status == 403
            assert "no single rmas:// identity" in await r.text()
        with pytest.raises(aiohttp.ClientError):
            async with http.get("/check", ssl=_client_ssl(pki, "foreign")):
                pass


async def test_a_console_check_under_way_is_answered_when_the_hub_drains() -> None:
    # Longer than a second: the console's checks get the hub's drain grace, not a web server's
    # short shutdown (they are cut off only with the hub's gRPC checks).
    slow = FakeProvider.issuer("NZL", ["NZL"], STOLEN, latency_s=2.5)
    config = HubConfig(listen="127.0.0.1:0", console_listen="127.0.0.1:0", deadline_ms=5000)
    server = HubServer(config, [slow])
    await server.start()
    assert server.console is not None
    async with aiohttp.ClientSession(f"http://127.0.0.1:{server.console.port}") as http:
        posted = asyncio.ensure_future(http.post("/check", data=FORM))
        for _ in range(1000):  # until the check has reached the provider
            if slow.calls:
                break
            await asyncio.sleep(0.01)
        drained = await server.stop(grace=5.0)
        async with await posted as r:
            assert r.status == 200
            assert 'id="verdict-value">ALERT<' in await r.text()
    assert drained
    assert server.service.active == 0
