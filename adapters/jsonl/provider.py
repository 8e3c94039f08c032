"""``kind = "jsonl"``: an economy whose records sit in a JSON Lines export, reloaded on change.

The worked example of docs/adapters.md. Many economies can export their alert list nightly but
cannot open their database to a broker; this adapter serves such an export. Each line is one
record::

    {"issuing_state": "NZL", "number": "LA000002", "status": "STOLEN",
     "reported_on": "2024-03-05", "record_ref": "DIA-77", "detail": "reported stolen"}

Options: ``path`` (the file, relative to the config file), ``registry`` ("alerts" or
"complete"). The file is read at the first lookup and again whenever its modification time
changes (checked at most once a second); a bad line is logged with its number and skipped, and a
file that cannot be read at all keeps the previous records in service.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import structlog

from rmas.confread import Key, one_of
from rmas.documents import DocumentQuery, normalise_number
from rmas.errors import ProviderUnavailable
from rmas.providers import ProviderConfig, ProviderInfo, Registry
from rmas.states import canonical_economy, to_alpha3
from rmas.verdict import Record, RecordStatus

REGISTRY = 'must be "alerts" or "complete"'

__all__ = ["JsonlProvider", "load_records"]

log = structlog.get_logger("adapters.jsonl")
_STORED = {"VALID", "LOST", "STOLEN", "STOLEN_BLANK", "REVOKED", "INVALID"}


def load_records(path: Path) -> tuple[dict[tuple[str, str], Record], list[tuple[int, str]]]:
    """Records keyed by (economy, number), and the bad lines as (line number, reason)."""
    records: dict[tuple[str, str], Record] = {}
    bad: list[tuple[int, str]] = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                state = to_alpha3(str(obj["issuing_state"]))
                if state is None:
                    raise ValueError(f"unknown issuing_state {obj['issuing_state']!r}")
                number = normalise_number(str(obj["number"]))
                status = str(obj["status"]).upper()
                if not number or status not in _STORED:
                    raise ValueError("number and a stored status are required")
                reported = obj.get("reported_on")
                records[(canonical_economy(state), number)] = Record(
                    status=RecordStatus(status),
                    reported_on=dt.date.fromisoformat(reported) if reported else None,
                    record_ref=str(obj.get("record_ref", "")),
                    reporting_authority=str(obj.get("reporting_authority", "")),
                    detail=str(obj.get("detail", "")),
                )
            except (ValueError, KeyError, TypeError) as exc:
                bad.append((n, f"{type(exc).__name__}: {exc}"))
    return records, bad


class JsonlProvider:
    def __init__(
        self, info: ProviderInfo, path: Path, registry: Registry = Registry.ALERTS
    ) -> None:
        self._info = info
        self.path = path
        self.registry = registry
        self._missing = Record(
            RecordStatus.NOT_ISSUED if registry is Registry.COMPLETE else RecordStatus.NO_RECORD
        )
        self._records: dict[tuple[str, str], Record] | None = None
        self._mtime = 0.0
        self._checked = 0.0
        self._lock = asyncio.Lock()

    @classmethod
    def from_config(cls, cfg: ProviderConfig) -> JsonlProvider:
        """``kind = "jsonl"``: ``path`` (required), ``registry`` ("alerts" or "complete")."""
        options = cfg.read_options(
            Key("path", str, required="required for kind 'jsonl'"),
            Key("registry", str, one_of(Registry, REGISTRY), default=Registry.ALERTS),
        )
        return cls(cfg.info, Path(cfg.base_dir) / options["path"], options["registry"])

    @property
    def info(self) -> ProviderInfo:
        return self._info

    async def _current(self) -> dict[tuple[str, str], Record]:
        now = time.monotonic()
        if self._records is not None and now - self._checked < 1.0:
            return self._records
        async with self._lock:
            self._checked = now
            try:
                mtime = os.stat(self.path).st_mtime
            except OSError as exc:
                if self._records is None:
                    raise ProviderUnavailable(
                        f"cannot read {self.path.name}: {exc.strerror}"
                    ) from None
                log.error("jsonl_unreadable", provider=self._info.id, error=exc.strerror)
                return self._records
            if self._records is None or mtime != self._mtime:
                records, bad = await asyncio.to_thread(load_records, self.path)
                for line, reason in bad[:20]:
                    log.warning("jsonl_bad_line", provider=self._info.id, line=line, reason=reason)
                self._records, self._mtime = records, mtime
                log.info("jsonl_loaded", provider=self._info.id, records=len(records), bad=len(bad))
            return self._records

    async def lookup_many(self, queries: Sequence[DocumentQuery], deadline: float) -> list[Record]:
        records = await self._current()
        missing = self._missing
        return [records.get(q.key, missing) for q in queries]

    async def aclose(self) -> None:
        self._records = None
