"""APEC Business Travel Cards in the SQL store: CSV import, delta-feed changes, batched lookups.

An economy's card table (``abtc_cards``) is the complete registry of the cards it issued, so a
number it does not hold answers NOT_ISSUED (the counterfeit case). The CSV header is::

    home_economy,card_number,passport_number,status,expiry_date,pre_cleared

optionally followed by ``passport_issuing_state,record_ref,reporting_authority`` (columns found by
name). ``pre_cleared`` is a space-separated list of economy codes; ``status`` one of VALID,
EXPIRED, CANCELLED, LOST, STOLEN. Numbers, states and dates are read by the same rules as
documents (rmas.documents, rmas.abtc, the document importer's helpers); bad rows are reported by
line and the good ones loaded, in one transaction (``replace``: the old cards go in the same
transaction, so readers see the old registry until the commit and the new one after it).
"""

from __future__ import annotations

import csv
import datetime as dt
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import structlog

from adapters.sqlstore.csvrows import number_value, open_csv, parse_date, unreadable
from adapters.sqlstore.importer import ImportReport, ensure_schema
from adapters.sqlstore.load_sqlite import pragmas
from adapters.sqlstore.schema import make_engine
from rmas.abtc import STORED_STATUSES, CardQuery, CardRecord, CardStatus, parse_economies
from rmas.abtc import validate_economy as _economy
from rmas.confkeys import suggestion
from rmas.errors import StoreError

__all__ = [
    "CARD_COLUMNS",
    "card_change",
    "card_from_row",
    "card_rows",
    "import_cards",
    "parse_cards",
]

log = structlog.get_logger("adapters.sqlstore")

REQUIRED = ("home_economy", "card_number", "passport_number", "status", "expiry_date",
            "pre_cleared")  # fmt: skip
OPTIONAL = ("passport_issuing_state", "record_ref", "reporting_authority")
#: Stored columns, in the order rows carry them.
CARD_COLUMNS = ("home_economy", "number", "passport_number", "passport_issuing_state", "status",
                "expiry_date", "pre_cleared", "record_ref", "reporting_authority")  # fmt: skip
_STATUSES = {s.value for s in STORED_STATUSES}
Row = tuple[Any, ...]


# -- one card's values, by the shared rules (a CSV row and a feed line both come here) ----------


def _home(raw: str) -> str:
    economy = _economy(raw)
    if economy is None:
        raise ValueError(f"home_economy: unknown economy code {raw.strip()[:8]!r}")
    return economy


def _passport(raw: str) -> str:
    return number_value(raw, "passport_number") if raw.strip() else ""


def _status(raw: str) -> str:
    status = raw.strip().upper()
    if status not in _STATUSES:
        raise ValueError(f"status: {status[:12]!r} is not one of {', '.join(sorted(_STATUSES))}")
    return status


def _pre_cleared(raw: str | Iterable[str]) -> str:
    try:
        codes = parse_economies(raw.split() if isinstance(raw, str) else raw)
    except ValueError as exc:
        raise ValueError(f"pre_cleared: {exc}") from None
    return " ".join(sorted(codes))


def _passport_state(raw: str) -> str:
    if not raw.strip():
        return ""
    economy = _economy(raw)
    if economy is None:
        raise ValueError(f"passport_issuing_state: unknown state code {raw.strip()[:8]!r}")
    return economy


def _card(values: dict[str, Any]) -> Row:
    """A stored row from raw values (CARD_COLUMNS order); raises ValueError naming the field."""
    return (
        _home(str(values.get("home_economy", ""))),
        number_value(str(values.get("card_number", values.get("number", ""))), "card_number"),
        _passport(str(values.get("passport_number", "") or "")),
        _passport_state(str(values.get("passport_issuing_state", "") or "")),
        _status(str(values.get("status", ""))),
        parse_date(str(values.get("expiry_date", "") or ""), "expiry_date"),
        _pre_cleared(values.get("pre_cleared", "") or ""),
        str(values.get("record_ref", "") or "").strip()[:64],
        str(values.get("reporting_authority", "") or "").strip()[:128],
    )


# -- CSV -------------------------------------------------------------------------------------


def parse_cards(
    lines: Iterable[str],
) -> tuple[dict[tuple[str, str], Row], list[tuple[int, str]], int]:
    """Every valid row keyed by (home economy, number) (a later row for a card wins), the
    rejected rows as (line, reason), and the duplicate count."""
    reader = csv.reader(lines)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise StoreError("line 1: the file is empty") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise unreadable(exc, reader.line_num) from None
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise StoreError(f"line 1: header lacks column(s) {', '.join(missing)}")
    width = len(header)
    rows: dict[tuple[str, str], Row] = {}
    rejected: list[tuple[int, str]] = []
    duplicates = 0
    try:
        for rec in reader:
            if len(rec) != width:
                if rec:
                    rejected.append((reader.line_num, f"{len(rec)} fields; header has {width}"))
                continue
            try:
                row = _card(dict(zip(header, rec, strict=True)))
            except ValueError as exc:
                rejected.append((reader.line_num, str(exc)))
                continue
            if row[:2] in rows:
                duplicates += 1
            rows[row[:2]] = row
    except (UnicodeDecodeError, csv.Error) as exc:
        raise unreadable(exc, reader.line_num) from None
    return rows, rejected, duplicates


async def import_cards(url: str, path: Path, *, replace: bool = False) -> ImportReport:
    """Load an ABTC CSV into the store at ``url``: bad rows reported by line, good rows loaded in
    one transaction (``replace``: the store's cards are exactly the file's good rows after it)."""
    t0 = time.perf_counter()
    try:
        with open_csv(path) as f:
            rows, rejected, duplicates = parse_cards(f)
    except OSError as exc:
        raise StoreError(f"{path}: cannot read: {exc.strerror}") from None
    engine = make_engine(url)
    sqlite = engine.dialect.name == "sqlite"
    try:
        await pragmas(engine)
        await ensure_schema(engine)
        async with engine.begin() as conn:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            before = 0
            if replace:
                await conn.exec_driver_sql("DELETE FROM abtc_cards")
            else:
                before = int((await conn.exec_driver_sql(
                    "SELECT count(*) FROM abtc_cards")).scalar_one())  # fmt: skip
            values = [_for_driver(r, sqlite) for r in rows.values()]
            if values:
                await driver.executemany(_upsert_sql(sqlite), values)
            after = int(
                (await conn.exec_driver_sql("SELECT count(*) FROM abtc_cards")).scalar_one()
            )
    finally:
        await engine.dispose()
    inserted = after - before
    report = ImportReport(
        loaded=len(rows),
        inserted=inserted,
        updated=len(rows) - inserted,
        duplicates=duplicates,
        rejected=tuple(rejected),
        seconds=time.perf_counter() - t0,
    )
    log.info("store_import_cards", engine=engine.dialect.name, loaded=report.loaded,
             rejected=len(rejected), replace=replace, seconds=round(report.seconds, 3))  # fmt: skip
    return report


def _for_driver(row: Row, sqlite: bool) -> Row:
    expiry = row[5]
    if sqlite and isinstance(expiry, dt.date):
        return (*row[:5], expiry.isoformat(), *row[6:])
    return row


def _upsert_sql(sqlite: bool, *, versioned: bool = False) -> str:
    """INSERT of CARD_COLUMNS (plus version and withdrawn for feeds). An import is authoritative
    (it brings back a withdrawn card); a feed change applies only over an older version."""
    cols = (*CARD_COLUMNS, "version", "withdrawn") if versioned else CARD_COLUMNS
    marks = ", ".join("?" if sqlite else f"${i + 1}" for i in range(len(cols)))
    updates = ", ".join(f"{c} = excluded.{c}" for c in cols[2:])
    sql = (
        f"INSERT INTO abtc_cards ({', '.join(cols)}) VALUES ({marks}) "
        f"ON CONFLICT (home_economy, number) DO UPDATE SET {updates}"
    )
    if versioned:
        return sql + " WHERE abtc_cards.version < excluded.version"
    return sql + ", withdrawn = false"


# -- delta feeds (a line with "kind": "abtc" in a feed file; adapters.sqlstore.feeds) ---------


#: Every field a card change may carry (besides ``kind``); any other is refused.
_FEED_FIELDS = frozenset({"op", "version", "home_economy", "card_number", "number",
                          *REQUIRED[2:], *OPTIONAL})  # fmt: skip


def card_change(obj: dict[str, Any], max_version: int) -> tuple[str, str, str, int, Row | None]:
    """A feed line about a card: (op, home economy, number, version, row or None when withdrawn);
    raises ValueError naming the field at fault. Fields are the card CSV's (``pre_cleared`` also
    as a list), strings only, read by the same rules."""
    unknown = sorted(k for k in obj if k not in _FEED_FIELDS)
    if unknown:
        raise ValueError(
            f"unknown field {unknown[0]!r}{suggestion(unknown[0], _FEED_FIELDS, 'field')}"
        )
    op = obj.get("op")
    if op not in ("upsert", "withdraw"):
        raise ValueError('op must be "upsert" or "withdraw"')
    version = obj.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= max_version:
        raise ValueError(f"version must be an integer from 1 to {max_version}")
    values: dict[str, Any] = {}
    for key, value in obj.items():
        if key in ("op", "version") or value is None:
            continue
        if key == "pre_cleared" and isinstance(value, list):
            if not all(isinstance(v, str) for v in value):
                raise ValueError("pre_cleared must list economy codes (strings)")
        elif not isinstance(value, str):
            raise ValueError(f"{key} must be a string, got {type(value).__name__}")
        values[key] = value
    home = _home(str(values.get("home_economy", "")))
    number = number_value(str(values.get("card_number", values.get("number", ""))), "card_number")
    if op == "withdraw":
        return op, home, number, version, None
    return op, home, number, version, _card(values)


async def card_versions(conn: Any, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """The stored version of each card key present (feeds skip older changes)."""
    from sqlalchemy import text

    out: dict[tuple[str, str], int] = {}
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        where = " OR ".join(f"(home_economy = :h{j} AND number = :n{j})" for j in range(len(chunk)))
        params = {f"h{j}": k[0] for j, k in enumerate(chunk)} | {
            f"n{j}": k[1] for j, k in enumerate(chunk)
        }
        result = await conn.execute(
            text(f"SELECT home_economy, number, version FROM abtc_cards WHERE {where}"), params
        )
        for home, number, version in result:
            out[(home, number)] = int(version)
    return out


async def apply_card_changes(
    conn: Any, changes: Sequence[tuple[str, str, str, int, Row | None]]
) -> tuple[int, int]:
    """Apply a feed's card changes inside its transaction: the newest per card, and only over an
    older stored version (a withdrawal leaves a tombstone). Returns (applied, stale)."""
    latest: dict[tuple[str, str], tuple[str, str, str, int, Row | None]] = {}
    for c in changes:
        prev = latest.get((c[1], c[2]))
        if prev is None or c[3] > prev[3]:
            latest[(c[1], c[2])] = c
    current = await card_versions(conn, list(latest))
    fresh = [c for k, c in latest.items() if c[3] > current.get(k, 0)]
    sqlite = conn.dialect.name == "sqlite"
    rows = []
    for op, home, number, version, values in fresh:
        # A withdrawal leaves a tombstone: the card reads as NOT_ISSUED until a newer upsert.
        row = values if values is not None else (home, number, "", "", "CANCELLED", None, "", "",
                                                 "")  # fmt: skip
        rows.append((*_for_driver(row, sqlite), version, op == "withdraw"))
    if rows:
        raw = await conn.get_raw_connection()
        await raw.driver_connection.executemany(_upsert_sql(sqlite, versioned=True), rows)
    return len(fresh), len(changes) - len(fresh)


# -- lookups (SqlStoreProvider.lookup_cards) ---------------------------------------------------

_SELECT = ("c.home_economy, c.number, c.status, c.expiry_date, c.passport_number, "
           "c.passport_issuing_state, c.pre_cleared, c.record_ref, c.reporting_authority, "
           "c.withdrawn")  # fmt: skip


def sqlite_batch(n: int) -> str:
    """One query for ``n`` card keys (parameters: economy, number, ...): the unique index."""
    values = ",".join(["(?,?)"] * n)
    return (
        f"WITH k(h, n) AS (VALUES {values}) SELECT {_SELECT} FROM k "
        "JOIN abtc_cards c ON c.home_economy = k.h AND c.number = k.n"
    )


#: PostgreSQL: arrays typed like the columns, so the unique index is used.
PG_BATCH = (
    f"SELECT {_SELECT} FROM unnest($1::varchar[], $2::varchar[]) AS k(h, n) "
    "JOIN abtc_cards c ON c.home_economy = k.h AND c.number = k.n"
)


def card_rows(queries: Sequence[CardQuery]) -> list[tuple[str, str]]:
    """The distinct keys of a batch."""
    return list(dict.fromkeys(q.key for q in queries))


def card_from_row(row: Sequence[Any]) -> CardRecord | None:
    """A stored row as the provider's answer (None: withdrawn, so NOT_ISSUED)."""
    if row[9]:
        return None
    expiry = row[3]
    if expiry and not isinstance(expiry, dt.date):
        expiry = dt.date.fromisoformat(expiry)
    return CardRecord(
        status=CardStatus(row[2]),
        expiry_date=expiry or None,
        passport_number=row[4] or "",
        passport_economy=row[5] or "",
        pre_cleared=frozenset((row[6] or "").split()),
        record_ref=row[7] or "",
        reporting_authority=row[8] or "",
    )
