"""Developers of rmas: the `postgres` marker selects the PostgreSQL tests, and a run without
RMAS_TEST_POSTGRES_URL says in its summary that they were skipped, and why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_TEST = (
    "tests/adapters/sqlstore/test_provider.py::test_the_postgres_batch_query_uses_the_unique_index"
)
BOTH = "tests/adapters/sqlstore/test_feeds.py::test_a_feed_applies_upserts_and_withdrawals"


def pytest(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "RMAS_TEST_POSTGRES_URL"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT, env=env,
    )  # fmt: skip


def test_the_postgres_marker_selects_the_postgresql_tests() -> None:
    selected = pytest("--co", "-m", "postgres", PG_TEST, BOTH)
    assert "test_the_postgres_batch_query_uses_the_unique_index" in selected.stdout
    assert "test_a_feed_applies_upserts_and_withdrawals[postgres]" in selected.stdout
    assert "[sqlite]" not in selected.stdout
    others = pytest("--co", "-m", "not postgres", PG_TEST, BOTH)
    assert "[sqlite]" in others.stdout
    assert "[postgres]" not in others.stdout
    assert "unique_index" not in others.stdout


def test_a_run_without_postgresql_says_why_in_its_summary() -> None:
    out = pytest(PG_TEST)
    assert out.returncode == 0, out.stdout
    assert "1 skipped" in out.stdout
    assert "1 PostgreSQL tests skipped: RMAS_TEST_POSTGRES_URL is not set" in out.stdout
