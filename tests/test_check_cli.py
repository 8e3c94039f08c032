"""`rmas check` as an officer and a script meet it: a real hub process, real SQLite stores.

What was checked, the verdict and directive, each source's status in words with who reported it
and when, the 24/7 desk whenever the answer needs a call, whether the issuer was consulted; exit
codes by verdict; errors printed once, as JSON with --json.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Pki
from tests.hubproc import free_port, serve

NZ_DESK = "NZ 24/7 desk +64 4 000 0000"
AU_DESK = "ABF 24/7 +61 2 0000 0000"
US_DESK = "US 24/7 desk +1 202 000 0000"

HUB_TOML = """
[hub]
listen = "127.0.0.1:{port}"
deadline_ms = 1000

[[providers]]
id = "NZL"
kind = "sql"
url = "sqlite+aiosqlite:///nzl.db"
issuing_states = ["NZL"]
contact = "{nz}"

[[providers]]
id = "AUS"
kind = "sql"
url = "sqlite+aiosqlite:///aus.db"
registry = "complete"
issuing_states = ["AUS"]
contact = "{au}"

[[providers]]
id = "USA"
kind = "fake"
issuing_states = ["USA"]
failure = "unavailable"
contact = "{us}"

[[providers]]
id = "GLOBAL"
kind = "fake"
scope = "global"
records = {{ "PHL:PX0000001" = "STOLEN" }}
"""


def rmas(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rmas.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    d = tmp_path_factory.mktemp("officer")
    records = Path(__file__).resolve().parent.parent / "fixtures" / "records"
    for state in ("nzl", "aus"):
        out = rmas("store", "import", "--url", f"sqlite+aiosqlite:///{d / state}.db",
                   str(records / f"{state}.csv"))  # fmt: skip
        assert out.returncode == 0, out.stderr
    port = free_port()
    cfg = d / "hub.toml"
    cfg.write_text(HUB_TOML.format(port=port, nz=NZ_DESK, au=AU_DESK, us=US_DESK))
    proc = serve(cfg, port)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


def no_traceback(out: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in out.stderr, out.stderr
    assert "Traceback" not in out.stdout, out.stdout


def test_an_alert_shows_what_was_checked_who_reported_it_and_whom_to_call(hub: str) -> None:
    out = rmas("check", "--hub", hub, "--state", "nz", "--number", "la 000-002",
               "--surname", "Smith", "--birth-date", "1951-03-25")  # fmt: skip
    no_traceback(out)
    assert out.returncode == 1, out.stdout + out.stderr  # ALERT
    text = out.stdout
    # What was checked: the normalised number and state, and the holder fields given.
    assert "checked    NZL LA000002" in text
    assert "surname SMITH" in text and "born 1951-03-25" in text
    assert "verdict    ALERT" in text
    assert "directive  DO_NOT_BOARD" in text
    # The issuer's status in words, who reported it and when, the record's reference.
    nzl = next(line for line in text.splitlines() if line.strip().startswith("NZL "))
    assert "REPORTED STOLEN" in nzl
    assert "by Department of Internal Affairs (NZ)" in nzl
    assert "on 2024-11-27" in nzl
    assert "ref NZL-000002" in nzl
    assert "holder matches" in nzl
    # An alert needs a call: the issuer's 24/7 desk.
    assert "call (24/7)" in text
    assert NZ_DESK in text
    assert "UNSPECIFIED" not in text


def test_a_holder_mismatch_alerts_and_names_the_desk(hub: str) -> None:
    out = rmas("check", "--hub", hub, "--state", "AUS", "--number", "PA0000101",
               "--surname", "JONES")  # fmt: skip
    no_traceback(out)
    assert out.returncode == 1
    assert "HOLDER DOES NOT MATCH" in out.stdout
    assert "valid (issued, not reported)" in out.stdout
    assert AU_DESK in out.stdout


def test_clear_needs_no_call_and_exits_0(hub: str) -> None:
    out = rmas("check", "--hub", hub, "--state", "NZL", "--number", "LA900001")
    no_traceback(out)
    assert out.returncode == 0
    assert "verdict    CLEAR" in out.stdout
    assert "no record (not reported)" in out.stdout
    assert "call (24/7)" not in out.stdout
    assert NZ_DESK not in out.stdout


def test_incomplete_exits_3_and_names_the_desk_of_the_source_that_did_not_answer(
    hub: str,
) -> None:
    out = rmas("check", "--hub", hub, "--state", "USA", "--number", "X1234567")
    no_traceback(out)
    assert out.returncode == 3
    assert "verdict    INCOMPLETE" in out.stdout
    usa = next(line for line in out.stdout.splitlines() if line.strip().startswith("USA "))
    assert "unavailable" in usa
    assert "call (24/7)" in out.stdout
    assert US_DESK in out.stdout
    data = json.loads(rmas("check", "--hub", hub, "--state", "USA", "--number", "X1",
                           "--json").stdout)  # fmt: skip
    assert data["verdict"] == "INCOMPLETE"


def test_an_issuer_without_a_provider_is_reported_as_not_consulted(hub: str) -> None:
    out = rmas("check", "--hub", hub, "--state", "PHL", "--number", "PX0000001")
    no_traceback(out)
    assert out.returncode == 1  # the global store's STOLEN
    assert "issuer     NOT consulted" in out.stdout
    assert "call (24/7)" in out.stdout
    data = json.loads(rmas("check", "--hub", hub, "--state", "PHL", "--number", "PX0000001",
                           "--json").stdout)  # fmt: skip
    assert data["issuer_consulted"] is False


def test_an_issuer_with_a_provider_is_reported_as_consulted(hub: str) -> None:
    out = rmas("check", "--hub", hub, "--state", "NZL", "--number", "LA900001")
    assert out.returncode == 0
    assert "issuer     consulted" in out.stdout


def test_an_unknown_type_code_is_refused_once_without_a_traceback(hub: str) -> None:
    out = rmas("check", "--hub", hub, "--state", "NZL", "--number", "LA900001", "--type", "Z")
    no_traceback(out)
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr.count("'Z'") == 1
    assert len(out.stderr.strip().splitlines()) == 1
    data = json.loads(rmas("check", "--hub", hub, "--state", "NZL", "--number", "LA900001",
                           "--type", "Z", "--json").stdout)  # fmt: skip
    assert data["exit_code"] == 2
    assert "'Z'" in data["error"]["message"]
    ok = rmas("check", "--hub", hub, "--state", "NZL", "--number", "LA900001", "--type", "P")
    assert ok.returncode == 0, ok.stderr
    assert "(passport)" in ok.stdout


def test_json_errors_are_json_with_the_exit_code(hub: str) -> None:
    bad = rmas("check", "--hub", hub, "--state", "QQQ", "--number", "LA#1", "--json")
    no_traceback(bad)
    assert bad.returncode == 4
    err = json.loads(bad.stdout)["error"]
    assert err["code"] == "INVALID_ARGUMENT"
    assert {v["field"] for v in err["field_violations"]} == {
        "document.issuing_state",
        "document.number",
    }
    usage = rmas("check", "--hub", hub, "--json")
    assert usage.returncode == 2
    assert json.loads(usage.stdout)["exit_code"] == 2
    bad_option = rmas("check", "--hub", hub, "--state", "NZL", "--number", "A1", "--json",
                      "--timeout", "soon")  # fmt: skip
    assert bad_option.returncode == 2
    assert "--timeout" in json.loads(bad_option.stdout)["error"]["message"]
    down = rmas("check", "--hub", f"127.0.0.1:{free_port()}", "--state", "NZL",
                "--number", "A1", "--json", "--timeout", "3")  # fmt: skip
    no_traceback(down)
    assert down.returncode == 69
    assert json.loads(down.stdout)["error"]["code"] == "UNAVAILABLE"


def test_a_hung_hub_is_temporary_75() -> None:
    """A hub that accepts the connection and never answers (hung, or a black-holing proxy): the
    deadline passes; a script should try again (75), not treat it as an outage (69)."""
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        target = f"127.0.0.1:{hung.getsockname()[1]}"
        out = rmas("check", "--hub", target, "--state", "NZL", "--number", "A1",
                   "--timeout", "0.5")  # fmt: skip
    no_traceback(out)
    assert out.returncode == 75, out.stderr
    assert "DEADLINE_EXCEEDED" in out.stderr


def test_exit_codes_are_in_the_help() -> None:
    out = rmas("check", "--help")
    assert out.returncode == 0
    for code in ("0   CLEAR", "1   ALERT", "3   INCOMPLETE", "4   INVALID_DATA", "69", "75"):
        assert code in out.stdout


TLS_HUB = """
[hub]
listen = "127.0.0.1:{port}"
[tls]
cert = "{d}/hub.pem"
key = "{d}/hub.key"
ca = "{d}/ca.pem"
[[callers]]
identity = "rmas://airline/*"
role = "airline"
[[callers]]
identity = "rmas://officer/*"
role = "officer"
[[providers]]
id = "NZL"
kind = "fake"
issuing_states = ["NZL"]
records = {{ "NZL:LA000002" = "STOLEN" }}
"""


def test_the_airline_view_and_a_client_without_certificates(tmp_path: Path, pki: Pki) -> None:
    port = free_port()
    cfg = tmp_path / "hub.toml"
    cfg.write_text(TLS_HUB.format(port=port, d=pki.dir))
    proc = serve(cfg, port)
    target = f"127.0.0.1:{port}"
    try:
        airline = rmas("check", "--hub", target, "--certs", str(pki.dir), "--as", "airline",
                       "--state", "NZL", "--number", "LA000002")  # fmt: skip
        airline_json = rmas("check", "--hub", target, "--certs", str(pki.dir), "--as", "airline",
                            "--state", "NZL", "--number", "LA000002", "--json")  # fmt: skip
        officer = rmas("check", "--hub", target, "--certs", str(pki.dir), "--as", "officer",
                       "--state", "NZL", "--number", "LA000002")  # fmt: skip
        plain = rmas("check", "--hub", target, "--state", "NZL", "--number", "LA000002",
                     "--timeout", "5")  # fmt: skip
        plain_status = rmas("status", "--hub", target, "--timeout", "5")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    for out in (airline, airline_json, officer, plain, plain_status):
        no_traceback(out)
    # The airline sees the directive, and never an empty verdict spelled UNSPECIFIED.
    assert airline.returncode == 1, airline.stderr  # by the directive: DO_NOT_BOARD
    assert "directive  DO_NOT_BOARD" in airline.stdout
    assert "UNSPECIFIED" not in airline.stdout
    assert "verdict" not in airline.stdout
    data = json.loads(airline_json.stdout)
    assert "verdict" not in data and data["directive"] == "DO_NOT_BOARD"
    assert "UNSPECIFIED" not in airline_json.stdout
    assert officer.returncode == 1 and "verdict    ALERT" in officer.stdout
    # No certificates against a TLS hub: one message saying which options to pass.
    for out in (plain, plain_status):
        assert out.returncode == 69, out.stderr
        assert "--cert FILE --key FILE --ca FILE" in out.stderr
        assert "--certs DIR --as NAME" in out.stderr
