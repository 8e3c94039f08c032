"""Real processes for the end-to-end flight tests: ``rmas serve`` with ``[flights]``, the
airline's ``rmas iapi watch --json`` read line by line, ``rmas iapi`` sending a PAXLST and
``rmas store apply`` changing a record from another process."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.flights.kit import Pax, paxlst

__all__ = ["Watch", "hub_config", "rmas", "send_paxlst", "stop", "store_apply"]


def rmas(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``rmas ARGS...`` as a process of its own."""
    return subprocess.run([sys.executable, "-m", "rmas.cli", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)  # fmt: skip


def stop(proc: subprocess.Popen[str]) -> str:
    """Stop a process started here (SIGTERM), returning what it wrote on stderr."""
    if proc.poll() is None:
        proc.terminate()
    try:
        _out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
    return err or ""


def hub_config(
    tmp: Path,
    port: int,
    providers: str,
    *,
    flights: str = 'path = "flights.db"',
    name: str = "hub.toml",
    hub: str = "",
) -> Path:
    """A hub's config: ``providers`` (TOML ``[[providers]]`` tables) and ``[flights]`` with a
    short resend interval (a second delivery of an acknowledged change would show)."""
    key = tmp / "flights.key"
    if not key.exists():
        key.write_text(os.urandom(32).hex())
    path = tmp / name
    path.write_text(f"""
[hub]
listen = "127.0.0.1:{port}"
{hub}

{providers}

[flights]
{flights}
key_file = "flights.key"
poll_ms = 100
recheck_s = 3600
resend_initial_s = 1
resend_max_s = 2
""")
    return path


def send_paxlst(tmp: Path, target: str, passengers: Sequence[Pax], **kw: str) -> dict[str, Any]:
    """``rmas iapi --json`` with a PAXLST of ``passengers``: the per-passenger summary."""
    name = f"paxlst-{time.monotonic_ns()}.edi"
    (tmp / name).write_bytes(paxlst(passengers, **kw))
    sent = rmas("iapi", "--hub", target, str(tmp / name), "--json")
    assert sent.returncode == 0, sent.stderr
    answer: dict[str, Any] = json.loads(sent.stdout)
    return answer


def store_apply(tmp: Path, url: str, *changes: dict[str, Any]) -> None:
    """``rmas store apply`` of a delta feed holding ``changes``, from a process of its own."""
    feed = tmp / f"feed-{time.monotonic_ns()}.jsonl"
    feed.write_text("".join(json.dumps(c) + "\n" for c in changes))
    done = rmas("store", "apply", "--url", url, str(feed))
    assert done.returncode == 0, done.stderr
    assert f"applied {len(changes)} changes" in done.stdout, done.stdout


class Watch:
    """The airline: ``rmas iapi watch --hub TARGET --json``, its lines read by a thread."""

    def __init__(self, target: str, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rmas.cli", "iapi", "watch", "--hub", target, "--json", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def get(self, within: float = 30.0) -> dict[str, Any]:
        """The next status change printed (fails after ``within`` seconds)."""
        try:
            line = self.lines.get(timeout=within)
        except queue.Empty:
            raise AssertionError(f"no status change within {within} s") from None
        change: dict[str, Any] = json.loads(line)
        return change

    def nothing(self, wait: float) -> bool:
        """True when nothing more is printed within ``wait`` seconds."""
        try:
            line = self.lines.get(timeout=wait)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected status change: {line}")

    def close(self) -> str:
        return stop(self.proc)
