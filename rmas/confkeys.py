"""The rule for keys a configuration file does not know: an error, never ignored.

A key rmas does not know is most often a typo of one it does (``registy`` for ``registry``,
``contcat`` for ``contact``); ignoring it would silently keep the default, which can weaken a
check (a complete registry read as alerts-only turns a counterfeit into NO_RECORD). So every
table of every file rmas reads refuses unknown keys, naming the dotted key and the closest known
one::

    providers[0].registy: unknown key (did you mean "registry"?)
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from rmas.errors import ConfigError

__all__ = ["UnknownKey", "refuse_unknown", "suggestion", "unknown_key"]


class UnknownKey(ConfigError):
    """An unknown key; ``closest`` is the known key it most resembles (None: none close)."""

    def __init__(self, key: str, message: str, closest: str | None) -> None:
        super().__init__(key, message)
        self.closest = closest


def _closest(name: str, known: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name, sorted(set(known)), n=1, cutoff=0.6)
    return close[0] if close else None


def suggestion(name: str, known: Iterable[str], what: str = "key") -> str:
    """`` (did you mean "x"?)`` for the known name closest to ``name``; else the known names."""
    names = sorted(set(known))
    close = _closest(name, names)
    if close:
        return f' (did you mean "{close}"?)'
    if names:
        return f" (known {what}s: {', '.join(names)})"
    return ""


def unknown_key(prefix: str, name: str, known: Iterable[str], what: str = "key") -> UnknownKey:
    """The error for ``name`` in the table at ``prefix`` ("" for the top level of a file)."""
    key = f"{prefix}.{name}" if prefix else name
    known = set(known)
    return UnknownKey(key, f"unknown {what}{suggestion(name, known, what)}", _closest(name, known))


def refuse_unknown(
    table: Mapping[str, Any], prefix: str, known: Iterable[str], what: str = "key"
) -> None:
    """Raise :func:`unknown_key` for the first key of ``table`` (sorted) not in ``known``."""
    allowed = set(known)
    unknown = sorted(k for k in table if k not in allowed)
    if unknown:
        raise unknown_key(prefix, unknown[0], allowed, what)
