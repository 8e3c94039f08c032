"""Where an audit trail lives: the ``[audit] url`` (or ``--url``) read into a target."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rmas.errors import ConfigError

__all__ = ["Target", "reason", "target"]

_FORMS = "sqlite+aiosqlite:///FILE or postgresql+asyncpg://USER@HOST/DB"


@dataclass(frozen=True, slots=True)
class Target:
    kind: Literal["sqlite", "postgresql"]
    #: SQLite: the absolute file path. PostgreSQL: an asyncpg DSN.
    location: str
    #: For messages and logs: the file, or the URL with any password hidden.
    shown: str


def target(url: str, key: str = "audit.url") -> Target:
    """``sqlite+aiosqlite:///FILE`` (relative to the working directory) or
    ``postgresql+asyncpg://...``; ConfigError naming ``key`` otherwise."""
    scheme, sep, rest = url.partition("://")
    if scheme == "sqlite+aiosqlite" and sep:
        path = rest[1:].partition("?")[0] if rest.startswith("/") else ""
        if not path or path == ":memory:" or path.startswith("file:"):
            raise ConfigError(key, "give the audit database a file: sqlite+aiosqlite:///FILE")
        resolved = str(Path(urllib.parse.unquote(path)).expanduser().resolve())
        return Target("sqlite", resolved, resolved)
    if scheme == "postgresql+asyncpg" and sep and rest:
        parts = urllib.parse.urlsplit(f"postgresql://{rest}")
        shown = url
        if parts.password is not None:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
            shown = urllib.parse.urlunsplit(parts._replace(netloc=netloc, scheme=scheme))
        return Target("postgresql", f"postgresql://{rest}", shown)
    raise ConfigError(key, f"use {_FORMS}, not {scheme or url!r}")


def reason(exc: BaseException) -> str:
    """An exception as a short message (driver messages name tables and codes, never numbers)."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return f"{name}: {text[:300]}" if text else name
