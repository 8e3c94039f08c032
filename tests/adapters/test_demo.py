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
    # Passports with APEC Business Travel Cards at an NZ lane: each card gets the verdict
    # abtc_try.json expects, and none changes its passport's.
    cards = json.loads((fixtures_dir / "records" / "abtc_try.json").read_text())
    lines = {line.split()[0]: line for line in out.stdout.splitlines()
             if line[:2] in ("AU", "NZ") and line[2:3].isdigit()}  # fmt: skip
    for t in cards:
        line = lines[t["abtc"]]
        assert line.split()[3] == "CLEAR", line
        assert (f"NOT USABLE: {t['expect_reason']}" if t["expect_reason"] else "USABLE") in line
    assert {t["expect_reason"] for t in cards} >= {"", "NOT_ISSUED", "STOLEN", "EXPIRED"}
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
    cards = json.loads((fixtures_dir / "records" / "abtc_try.json").read_text())
    # Every sample check (with a card or without) and every PAXLST document is in the trail,
    # and the chain holds.
    url = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    verify = rmas("audit", "verify", "--url", url)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert f"{len(tries) + len(cards) + 4} entries" in verify.stdout
    found = rmas("audit", "find", "--url", url, "--key-file", str(tmp_path / "audit.key"),
                 "--state", "NZL", "--number", "LA000002")  # fmt: skip
    assert found.returncode == 0, found.stderr
    assert "rmas://officer/AKL-T1 (officer)" in found.stdout
    assert "rmas://airline/QF (airline)" in found.stdout
    assert "LA000002" not in found.stdout.replace("--number LA000002", "")


def test_the_demos_printed_conversation_tells_the_airline_of_a_passport_stolen_after_check_in(
    tmp_path: Path,
) -> None:
    """Run the two commands the demo prints, as a user would: the airline's watch receives
    passenger P3's status change once New Zealand reports the passport stolen."""
    repo = Path(__file__).resolve().parents[2]
    demo = subprocess.Popen(
        [sys.executable, "-m", "rmas.cli", "demo", "--dir", str(tmp_path),
         "--listen", "127.0.0.1:0", "--console", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=repo,
    )  # fmt: skip
    try:
        assert demo.stdout is not None
        printed: list[str] = []
        for line in demo.stdout:  # bounded by the demo's own start-up; it prints, then waits
            printed.append(line)
            if line.startswith("Hub running"):
                break
        text = "".join(printed)
        assert "passenger P3: ERC+0Z" in text, text
        watch_cmd = re.search(r"^\s+\.venv/bin/(rmas iapi watch .*)$", text, re.M)
        apply_cmd = re.search(r"^\s+\.venv/bin/(rmas store apply .*)$", text, re.M)
        assert watch_cmd and apply_cmd, text
        rmas = [sys.executable, "-m", "rmas.cli"]
        watch = subprocess.Popen(
            [*rmas, *watch_cmd.group(1).split()[1:], "--count", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=repo,
        )  # fmt: skip
        try:
            # The watch has subscribed once a change made now reaches it; apply until it exits
            # (a feed applied twice is journaled and changes nothing the second time).
            applied = subprocess.run(
                [*rmas, *apply_cmd.group(1).split()[1:]],
                capture_output=True, text=True, timeout=60, cwd=repo, check=False,
            )  # fmt: skip
            assert applied.returncode == 0, applied.stdout + applied.stderr
            out, err = watch.communicate(timeout=60)
            assert out.strip(), err
        finally:
            watch.kill()
        change = json.loads(out.splitlines()[0])
        assert change["passenger_ref"] == "P3", out
        assert change["directive"] == "DO_NOT_BOARD"
        assert change["flight"] == "NZ1"
    finally:
        demo.terminate()
        demo.wait(timeout=30)
