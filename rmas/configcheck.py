"""``rmas config check FILE``: validate a hub's or a node's config file without starting anything.

It reads the file as ``rmas serve`` and ``rmas provider serve`` do (every table, unknown keys
included), loads the TLS files, reads the audit key, and runs every provider's factory so that
each kind checks its own options (and an option no factory reads is reported as unknown); then
it closes what it built. It binds no port and opens no database: factories connect lazily, so no
store file is created.

Exit 0 with one summary line when the file is good; exit 2 with one line per error otherwise.
To find more than the first error, a value at fault is set aside and the file read again (its
default applies), until the file reads or the same key fails twice; then every provider is built.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmas.confkeys import UnknownKey
from rmas.errors import ConfigError, RmasError

if TYPE_CHECKING:
    from rmas.config import RmasConfig

__all__ = ["check_file", "register"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("config", help="configuration files")
    sub = p.add_subparsers(dest="config_command", metavar="COMMAND", required=True)
    check = sub.add_parser(
        "check", help="validate a hub or node config file without starting anything (exit 0/2)"
    )
    check.add_argument("file", type=Path, help="TOML file (of rmas serve or rmas provider serve)")
    check.add_argument(
        "--node",
        action="store_true",
        help="the file of a national node (rmas provider serve): [[callers]] not required",
    )
    check.set_defaults(func=_cmd_check)


def _cmd_check(args: argparse.Namespace) -> int:
    summary, errors = asyncio.run(check_file(args.file, node=args.node))
    if errors:
        for e in errors:
            print(f"{args.file}: {_one_line(e.removeprefix(f'{args.file}: '))}", file=sys.stderr)
        return 2
    print(f"OK {args.file}: {summary}")
    return 0


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _parse_all(path: Path, node: bool = False) -> tuple[RmasConfig | None, list[str]]:
    """The config with every value at fault set aside (None when that is not possible), and the
    errors found on the way."""
    from rmas.config import parse_tables, read_toml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return None, [f"cannot read: {exc.strerror}"]
    try:
        data = read_toml(text, path)
    except ConfigError as exc:
        return None, [str(exc)]
    errors: list[str] = []
    seen: set[str] = set()
    while True:
        try:
            return parse_tables(data, base_dir=path.resolve().parent, path=path, node=node), errors
        except ConfigError as exc:
            if exc.key in seen:  # what setting it aside left (a required key now missing)
                return None, errors
            errors.append(str(exc))
            closest = exc.closest if isinstance(exc, UnknownKey) else None
            if not _set_aside(data, exc.key, closest):
                return None, errors
            seen.add(exc.key)


_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _set_aside(data: Any, key: str, rename: str | None = None) -> bool:
    """Remove the value at dotted ``key`` (``providers[0].registry``); False when none is there.
    ``rename``: a mistyped key's value goes under that name instead, when the table has none
    (so that the key meant is checked, rather than reported missing)."""
    steps: list[str | int] = [int(index) if index else name for name, index in _STEP.findall(key)]
    node = data
    for step in steps[:-1]:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return False
    last = steps[-1] if steps else None
    if isinstance(node, dict) and isinstance(last, str) and last in node:
        value = node.pop(last)
        if rename is not None and rename not in node:
            node[rename] = value
        return True
    if isinstance(node, list) and isinstance(last, int) and last < len(node):
        del node[last]
        return True
    return False


async def check_file(path: Path, *, node: bool = False) -> tuple[str, list[str]]:
    """(summary, errors) for a config file (``node``: a national node's); errors empty when it is
    good."""
    from rmas.audit.trail import AuditTrail
    from rmas.config import require_providers
    from rmas.plugins import build_providers

    cfg, errors = _parse_all(path, node)
    if cfg is None:
        return "", errors
    try:
        require_providers(cfg)
    except ConfigError as exc:
        errors.append(str(exc))
    kinds: list[str] = []
    for pc in cfg.providers:
        try:
            (provider,) = build_providers([pc])
        except RmasError as exc:
            errors.append(str(exc))
            continue
        except Exception as exc:  # a plug-in's factory failing in a way of its own
            errors.append(f"providers[{pc.index}]: {type(exc).__name__}: {exc}")
            continue
        kinds.append(f"{pc.id}: {pc.kind}")
        try:
            await provider.aclose()
        except Exception as exc:
            errors.append(f"providers[{pc.index}]: closing: {type(exc).__name__}: {exc}")
    if cfg.audit is not None:
        a = cfg.audit
        try:  # reads the key and checks the URL; opens nothing
            AuditTrail.from_config(
                a.url, str(a.key_file), required=a.required, synchronous=a.synchronous
            )
        except RmasError as exc:
            errors.append(str(exc))
    if cfg.flights is not None:
        from rmas.flights.sealing import FlightKeys

        try:  # reads the key of document keys and sealed queries
            FlightKeys.from_file(cfg.flights.key_file)
        except RmasError as exc:
            errors.append(str(exc))
    if errors:
        return "", errors
    tls = f"TLS as {cfg.tls.identity}" if cfg.tls is not None else "no TLS (loopback only)"
    audit = "off" if cfg.audit is None else ("required" if cfg.audit.required else "on")
    summary = (
        f"{len(cfg.providers)} provider{'s' if len(cfg.providers) != 1 else ''} "
        f"({', '.join(kinds)}); {tls}; {len(cfg.callers)} caller rule"
        f"{'s' if len(cfg.callers) != 1 else ''}; audit {audit}"
        + ("; open flights kept" if cfg.flights is not None else "")
    )
    return summary, []
