"""`rmas check --abtc` as a user runs it: a real `rmas serve` process in front of SQL stores loaded
with `rmas store import --abtc`, and no card number in anything the hub prints."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hubproc import free_port, serve

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "records"

HUB = """
[hub]
listen = "127.0.0.1:{port}"
economy = "nz"
log_level = "debug"
deadline_ms = 800

[[providers]]
id = "AUS"
kind = "sql"
url = "sqlite+aiosqlite:///{dir}/aus.db"
issuing_states = ["AUS"]
registry = "complete"
abtc = true

[[providers]]
id = "NZL"
kind = "sql"
url = "sqlite+aiosqlite:///{dir}/nzl.db"
issuing_states = ["NZL"]
abtc = true

[[providers]]
id = "SGP"
kind = "grpc"
target = "127.0.0.1:{dead}"
issuing_states = ["SGP"]
abtc = true
retries = 0
"""
CARDS = ["AU0000101", "AU0000106", "AU9999999", "SG0000001", "NZ0000101"]


def rmas(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rmas.cli", *args],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A hub process serving two economies' SQL stores (cards included) and a dead SGP node."""
    d = tmp_path_factory.mktemp("abtc-cli")
    for state in ("aus", "nzl"):
        url = f"sqlite+aiosqlite:///{d / state}.db"
        loaded = rmas("store", "import", "--url", url, str(FIX / f"{state}.csv"))
        assert loaded.returncode == 0, loaded.stderr
        cards = rmas("store", "import", "--abtc", "--url", url, str(FIX / f"abtc_{state}.csv"))
        assert cards.returncode == 0, cards.stderr
        assert "cards" in cards.stdout
    port = free_port()
    (d / "hub.toml").write_text(HUB.format(port=port, dir=d, dead=free_port()))
    proc = serve(d / "hub.toml", port, stdout=subprocess.PIPE)
    try:
        yield f"127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=20)


def json_lines(text: str) -> list[dict[str, object]]:
    """The log's JSON lines (a line that two threads wrote into at once is skipped)."""
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def check(hub: str, *args: str) -> subprocess.CompletedProcess[str]:
    return rmas("check", "--hub", hub, *args)


def test_check_json_carries_the_card_verdict(hub: tuple[str, subprocess.Popen[str]]) -> None:
    out = check(hub[0], "--state", "AUS", "--number", "PA0000101", "--abtc", "AU0000101", "--json")
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert (r["verdict"], r["directive"]) == ("CLEAR", "OK_TO_BOARD")
    a = r["abtc"]
    assert {"status", "usable", "reason", "pre_cleared_for_us", "expiry", "provider",
            "outcome"} <= set(a)  # fmt: skip
    assert (a["status"], a["usable"], a["reason"], a["pre_cleared_for_us"]) == (
        "VALID", True, None, True,
    )  # fmt: skip
    assert (a["expiry"], a["provider"], a["outcome"]) == ("2030-04-02", "AUS", "ANSWERED")
    assert "abtc" not in json.loads(check(hub[0], "--state", "AUS", "--number", "PA0000101",
                                          "--json").stdout)  # fmt: skip


def test_check_prints_both_verdicts(hub: tuple[str, subprocess.Popen[str]]) -> None:
    out = check(hub[0], "--state", "AUS", "--number", "PA0000106", "--abtc", "AU0000106")
    assert out.returncode == 0, out.stderr
    assert "verdict    CLEAR" in out.stdout
    assert "abtc       NOT USABLE (STOLEN) for NZL" in out.stdout
    fake = check(hub[0], "--state", "AUS", "--number", "PA0000101", "--abtc", "AU9999999")
    assert "abtc       NOT USABLE (NOT_ISSUED) for NZL" in fake.stdout


def test_for_and_abtc_economy(hub: tuple[str, subprocess.Popen[str]]) -> None:
    nz = check(hub[0], "--state", "NZL", "--number", "LA900001", "--abtc", "NZ0000101",
               "--for", "AUS", "--json")  # fmt: skip
    assert json.loads(nz.stdout)["abtc"]["usable"] is True
    home = check(hub[0], "--state", "NZL", "--number", "LA900001", "--abtc", "NZ0000101", "--json")
    assert json.loads(home.stdout)["abtc"]["reason"] == "NOT_PRE_CLEARED"
    down = check(hub[0], "--state", "NZL", "--number", "LA900001", "--abtc", "SG0000001",
                 "--abtc-economy", "SGP", "--json")  # fmt: skip
    r = json.loads(down.stdout)
    assert (r["verdict"], r["abtc"]["reason"], r["abtc"]["outcome"]) == (
        "CLEAR", "INCOMPLETE", "UNAVAILABLE",
    )  # fmt: skip
    bad = check(hub[0], "--state", "NZL", "--number", "LA900001", "--abtc", "NZ!1",
                "--for", "QQQ")  # fmt: skip
    assert bad.returncode == 4  # the hub refused the fields (INVALID_ARGUMENT)
    assert "abtc.number" in bad.stderr and "checking_economy" in bad.stderr


def test_zz_the_hub_logged_no_card_number(hub: tuple[str, subprocess.Popen[str]]) -> None:
    """Named to run last: the hub has answered every check above."""
    target, proc = hub
    down = check(target, "--state", "AUS", "--number", "PA0000101", "--abtc", "SG0000001",
                 "--abtc-economy", "SGP")  # fmt: skip
    assert "NOT USABLE (INCOMPLETE)" in down.stdout
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    events = {e.get("event") for e in json_lines(err)}
    # The SGP node is down: logged; card checks are logged (at debug), their numbers redacted.
    assert {"hub_started", "provider_failed", "abtc_checked"} <= events
    for secret in CARDS:
        assert secret not in out + err, secret
