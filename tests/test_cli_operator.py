"""The operator's `rmas serve` and `rmas status`: ports from the command line (two hubs from one
config), reloads reported by `rmas status`, a hub started with --listen reloading its file."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.hubproc import free_port

ROOT = Path(__file__).resolve().parent.parent


def rmas(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rmas.cli", *args],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def config(path: Path, port: int, *, metrics: int = 0, deadline_ms: int = 1500,
           extra: str = "") -> Path:  # fmt: skip
    metrics_line = f"metrics_listen = '127.0.0.1:{metrics}'\n" if metrics else ""
    path.write_text(
        f"[hub]\nlisten = '127.0.0.1:{port}'\ndeadline_ms = {deadline_ms}\n{metrics_line}"
        "[[providers]]\nid = 'NZL'\nkind = 'fake'\nissuing_states = ['NZL']\n" + extra
    )
    return path


@contextmanager
def hub(cfg: Path, port: int, *args: str) -> Iterator[subprocess.Popen[str]]:
    """A hub process, returned once it says it serves (its metrics endpoint is up by then)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "rmas.cli", "serve", "--config", str(cfg), *args],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the first line, once start-up is complete
        assert f"serving on 127.0.0.1:{port}" in line, line
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def metrics_answer(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return resp.status == 200 and b"rmas_build_info" in resp.read()


def test_two_hubs_on_one_host_from_one_config(tmp_path: Path) -> None:
    a, ma, b, mb = free_port(), free_port(), free_port(), free_port()
    cfg = config(tmp_path / "hub.toml", a, metrics=ma)
    with hub(cfg, a), hub(cfg, b, "--listen", f"127.0.0.1:{b}", "--metrics-listen",
                          f"127.0.0.1:{mb}"):  # fmt: skip
        assert metrics_answer(ma) and metrics_answer(mb)
        for port in (a, b):
            st = rmas("status", "--hub", f"127.0.0.1:{port}")
            assert st.returncode == 0, st.stderr
    same = rmas("serve", "--config", str(cfg), "--metrics-listen", f"127.0.0.1:{a}")
    assert same.returncode == 2 and "Traceback" not in same.stderr
    assert "--metrics-listen" in same.stderr


def status(port: int) -> dict[str, object]:
    out = rmas("status", "--hub", f"127.0.0.1:{port}", "--json")
    assert out.returncode == 0, out.stderr
    data: dict[str, object] = json.loads(out.stdout)
    return data


def reloaded(proc: subprocess.Popen[str], port: int, before: object) -> dict[str, object]:
    """SIGHUP the hub and wait until `rmas status` reports a reload newer than ``before``."""
    proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        st = status(port)
        if st["last_reload_at"] != before:
            return st
        time.sleep(0.2)
    raise AssertionError("no reload reported")


def test_a_reload_is_reported_by_status_applied_or_refused(tmp_path: Path) -> None:
    port = free_port()
    cfg = config(tmp_path / "hub.toml", port)
    with hub(cfg, port) as proc:
        st = status(port)
        assert st["last_reload_at"] == ""
        cfg.write_text(cfg.read_text().replace("deadline_ms = 1500", "deadline_ms = 'soon'"))
        st = reloaded(proc, port, st["last_reload_at"])
        assert st["last_reload_ok"] is False
        assert "hub.deadline_ms" in str(st["last_reload_detail"])
        text = rmas("status", "--hub", f"127.0.0.1:{port}").stdout
        assert "REFUSED" in text and "hub.deadline_ms" in text
        config(cfg, port, extra="[[providers]]\nid = 'GLOBAL'\nkind = 'fake'\nscope = 'global'\n")
        st = reloaded(proc, port, st["last_reload_at"])
        assert st["last_reload_ok"] is True
        assert "added GLOBAL" in str(st["last_reload_detail"])
        assert [p["provider_id"] for p in st["providers"]] == ["NZL", "GLOBAL"]  # type: ignore[attr-defined]
        text = rmas("status", "--hub", f"127.0.0.1:{port}").stdout
        assert "applied: added GLOBAL" in text


def test_a_hub_started_with_listen_reloads_when_other_keys_change(tmp_path: Path) -> None:
    in_file, port, metrics = free_port(), free_port(), free_port()
    cfg = config(tmp_path / "hub.toml", in_file)
    with hub(cfg, port, "--listen", f"127.0.0.1:{port}", "--metrics-listen",
             f"127.0.0.1:{metrics}") as proc:  # fmt: skip
        config(cfg, in_file, deadline_ms=900)
        st = reloaded(proc, port, status(port)["last_reload_at"])
        assert st["last_reload_ok"] is True, st["last_reload_detail"]
        assert metrics_answer(metrics)
