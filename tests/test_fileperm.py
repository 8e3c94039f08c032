"""Records and secrets are their owner's alone: files created through the real commands.

Store files and audit trails (SQLite, with their -wal and -shm side files) are created 0600,
folders rmas makes for keys 0700, whatever the umask; the hub warns at start about key files
others may read.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from rmas.client import document_pb
from rmas.security.certs import init_dir
from rmas.v1 import check_pb2, check_pb2_grpc
from tests.hubproc import free_port, serve

FIX = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture(autouse=True)
def loose_umask() -> Iterator[None]:
    """The usual umask (group and others may read new files), inherited by the commands."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def rmas(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rmas.cli", *args], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


def test_rmas_store_import_creates_the_store_file_for_its_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o755)
    db = data / "nzl.db"
    out = rmas(
        "store", "import", "--url", f"sqlite+aiosqlite:///{db}", str(FIX / "records" / "nzl.csv")
    )
    assert out.returncode == 0, out.stderr
    assert mode(db) == 0o600
    assert mode(data) == 0o755  # a folder the user made keeps its mode


def test_rmas_certs_init_makes_its_folders_for_their_owner_only(tmp_path: Path) -> None:
    out = rmas("certs", "init", str(tmp_path / "pki" / "dev"))
    assert out.returncode == 0, out.stderr
    assert mode(tmp_path / "pki") == 0o700
    assert mode(tmp_path / "pki" / "dev") == 0o700
    assert mode(tmp_path / "pki" / "dev" / "hub.key") == 0o600


HUB = """
[hub]
listen = "127.0.0.1:{port}"

[[providers]]
id = "NZL"
kind = "sql"
url = "sqlite+aiosqlite:///nzl.db"
issuing_states = ["NZL"]

[audit]
url = "sqlite+aiosqlite:///audit.db"
key_file = "audit.key"
"""


def events(stderr: str) -> list[dict[str, object]]:
    return [json.loads(x) for x in stderr.splitlines() if x.startswith("{")]


def test_a_hub_makes_its_audit_files_private_and_warns_about_a_readable_key(
    tmp_path: Path,
) -> None:
    assert rmas("store", "import", "--url", f"sqlite+aiosqlite:///{tmp_path / 'nzl.db'}",
                str(FIX / "records" / "nzl.csv")).returncode == 0  # fmt: skip
    key = tmp_path / "audit.key"
    key.write_text(os.urandom(32).hex())
    key.chmod(0o644)
    port = free_port()
    (tmp_path / "hub.toml").write_text(HUB.replace("{port}", str(port)))
    proc = serve(tmp_path / "hub.toml", port)
    try:
        async_check(f"127.0.0.1:{port}")
        audit = [tmp_path / f"audit.db{suffix}" for suffix in ("", "-wal", "-shm")]
        assert all(p.exists() for p in audit)  # the trail runs in WAL mode
        sides = list(tmp_path.glob("nzl.db*"))
        for p in audit + sides:
            assert mode(p) == 0o600, p
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    warnings = [e for e in events(err) if e["event"] == "key_file_readable_by_others"]
    assert [(w["key"], w["path"], w["mode"], w["level"]) for w in warnings] == [
        ("audit.key_file", str(key), "0644", "warning")
    ]


def async_check(target: str) -> None:
    import asyncio

    async def go() -> None:
        async with grpc.aio.insecure_channel(target) as ch:
            resp = await check_pb2_grpc.DocumentCheckStub(ch).CheckDocument(
                check_pb2.CheckDocumentRequest(
                    document=document_pb(number="LA000002", state="NZL")
                ),
                timeout=10,
            )
        assert resp.result.verdict == check_pb2.VERDICT_ALERT

    asyncio.run(go())


def test_a_hub_warns_about_a_tls_key_others_may_read_and_not_about_private_ones(
    tmp_path: Path,
) -> None:
    init_dir(tmp_path / "pki")
    (tmp_path / "pki" / "hub.key").chmod(0o640)
    key = tmp_path / "audit.key"
    key.write_text(os.urandom(32).hex())
    key.chmod(0o600)
    port = free_port()
    fake = HUB.replace('kind = "sql"\nurl = "sqlite+aiosqlite:///nzl.db"', 'kind = "fake"')
    assert fake != HUB
    text = fake.replace("{port}", str(port)) + (
        '\n[tls]\ncert = "pki/hub.pem"\nkey = "pki/hub.key"\nca = "pki/ca.pem"\n'
        '\n[[callers]]\nidentity = "rmas://officer/*"\nrole = "officer"\n'
    )
    (tmp_path / "hub.toml").write_text(text)
    proc = serve(tmp_path / "hub.toml", port)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    warnings = [e for e in events(err) if e["event"] == "key_file_readable_by_others"]
    assert [(w["key"], w["mode"]) for w in warnings] == [("tls.key", "0640")]
