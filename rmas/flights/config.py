"""The ``[flights]`` table: where a hub keeps its open flights, and how it talks about them.

Present, the hub records every flight a PAXLST opens and sends the airline status changes until
the flight leaves (docs/airline.md, "The flight as a conversation"); absent, it answers each
PAXLST once and forgets it, as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rmas.confread import At, Bad, Key, between

__all__ = ["FLIGHTS_KEYS", "FlightsConfig", "build_flights"]

_URL = "must be sqlite+aiosqlite:///FILE or postgresql+asyncpg://…"


def _url(url: str) -> str:
    if not url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise ValueError(_URL)
    return url


def _path(path: str) -> str:
    if not path:
        raise ValueError("must name a file")
    return path


#: The keys of ``[flights]`` (read by :mod:`rmas.config`'s one section reader).
FLIGHTS_KEYS: tuple[Key, ...] = (
    Key("path", str, _path),
    Key("url", str, _url),
    Key("key_file", str),
    Key("purge_after_h", float, between(0, 24 * 30, "must be between 0 and 720 hours")),
    Key("resend_initial_s", float),
    Key("resend_max_s", float),
    Key("poll_ms", int, between(10, 60_000, "must be between 10 and 60000")),
    Key("recheck_s", float, between(0.1, 86_400, "must be between 0.1 s and a day")),
)


@dataclass(frozen=True, slots=True)
class FlightsConfig:
    """The ``[flights]`` table."""

    #: ``sqlite+aiosqlite:///FILE`` (the default: ``flights.db`` beside the config file) or
    #: ``postgresql+asyncpg://...`` (hubs sharing their open flights).
    url: str
    #: The key file of document keys and sealed queries (``[audit] key_file`` when not given).
    key_file: Path
    #: Hours after a flight's scheduled departure after which everything kept for it is purged.
    purge_after_h: float = 24.0
    #: First wait before an unacknowledged status change is sent again (then doubled).
    resend_initial_s: float = 30.0
    #: Longest wait between two sendings of an unacknowledged status change.
    resend_max_s: float = 600.0
    #: How often a subscriber's stream looks for new status changes in the store (every hub
    #: sharing the store sees the others' changes this way).
    poll_ms: int = 500
    #: How often passengers whose check was incomplete are checked again (and expired overrides
    #: and departed flights purged).
    recheck_s: float = 60.0


def build_flights(v: dict[str, Any], at: At) -> FlightsConfig:
    """``[flights]`` from its keys' values: ``path`` (a SQLite file beside the config, default
    ``flights.db``) or ``url``; ``key_file`` defaults to ``[audit] key_file``."""
    if "path" in v and "url" in v:
        raise Bad("url", "give path (SQLite) or url, not both")
    path = v.pop("path", "flights.db")
    url = v.pop("url", "") or f"sqlite+aiosqlite:///{Path(at.base_dir) / path}"
    key = v.pop("key_file", "")
    audit = at.before.get("audit")
    if key:
        key_file = Path(at.base_dir) / key
    elif audit is not None:
        key_file = audit.key_file
    else:
        raise Bad(
            "key_file",
            "required without [audit]: a file holding the key of document keys (rmas audit keygen)",
        )
    cfg = FlightsConfig(url=url, key_file=key_file, **v)
    if not 0.1 <= cfg.resend_initial_s <= cfg.resend_max_s <= 86_400:
        raise Bad(
            "resend_initial_s", "must be at least 0.1 s and at most resend_max_s (at most a day)"
        )
    return cfg
