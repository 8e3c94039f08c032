"""The `rmas` command as a user runs it: real processes, a real hub on a loopback port."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hubproc import free_port

HUB_TOML = """
[hub]
listen = "127.0.0.1:{port}"
deadline_ms = 400

[[providers]]
id = "NZL"
kind = "fake"
issuing_states = ["NZL"]
contact = "NZ 24/7 desk +64 4 000 0000"
records = {{ "NZL:LA000002" = "STOLEN" }}

[[providers]]
id = "SLOW"
kind = "fake"
scope = "global"
required = false
failure = "hang"
"""


def rmas(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rmas.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    cfg = tmp_path / "hub.toml"
    cfg.write_text(HUB_TOML.format(port=port))
    proc = subprocess.Popen(
        [sys.executable, "-m", "rmas.cli", "serve", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    assert proc.returncode == 0
    assert proc.stderr is not None
    log_lines = [json.loads(x) for x in proc.stderr.read().splitlines() if x.startswith("{")]
    assert any(e.get("event") == "hub_started" for e in log_lines)
    assert "LA000002" not in json.dumps(log_lines)


def test_check_prints_json_with_verdict_directive_check_id_and_sources(hub: str) -> None:
    out = rmas("check", "--hub", hub, "--number", "LA000002", "--state", "NZL", "--json")
    assert out.returncode == 1, out.stderr  # ALERT
    r = json.loads(out.stdout)
    assert (r["verdict"], r["directive"]) == ("ALERT", "DO_NOT_BOARD")
    assert len(r["check_id"]) == 32
    by_provider = {s["provider"]: s for s in r["sources"]}
    assert by_provider["NZL"]["outcome"] == "ANSWERED"
    assert by_provider["NZL"]["status"] == "STOLEN"
    assert by_provider["SLOW"]["outcome"] == "TIMEOUT"
    assert by_provider["SLOW"]["status"] is None
    assert all(isinstance(s["latency_ms"], float) for s in r["sources"])


def test_check_prints_a_readable_verdict(hub: str) -> None:
    out = rmas("check", "--hub", hub, "--number", "LA000001", "--state", "nz")
    assert out.returncode == 0, out.stderr
    assert "verdict    CLEAR" in out.stdout
    assert "directive  OK_TO_BOARD" in out.stdout
    assert "no answer in time" in out.stdout  # SLOW timed out


def test_check_reports_field_violations_and_fails(hub: str) -> None:
    out = rmas("check", "--hub", hub, "--number", "LA#1", "--state", "QQQ")
    assert out.returncode == 4  # as INVALID_DATA
    assert "INVALID_ARGUMENT" in out.stderr
    # Each bad field once (the error's message repeats them; it is not printed twice).
    assert out.stderr.count("document.issuing_state") == 1
    assert out.stderr.count("document.number") == 1
    assert "Traceback" not in out.stderr


def test_serve_reports_config_errors_with_the_key_before_starting(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[hub]\ndeadline_ms = 'soon'\n")
    out = rmas("serve", "--config", str(cfg))
    assert out.returncode == 2
    assert "hub.deadline_ms" in out.stderr


def test_serve_refuses_a_non_loopback_address_without_tls(tmp_path: Path) -> None:
    cfg = tmp_path / "hub.toml"
    cfg.write_text(HUB_TOML.format(port=free_port()))
    out = rmas("serve", "--config", str(cfg), "--listen", "0.0.0.0:50999")
    assert out.returncode == 2
    assert "loopback" in out.stderr


def test_serve_names_an_unknown_provider_kind(tmp_path: Path) -> None:
    cfg = tmp_path / "hub.toml"
    cfg.write_text("[[providers]]\nid='x'\nkind='carrier-pigeon'\nissuing_states=['NZL']\n")
    out = rmas("serve", "--config", str(cfg))
    assert out.returncode == 2
    assert "providers[0].kind" in out.stderr
    assert "carrier-pigeon" in out.stderr


def test_check_without_a_document_is_a_usage_error() -> None:
    out = rmas("check", "--hub", "127.0.0.1:1")
    assert out.returncode == 2


def test_check_against_no_hub_fails_cleanly() -> None:
    out = rmas("check", "--hub", f"127.0.0.1:{free_port()}", "--number", "A1", "--state", "NZL",
               "--timeout", "1")  # fmt: skip
    assert out.returncode in (69, 75)  # hub unavailable, or its deadline passed
    assert "UNAVAILABLE" in out.stderr or "DEADLINE_EXCEEDED" in out.stderr


def test_version() -> None:
    out = rmas("--version")
    assert out.stdout.startswith("rmas ")


def test_check_by_mrz_shows_the_evidence(hub: str) -> None:
    out = rmas(
        "check", "--hub", hub,
        "--mrz", "P<NZLSMITH<<JOHN<<<<<<<<<<<<<<<<<<<<<<<<<<<<",
        "--mrz", "LA000002<3NZL8001014M3001019<<<<<<<<<<<<<<<6",
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    assert "verdict    ALERT" in out.stdout
    assert "mrz        TD3" in out.stdout
    assert "composite=" in out.stdout


def test_iapi_sends_a_paxlst_and_prints_the_cusres(hub: str, fixtures_dir: Path) -> None:
    pax = fixtures_dir / "paxlst" / "four_passengers.edi"
    out = rmas("iapi", "--hub", hub, str(pax))
    assert out.returncode == 0, out.stderr
    assert "BGM+962'" in out.stdout
    assert "ERC+1Z'" in out.stdout  # NZL LA000002 is STOLEN at the fake NZL provider
    summary = rmas("iapi", "--hub", hub, str(fixtures_dir / "paxlst" / "groups_d02b.edi"), "--json")
    data = json.loads(summary.stdout)
    assert [p["passenger_ref"] for p in data["passengers"]] == ["P1", "P2", "P3", "P4"]
    assert data["passengers"][3]["directive"] == "INSUFFICIENT_DATA"
    broken = rmas("iapi", "--hub", hub, str(fixtures_dir / "paxlst" / "broken_truncated.edi"))
    assert broken.returncode == 1
    assert "ERP+1'" in broken.stdout


def test_status_shows_each_provider_with_its_health(hub: str) -> None:
    rmas("check", "--hub", hub, "--number", "LA000001", "--state", "NZL")
    out = rmas("status", "--hub", hub)
    assert out.returncode == 0, out.stderr
    assert "documents checked" in out.stdout
    assert "last reload: none since start" in out.stdout
    lines = {line.split()[0]: line for line in out.stdout.splitlines()[3:]}
    assert " ok " in lines["NZL"]
    assert "TIMEOUT" in lines["SLOW"]
    data = json.loads(rmas("status", "--hub", hub, "--json").stdout)
    by_id = {p["provider_id"]: p for p in data["providers"]}
    assert by_id["SLOW"]["failures"] >= 1
    assert by_id["SLOW"]["health"] in ("down", "degraded")
    assert data["checks"] >= 1


def test_serve_refuses_a_store_on_an_old_schema_naming_the_fix(tmp_path: Path) -> None:
    import asyncio

    from adapters.sqlstore.migrate import migrate_engine
    from adapters.sqlstore.schema import make_engine

    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"

    async def old_store() -> None:
        engine = make_engine(url)
        await migrate_engine(engine, "0001")
        await engine.dispose()

    asyncio.run(old_store())
    cfg = tmp_path / "hub.toml"
    cfg.write_text(
        f"[hub]\nlisten = '127.0.0.1:{free_port()}'\n[[providers]]\nid = 'NZL'\nkind = 'sql'\n"
        f"url = '{url}'\nissuing_states = ['NZL']\n"
    )
    out = rmas("serve", "--config", str(cfg))
    assert out.returncode == 1
    assert f"rmas store migrate --url {url}" in out.stderr
    fixed = rmas("store", "migrate", "--url", url)
    assert fixed.returncode == 0, fixed.stderr
    assert "0001 -> 0005" in fixed.stdout


def test_iapi_prints_the_cusres_byte_for_byte_and_reads_stdin(hub: str, fixtures_dir: Path) -> None:
    import asyncio

    import grpc

    from rmas.iapi.syntax import parse_interchange
    from rmas.v1 import check_pb2, check_pb2_grpc

    # A passenger reference with a released apostrophe, echoed in the CUSRES.
    data = (fixtures_dir / "paxlst" / "release_obrien.edi").read_bytes()
    data = data.replace(b"RFF+ABO:P9'", b"RFF+ABO:P?'9'")
    cmd = [sys.executable, "-m", "rmas.cli", "iapi", "--hub", hub, "-"]
    out = subprocess.run(cmd, input=data, capture_output=True, timeout=30, check=False)
    assert out.returncode == 0, out.stderr

    async def resend() -> bytes:
        async with grpc.aio.insecure_channel(hub) as ch:
            resp = await check_pb2_grpc.DocumentCheckStub(ch).CheckPaxlst(
                check_pb2.CheckPaxlstRequest(message=data), timeout=10
            )
        assert resp.duplicate
        return bytes(resp.cusres)

    # The resend gets the very same CUSRES: the CLI printed exactly the hub's bytes.
    assert out.stdout == asyncio.run(resend())
    assert b"RFF+ABO:P?'9'" in out.stdout and parse_interchange(out.stdout)
    pretty = subprocess.run([*cmd, "--pretty"], input=data, capture_output=True, timeout=30,
                            check=False)  # fmt: skip
    lines = pretty.stdout.splitlines()
    assert lines[0].startswith(b"UNA") and all(x.endswith(b"'") for x in lines[1:])
    assert b"".join(lines) == out.stdout
    assert b"RFF+ABO:P?'9'" in lines
