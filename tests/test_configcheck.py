"""``rmas config check`` and ``rmas serve`` on hub and node files: real processes.

A typo in a provider's options (``registy``, ``contcat``) used to be ignored: the store then
counted as alerts-only (a counterfeit answered NO_RECORD, so CLEAR) or lost its 24/7 desk. Now
the hub refuses to start, and ``rmas config check`` says so without starting anything.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rmas.security.certs import init_dir
from tests.hubproc import free_port

FIX = Path(__file__).resolve().parent.parent / "fixtures"

HUB = """
[hub]
listen = "127.0.0.1:{port}"

[[providers]]
id = "NZL"
kind = "sql"
url = "sqlite+aiosqlite:///nzl.db"
issuing_states = ["NZL"]
registry = "complete"
contact = "NZ 24/7 desk +64 4 000 0000"

[[providers]]
id = "SLTD"
kind = "fake"
scope = "global"
"""

NODE = """
[hub]
log_level = "warning"

[tls]
cert = "pki/node.pem"
key = "pki/node.key"
ca = "pki/ca.pem"

[[callers]]
identity = "rmas://hub/*"
role = "node"

[[providers]]
id = "NZL"
kind = "jsonl"
path = "nzl.jsonl"
issuing_states = ["NZL"]
registry = "complete"
"""


def rmas(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rmas.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )


def write(folder: Path, text: str, name: str = "hub.toml") -> Path:
    """The config file; a store it names (nzl.db) exists, empty: serving, statistics and
    ``config check`` refuse a store that does not exist rather than create one."""
    path = folder / name
    path.write_text(text.replace("{port}", str(free_port())))
    if "nzl.db" in text:
        (folder / "nzl.db").touch()
    return path


@pytest.fixture
def node_dir(tmp_path: Path) -> Path:
    init_dir(tmp_path / "pki")
    return tmp_path


# -- rmas serve ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("right", "wrong"), [("registry", "registy"), ("contact", "contcat")])
def test_a_hub_with_a_mistyped_provider_option_refuses_to_start(
    tmp_path: Path, right: str, wrong: str
) -> None:
    cfg = write(tmp_path, HUB.replace(f"{right} =", f"{wrong} =", 1))
    out = rmas("serve", "--config", str(cfg))
    assert out.returncode == 2, out.stderr
    assert f'providers[0].{wrong}: unknown key (did you mean "{right}"?)' in out.stderr
    assert "Traceback" not in out.stderr
    assert "hub_started" not in out.stderr


def test_a_hub_file_without_providers_refuses_to_start(tmp_path: Path) -> None:
    cfg = write(tmp_path, HUB.split("[[providers]]", 1)[0])
    out = rmas("serve", "--config", str(cfg))
    assert out.returncode == 2, out.stderr
    assert "providers: no [[providers]] table" in out.stderr
    assert "hub_started" not in out.stderr


# -- rmas config check ---------------------------------------------------------------------------


def test_config_check_accepts_a_good_hub_file_in_one_line_and_creates_nothing(
    tmp_path: Path,
) -> None:
    with socket.socket() as taken:  # the hub's port is busy: a check that bound it would fail
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = tmp_path / "hub.toml"
        cfg.write_text(HUB.replace("{port}", str(port)))
        (tmp_path / "nzl.db").touch()
        before = sorted(tmp_path.iterdir())
        out = rmas("config", "check", str(cfg))
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("\n") == 1
    assert out.stdout.startswith(f"OK {cfg}: 2 providers (NZL: sql, SLTD: fake)")
    # The store's factory opened nothing: no file created, nothing written to the store.
    assert sorted(tmp_path.iterdir()) == before
    assert (tmp_path / "nzl.db").stat().st_size == 0


def test_config_check_names_a_store_that_does_not_exist(tmp_path: Path) -> None:
    cfg = tmp_path / "hub.toml"
    cfg.write_text(HUB.replace("{port}", str(free_port())))
    out = rmas("config", "check", str(cfg))
    assert out.returncode == 2
    assert "providers[0].url: no store at" in out.stderr
    assert not (tmp_path / "nzl.db").exists()


def test_config_check_reads_a_node_file_without_callers_with_node(node_dir: Path) -> None:
    text = NODE.replace('[[callers]]\nidentity = "rmas://hub/*"\nrole = "node"\n', "")
    assert "[[callers]]" not in text
    cfg = write(node_dir, text, "node.toml")
    as_hub = rmas("config", "check", str(cfg))
    assert as_hub.returncode == 2
    assert "--node" in as_hub.stderr
    as_node = rmas("config", "check", "--node", str(cfg))
    assert as_node.returncode == 0, as_node.stderr


def test_config_check_accepts_a_good_node_file(node_dir: Path) -> None:
    cfg = write(node_dir, NODE, "node.toml")
    out = rmas("config", "check", str(cfg))
    assert out.returncode == 0, out.stderr
    assert "1 provider (NZL: jsonl); TLS as rmas://node/NZL; 1 caller rule" in out.stdout


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        (("registry =", "registy ="),
         'providers[0].registy: unknown key (did you mean "registry"?)'),
        (("contact =", "contcat ="),
         'providers[0].contcat: unknown key (did you mean "contact"?)'),
        (('kind = "sql"', 'kind = "sqll"'), "providers[0].kind: no provider kind 'sqll'"),
        (("[hub]", "[hub]\ndeadline = 10"),
         'hub.deadline: unknown key (did you mean "deadline_ms"?)'),
        (('scope = "global"', 'scope = "global"\nrequired = flase'), "not valid TOML"),
    ],
    ids=["registy", "contcat", "kind", "hub-key", "toml"],
)  # fmt: skip
def test_config_check_refuses_a_bad_hub_file_with_one_line_per_error(
    tmp_path: Path, edit: tuple[str, str], error: str
) -> None:
    cfg = write(tmp_path, HUB.replace(*edit))
    out = rmas("config", "check", str(cfg))
    assert out.returncode == 2
    assert out.stdout == ""
    (line,) = out.stderr.splitlines()
    assert line.startswith(f"{cfg}: ")
    assert error in line


def test_config_check_reports_every_provider_at_fault_and_a_missing_provider(
    tmp_path: Path,
) -> None:
    text = HUB.replace("registry =", "registy =").replace(
        'scope = "global"', 'scope = "global"\nlatency = 5'
    )
    out = rmas("config", "check", str(write(tmp_path, text)))
    assert out.returncode == 2
    lines = out.stderr.splitlines()
    assert len(lines) == 2
    assert "providers[0].registy: unknown key" in lines[0]
    assert 'providers[1].latency: unknown key (did you mean "latency_ms"?)' in lines[1]
    truncated = rmas("config", "check", str(write(tmp_path, HUB.split("[[providers]]", 1)[0])))
    assert truncated.returncode == 2
    assert "providers: no [[providers]] table" in truncated.stderr


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        (("path =", "pth ="), 'providers[0].pth: unknown key (did you mean "path"?)'),
        (("role =", "rol ="), 'callers[0].rol: unknown key (did you mean "role"?)'),
        (('key = "pki/node.key"', 'key = "pki/none.key"'), "tls.key: cannot read"),
        (("[hub]", "[hub]\nlog_levle = 'info'"),
         'hub.log_levle: unknown key (did you mean "log_level"?)'),
    ],
    ids=["option", "callers", "tls-file", "hub-key"],
)  # fmt: skip
def test_config_check_refuses_a_bad_node_file(
    node_dir: Path, edit: tuple[str, str], error: str
) -> None:
    cfg = write(node_dir, NODE.replace(*edit), "node.toml")
    out = rmas("config", "check", str(cfg))
    assert out.returncode == 2
    (line,) = out.stderr.splitlines()
    assert error in line
    assert "Traceback" not in out.stderr


def test_a_node_with_a_mistyped_option_refuses_to_serve(node_dir: Path) -> None:
    cfg = write(node_dir, NODE.replace("registry =", "registy ="), "node.toml")
    out = rmas("provider", "serve", "--config", str(cfg), "--listen", f"127.0.0.1:{free_port()}")
    assert out.returncode == 2
    assert 'providers[0].registy: unknown key (did you mean "registry"?)' in out.stderr


def test_config_check_of_an_audited_hub_reads_the_key_and_opens_no_database(
    tmp_path: Path,
) -> None:
    (tmp_path / "audit.key").write_bytes(os.urandom(32))
    text = HUB + '\n[audit]\nurl = "sqlite+aiosqlite:///audit.db"\nkey_file = "audit.key"\n'
    out = rmas("config", "check", str(write(tmp_path, text)))
    assert out.returncode == 0, out.stderr
    assert "audit required" in out.stdout
    assert not (tmp_path / "audit.db").exists()
    (tmp_path / "audit.key").write_bytes(b"short")
    bad = rmas("config", "check", str(write(tmp_path, text)))
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1
    assert "audit.key_file" in bad.stderr


def test_config_check_reports_errors_in_several_tables_at_once(tmp_path: Path) -> None:
    text = HUB.replace("[hub]", "[hub]\ndeadline_ms = 5\nmax_manifst = 10")
    text = text.replace("registry =", "registy =")
    text += "\n[limits]\ndocuments_per_s = -1\n"
    out = rmas("config", "check", str(write(tmp_path, text)))
    assert out.returncode == 2
    lines = [line.removeprefix(f"{tmp_path / 'hub.toml'}: ") for line in out.stderr.splitlines()]
    assert lines == [
        'hub.max_manifst: unknown key (did you mean "max_manifest"?)',
        "hub.deadline_ms: must be between 10 and 60000",
        "limits.documents_per_s: must be 0 (unlimited) or more",
        'providers[0].registy: unknown key (did you mean "registry"?)',
    ]


def test_config_check_of_a_missing_or_broken_file_says_so_in_one_line(tmp_path: Path) -> None:
    out = rmas("config", "check", str(tmp_path / "absent.toml"))
    assert out.returncode == 2
    assert out.stderr == f"{tmp_path / 'absent.toml'}: cannot read: No such file or directory\n"
    broken = tmp_path / "broken.toml"
    broken.write_text("[hub\n")
    out = rmas("config", "check", str(broken))
    assert out.returncode == 2
    (line,) = out.stderr.splitlines()
    assert line.startswith(f"{broken}: not valid TOML")
