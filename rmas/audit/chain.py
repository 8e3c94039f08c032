"""The hash chain that makes the audit trail tamper-evident, and its verification (pure, no SQL).

Every stored entry carries a sequence number ``seq`` (1, 2, 3... with no gaps, one chain per
database however many hub processes write to it), the hash of the entry before it
(``prev_hash``; :data:`GENESIS` for entry 1) and its own hash::

    hash = SHA-256(prev_hash || 0x00 || seq || 0x00 || time || 0x00 || caller ... || reference)

``prev_hash`` is the 64-character lower-case hex text, ``seq`` its decimal digits, and the
entry's fields (:data:`FIELDS`, in that order) their UTF-8 text, joined by NUL bytes (no field may
hold one; :func:`rmas.audit.entry.entries_for` replaces them). The result is stored as hex.

What a chain detects, and what it cannot:

- an edited entry: its recomputed hash differs from the stored one ("entry 1234 edited: hash
  mismatch"); an edit that also rewrote the stored hash breaks the next entry's link ("entry 1235
  does not follow entry 1234: prev_hash mismatch");
- a deleted entry, or several: a gap in ``seq`` ("entries 1200-1202 missing: seq gap"), which
  renumbering cannot hide without rewriting every later hash;
- **not** a deleted tail, nor a chain rewritten from some entry to its end: what is left is a
  valid chain. Only an anchor kept outside the database detects those: an operator records the
  head (``rmas audit head``, ``SEQ:HASH``) from time to time and verifies against it
  (``rmas audit verify --expect-head SEQ:HASH``); the entry at that ``seq`` must still exist and
  still carry that hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from rmas.audit.entry import AuditEntry

__all__ = [
    "FIELDS",
    "GENESIS",
    "ChainVerifier",
    "VerifyReport",
    "entry_body",
    "entry_fields",
    "hash_entry",
    "link_hash",
    "parse_anchor",
]

#: The ``prev_hash`` of entry 1.
GENESIS = "0" * 64

#: The entry's fields in canonical order (the stored columns after seq, prev_hash and hash).
FIELDS: tuple[str, ...] = (
    "time",
    "caller",
    "role",
    "channel",
    "check_id",
    "issuing_state",
    "document_key",
    "sources",
    "verdict",
    "directive",
    "reference",
)

#: An entry's fields as a tuple, in :data:`FIELDS` order (one C call).
entry_fields: Any = attrgetter(*FIELDS)

_SEPARATORS = len(FIELDS) - 1
_sha256 = hashlib.sha256


def entry_body(fields: Sequence[str]) -> bytes:
    """The canonical bytes of an entry's fields (without seq and prev_hash).

    Raises ValueError when a field holds a NUL (the bytes would be ambiguous) or cannot be
    encoded as UTF-8.
    """
    body = "\x00".join(fields).encode("utf-8")
    if body.count(b"\x00") != _SEPARATORS:
        raise ValueError("a field holds a NUL character")
    return body


def link_hash(prev_hash: str, seq: int, body: bytes) -> str:
    """The hash of the entry numbered ``seq`` with canonical ``body``, following ``prev_hash``."""
    return _sha256(b"%s\x00%d\x00%s" % (prev_hash.encode("ascii"), seq, body)).hexdigest()


def hash_entry(prev_hash: str, seq: int, entry: AuditEntry) -> str:
    """Convenience for tests and tools: :func:`link_hash` of an :class:`AuditEntry`."""
    return link_hash(prev_hash, seq, entry_body(entry_fields(entry)))


def parse_anchor(text: str) -> tuple[int, str]:
    """``"SEQ:HASH"`` (as ``rmas audit head`` prints it) -> (seq, hash); ValueError when bad."""
    seq_text, sep, digest = text.strip().partition(":")
    digest = digest.lower()
    if not sep or not seq_text.isdigit() or int(seq_text) < 1:
        raise ValueError(f"expected SEQ:HASH with SEQ a positive number, got {text!r}")
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"expected SEQ:HASH with HASH 64 hex digits, got {text!r}")
    return int(seq_text), digest


def _span(first: int, last: int) -> str:
    return f"entry {first}" if first == last else f"entries {first}-{last}"


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What verification found. ``ok`` is true when no problem was found."""

    #: Entries read.
    count: int
    #: (seq, hash) of the last entry; (0, GENESIS) for an empty trail.
    head: tuple[int, str]
    #: The problems found, in seq order (at most ``ChainVerifier.max_problems``).
    problems: tuple[str, ...] = ()
    #: All problems found, including those not listed.
    problem_count: int = 0
    #: The anchor checked, if any.
    expected_head: tuple[int, str] | None = None

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    @property
    def first_problem(self) -> str | None:
        return self.problems[0] if self.problems else None

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "count": self.count,
            "head": {"seq": self.head[0], "hash": self.head[1]},
            "expected_head": (
                {"seq": self.expected_head[0], "hash": self.expected_head[1]}
                if self.expected_head
                else None
            ),
            "problem_count": self.problem_count,
            "problems": list(self.problems),
        }


@dataclass(slots=True)
class ChainVerifier:
    """Checks stored rows fed in ascending ``seq`` order; memory stays constant.

    After a problem, checking resumes from the row at fault (its stored hash becomes the
    expected ``prev_hash`` of the next row), so one edit is reported once, not to the end.
    """

    expect_head: tuple[int, str] | None = None
    max_problems: int = 100
    count: int = 0
    problem_count: int = 0
    problems: list[str] = field(default_factory=list)
    _last_seq: int = 0
    _last_hash: str = GENESIS
    _anchor_seen: bool = False

    def _problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(text)

    def feed(self, seq: int, prev_hash: str, stored_hash: str, fields: Sequence[Any]) -> None:
        """One stored row: its seq, prev_hash, hash and its :data:`FIELDS` values."""
        self.count += 1
        expected_seq = self._last_seq + 1
        if seq < expected_seq:
            # A copy or a stray: reported, and the chain is followed on from where it was.
            self._problem(f"entry {seq} out of order: it comes after entry {self._last_seq}")
            return
        if seq != expected_seq:
            self._problem(f"{_span(expected_seq, seq - 1)} missing: seq gap")
        elif prev_hash != self._last_hash:
            if seq == 1:
                self._problem("entry 1 does not start the chain: prev_hash is not the genesis hash")
            else:
                self._problem(
                    f"entry {seq} does not follow entry {self._last_seq}: prev_hash mismatch"
                )
        try:
            recomputed = link_hash(prev_hash, seq, entry_body(fields))
        except (TypeError, ValueError, UnicodeError, AttributeError):
            recomputed = ""  # a NULL, a NUL or a non-text value: not what the hub wrote
        if recomputed != stored_hash:
            self._problem(f"entry {seq} edited: hash mismatch")
        if self.expect_head is not None and seq == self.expect_head[0]:
            self._anchor_seen = True
            if stored_hash != self.expect_head[1]:
                self._problem(
                    f"entry {seq} is not the anchored head: its hash differs from the anchor "
                    "(entries up to it were rewritten)"
                )
        self._last_seq = seq
        self._last_hash = stored_hash

    def report(self, text: str) -> None:
        """A problem found outside the chain's rows (a storage's own structure)."""
        self._problem(text)

    def unreadable(self, first: int, last: int, last_hash: str, why: str) -> None:
        """Entries ``first`` to ``last`` cannot be read as entries (a stored block was altered):
        one problem; checking resumes after them, from ``last_hash``."""
        if first > self._last_seq + 1:
            self._problem(f"{_span(self._last_seq + 1, first - 1)} missing: seq gap")
        self._problem(f"{_span(first, last)} unreadable: {why}")
        self._last_seq = max(self._last_seq, last)
        self._last_hash = last_hash

    def finish(self) -> VerifyReport:
        """The report, once every row has been fed."""
        anchor = self.expect_head
        if anchor is not None and not self._anchor_seen:
            seq = anchor[0]
            if self._last_seq < seq:
                self._problem(
                    f"{_span(self._last_seq + 1, seq)} missing: the chain ends at entry "
                    f"{self._last_seq}, before the anchored head {seq} (tail deleted)"
                )
            else:
                self._problem(f"entry {seq} missing: it is the anchored head")
        return VerifyReport(
            count=self.count,
            head=(self._last_seq, self._last_hash),
            problems=tuple(self.problems),
            problem_count=self.problem_count,
            expected_head=anchor,
        )
