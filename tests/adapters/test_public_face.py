"""Adapters import only rmas's public face (rmas.PUBLIC_MODULES), read from their source."""

from __future__ import annotations

import ast
from pathlib import Path

import rmas

ADAPTERS = Path(__file__).resolve().parents[2] / "adapters"
#: The demo is an application assembled from the whole of rmas (hub server, audit trail, client,
#: EDIFACT channel); it ships with the adapters so that ``rmas demo`` can build their stores, but
#: it is not an adapter.
NOT_ADAPTERS = {ADAPTERS / "demo.py"}


def rmas_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every rmas module ``path`` imports, at any depth of the file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "rmas"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out += [(node.lineno, node.module)] if node.module.split(".")[0] == "rmas" else []
    return out


def outside(path: Path) -> list[str]:
    public = set(rmas.PUBLIC_MODULES)
    return [f"{path.name}:{line} imports {m}" for line, m in rmas_imports(path) if m not in public]


def test_adapters_import_only_the_public_face() -> None:
    files = [p for p in sorted(ADAPTERS.rglob("*.py")) if p not in NOT_ADAPTERS]
    assert len(files) > 10
    assert [problem for p in files for problem in outside(p)] == []


def test_the_check_sees_an_import_outside_the_public_face(tmp_path: Path) -> None:
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text(
        "from rmas.providers import Provider\n"
        "def f():\n    from rmas.server.mapping import record_to_pb\n    import rmas.hub\n"
    )
    assert outside(sneaky) == [
        "sneaky.py:3 imports rmas.server.mapping",
        "sneaky.py:4 imports rmas.hub",
    ]
