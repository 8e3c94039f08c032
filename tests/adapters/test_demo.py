"""`rmas demo` run as a user runs it: every sample check gets the verdict try.json expects."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_the_demo_shows_clear_alert_and_incomplete(tmp_path: Path, fixtures_dir: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "rmas.cli", "demo", "--exit", "--dir", str(tmp_path),
         "--listen", "127.0.0.1:0"],
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
