"""The SLTD-style service's own files: its store is its owner's alone, and a mistyped key in its
tokens file is refused (real ``rmas sltd`` processes)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

FIX = Path(__file__).resolve().parents[3] / "fixtures" / "sltd"


def rmas(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rmas.cli", *args], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


def test_rmas_sltd_import_creates_the_store_for_its_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "sltd.db"
    old = os.umask(0o022)
    try:
        out = rmas("sltd", "import", "--url", f"sqlite+aiosqlite:///{db}", str(FIX / "records.csv"))
    finally:
        os.umask(old)
    assert out.returncode == 0, out.stderr
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_rmas_sltd_serve_refuses_a_tokens_file_with_a_mistyped_key(tmp_path: Path) -> None:
    tokens = json.loads((FIX / "tokens.json").read_text())
    tokens["amdin"] = tokens.pop("admin", "operator-token")
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps(tokens))
    out = rmas("sltd", "serve", "--url", f"sqlite+aiosqlite:///{tmp_path / 's.db'}",
               "--tokens", str(path), "--listen", "127.0.0.1:0")  # fmt: skip
    assert out.returncode == 2
    assert "--tokens: unknown key 'amdin' (did you mean \"admin\"?)" in out.stderr
