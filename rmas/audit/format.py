"""The audit trail's byte format, its chain, and its table: the standard library only.

Imported by the hub (which encodes entries) and by the SQLite writer process (which seals and
stores them; :mod:`rmas.audit.writer`), so it imports no other ``rmas`` module.

**An entry** (:class:`AuditEntry`) is text fields, declared once, in the dataclass below;
:data:`FIELDS` is their order everywhere (the bytes, ``rmas audit find --json``).

**A block** is what one group commit stores: entries ``first_seq`` to ``last_seq`` (numbered
1, 2, 3... with no gap, one chain per database), in the byte format named :data:`FORMAT`
(name and version, stored in every block's ``format`` column; a reader picks the decoder by
that name, never by guessing from the bytes). ``rmas-audit-entries/1``: for each entry, its
fields in UTF-8 joined by the unit separator 0x1F, then the record separator 0x1E. No field
holds either, nor NUL (:func:`clean` replaces them with U+FFFD in caller texts; the other
fields are codes, hex and JSON, which escapes control characters).

**The chain** is defined per block::

    hash = SHA-256("rmas-audit-entries/1" LF prev_hash LF first_seq LF last_seq LF body)

where ``prev_hash`` is the previous block's hash (64 lower-case hex digits, :data:`GENESIS`
for the first block), the sequence numbers are decimal, and ``body`` the block's verbatim
bytes. Editing, inserting, deleting or reordering entries changes a block's hash or breaks the
next block's link. So that verification names the *entry* that was edited, a block also
stores ``digests``: the SHA-256 of each entry's bytes (32 bytes each, without the separator).
They are an index into the block, not part of the chain: an altered digest is reported as
such; an edit that also rewrote the digests is still caught by the block's hash.

**The table** ``audit_block`` is the same on SQLite and PostgreSQL (:func:`table_ddl`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "FIELDS",
    "FORMAT",
    "GENESIS",
    "INSERT_SQL",
    "NFIELDS",
    "OLD_TABLES",
    "TABLE",
    "TAIL_SQL",
    "AuditEntry",
    "Sealed",
    "block_hash",
    "clean",
    "decode",
    "digests",
    "encode",
    "entry_bytes",
    "seal",
    "table_ddl",
    "well_formed",
]

#: The byte format of the entries of a block: its name and version, stored with each block.
FORMAT = "rmas-audit-entries/1"
#: The ``prev_hash`` of the first block.
GENESIS = "0" * 64

#: Separates an entry's fields.
US = b"\x1f"
#: Ends an entry.
RS = b"\x1e"


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


#: The fields of an entry, in the order of the bytes.
FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(AuditEntry))
NFIELDS = len(FIELDS)
#: What :func:`entry_bytes` deletes from a body to leave its separators alone, in order; and
#: those of one entry with its fields.
_NOT_SEPARATORS = bytes(b for b in range(256) if b not in (0x1E, 0x1F))
_ONE_ENTRY_SEPARATORS = b"\x1f" * (NFIELDS - 1) + b"\x1e"

_UNSAFE = str.maketrans({"\x00": "\ufffd", "\x1e": "\ufffd", "\x1f": "\ufffd"})


def clean(text: str) -> str:
    """Free text (caller identities, references, the hub id) as a field may hold it: the
    separators and NUL become U+FFFD, as do lone surrogates (they cannot be encoded)."""
    if text.isascii():
        return text.translate(_UNSAFE) if not text.isprintable() else text
    return text.encode("utf-8", "replace").decode("utf-8").translate(_UNSAFE)


def encode(rows: Iterable[Sequence[str]]) -> bytes:
    """Entries (each its :data:`FIELDS` values, already :func:`clean`) in the byte format."""
    return "".join(["\x1f".join(row) + "\x1e" for row in rows]).encode("utf-8")


def well_formed(count: int, body: bytes) -> bool:
    """Whether ``body`` has the separators of ``count`` entries (cheap: counts only)."""
    return (
        count > 0
        and body.endswith(RS)
        and body.count(RS) == count
        and body.count(US) == count * (NFIELDS - 1)
    )


def entry_bytes(body: bytes) -> list[bytes]:
    """Each entry's bytes (without its separator); ValueError unless every entry has
    :data:`NFIELDS` fields and the body is UTF-8."""
    if not body.endswith(RS):
        raise ValueError("its body does not end an entry")
    # Every entry has its fields when the separators alone, in order, are one entry's repeated:
    # one pass of C code over the body (counting each entry's separators took a pass and a call
    # an entry).
    separators = body.translate(None, _NOT_SEPARATORS)
    if separators != _ONE_ENTRY_SEPARATORS * (len(separators) // NFIELDS):
        raise ValueError(f"not {NFIELDS} fields in each entry")
    entries = body.split(RS)
    entries.pop()  # the empty bytes after the last separator (no copy of the body without it)
    if not body.isascii():
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"not UTF-8 at byte {exc.start}") from None
    return entries


def decode(body: bytes) -> list[AuditEntry]:
    """The entries of a body in :data:`FORMAT`; ValueError when it is not one."""
    return [AuditEntry(*e.decode("utf-8").split("\x1f")) for e in entry_bytes(body)]


def digests(entries: Sequence[bytes]) -> bytes:
    """The SHA-256 of each entry's bytes, concatenated."""
    sha = hashlib.sha256
    return b"".join([sha(e).digest() for e in entries])


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


def seal(prev_hash: str, tail_seq: int, count: int, body: bytes) -> Sealed:
    """Chain ``count`` entries onto the block ending at ``tail_seq`` with hash ``prev_hash``;
    ValueError (saying what is wrong) unless ``body`` holds ``count`` well-formed entries."""
    entries = entry_bytes(body)
    if len(entries) != count:
        raise ValueError(f"not {count} entries")
    first, last = tail_seq + 1, tail_seq + count
    return Sealed(first, last, FORMAT, prev_hash, block_hash(FORMAT, prev_hash, first, last, body),
                  digests(entries), body)  # fmt: skip


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
