"""Everyday mistakes through the real `rmas` process: one clear line on stderr, exit code 2,
never a traceback (and nothing created by mistake)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.hubproc import free_port

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def rmas(
    *args: str, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rmas.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
    )


def one_clear_line(out: subprocess.CompletedProcess[str], *words: str) -> str:
    """The process exited 2 with one line on stderr (log lines aside) naming ``words``."""
    assert "Traceback" not in out.stderr, out.stderr
    lines = [x for x in out.stderr.splitlines() if x.strip() and not x.startswith("{")]
    assert out.returncode == 2, out.stdout + out.stderr
    assert len(lines) == 1, out.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def hub_toml(tmp_path: Path, port: int, extra: str = "") -> Path:
    cfg = tmp_path / "hub.toml"
    cfg.write_text(
        f"[hub]\nlisten = '127.0.0.1:{port}'\n{extra}\n"
        "[[providers]]\nid = 'NZL'\nkind = 'fake'\nissuing_states = ['NZL']\n"
    )
    return cfg


def test_a_busy_listen_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        out = rmas("serve", "--config", str(hub_toml(tmp_path, port)))
    one_clear_line(out, "hub.listen", f"127.0.0.1:{port}", "in use", "--listen")


def test_a_busy_metrics_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        mport = taken.getsockname()[1]
        cfg = hub_toml(tmp_path, free_port(), f"metrics_listen = '127.0.0.1:{mport}'")
        out = rmas("serve", "--config", str(cfg))
    one_clear_line(out, "hub.metrics_listen", str(mport), "--metrics-listen")


def test_bad_and_unreachable_database_urls(tmp_path: Path) -> None:
    csv = str(FIXTURES / "records" / "nzl.csv")
    one_clear_line(rmas("store", "stats", "--url", "not a url"), "not a database URL")
    one_clear_line(rmas("store", "import", "--url", "nosuchdb://x/y", csv), "database URL")
    unreachable = f"postgresql+asyncpg://rmas@127.0.0.1:{free_port()}/nothing"
    one_clear_line(rmas("store", "stats", "--url", unreachable), "connection refused")
    one_clear_line(rmas("store", "import", "--url", unreachable, csv), "connection refused")
    feed = tmp_path / "feed.jsonl"
    feed.write_text('{"op": "withdraw", "issuing_state": "NZL", "number": "A1", "version": 1}\n')
    one_clear_line(rmas("store", "apply", "--url", "not a url", str(feed)), "not a database URL")


def test_the_readmes_store_import_before_var_exists(tmp_path: Path) -> None:
    out = rmas("store", "import", "--url", "sqlite+aiosqlite:///var/nzl.db",
               str(FIXTURES / "records" / "nzl.csv"), cwd=tmp_path)  # fmt: skip
    one_clear_line(out, "no folder var", "mkdir -p var")
    assert not (tmp_path / "var").exists()
    missing_csv = rmas("store", "import", "--url", f"sqlite+aiosqlite:///{tmp_path}/x.db",
                       str(tmp_path / "typo.csv"))  # fmt: skip
    one_clear_line(missing_csv, "typo.csv", "No such file")


def test_a_mistyped_store_path_is_refused_and_never_created(tmp_path: Path) -> None:
    typo = tmp_path / "nz1.db"
    url = f"sqlite+aiosqlite:///{typo}"
    cfg = tmp_path / "hub.toml"
    cfg.write_text(
        f"[hub]\nlisten = '127.0.0.1:{free_port()}'\n[[providers]]\nid = 'NZL'\nkind = 'sql'\n"
        f"url = '{url}'\nissuing_states = ['NZL']\n"
    )
    one_clear_line(rmas("serve", "--config", str(cfg)), "providers[0].url", "no store at")
    one_clear_line(rmas("store", "stats", "--url", url), "no store at", "rmas store import")
    one_clear_line(rmas("store", "migrate", "--url", url), "no store at")
    assert not typo.exists()
    assert list(tmp_path.iterdir()) == [cfg]


def test_a_broken_pipe(tmp_path: Path) -> None:
    """`rmas ... | head`: the reader is gone before rmas writes."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'nzl.db'}"
    assert (
        rmas("store", "import", "--url", url, str(FIXTURES / "records" / "nzl.csv")).returncode == 0
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "rmas.cli", "store", "stats", "--url", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # as `head` does once it has its lines
    err = proc.stderr.read()
    proc.wait(60)
    out = subprocess.CompletedProcess(proc.args, proc.returncode, "", err)
    one_clear_line(out, "broken pipe")


def test_a_second_demo_while_one_runs(tmp_path: Path) -> None:
    first = subprocess.Popen(
        [sys.executable, "-m", "rmas.cli", "demo", "--dir", str(tmp_path),
         "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert first.stdout is not None
        deadline = time.monotonic() + 120
        for line in first.stdout:
            if "Hub running" in line or time.monotonic() > deadline:
                break
        assert first.poll() is None
        second = rmas("demo", "--dir", str(tmp_path), "--listen", "127.0.0.1:0", "--exit")
        one_clear_line(second, "another demo is running", str(tmp_path), f"pid {first.pid}")
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(60)
    assert first.returncode == 0
    # Once it has stopped, the next one runs.
    again = rmas("demo", "--dir", str(tmp_path), "--listen", "127.0.0.1:0", "--exit", timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr


def test_an_unreachable_audit_database(tmp_path: Path) -> None:
    (tmp_path / "audit.key").write_text("ab" * 32 + "\n")
    unreachable = f"postgresql+asyncpg://rmas@127.0.0.1:{free_port()}/audit"
    for url in (unreachable, "sqlite+aiosqlite:///no/such/folder/audit.db"):
        cfg = hub_toml(tmp_path, free_port())
        cfg.write_text(cfg.read_text() + f"[audit]\nurl = '{url}'\nkey_file = 'audit.key'\n")
        one_clear_line(rmas("serve", "--config", str(cfg)), "audit.url")
