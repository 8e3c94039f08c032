"""`rmas demo` run as a user runs it: every sample check gets the verdict try.json expects."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path


def test_the_demo_shows_clear_alert_and_incomplete(tmp_path: Path, fixtures_dir: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "rmas.cli", "demo", "--exit", "--dir", str(tmp_path),
         "--listen", "127.0.0.1:0", "--console", "127.0.0.1:0"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    # The demo exits non-zero when any sample check gets another verdict than try.json expects.
    assert out.returncode == 0, out.stdout + out.stderr
    verdicts = [
        line.split()[2]
        for line in out.stdout.splitlines()
        if line[:3] in ("NZL", "AUS", "PHL", "USA")
    ]
    tries = json.loads((fixtures_dir / "records" / "try.json").read_text())
    assert verdicts == [t["expect_verdict"] for t in tries]
    assert {"CLEAR", "ALERT", "INCOMPLETE"} <= set(verdicts)
    assert "rmas check --hub" in out.stdout
    assert re.search(
        r"^Console: http://127\.0\.0\.1:\d+/ as officer and operator", out.stdout, re.M
    )


def test_the_demo_runs_with_mutual_tls_and_leaves_a_verifiable_audit_trail(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    def rmas(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "rmas.cli", *args],
                              capture_output=True, text=True, timeout=120, check=False)  # fmt: skip

    out = rmas("demo", "--exit", "--tls", "--dir", str(tmp_path), "--listen", "127.0.0.1:0",
               "--console", "127.0.0.1:0")  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "mutual TLS" in out.stdout
    certs = tmp_path / "certs"
    assert (certs / "ca.pem").exists() and (certs / "airline.key").exists()
    tries = json.loads((fixtures_dir / "records" / "try.json").read_text())
    # Every sample check and every PAXLST document is in the trail, and the chain holds.
    url = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    verify = rmas("audit", "verify", "--url", url)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert f"{len(tries) + 4} entries" in verify.stdout
    found = rmas("audit", "find", "--url", url, "--key-file", str(tmp_path / "audit.key"),
                 "--state", "NZL", "--number", "LA000002")  # fmt: skip
    assert found.returncode == 0, found.stderr
    assert "rmas://officer/AKL-T1 (officer)" in found.stdout
    assert "rmas://airline/QF (airline)" in found.stdout
    assert "LA000002" not in found.stdout.replace("--number LA000002", "")
