"""The audit trail's byte formats, its chain, and its table: the standard library only.

Imported by the hub (which encodes entries) and by the SQLite writer process (which seals and
stores them; :mod:`rmas.audit.writer`), so it imports no other ``rmas`` module.

**An entry** (:class:`AuditEntry`) is text fields, declared once, in the dataclass below;
:data:`FIELDS` is their order everywhere (``rmas audit find --json``, format 1's bytes). No
field holds NUL (0x00), the record separator 0x1E or the unit separator 0x1F: :func:`clean`
replaces them with U+FFFD in caller texts; the other fields are codes, hex and JSON, which
escapes control characters.

**A block** is what one group commit stores: entries ``first_seq`` to ``last_seq`` (numbered
1, 2, 3... with no gap, one chain per database) as ``body``, in the byte format that the
block's ``format`` column names (name and version; a reader picks the decoder by that column,
never by guessing from the bytes), and ``digests``, the SHA-256 of each *piece* of the body
(32 bytes each), so that verification can say where an edit is. One chain may hold blocks of
both formats (a trail begun by an earlier rmas: format 1, then format 2); new blocks are
written in :data:`FORMAT`. Both decode to the same :class:`AuditEntry` values.

``rmas-audit-entries/1`` (:data:`FORMAT_1`; written until session 9): for each entry, its
:data:`FIELDS` in UTF-8 joined by 0x1F, then 0x1E. A piece is an entry's bytes without its
0x1E: one digest an entry.

``rmas-audit-entries/2`` (:data:`FORMAT_2`, :data:`FORMAT`): the body is one or more
*groups*, each the byte 0x00, then a *call record*, then 1 to :data:`GROUP` (64) *entry
records*. Every record is 6 fields in UTF-8 joined by 0x1F, then 0x1E:

- the call record: :data:`CALL_FIELDS` (time, hub, caller, role, channel, reference), the
  fields that every entry of one call shares;
- an entry record: :data:`ENTRY_FIELDS` (check_id, issuing_state, document_key, sources,
  verdict, directive).

An entry is its record's fields with those of its group's call record. A call of more than 64
entries is written as several groups, each with the call record (the hub writes one group per
64 entries of a call; :func:`encode` makes a group of consecutive entries whose call fields are
equal). A piece is a group's bytes after its 0x00, up to the next 0x00 or the end: one digest
per group of at most 64 entries. A manifest's document takes about 156 bytes instead of 267.

**The chain** is defined per block, the same way for both formats::

    hash = SHA-256(format LF prev_hash LF first_seq LF last_seq LF body)

where ``format`` is the block's format name, ``prev_hash`` is the previous block's hash (64
lower-case hex digits, :data:`GENESIS` for the first block), the sequence numbers are decimal,
and ``body`` the block's verbatim bytes. Editing, inserting, deleting or reordering entries (or
a format's name) changes a block's hash or breaks the next block's link. The digests are an
index into the block, not part of the chain: an altered digest is reported as such; an edit
that also rewrote the digests is still caught by the block's hash. So verification names the
entry (format 1) or the group of at most 64 entries (format 2) that was edited.

**The table** ``audit_block`` is the same on SQLite and PostgreSQL (:func:`table_ddl`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter

__all__ = [
    "CALL_FIELDS",
    "ENTRY_FIELDS",
    "FIELDS",
    "FORMAT",
    "FORMATS",
    "FORMAT_1",
    "FORMAT_2",
    "GENESIS",
    "GROUP",
    "INSERT_SQL",
    "NFIELDS",
    "OLD_TABLES",
    "TABLE",
    "TAIL_SQL",
    "AuditEntry",
    "Malformed",
    "Sealed",
    "block_hash",
    "clean",
    "decode",
    "digests",
    "encode",
    "entry_bytes",
    "groups",
    "pieces",
    "seal",
    "table_ddl",
    "well_formed",
]

#: Format 1: an entry's fields, joined; one digest an entry.
FORMAT_1 = "rmas-audit-entries/1"
#: Format 2: groups of a call record and up to 64 entry records; one digest a group.
FORMAT_2 = "rmas-audit-entries/2"
#: The format new blocks are written in.
FORMAT = FORMAT_2
#: The formats a block may have.
FORMATS = (FORMAT_1, FORMAT_2)
#: The ``prev_hash`` of the first block.
GENESIS = "0" * 64
#: Format 2: the most entry records in a group.
GROUP = 64

#: Separates a record's fields.
US = b"\x1f"
#: Ends a record (format 1: an entry).
RS = b"\x1e"
#: Format 2: starts a group.
MARK = b"\x00"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One checked document, as the audit trail records it. Every field is text."""

    #: UTC ISO 8601 with microseconds, e.g. ``2026-11-22T10:04:05.123456+00:00``.
    time: str
    #: The hub that wrote it (``[audit] hub_id``, default the host name); "" in entries
    #: migrated from a layout that did not record it.
    hub: str
    #: e.g. ``"rmas://airline/QF"``; development mode without TLS: ``"insecure:127.0.0.1"``.
    caller: str
    #: ``"airline"``, ``"officer"``, ``"operator"`` or ``"node"``.
    role: str
    #: ``document``, ``manifest``, ``paxlst``; ``override`` and ``recheck`` (rmas.flights).
    channel: str
    check_id: str
    #: The state code as the document gave it (``D``, ``NZL``); "" when it had no valid state.
    issuing_state: str
    #: HMAC-SHA256 hex of the document's identity (never the number); "" without one.
    document_key: str
    #: Compact JSON array, one item per provider answer:
    #: ``[provider_id, outcome, record status or "", "candidate" or ""]`` ("candidate": the
    #: answer is about an OCR-confusion candidate of the number read, not the number itself);
    #: with an APEC Business Travel Card, one more item for it: ``["abtc:<provider>", outcome,
    #: card status, "card:<keyed hash> <USABLE|reason> for <economy>"]`` (the hash is the
    #: document keyer's, of ``"ABTC:<home economy>:<number>"``).
    sources: str
    #: A :class:`~rmas.verdict.Verdict` name.
    verdict: str
    #: A :class:`~rmas.verdict.Directive` name.
    directive: str
    #: Manifest id, PAXLST transaction reference, or "".
    reference: str = ""


#: The fields of an entry, in the order of format 1's bytes and of :class:`AuditEntry`.
FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(AuditEntry))
#: Format 1: the fields of an entry.
NFIELDS = len(FIELDS)
#: Format 2: the fields of a call record, in the order of its bytes.
CALL_FIELDS = ("time", "hub", "caller", "role", "channel", "reference")
#: Format 2: the fields of an entry record, in the order of its bytes.
ENTRY_FIELDS = ("check_id", "issuing_state", "document_key", "sources", "verdict", "directive")
# decode() builds entries from format 2's records positionally:
if CALL_FIELDS[:5] + ENTRY_FIELDS + CALL_FIELDS[5:] != FIELDS:
    raise ImportError("AuditEntry's fields are not those of format 2's records")

_UNSAFE = str.maketrans({"\x00": "\ufffd", "\x1e": "\ufffd", "\x1f": "\ufffd"})


def clean(text: str) -> str:
    """Free text (caller identities, references, the hub id) as a field may hold it: the
    separators and NUL become U+FFFD, as do lone surrogates (they cannot be encoded)."""
    if text.isascii():
        return text.translate(_UNSAFE) if not text.isprintable() else text
    return text.encode("utf-8", "replace").decode("utf-8").translate(_UNSAFE)


class Malformed(ValueError):
    """A body that is not in its format. ``after``: format 2, the entries of the groups before
    the one at fault (0 when unknown or for format 1)."""

    def __init__(self, message: str, after: int = 0) -> None:
        super().__init__(message)
        self.after = after


# -- format 2 --------------------------------------------------------------------------------------

_CALL_OF = itemgetter(*(FIELDS.index(f) for f in CALL_FIELDS))
_ENTRY_OF = itemgetter(*(FIELDS.index(f) for f in ENTRY_FIELDS))
#: What :func:`groups` deletes from a body to leave its marks and separators alone, in order.
_NOT_MARKS = bytes(b for b in range(256) if b not in (0x00, 0x1E, 0x1F))
#: The separators of one record; those of a group after its mark (a call record and n entry
#: records) -> n.
_RECORD = US * (len(ENTRY_FIELDS) - 1) + RS
_SHAPES = {_RECORD * (n + 1): n for n in range(1, GROUP + 1)}


def encode(rows: Iterable[Sequence[str]]) -> bytes:
    """Entries (each its :data:`FIELDS` values, already :func:`clean`) in :data:`FORMAT`:
    consecutive entries whose call fields are equal share a group, up to :data:`GROUP`."""
    parts: list[str] = []
    append = parts.append
    call: tuple[str, ...] = ()
    n = GROUP
    for row in rows:
        shared = _CALL_OF(row)
        if n == GROUP or shared != call:
            append("\x00" + "\x1f".join(shared) + "\x1e")
            call, n = shared, 0
        append("\x1f".join(_ENTRY_OF(row)) + "\x1e")
        n += 1
    return "".join(parts).encode("utf-8")


def well_formed(count: int, body: bytes) -> bool:
    """Whether ``body`` has the marks and separators of ``count`` entries in :data:`FORMAT`
    (cheap: counts only)."""
    marks = body.count(MARK)
    records = count + marks
    return (
        0 < marks <= count <= GROUP * marks
        and body.startswith(MARK)
        and body.endswith(RS)
        and body.count(RS) == records
        and body.count(US) == records * (len(ENTRY_FIELDS) - 1)
    )


def groups(body: bytes) -> tuple[list[memoryview], list[int]]:
    """Format 2: each group's bytes after its mark (views of ``body``), and its number of
    entries; :class:`Malformed` unless every group is a call record and 1 to :data:`GROUP`
    entry records of 6 fields and the body is UTF-8."""
    # The marks and separators alone, in order (one pass of C code), cut at the marks: each
    # group's must be one record's repeated.
    shapes = body.translate(None, _NOT_MARKS).split(MARK)
    if shapes[0] or not body.startswith(MARK):
        raise Malformed("its body does not start with a group")
    del shapes[0]
    counts = [_SHAPES.get(shape, 0) for shape in shapes]
    if 0 in counts:
        bad = counts.index(0)
        raise Malformed(
            f"group {bad + 1} is not a call record and 1-{GROUP} entries of "
            f"{len(ENTRY_FIELDS)} fields",
            sum(counts[:bad]),
        )
    # Then each mark must start a record: the body starts with one, every other follows a
    # record's end, and so does the body's end. Marks found one at a time (``find`` is
    # memchr), the groups kept as views: for a manifest 0.01 µs a document, where ``split``
    # took 0.06 and counting 0x1E 0x00 0.17.
    view = memoryview(body)
    parts: list[memoryview] = []
    find = body.find
    start = 1
    for _ in range(len(counts) - 1):
        end = find(MARK, start)
        if body[end - 1] != 0x1E:
            raise Malformed(
                f"group {len(parts) + 1} does not end a record", sum(counts[: len(parts)])
            )
        parts.append(view[start:end])
        start = end + 1
    if not body.endswith(RS):
        raise Malformed(f"group {len(counts)} does not end a record", sum(counts[:-1]))
    parts.append(view[start:])
    if not body.isascii():
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            at, bad = exc.start, 0
            while at > len(parts[bad]):  # the group holding that byte (or its mark)
                at -= len(parts[bad]) + 1
                bad += 1
            raise Malformed(f"not UTF-8 at byte {exc.start}", sum(counts[:bad])) from None
    return parts, counts


def _decode_groups(body: bytes) -> list[AuditEntry]:
    out: list[AuditEntry] = []
    append = out.append
    entry = AuditEntry
    groups(body)  # checks it all
    for part in body.decode("utf-8").split("\x00")[1:]:
        records = part.split("\x1e")
        records.pop()  # the empty text after the last record's end
        time, hub, caller, role, channel, reference = records[0].split("\x1f")
        for record in records[1:]:
            check_id, state, key, sources, verdict, directive = record.split("\x1f")
            append(entry(time, hub, caller, role, channel, check_id, state, key, sources,
                         verdict, directive, reference))  # fmt: skip
    return out


# -- format 1 --------------------------------------------------------------------------------------

#: What :func:`entry_bytes` deletes from a body to leave its separators alone, in order; and
#: those of one entry with its fields.
_NOT_SEPARATORS = bytes(b for b in range(256) if b not in (0x1E, 0x1F))
_ONE_ENTRY_SEPARATORS = US * (NFIELDS - 1) + RS


def entry_bytes(body: bytes) -> list[bytes]:
    """Format 1: each entry's bytes (without its separator); ValueError unless every entry has
    :data:`NFIELDS` fields and the body is UTF-8."""
    if not body.endswith(RS):
        raise Malformed("its body does not end an entry")
    # Every entry has its fields when the separators alone, in order, are one entry's repeated:
    # one pass of C code over the body (counting each entry's separators took a pass and a call
    # an entry).
    separators = body.translate(None, _NOT_SEPARATORS)
    if separators != _ONE_ENTRY_SEPARATORS * (len(separators) // NFIELDS):
        raise Malformed(f"not {NFIELDS} fields in each entry")
    entries = body.split(RS)
    entries.pop()  # the empty bytes after the last separator (no copy of the body without it)
    if not body.isascii():
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Malformed(f"not UTF-8 at byte {exc.start}") from None
    return entries


# -- either ---------------------------------------------------------------------------------------


def pieces(fmt: str, body: bytes) -> tuple[Sequence[bytes | memoryview], list[int]]:
    """The pieces of a body of format ``fmt`` that its digests are of, and the entries in each;
    ValueError (:class:`Malformed`) unless the body is in that format, or the format unknown."""
    if fmt == FORMAT_2:
        return groups(body)
    if fmt == FORMAT_1:
        entries = entry_bytes(body)
        return entries, [1] * len(entries)
    raise ValueError(f"unknown format {fmt!r}")


def decode(fmt: str, body: bytes) -> list[AuditEntry]:
    """The entries of a body of format ``fmt`` (a block's ``format`` column); ValueError when
    it is not one."""
    if fmt == FORMAT_2:
        return _decode_groups(body)
    if fmt == FORMAT_1:
        return [AuditEntry(*e.decode("utf-8").split("\x1f")) for e in entry_bytes(body)]
    raise ValueError(f"unknown format {fmt!r}")


def digests(parts: Sequence[bytes | memoryview]) -> bytes:
    """The SHA-256 of each piece, concatenated."""
    sha = hashlib.sha256
    return b"".join([sha(p).digest() for p in parts])


def block_hash(fmt: str, prev_hash: str, first: int, last: int, body: bytes) -> str:
    """A block's hash (see the module docstring)."""
    h = hashlib.sha256(f"{fmt}\n{prev_hash}\n{first}\n{last}\n".encode("utf-8", "surrogateescape"))
    h.update(body)  # not ``head + body``: a copy of the whole block
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class Sealed:
    """A block ready to insert: the values of :data:`INSERT_SQL`, in order."""

    first_seq: int
    last_seq: int
    format: str
    prev_hash: str
    hash: str
    digests: bytes
    body: bytes

    def row(self) -> tuple[int, int, str, str, str, bytes, bytes]:
        return (self.first_seq, self.last_seq, self.format, self.prev_hash, self.hash,
                self.digests, self.body)  # fmt: skip


def seal(prev_hash: str, tail_seq: int, count: int, body: bytes, fmt: str = FORMAT) -> Sealed:
    """Chain ``count`` entries in format ``fmt`` onto the block ending at ``tail_seq`` with hash
    ``prev_hash``; ValueError (saying what is wrong) unless ``body`` holds ``count`` well-formed
    entries."""
    parts, sizes = pieces(fmt, body)
    if sum(sizes) != count:
        raise ValueError(f"not {count} entries")
    first, last = tail_seq + 1, tail_seq + count
    return Sealed(first, last, fmt, prev_hash, block_hash(fmt, prev_hash, first, last, body),
                  digests(parts), body)  # fmt: skip


# -- the table ------------------------------------------------------------------------------------

TABLE = "audit_block"
#: Tables of earlier layouts (``rmas audit migrate`` converts them; nothing appends to them).
OLD_TABLES = ("audit_entries", "audit_blocks")


def table_ddl(engine: str) -> str:
    """``CREATE TABLE`` of :data:`TABLE` on ``"sqlite"`` or ``"postgresql"``."""
    integer, blob = ("INTEGER", "BLOB") if engine == "sqlite" else ("BIGINT", "BYTEA")
    return (
        f"CREATE TABLE IF NOT EXISTS {TABLE} (first_seq {integer} PRIMARY KEY, "
        f"last_seq {integer} NOT NULL, format TEXT NOT NULL, prev_hash TEXT NOT NULL, "
        f"hash TEXT NOT NULL, digests {blob} NOT NULL, body {blob} NOT NULL)"
    )


#: (last_seq, hash) of the last block.
TAIL_SQL = f"SELECT last_seq, hash FROM {TABLE} ORDER BY first_seq DESC LIMIT 1"
#: A block (qmark parameters; PostgreSQL's writer numbers them).
INSERT_SQL = f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?, ?)"
