"""The core, the configuration and the shell helpers load no transport or storage library.

Each module is imported in a fresh interpreter (so nothing an earlier test imported counts) and
``sys.modules`` is checked for gRPC, SQLAlchemy, aiohttp, asyncpg and the EDIFACT channel.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PURE = (
    "rmas.documents",
    "rmas.states",
    "rmas.mrz",
    "rmas.verdict",
    "rmas.providers",
    "rmas.fanout",
    "rmas.hub",
    "rmas.abtc",
    "rmas.changes",
    "rmas.changewatch",
    "rmas.config",
    "rmas.confread",
    "rmas.conformance",
    "rmas.resilience",
    "rmas.net",
    "rmas.runtime",
)
FORBIDDEN = ("grpc", "sqlalchemy", "aiohttp", "asyncpg", "rmas.iapi")

_PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
forbidden = json.loads(sys.argv[2])
print(json.dumps(sorted(
    m for m in sys.modules if any(m == f or m.startswith(f + ".") for f in forbidden)
)))
"""


def loaded(module: str) -> list[str]:
    """The forbidden modules that importing ``module`` alone loads."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, module, json.dumps(FORBIDDEN)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    found: list[str] = json.loads(out)
    return found


@pytest.mark.parametrize("module", PURE)
def test_loads_no_transport_storage_or_edifact(module: str) -> None:
    assert loaded(module) == []


def test_probe_sees_a_forbidden_import() -> None:
    # The probe itself must be able to fail: the gRPC edge does load grpc and the iAPI channel.
    found = loaded("rmas.server.app")
    assert "grpc" in found
    assert "rmas.iapi" in found
