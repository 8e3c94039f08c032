"""The ``[flights]`` table: where a hub keeps its open flights, and how it talks about them.

Present, the hub records every flight a PAXLST opens and sends the airline status changes until
the flight leaves (docs/airline.md, "The flight as a conversation"); absent, it answers each
PAXLST once and forgets it, as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rmas.confkeys import refuse_unknown
from rmas.errors import ConfigError

__all__ = ["FlightsConfig", "parse_flights"]

_KEYS = {
    "path",
    "url",
    "key_file",
    "purge_after_h",
    "resend_initial_s",
    "resend_max_s",
    "poll_ms",
    "recheck_s",
}


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


def parse_flights(
    t: Mapping[str, Any], base_dir: str, audit_key_file: Path | None = None
) -> FlightsConfig:
    """``[flights]``: ``path`` (SQLite file) or ``url``, ``key_file`` (default: the audit
    trail's), ``purge_after_h``, ``resend_initial_s``, ``resend_max_s``, ``poll_ms``,
    ``recheck_s``."""
    refuse_unknown(t, "flights", _KEYS)
    if "path" in t and "url" in t:
        raise ConfigError("flights.url", "give path (SQLite) or url, not both")
    url = _get(t, "url", str, "")
    if url:
        if not url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ConfigError(
                "flights.url", "must be sqlite+aiosqlite:///FILE or postgresql+asyncpg://…"
            )
    else:
        path = _get(t, "path", str, "flights.db")
        if not path:
            raise ConfigError("flights.path", "must name a file")
        url = f"sqlite+aiosqlite:///{Path(base_dir) / path}"
    key = _get(t, "key_file", str, "")
    if key:
        key_file = Path(base_dir) / key
    elif audit_key_file is not None:
        key_file = audit_key_file
    else:
        raise ConfigError(
            "flights.key_file",
            "required without [audit]: a file holding the key of document keys (rmas audit keygen)",
        )
    purge = _get(t, "purge_after_h", float, 24.0)
    if not 0 <= purge <= 24 * 30:
        raise ConfigError("flights.purge_after_h", "must be between 0 and 720 hours")
    initial = _get(t, "resend_initial_s", float, 30.0)
    longest = _get(t, "resend_max_s", float, 600.0)
    if not 0.1 <= initial <= longest <= 86_400:
        raise ConfigError(
            "flights.resend_initial_s",
            "must be at least 0.1 s and at most resend_max_s (at most a day)",
        )
    poll = _get(t, "poll_ms", int, 500)
    if not 10 <= poll <= 60_000:
        raise ConfigError("flights.poll_ms", "must be between 10 and 60000")
    recheck = _get(t, "recheck_s", float, 60.0)
    if not 0.1 <= recheck <= 86_400:
        raise ConfigError("flights.recheck_s", "must be between 0.1 s and a day")
    return FlightsConfig(url, key_file, purge, initial, longest, poll, recheck)


def _get(t: Mapping[str, Any], key: str, typ: type[Any], default: Any) -> Any:
    if key not in t:
        return default
    value = t[key]
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, typ) or isinstance(value, bool):
        raise ConfigError(f"flights.{key}", f"must be {typ.__name__}, got {type(value).__name__}")
    return value
