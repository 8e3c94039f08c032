"""Delta feeds: JSON Lines change files applied to a store atomically, idempotently, in order.

One change per line::

    {"op": "upsert", "issuing_state": "NZL", "number": "LA000002", "status": "STOLEN",
     "version": 17, "reported_on": "2026-11-20", "record_ref": "DIA-77", "detail": "..."}
    {"op": "withdraw", "issuing_state": "NZL", "number": "LA000009", "version": 18}

- Every value is validated and normalised exactly as a CSV import's
  (``adapters.sqlstore.importer.record_values``); ``version`` is an integer from 1 to 2^63-1.
- The whole file is checked before anything is written: a bad line (an unknown field, or a file
  that is not UTF-8 JSON Lines) rejects the file, naming the line, and the store is unchanged.
- The file is applied in one transaction: a failure midway leaves nothing.
- An older version never overwrites a newer one (a stale change is counted and skipped), and a
  withdrawal leaves a tombstone so that a stale upsert cannot bring the record back.
- Applying the same file twice changes nothing: applied files are journaled by SHA-256.

APEC Business Travel Cards travel in the same files, on lines with ``"kind": "abtc"`` (the same
ops, versions, tombstones and guarantees; fields as the card CSV's, ``pre_cleared`` a list or a
space-separated string; docs/abtc.md)::

    {"kind": "abtc", "op": "upsert", "home_economy": "NZL", "card_number": "NZ1234567",
     "passport_number": "LA123456", "status": "VALID", "expiry_date": "2029-01-31",
     "pre_cleared": ["AUS", "JPN"], "version": 3}
    {"kind": "abtc", "op": "withdraw", "home_economy": "NZL", "card_number": "NZ1234567",
     "version": 4}
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from adapters.sqlstore.cards import apply_card_changes, card_change
from adapters.sqlstore.changelog import log_changes
from adapters.sqlstore.importer import ensure_schema, record_key, record_values
from adapters.sqlstore.schema import feeds, make_engine
from rmas.confkeys import suggestion
from rmas.errors import StoreError

__all__ = ["MAX_VERSION", "Change", "FeedReport", "apply_feed", "parse_feed"]

_FIELDS = ("document_type", "reported_on", "record_ref", "reporting_authority", "detail",
           "surname", "given_names", "birth_date", "sex", "expiry_date")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Change:
    op: str
    state: str
    number: str
    version: int
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class FeedReport:
    applied: int
    stale: int
    already_applied: bool
    seconds: float


#: Versions are stored as a signed 64-bit integer.
MAX_VERSION = 2**63 - 1
_KEY_FIELDS = ("issuing_state", "number", "document_number")


def _text_fields(obj: dict[str, Any]) -> dict[str, str]:
    """The record fields of a change as the CSV's column names and text: a JSON string as is,
    null as an empty cell; any other JSON value is refused."""
    out: dict[str, str] = {}
    for key in ("issuing_state", "status", *_FIELDS):
        value = obj.get(key)
        if value is None:
            continue
        out[key] = _text(key, value)
    number = obj.get("number", obj.get("document_number"))
    out["document_number"] = "" if number is None else _text("number", number)
    return out


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # "\ud800" is valid JSON, and no text a CSV file could hold
        raise ValueError(f"{key}: not valid Unicode (a lone surrogate escape)") from None
    return value


#: Every field a change may carry; any other is refused (a mistyped ``birth_date`` would
#: otherwise drop the holder's data without a word).
_KNOWN = frozenset({"op", "issuing_state", "number", "document_number", "version", "status",
                    *_FIELDS})  # fmt: skip


def _change(obj: Any) -> Change:
    if not isinstance(obj, dict):
        raise ValueError("each line must be a JSON object")
    unknown = sorted(k for k in obj if k not in _KNOWN)
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r}{suggestion(unknown[0], _KNOWN, 'field')}")
    op = obj.get("op")
    if op not in ("upsert", "withdraw"):
        raise ValueError('op must be "upsert" or "withdraw"')
    version = obj.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_VERSION:
        raise ValueError(f"version must be an integer from 1 to {MAX_VERSION}")
    fields = _text_fields(obj)
    # The same validation and normalisation as a CSV import's (adapters.sqlstore.importer).
    if op == "withdraw":
        state, number = record_key(fields)
        return Change(op, state, number, version, {})
    values = record_values(fields)
    state, number = values.pop("issuing_state"), values.pop("document_number")
    return Change(op, state, number, version, values)


CardChange = tuple[str, str, str, int, Any]


def parse_feed(data: bytes | str) -> list[Change]:
    """Every document change of a feed; raises StoreError naming the first bad line (or byte,
    for a file that is not UTF-8 text)."""
    return _parse(data)[0]


def _parse(data: bytes | str) -> tuple[list[Change], list[CardChange]]:
    """Document changes and ABTC card changes (lines with ``"kind": "abtc"``); StoreError at the
    first bad line."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            at = data.count(b"\n", 0, exc.start) + 1
            raise StoreError(
                f"line {at}: not UTF-8 text (byte {exc.start}: {exc.reason}); "
                "a feed is JSON Lines; nothing was applied"
            ) from None
    else:
        text = data
    out: list[Change] = []
    card_changes: list[CardChange] = []
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            kind = obj.pop("kind", "document") if isinstance(obj, dict) else "document"
            if kind == "abtc":
                card_changes.append(card_change(obj, MAX_VERSION))
            elif kind == "document":
                out.append(_change(obj))
            else:
                raise ValueError('kind must be "document" (the default) or "abtc"')
        except (ValueError, TypeError, RecursionError) as exc:
            reason = str(exc) if not isinstance(exc, RecursionError) else "nested too deeply"
            raise StoreError(f"line {n}: {reason[:300]}; nothing was applied") from None
    return out, card_changes


_COLS = ("issuing_state", "number", "status", *_FIELDS, "version", "withdrawn")


def _upsert_sql(dialect: str) -> str:
    marks = ", ".join("?" if dialect == "sqlite" else f"${i + 1}" for i in range(len(_COLS)))
    updates = ", ".join(f"{c} = excluded.{c}" for c in _COLS[2:])
    return (
        f"INSERT INTO documents ({', '.join(_COLS)}) VALUES ({marks}) "
        f"ON CONFLICT (issuing_state, number) DO UPDATE SET {updates} "
        "WHERE documents.version < excluded.version"
    )


async def apply_feed(url: str, path: Path) -> FeedReport:
    """Apply one feed file; see the module docstring for the guarantees."""
    t0 = time.perf_counter()
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        raise StoreError(f"{path}: cannot read: {exc.strerror}") from None
    changes, card_changes = _parse(data)
    digest = hashlib.sha256(data).hexdigest()
    engine = make_engine(url)
    try:
        await ensure_schema(engine)
        dialect = engine.dialect.name
        async with engine.begin() as conn:
            seen = (
                await conn.execute(select(feeds.c.sha256).where(feeds.c.sha256 == digest))
            ).first()
            if seen is not None:
                return FeedReport(0, 0, True, time.perf_counter() - t0)
            # Keep only the newest change per document within the file, then drop those older
            # than what the store holds.
            latest: dict[tuple[str, str], Change] = {}
            for c in changes:
                prev = latest.get((c.state, c.number))
                if prev is None or c.version > prev.version:
                    latest[(c.state, c.number)] = c
            current = await _versions(conn, dialect, list(latest))
            fresh = [c for k, c in latest.items() if c.version > current.get(k, 0)]
            stale = len(changes) - len(fresh)
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            rows = [_row(c, dialect) for c in fresh]
            if rows:
                await driver.executemany(_upsert_sql(dialect), rows)
                # In the same transaction: a hub following the log sees these documents change.
                await log_changes(driver, dialect, [(c.state, c.number) for c in fresh])
            cards_applied, cards_stale = await apply_card_changes(conn, card_changes)
            await conn.execute(
                feeds.insert().values(
                    sha256=digest, name=path.name[:256],
                    applied_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    changes=len(fresh) + cards_applied, stale=stale + cards_stale,
                )
            )  # fmt: skip
    finally:
        await engine.dispose()
    return FeedReport(
        len(fresh) + cards_applied, stale + cards_stale, False, time.perf_counter() - t0
    )


def _row(c: Change, dialect: str) -> tuple[Any, ...]:
    if c.op == "withdraw":
        values: dict[str, Any] = {"status": "WITHDRAWN"}
    else:
        values = c.values
    row: list[Any] = [c.state, c.number, values["status"]]
    for f in _FIELDS:
        v = values.get(f, None if f.endswith(("_on", "_date")) else "")
        if dialect == "sqlite" and isinstance(v, dt.date):
            v = v.isoformat()
        row.append(v)
    row += [c.version, c.op == "withdraw"]
    return tuple(row)


async def _versions(
    conn: Any, dialect: str, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    from sqlalchemy import text

    out: dict[tuple[str, str], int] = {}
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        if dialect == "sqlite":
            values = ",".join(f"(:c{j}, :n{j})" for j in range(len(chunk)))
            sql = (
                f"WITH k(c, n) AS (VALUES {values}) SELECT d.issuing_state, d.number, d.version "
                "FROM k JOIN documents d ON d.issuing_state = k.c AND d.number = k.n"
            )
            params = {f"c{j}": k[0] for j, k in enumerate(chunk)} | {
                f"n{j}": k[1] for j, k in enumerate(chunk)
            }
            result = await conn.execute(text(sql), params)
        else:
            result = await conn.execute(
                text("SELECT d.issuing_state, d.number, d.version FROM unnest("
                     "CAST(:c AS varchar[]), CAST(:n AS varchar[])) AS k(c, n) JOIN documents d "
                     "ON d.issuing_state = k.c AND d.number = k.n"),
                {"c": [k[0] for k in chunk], "n": [k[1] for k in chunk]},
            )  # fmt: skip
        for state, number, version in result:
            out[(state, number)] = int(version)
    return out
