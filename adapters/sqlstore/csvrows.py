"""CSV rows of an SQL store import: the columns, each row validated and normalised, chunks.

The CSV header is::

    issuing_state,document_number,document_type,status,reported_on,record_ref

optionally followed by holder columns ``surname,given_names,birth_date,sex,expiry_date`` and by
``reporting_authority,detail``. Columns are found by name, so their order does not matter. Every
rule about a value is :mod:`rmas.documents`' and :mod:`rmas.states`' (numbers, types, sex, names,
economies); this module applies them per row, with caches, and reports a bad row by line.
"""

from __future__ import annotations

import csv
import datetime as dt
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

from adapters.sqlstore.schema import STATUSES
from rmas.documents import (
    MAX_NUMBER_LENGTH,
    DocumentType,
    normalise_name,
    normalise_number,
    number_problem,
    parse_sex,
)
from rmas.errors import StoreError
from rmas.states import canonical_economy, to_alpha3

__all__ = [
    "ABSENT",
    "CHUNK_ROWS",
    "COLUMNS",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "CsvChunks",
    "Row",
    "number_value",
    "open_csv",
    "parse_date",
    "parse_rows",
    "record_key",
    "record_values",
    "unreadable",
]

REQUIRED_COLUMNS = (
    "issuing_state",
    "document_number",
    "document_type",
    "status",
    "reported_on",
    "record_ref",
)
OPTIONAL_COLUMNS = (
    "surname",
    "given_names",
    "birth_date",
    "sex",
    "expiry_date",
    "reporting_authority",
    "detail",
)

# Column order of the INSERT, shared by CSV import and synthetic stores.
COLUMNS = (
    "issuing_state",
    "number",
    "document_type",
    "status",
    "reported_on",
    "record_ref",
    "reporting_authority",
    "detail",
    "surname",
    "given_names",
    "birth_date",
    "sex",
    "expiry_date",
)
# What a column holds when the CSV does not carry it.
ABSENT: dict[str, str | None] = {
    "reporting_authority": "",
    "detail": "",
    "surname": "",
    "given_names": "",
    "birth_date": None,
    "sex": "",
    "expiry_date": None,
}
Row = tuple[Any, ...]

#: Rows per chunk: the unit of parsing, of one executemany / COPY, and of memory held.
CHUNK_ROWS = 50_000

# Value caches: a national file repeats a few thousand dates, a handful of states and types.
# Bounded, so that a hostile file cannot grow them without limit.
_CACHE_LIMIT = 100_000
_DATES: dict[str, dt.date] = {}
_ISO_DATES: dict[str, str] = {}
_STATES: dict[str, str | None] = {}
_TYPE_SPELLINGS: dict[str, str] = {}


def parse_date(raw: str, name: str) -> dt.date | None:
    if not raw:
        return None
    d = _DATES.get(raw)
    if d is not None:
        return d
    s = raw.strip()
    if not s:
        return None
    try:
        d = dt.date.fromisoformat(s)
    except ValueError:
        raise ValueError(f"{name}: not an ISO date (YYYY-MM-DD): {s[:12]!r}") from None
    if len(_DATES) < _CACHE_LIMIT:
        _DATES[raw] = d
    return d


def _iso_date(raw: str, name: str) -> str | None:
    """A date as SQLAlchemy's SQLite ``Date`` stores it (ISO text): the SQLite load writes through
    the driver, so a ``date`` built only to be formatted again is not built."""
    iso = _ISO_DATES.get(raw)
    if iso is not None:
        return iso
    d = parse_date(raw, name)
    if d is None:
        return None
    iso = d.isoformat()
    if len(_ISO_DATES) < _CACHE_LIMIT:
        _ISO_DATES[raw] = iso
    return iso


def _state(raw: str) -> str:
    # A store holds a handful of states: resolve each spelling once.
    if raw not in _STATES:
        code = to_alpha3(raw) if raw.strip() else None
        _STATES[raw] = canonical_economy(code) if code is not None else None
    state = _STATES[raw]
    if state is None:
        raise ValueError(f"issuing_state: unknown state code {raw.strip()[:8]!r}")
    return state


def number_value(raw: str, name: str = "document_number") -> str:
    """A document (or card) number from a file, normalised and checked by the one rule
    (:func:`rmas.documents.number_problem`); ValueError naming the column ``name``."""
    number = normalise_number(raw)
    problem = number_problem(number)
    if problem is not None:
        raise ValueError(f"{name}: {problem} (after normalising)")
    return number


def _type(raw: str) -> str:
    try:
        letter = DocumentType.parse(raw).letter
    except ValueError as exc:
        raise ValueError(f"document_type: {exc}") from None
    if len(_TYPE_SPELLINGS) < _CACHE_LIMIT:
        _TYPE_SPELLINGS[raw] = letter
    return letter


def _status(raw: str) -> str:
    status = raw.strip().upper()
    if status not in STATUSES:
        raise ValueError(f"status: {status!r} is not one of {', '.join(sorted(STATUSES))}")
    return status


def _sex(raw: str) -> str:
    if not raw:
        return ""
    try:
        return parse_sex(raw)
    except ValueError as exc:
        raise ValueError(f"sex: {raw.strip()[:4]!r} {exc}") from None


def _name(raw: str) -> str:
    return normalise_name(raw) if raw else ""


def record_values(raw: Mapping[str, str]) -> dict[str, Any]:
    """One record's values, validated and normalised exactly as a CSV row's are (ValueError
    naming the column), keyed by the CSV's column names: for delta feeds, which carry the same
    fields. An absent or empty field is what an empty CSV cell is."""
    out: dict[str, Any] = {
        "issuing_state": _state(raw.get("issuing_state", "")),
        "document_number": number_value(raw.get("document_number", "")),
        "document_type": _type(raw.get("document_type", "")),
        "status": _status(raw.get("status", "")),
        "reported_on": parse_date(raw.get("reported_on", ""), "reported_on"),
        "record_ref": raw.get("record_ref", "").strip()[:64],
    }
    for name in OPTIONAL_COLUMNS:
        out[name] = _normaliser(name, iso_dates=False)(raw.get(name, ""))
    return out


def record_key(raw: Mapping[str, str]) -> tuple[str, str]:
    """(issuing economy, normalised number) of a record, validated as a CSV row's are."""
    return _state(raw.get("issuing_state", "")), number_value(raw.get("document_number", ""))


def _constant(name: str) -> Callable[[str], Any]:
    value = ABSENT[name]
    return lambda _raw: value


def _normaliser(name: str, iso_dates: bool) -> Callable[[str], Any]:
    """How an optional column's raw text becomes the stored value (ValueError when invalid)."""
    if name in ("birth_date", "expiry_date"):
        to_date = _iso_date if iso_dates else parse_date
        return lambda raw: to_date(raw, name)
    if name == "sex":
        return _sex
    if name in ("surname", "given_names"):
        return _name
    limit = 128 if name == "reporting_authority" else 512
    return lambda raw: raw.strip()[:limit]


class _Columns:
    """Where the known columns sit in a CSV header, and which columns the rows carry.

    ``every_column``: rows carry all of ``COLUMNS`` (what PostgreSQL's COPY needs); otherwise
    only the columns the file has, the others being constants in the SQL (SQLite: no empty values
    bound for every row). ``iso_dates``: dates as ISO text instead of ``date``.
    """

    def __init__(self, header: list[str], *, every_column: bool, iso_dates: bool) -> None:
        names = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)
        self.index = {n: (header.index(n) if n in header else -1) for n in names}
        self.width = len(header)
        self.iso_dates = iso_dates
        present = tuple(c for c in COLUMNS[6:] if self.index[c] >= 0)
        self.columns: tuple[str, ...] = COLUMNS if every_column else (*COLUMNS[:6], *present)
        # Values of the optional columns: parsed from the record (``optional``), or all constant
        # when the file has none of them (``tail``, appended without a per-column call).
        self.tail: Row = ()
        if every_column and not present:
            self.tail = tuple(ABSENT[c] for c in COLUMNS[6:])
        optional = self.columns[6:] if present else ()
        self.optional: tuple[tuple[int, Callable[[str], Any]], ...] = tuple(
            (self.index[c], _normaliser(c, iso_dates)) if self.index[c] >= 0 else (0, _constant(c))
            for c in optional
        )


def _row_maker(cols: _Columns) -> Callable[[list[str]], Row]:
    """The validating row builder for one header. Hot: 10 million calls a national load, so the
    common case (canonical values) costs a few dictionary and string-method calls."""
    required = operator.itemgetter(*(cols.index[c] for c in REQUIRED_COLUMNS))
    dates = _ISO_DATES if cols.iso_dates else _DATES
    to_date = _iso_date if cols.iso_dates else parse_date
    states, types, statuses = _STATES, _TYPE_SPELLINGS, STATUSES
    sex_at = cols.index["sex"]
    optional, tail = cols.optional, cols.tail

    def row(rec: list[str]) -> Row:
        raw_state, number, raw_type, status, raw_reported, ref = required(rec)
        state = states.get(raw_state) or _state(raw_state)
        # A fast path for numbers already in canonical form; number_value has the rule.
        if not (
            number.isalnum()
            and number.isascii()
            and len(number) <= MAX_NUMBER_LENGTH
            and (number.isupper() or number.isdigit())
        ):
            number = number_value(number)
        dtype = types.get(raw_type)
        if dtype is None:
            dtype = _type(raw_type)
        if status not in statuses:
            status = _status(status)
        if sex_at >= 0:
            _sex(rec[sex_at])  # reported before a bad date, as it always was
        reported = (dates.get(raw_reported) or to_date(raw_reported, "reported_on")) if (
            raw_reported) else None  # fmt: skip
        base = (state, number, dtype, status, reported, ref.strip()[:64])
        if optional:
            return base + tuple([norm(rec[i]) for i, norm in optional])
        return base + tail if tail else base

    return row


class CsvChunks:
    """Parses a CSV in chunks of validated rows (a later row for the same document wins within a
    chunk; across chunks the load makes it win). Collects rejects and duplicates as it goes.

    Rows carry ``self.columns`` (see ``_Columns`` for ``every_column`` and ``iso_dates``).
    """

    def __init__(
        self,
        lines: Iterable[str],
        chunk_size: int | None = None,
        *,
        every_column: bool = True,
        iso_dates: bool = False,
    ) -> None:
        self.reader = csv.reader(lines)
        try:
            header = [h.strip() for h in next(self.reader)]
        except StopIteration:
            raise StoreError("line 1: the file is empty") from None
        except (UnicodeDecodeError, csv.Error) as exc:
            raise unreadable(exc, self.reader.line_num) from None
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise StoreError(f"line 1: header lacks column(s) {', '.join(missing)}")
        self.cols = _Columns(header, every_column=every_column, iso_dates=iso_dates)
        self.columns = self.cols.columns
        self.chunk_size = chunk_size or CHUNK_ROWS
        self.rejected: list[tuple[int, str]] = []
        self.duplicates = 0
        self.loaded = 0

    def __iter__(self) -> Iterator[list[Row]]:
        try:
            yield from self._chunks()
        except (UnicodeDecodeError, csv.Error) as exc:
            raise unreadable(exc, self.reader.line_num) from None

    def _chunks(self) -> Iterator[list[Row]]:
        width, size = self.cols.width, self.chunk_size
        reader, make, rejected = self.reader, _row_maker(self.cols), self.rejected
        # Rows by number alone: a number seldom repeats across states within a chunk, and a
        # string key is cheaper than a (state, number) tuple key (docs/benchmarks.md).
        # A number that another state also uses goes to ``clashes``, by the full key.
        rows: dict[str, Row] = {}
        clashes: dict[Row, Row] = {}
        for rec in reader:
            if len(rec) != width:
                if rec:
                    rejected.append((reader.line_num, f"{len(rec)} fields; header has {width}"))
                continue
            try:
                row = make(rec)
            except ValueError as exc:
                rejected.append((reader.line_num, str(exc)))
                continue
            seen = rows.setdefault(row[1], row)
            if seen is not row:
                if seen[0] == row[0]:
                    self.duplicates += 1
                    rows[row[1]] = row  # the later row wins
                else:
                    key = row[:2]
                    if key in clashes:
                        self.duplicates += 1
                    clashes[key] = row
            if len(rows) >= size:
                yield self._chunk(rows, clashes)
                rows, clashes = {}, {}
        if rows:
            yield self._chunk(rows, clashes)

    def _chunk(self, rows: dict[str, Row], clashes: dict[Row, Row]) -> list[Row]:
        chunk = list(rows.values())
        if clashes:
            chunk += clashes.values()
        self.loaded += len(chunk)
        return chunk


def unreadable(exc: Exception, line: int) -> StoreError:
    """The whole import stops: past a point the file cannot be read as CSV text at all."""
    if isinstance(exc, UnicodeDecodeError):
        # Decoded in blocks: the bad byte is somewhere after the last line read.
        where = f" after line {line}" if line else ""
        return StoreError(f"cannot read the file{where}: not UTF-8 text ({exc.reason})")
    return StoreError(f"line {line}: cannot read the file: {exc}")


def parse_rows(
    lines: Iterable[str],
) -> tuple[dict[tuple[str, str], Row], list[tuple[int, str]], int]:
    """All rows of a CSV keyed by (state, number), with rejects and a duplicate count."""
    chunks = CsvChunks(lines, chunk_size=1 << 62)
    rows = {(r[0], r[1]): r for chunk in chunks for r in chunk}
    return rows, chunks.rejected, chunks.duplicates


def open_csv(path: Path) -> TextIO:
    return path.open(encoding="utf-8-sig", newline="")
