"""Verifying the chain of blocks (:mod:`rmas.audit.format` defines it). Pure: no SQL.

What verification detects, and what it cannot:

- an edited entry: its block's hash no longer matches, and the block's digests name where the
  edit is: the entry in a block of format 1 ("entry 1234 edited: hash mismatch (block
  1201-1400)"), the group of at most 64 entries in a block of format 2 ("entries 1265-1328
  edited: hash mismatch (block 1201-1600)"); an edit that also rewrote the block's hash breaks
  the next block's link ("block 1401-1600 does not follow block 1201-1400: prev_hash
  mismatch");
- a body no longer in its format (a separator or a group's mark added or removed): the block
  is reported altered, with, in format 2, the first entry of the group at fault;
- deleted entries: a gap in the sequence ("entries 1200-1202 missing: seq gap"), which
  renumbering cannot hide without rewriting every later hash;
- **not** a deleted tail, nor a chain rewritten from some block to its end: what is left is a
  valid chain. Only an anchor kept outside the database detects those: an operator records the
  head (``rmas audit head``, ``SEQ:HASH``, the last entry's number and its block's hash) from
  time to time and verifies against it (``rmas audit verify --expect-head SEQ:HASH``); the block
  ending at ``SEQ`` must still exist and still carry that hash.

Blocks of both formats may follow each other in one chain; each is checked by its own
``format`` column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rmas.audit.format import FORMAT_1, FORMATS, GENESIS, Malformed, block_hash, digests, pieces

__all__ = ["BlockVerifier", "VerifyReport", "parse_anchor"]


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


def _first_difference(fmt: str, first: int, sizes: list[int], computed: bytes, sums: bytes) -> str:
    """Format 2: where a block whose groups, digests and seq range disagree first differs from
    its digests (a mark added or removed splits or joins groups), as a message's end."""
    if fmt == FORMAT_1:
        return ""
    seq = first
    for i, n in enumerate(sizes):
        if computed[32 * i : 32 * i + 32] != sums[32 * i : 32 * i + 32]:
            return f" (first in the group from entry {seq})"
        seq += n
    return ""


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What verification found. ``ok`` is true when no problem was found."""

    #: Entries read.
    count: int
    #: (last seq, its block's hash); (0, GENESIS) for an empty trail.
    head: tuple[int, str]
    #: The problems found, in seq order (at most ``BlockVerifier.max_problems``).
    problems: tuple[str, ...] = ()
    #: All problems found, including those not listed.
    problem_count: int = 0
    #: The anchor checked, if any.
    expected_head: tuple[int, str] | None = None
    #: (format, entries) for each block format met, in the order first met: the blocks'
    #: ``format`` columns, whether or not the block verified.
    formats: tuple[tuple[str, int], ...] = ()

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
            "formats": dict(self.formats),
        }


@dataclass(slots=True)
class BlockVerifier:
    """Checks stored blocks fed in ascending ``first_seq`` order; memory stays constant.

    After a problem, checking resumes from the block at fault (its stored hash becomes the
    expected ``prev_hash`` of the next one), so one edit is reported once, not to the end.
    """

    expect_head: tuple[int, str] | None = None
    max_problems: int = 100
    count: int = 0
    problem_count: int = 0
    problems: list[str] = field(default_factory=list)
    _last_seq: int = 0
    _last_hash: str = GENESIS
    _last_name: str = ""
    _anchor_seen: bool = False
    _formats: dict[str, int] = field(default_factory=dict)

    def _problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(text)

    def feed(  # noqa: PLR0917 (a stored row, column for column)
        self, first: Any, last: Any, fmt: Any, prev_hash: Any, stored: Any, sums: Any, body: Any
    ) -> None:
        """One stored block: the columns of ``audit_block`` in order."""
        if not (isinstance(first, int) and isinstance(last, int) and first <= last):
            self._problem(f"block {first!r}-{last!r} altered: its seq range is not one")
            return
        name = f"block {first}-{last}"
        self.count += last - first + 1
        if fmt in FORMATS:
            self._formats[fmt] = self._formats.get(fmt, 0) + last - first + 1
        expected = self._last_seq + 1
        if first < expected:
            self._problem(f"{name} out of order: it comes after entry {self._last_seq}")
            return
        if first != expected:
            self._problem(f"{_span(expected, first - 1)} missing: seq gap")
        elif prev_hash != self._last_hash:
            self._problem(
                f"{name} does not start the chain: prev_hash is not the genesis hash"
                if first == 1
                else f"{name} does not follow {self._last_name}: prev_hash mismatch"
            )
        self._check_block(name, first, last, fmt, prev_hash, stored, sums, body)
        if self.expect_head is not None and last == self.expect_head[0]:
            self._anchor_seen = True
            if stored != self.expect_head[1]:
                self._problem(
                    f"{name} is not the anchored head: its hash differs from the anchor "
                    f"(entries up to {last} were rewritten)"
                )
        self._last_seq, self._last_hash, self._last_name = last, str(stored), name

    def _check_block(  # noqa: PLR0917
        self, name: str, first: int, last: int, fmt: Any, prev: Any, stored: Any, sums: Any,
        body: Any,
    ) -> None:  # fmt: skip
        if fmt not in FORMATS:
            self._problem(f"{name} altered: unknown format {fmt!r}")
            return
        if not (isinstance(body, bytes) and isinstance(prev, str) and isinstance(sums, bytes)):
            self._problem(f"{name} altered: a column is not of its type")
            return
        try:
            parts, sizes = pieces(fmt, body)
        except ValueError as exc:
            where = ""
            if fmt != FORMAT_1 and isinstance(exc, Malformed):
                where = f" (the group from entry {first + exc.after})"
            self._problem(f"{name} altered: {exc}{where}")
            return
        computed = digests(parts)
        if sum(sizes) != last - first + 1 or len(sums) != len(computed):
            self._problem(f"{name} altered: its entries, digests and seq range disagree"
                          + _first_difference(fmt, first, sizes, computed, sums))  # fmt: skip
            return
        differ: list[tuple[int, int]] = []  # the seq ranges of the pieces whose digest differs
        if computed != sums:
            seq = first
            for i, n in enumerate(sizes):
                if computed[32 * i : 32 * i + 32] != sums[32 * i : 32 * i + 32]:
                    differ.append((seq, seq + n - 1))
                seq += n
        if block_hash(fmt, prev, first, last, body) != stored:
            if differ:
                for a, b in differ:
                    self._problem(f"{_span(a, b)} edited: hash mismatch ({name})")
            else:
                what = "entry" if fmt == FORMAT_1 else "group"
                self._problem(f"{name} edited: hash mismatch (its {what} digests were rewritten "
                              f"too, so the {what} cannot be named)")  # fmt: skip
        elif differ:
            self._problem(f"{name}: the digests of {_span(differ[0][0], differ[-1][1])} were "
                          "altered (the entries themselves are intact)")  # fmt: skip

    def finish(self) -> VerifyReport:
        """The report, once every block has been fed."""
        anchor = self.expect_head
        if anchor is not None and not self._anchor_seen:
            seq = anchor[0]
            if self._last_seq < seq:
                self._problem(
                    f"{_span(self._last_seq + 1, seq)} missing: the chain ends at entry "
                    f"{self._last_seq}, before the anchored head {seq} (tail deleted)"
                )
            else:
                self._problem(f"entry {seq} missing: no block ends there, as the anchor's did")
        return VerifyReport(
            count=self.count,
            head=(self._last_seq, self._last_hash),
            problems=tuple(self.problems),
            problem_count=self.problem_count,
            expected_head=anchor,
            formats=tuple(self._formats.items()),
        )
