"""Verifying the chain of blocks (:mod:`rmas.audit.format` defines it). Pure: no SQL.

What verification detects, and what it cannot:

- an edited entry: its block's hash no longer matches, and the block's entry digests name the
  entry ("entry 1234 edited: hash mismatch (block 1201-1400)"); an edit that also rewrote the
  block's hash breaks the next block's link ("block 1401-1600 does not follow block 1201-1400:
  prev_hash mismatch");
- deleted entries: a gap in the sequence ("entries 1200-1202 missing: seq gap"), which
  renumbering cannot hide without rewriting every later hash;
- **not** a deleted tail, nor a chain rewritten from some block to its end: what is left is a
  valid chain. Only an anchor kept outside the database detects those: an operator records the
  head (``rmas audit head``, ``SEQ:HASH``, the last entry's number and its block's hash) from
  time to time and verifies against it (``rmas audit verify --expect-head SEQ:HASH``); the block
  ending at ``SEQ`` must still exist and still carry that hash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rmas.audit.format import FORMAT, GENESIS, block_hash, digests, entry_bytes

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
        if fmt != FORMAT:
            self._problem(f"{name} altered: unknown format {fmt!r}")
            return
        if not (isinstance(body, bytes) and isinstance(prev, str) and isinstance(sums, bytes)):
            self._problem(f"{name} altered: a column is not of its type")
            return
        try:
            entries = entry_bytes(body)
        except ValueError as exc:
            self._problem(f"{name} altered: {exc}")
            return
        if len(entries) != last - first + 1 or len(sums) != 32 * len(entries):
            self._problem(f"{name} altered: its entries, digests and seq range disagree")
            return
        computed = digests(entries)
        differ = [first + i for i in range(len(entries)) if
                  computed[32 * i : 32 * i + 32] != sums[32 * i : 32 * i + 32]]  # fmt: skip
        if block_hash(fmt, prev, first, last, body) != stored:
            if differ:
                for seq in differ:
                    self._problem(f"entry {seq} edited: hash mismatch ({name})")
            else:
                self._problem(f"{name} edited: hash mismatch (its entry digests were rewritten "
                              "too, so the entry cannot be named)")  # fmt: skip
        elif differ:
            self._problem(f"{name}: the digests of {_span(differ[0], differ[-1])} were altered "
                          "(the entries themselves are intact)")  # fmt: skip

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
        )
