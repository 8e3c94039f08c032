"""The core, the configuration and the shell helpers load no transport or storage library.

Each module is imported in a fresh interpreter (so nothing an earlier test imported counts) and
``sys.modules`` is checked for gRPC, SQLAlchemy, aiohttp, asyncpg and the EDIFACT channel.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PURE = (
    "rmas.documents",
    "rmas.states",
    "rmas.mrz",
    "rmas.verdict",
    "rmas.providers",
    "rmas.plugins",
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
    "rmas.frozen",
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


def loaded(module: str, forbidden: tuple[str, ...] = FORBIDDEN) -> list[str]:
    """The ``forbidden`` modules that importing ``module`` alone loads."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, module, json.dumps(forbidden)],
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


@pytest.mark.parametrize("module", ["rmas.remote.node", "rmas.remote.client"])
def test_a_national_node_and_the_hubs_client_of_one_load_no_hub_server_or_edifact(
    module: str,
) -> None:
    assert loaded(module, ("rmas.server", "rmas.console", "rmas.iapi")) == []


# -- the edge's layers, read statically ------------------------------------------------------

RMAS = Path(__file__).resolve().parents[1] / "rmas"


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports, wherever the import is (functions and TYPE_CHECKING blocks
    too); ``from a import b`` counts as ``a`` and ``a.b``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def modules(package: str = "") -> dict[str, set[str]]:
    """Module name -> what it imports, for every module of ``rmas`` (or of one sub-package)."""
    root = RMAS / package if package else RMAS
    out = {}
    for path in sorted(root.rglob("*.py")):
        name = ".".join(("rmas", *path.relative_to(RMAS).with_suffix("").parts))
        out[name.removesuffix(".__init__")] = imported(path)
    return out


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("server", ("rmas.remote",)),
        ("remote", ("rmas.server", "rmas.console")),
        ("grpckit", ("rmas.server", "rmas.remote", "rmas.console")),
    ],
)
def test_the_edges_import_the_toolkit_not_each_other(
    package: str, forbidden: tuple[str, ...]
) -> None:
    found = modules(package)
    assert found, f"no modules under rmas/{package}"
    crossing = {
        module: sorted(m for m in imports if any(_within(m, f) for f in forbidden))
        for module, imports in found.items()
    }
    assert {m: c for m, c in crossing.items() if c} == {}


#: The modules that name ``*_pb2`` messages, and why (rmas/grpckit/__init__.py says the same):
#: the toolkit's translation, the servicers' thin edge and service registration, and the gRPC
#: clients that build requests and read answers on the caller's side.
PB2_USERS = {
    "rmas.grpckit.enums",  # the domain's enums in their wire form, one table each
    "rmas.grpckit.mapping",  # protobuf <-> domain for the check and provider messages
    "rmas.grpckit.lookup",  # the provider protocol's requests and answers, both sides
    "rmas.grpckit.errors",  # google.rpc status details
    "rmas.server.check_service",  # the check RPCs' request and response types
    "rmas.server.flight_service",  # the flight conversation's RPC types (status changes)
    "rmas.server.admin_service",  # writes a HubSnapshot into a StatusResponse
    "rmas.server.app",  # service names, registration, health's SERVING
    "rmas.remote.node",  # the node's RPC types, registration, health
    "rmas.remote.client",  # the hub's client of a node: its stub and answer types
    "rmas.remote.conformance",  # the kit that probes a node as a client
    "rmas.remote.conformance_changes",  # its WatchChanges check, a client of the stream
    "rmas.remote.changefeed",  # the hub's client of a node's WatchChanges stream
    "rmas.client",  # the command line's requests and answers
    "rmas.check_cli",  # `rmas check`: the DocumentCheck stub
    "rmas.cli",  # `rmas status` and `rmas paxlst`: their stubs
    "rmas.flights_cli",  # `rmas iapi watch` and `rmas override`: their stubs
}


def test_pb2_messages_stay_in_the_toolkit_and_the_thin_edges() -> None:
    users = {
        module
        for module, imports in modules().items()
        if not _within(module, "rmas.v1")
        and any(m.rpartition(".")[2].endswith(("_pb2", "_pb2_grpc")) for m in imports)
    }
    assert users == PB2_USERS


def _loaded_on_import(path: Path) -> set[str]:
    """What importing ``path`` loads at once: its module-level imports, not those in functions
    (deferred) or under ``if TYPE_CHECKING`` (never run)."""
    found: set[str] = set()
    for stmt in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(stmt, ast.If) and "TYPE_CHECKING" in ast.unparse(stmt.test):
            continue
        for node in ast.walk(stmt):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_no_import_circle() -> None:
    paths = {
        ".".join(("rmas", *p.relative_to(RMAS).with_suffix("").parts)).removesuffix(".__init__"): p
        for p in RMAS.rglob("*.py")
        if p.relative_to(RMAS).parts[0] != "v1"
    }
    graph = {
        m: {i for i in _loaded_on_import(p) if i in paths and i != m} for m, p in paths.items()
    }
    circles: list[list[str]] = []
    done: set[str] = set()

    def visit(module: str, trail: list[str]) -> None:
        if module in trail:
            circles.append([*trail[trail.index(module) :], module])
            return
        if module in done:
            return
        for nxt in sorted(graph[module]):
            visit(nxt, [*trail, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    assert circles == []
