"""The conversation through real processes only: ``rmas serve`` with a SQL store and
``[flights]``, ``rmas iapi`` sending the PAXLST, ``rmas override`` as the officer and
``rmas iapi watch`` as the airline; then a restart of the hub, which keeps its open flights."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from adapters.sqlstore.importer import import_csv
from tests.flights.kit import TAYLOR, WIREMU, paxlst, read_status_change
from tests.hubproc import free_port, serve

FIX = Path(__file__).resolve().parents[2] / "fixtures"


def rmas(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rmas.cli", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)  # fmt: skip


def config(tmp: Path, port: int) -> Path:
    (tmp / "flights.key").write_text(os.urandom(32).hex())
    path = tmp / "hub.toml"
    path.write_text(f"""
[hub]
listen = "127.0.0.1:{port}"

[[providers]]
id = "NZL"
kind = "sql"
issuing_states = ["NZL"]
url = "sqlite+aiosqlite:///nzl.db"

[flights]
path = "flights.db"
key_file = "flights.key"
poll_ms = 100
""")
    return path


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.communicate(timeout=30)


def test_override_and_watch_through_real_processes(tmp_path: Path) -> None:
    asyncio.run(import_csv(f"sqlite+aiosqlite:///{tmp_path / 'nzl.db'}", FIX / "records/nzl.csv"))
    port = free_port()
    hub_cfg = config(tmp_path, port)
    target = f"127.0.0.1:{port}"
    # Taylor travels on NZL LA000002, reported stolen in the demo store.
    (tmp_path / "flight.edi").write_bytes(paxlst([WIREMU, TAYLOR]))
    hub = serve(hub_cfg, port)
    try:
        sent = rmas("iapi", "--hub", target, str(tmp_path / "flight.edi"), "--json")
        assert sent.returncode == 0, sent.stderr
        answer = json.loads(sent.stdout)
        taylor = answer["passengers"][1]
        assert taylor["directive"] == "DO_NOT_BOARD"
    finally:
        stop(hub)
    hub = serve(hub_cfg, port)  # the open flight outlives the hub process
    try:
        done = rmas("override", "--hub", target, "--check-id", taylor["check_ids"][0],
                    "--reason", "passport recovered, holder verified")  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "DO_NOT_BOARD -> OK_TO_BOARD" in done.stdout
        watched = rmas("iapi", "watch", "--hub", target, "--count", "1")
        assert watched.returncode == 0, watched.stderr
        lines = watched.stdout.splitlines()
        assert len(lines) == 1
        got = read_status_change(lines[0].encode())
        assert (got["BGM"], got["ERC"], got["RFF+ABO"]) == ("132", "0Z", TAYLOR.abo)
        st = json.loads(rmas("status", "--hub", target, "--json").stdout)
        assert st["open_flights"] == 1
        assert st["unacknowledged_changes"] == 0  # the watcher acknowledged it
    finally:
        stop(hub)
