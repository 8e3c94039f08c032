"""docs/operations.md names every command of `rmas --help`, its options, and every config key."""

from __future__ import annotations

import argparse
import dataclasses
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from rmas.cli import build_parser
from rmas.config import AuditConfig, HubConfig, LimitsConfig

DOC = (Path(__file__).resolve().parent.parent / "docs" / "operations.md").read_text()


def commands(
    p: argparse.ArgumentParser, prefix: tuple[str, ...] = ("rmas",)
) -> Iterator[tuple[str, list[str]]]:
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*prefix, name))
            return
    options = [o for a in p._actions for o in a.option_strings if o.startswith("--")]
    yield " ".join(prefix), [o for o in options if o != "--help"]


def test_every_command_and_option_is_documented() -> None:
    found = list(commands(build_parser()))
    assert len(found) >= 20
    for path, options in found:
        parent, _, last = path.rpartition(" ")
        # `rmas store import|apply|...` and `rmas audit verify|head|...` name a family at once.
        named = f"`{path}" in DOC or re.search(rf"`{parent} [\w\\|]*\b{last}\b", DOC)
        assert named, f"{path} is not in docs/operations.md"
        for option in options:
            assert option in DOC, f"{path} {option} is not in docs/operations.md"


def test_every_config_key_is_documented() -> None:
    keys = [f.name for c in (HubConfig, LimitsConfig, AuditConfig) for f in dataclasses.fields(c)]
    keys += ["id", "kind", "scope", "issuing_states", "required", "contact", "max_batch",
             "timeout_ms", "cert", "key", "ca", "identity", "role", "hub_id", "max_bytes",
             "remember", "url", "registry", "readers", "io"]  # fmt: skip
    for key in keys:
        assert f"`{key}`" in DOC, f"config key {key} is not in docs/operations.md"


def test_the_help_matches_the_documented_commands() -> None:
    """The real command lists the sub-commands the document describes."""
    out = subprocess.run([sys.executable, "-m", "rmas.cli", "--help"],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert out.returncode == 0
    for name in ("serve", "check", "status", "store", "provider", "conformance", "certs", "audit",
                 "sltd", "demo"):  # fmt: skip
        assert name in out.stdout
        assert f"`rmas {name}" in DOC
