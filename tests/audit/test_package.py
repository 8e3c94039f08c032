"""The package's face is lazy, and the format module is the standard library only: the hub and
the writer process (which loads it by path, without the rmas package) share it."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import rmas.audit
from rmas.audit import format as fmt
from rmas.audit import writers

ROOT = Path(__file__).resolve().parents[2]


def _fresh(code: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    loaded: list[str] = json.loads(out.stdout)
    return loaded


def test_importing_rmas_audit_loads_no_storage_driver() -> None:
    loaded = _fresh("import json, sys, rmas.audit; print(json.dumps(sorted(sys.modules)))")
    heavy = {"sqlite3", "_sqlite3", "sqlalchemy", "asyncpg", "structlog", "grpc"}
    assert not heavy & set(loaded)
    assert not [m for m in loaded if m.startswith("rmas.audit.")]
    # ...until a name is used.
    used = _fresh(
        "import json, sys, rmas.audit; rmas.audit.verify; print(json.dumps(sorted(sys.modules)))"
    )
    assert "rmas.audit.reader" in used and "sqlalchemy" not in used


def test_the_face_names_every_public_part() -> None:
    for name in rmas.audit.__all__:
        assert getattr(rmas.audit, name) is not None


def test_the_format_module_imports_the_standard_library_only() -> None:
    tree = ast.parse(Path(fmt.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported and imported <= set(sys.stdlib_module_names) | {"__future__"}


def test_the_writer_process_loads_the_format_module_without_the_rmas_package() -> None:
    code = (
        "import json, runpy, sys; "
        f"runpy.run_path({writers.WRITER_SCRIPT!r}, run_name='writer'); "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('rmas'))))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == ["rmas_audit_format"]
