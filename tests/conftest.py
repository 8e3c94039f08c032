"""Shared fixtures: gRPC stubs against hubs served for real on ephemeral loopback ports."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
def rmas_cmd() -> list[str]:
    """The installed ``rmas`` command, run with this interpreter (no PATH assumptions)."""
    return [sys.executable, "-m", "rmas.cli"]


@pytest.fixture
def postgres_url() -> str:
    url = os.environ.get("RMAS_TEST_POSTGRES_URL", "")
    if not url:
        pytest.skip("RMAS_TEST_POSTGRES_URL is not set (.ci/run sets it to a throw-away database)")
    return url
