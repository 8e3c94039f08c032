"""The hash chain and its verifier, on rows built in memory (pure)."""

from __future__ import annotations

import hashlib

import pytest

from rmas.audit.chain import (
    GENESIS,
    ChainVerifier,
    VerifyReport,
    entry_body,
    entry_fields,
    hash_entry,
    link_hash,
    parse_anchor,
)
from tests.audit import entries

Row = tuple[int, str, str, tuple[str, ...]]


def chain(n: int) -> list[Row]:
    rows: list[Row] = []
    prev = GENESIS
    for seq, e in enumerate(entries(n), start=1):
        digest = hash_entry(prev, seq, e)
        rows.append((seq, prev, digest, entry_fields(e)))
        prev = digest
    return rows


def check(rows: list[Row], expect_head: tuple[int, str] | None = None) -> VerifyReport:
    v = ChainVerifier(expect_head=expect_head)
    for seq, prev, digest, fields in rows:
        v.feed(seq, prev, digest, fields)
    return v.finish()


def test_the_hash_covers_prev_hash_seq_and_every_field_in_order() -> None:
    (e,) = entries(1)
    body = "\x00".join(entry_fields(e)).encode()
    expected = hashlib.sha256(GENESIS.encode() + b"\x00" + b"1" + b"\x00" + body).hexdigest()
    assert expected == hash_entry(GENESIS, 1, e)
    assert expected != link_hash(GENESIS, 2, body)
    assert expected != link_hash("1" * 64, 1, body)


def test_a_nul_inside_a_field_is_refused() -> None:
    with pytest.raises(ValueError, match="NUL"):
        entry_body(("a\x00b", *("x",) * 10))


def test_an_intact_chain_verifies() -> None:
    rows = chain(5)
    report = check(rows)
    assert report.ok and report.first_problem is None
    assert (5, (5, rows[-1][2])) == (report.count, report.head)


def test_an_empty_chain_is_intact_with_the_genesis_head() -> None:
    assert VerifyReport(0, (0, GENESIS)) == check([])


def test_an_edited_field_is_found() -> None:
    rows = chain(5)
    seq, prev, digest, fields = rows[2]
    rows[2] = (seq, prev, digest, (*fields[:8], "ALERT", *fields[9:]))
    assert check(rows).problems == ("entry 3 edited: hash mismatch",)


def test_an_edit_that_also_rewrote_the_hash_breaks_the_next_link() -> None:
    rows = chain(5)
    seq, prev, _digest, fields = rows[2]
    edited = (*fields[:9], "DO_NOT_BOARD", *fields[10:])
    rows[2] = (seq, prev, link_hash(prev, seq, entry_body(edited)), edited)
    assert check(rows).problems == ("entry 4 does not follow entry 3: prev_hash mismatch",)


def test_deleted_entries_leave_a_gap() -> None:
    rows = chain(8)
    assert check(rows[:2] + rows[5:]).problems == ("entries 3-5 missing: seq gap",)
    assert check(rows[:3] + rows[4:]).problems == ("entry 4 missing: seq gap",)
    assert check(rows[1:]).problems == ("entry 1 missing: seq gap",)


def test_a_chain_must_start_at_genesis() -> None:
    rows = chain(2)
    seq, _prev, _digest, fields = rows[0]
    forged = "f" * 64
    rows[0] = (seq, forged, link_hash(forged, 1, entry_body(fields)), fields)
    report = check(rows)
    assert report.first_problem == (
        "entry 1 does not start the chain: prev_hash is not the genesis hash"
    )


def test_a_deleted_tail_is_found_only_against_an_anchor() -> None:
    rows = chain(6)
    anchor = (6, rows[-1][2])
    assert check(rows[:4]).ok  # what is left is a valid chain
    report = check(rows[:4], expect_head=anchor)
    assert report.problems == (
        "entries 5-6 missing: the chain ends at entry 4, before the anchored head 6 (tail deleted)",
    )
    assert check(rows, expect_head=anchor).ok
    assert check(rows, expect_head=(3, rows[2][2])).ok  # an older anchor still holds


def test_a_rewritten_chain_is_found_against_an_anchor() -> None:
    rows = chain(4)
    anchor = (4, rows[-1][2])
    rewritten: list[Row] = []
    prev = GENESIS
    for seq, _p, _d, fields in rows:
        forged = (*fields[:8], "ALERT", "DO_NOT_BOARD", fields[10])
        digest = link_hash(prev, seq, entry_body(forged))
        rewritten.append((seq, prev, digest, forged))
        prev = digest
    assert check(rewritten).ok
    assert check(rewritten, expect_head=anchor).problems == (
        "entry 4 is not the anchored head: its hash differs from the anchor "
        "(entries up to it were rewritten)",
    )


def test_checking_resumes_after_a_problem_and_counts_them_all() -> None:
    rows = chain(300)
    for i in range(0, 300, 2):
        seq, prev, digest, fields = rows[i]
        rows[i] = (seq, prev, digest, (*fields[:-1], "edited"))
    v = ChainVerifier(max_problems=10)
    for row in rows:
        v.feed(*row)
    report = v.finish()
    assert (report.problem_count, len(report.problems)) == (150, 10)
    assert report.first_problem == "entry 1 edited: hash mismatch"
    assert report.problems[-1] == "entry 19 edited: hash mismatch"


def test_a_null_column_counts_as_an_edit() -> None:
    rows = chain(2)
    seq, prev, digest, fields = rows[1]
    v = ChainVerifier()
    v.feed(*rows[0])
    v.feed(seq, prev, digest, (None, *fields[1:]))
    assert v.finish().problems == ("entry 2 edited: hash mismatch",)


def test_anchors_parse_as_printed_by_head() -> None:
    assert parse_anchor(f" 12:{'AB' * 32}\n") == (12, "ab" * 32)
    for bad in ("12", f"x:{'a' * 64}", f"0:{'a' * 64}", "12:abc", f"12:{'g' * 64}"):
        with pytest.raises(ValueError, match="SEQ:HASH"):
            parse_anchor(bad)


def test_reports_render_as_json() -> None:
    report = check(chain(1)[:0], expect_head=(1, "a" * 64))
    data = report.to_json()
    assert (
        data["ok"], data["problem_count"], data["head"]
    ) == (False, 1, {"seq": 0, "hash": GENESIS})  # fmt: skip
    assert data["expected_head"] == {"seq": 1, "hash": "a" * 64}
