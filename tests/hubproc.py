"""A hub as a real process: ``rmas serve`` started, and waited for until its port answers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

__all__ = ["free_port", "serve"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(
    config: Path,
    port: int,
    *,
    stdout: int | IO[Any] | None = subprocess.DEVNULL,
    env: Mapping[str, str] | None = None,
    seconds: float = 20.0,
) -> subprocess.Popen[str]:
    """Start ``rmas serve --config CONFIG`` (stderr piped, text) and return once ``port`` accepts
    connections; fail with the process's stderr if it exits first."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "rmas.cli", "serve", "--config", str(config)],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"hub exited: {proc.communicate()[1][-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"hub did not listen on {port} within {seconds} s")
