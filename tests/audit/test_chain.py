"""The chain of blocks and its verifier, on blocks built in memory (pure)."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from rmas.audit.chain import BlockVerifier, VerifyReport, parse_anchor
from rmas.audit.format import FIELDS, FORMAT, GENESIS, Sealed, block_hash, decode, encode, seal
from tests.audit import entries


def rows(n: int) -> list[tuple[str, ...]]:
    return [dataclasses.astuple(e) for e in entries(n)]


def chain(*sizes: int) -> list[Sealed]:
    """Blocks of these many entries each, chained from genesis."""
    out: list[Sealed] = []
    prev, seq = GENESIS, 0
    for n in sizes:
        block = seal(prev, seq, n, encode(rows(n)))
        out.append(block)
        prev, seq = block.hash, block.last_seq
    return out


def check(blocks: list[Sealed], expect_head: tuple[int, str] | None = None) -> VerifyReport:
    v = BlockVerifier(expect_head=expect_head)
    for b in blocks:
        v.feed(*b.row())
    return v.finish()


def edit(block: Sealed, index: int, field: str, value: str) -> Sealed:
    """The block with one entry's field changed, its hash and digests left as they were."""
    entries = [list(dataclasses.astuple(e)) for e in decode(block.body)]
    entries[index][FIELDS.index(field)] = value
    return dataclasses.replace(block, body=encode(entries))


def reseal(block: Sealed, prev: str | None = None) -> Sealed:
    """The block's hash and digests recomputed over its bytes (an attacker who knows the
    format), after ``prev``."""
    prev = block.prev_hash if prev is None else prev
    n = block.last_seq - block.first_seq + 1
    return seal(prev, block.first_seq - 1, n, block.body)


def test_the_hash_covers_format_prev_hash_seq_range_and_the_bytes() -> None:
    (b,) = chain(3)
    expected = hashlib.sha256(f"{FORMAT}\n{GENESIS}\n1\n3\n".encode() + b.body).hexdigest()
    assert b.hash == expected
    assert b.hash != block_hash(FORMAT, GENESIS, 1, 4, b.body)
    assert b.hash != block_hash(FORMAT, GENESIS, 2, 3, b.body)
    assert b.hash != block_hash(FORMAT, "1" * 64, 1, 3, b.body)
    assert b.hash != block_hash("rmas-audit-entries/2", GENESIS, 1, 3, b.body)
    assert b.hash != block_hash(FORMAT, GENESIS, 1, 3, b.body + b" ")


def test_an_intact_chain_verifies() -> None:
    blocks = chain(2, 1, 4)
    report = check(blocks)
    assert report.ok and report.first_problem is None
    assert (7, (7, blocks[-1].hash)) == (report.count, report.head)


def test_an_empty_chain_is_intact_with_the_genesis_head() -> None:
    assert VerifyReport(0, (0, GENESIS)) == check([])


def test_an_edited_entry_is_named_with_its_block() -> None:
    blocks = chain(2, 4, 2)
    blocks[1] = edit(blocks[1], 2, "verdict", "ALERT")
    assert check(blocks).problems == ("entry 5 edited: hash mismatch (block 3-6)",)


def test_an_edit_that_rewrote_the_digests_too_names_the_block() -> None:
    blocks = chain(2, 4)
    edited = edit(blocks[1], 0, "directive", "DO_NOT_BOARD")
    sums = reseal(edited).digests
    blocks[1] = dataclasses.replace(edited, digests=sums)
    assert check(blocks).problems == (
        "block 3-6 edited: hash mismatch (its entry digests were rewritten too, so the entry "
        "cannot be named)",
    )


def test_an_altered_digest_alone_is_reported_as_such() -> None:
    blocks = chain(3)
    sums = bytearray(blocks[0].digests)
    sums[40] ^= 1
    blocks[0] = dataclasses.replace(blocks[0], digests=bytes(sums))
    assert check(blocks).problems == (
        "block 1-3: the digests of entry 2 were altered (the entries themselves are intact)",
    )


def test_an_edit_that_also_rewrote_the_hash_breaks_the_next_link() -> None:
    blocks = chain(2, 2, 2)
    blocks[1] = reseal(edit(blocks[1], 1, "verdict", "ALERT"))
    assert check(blocks).problems == ("block 5-6 does not follow block 3-4: prev_hash mismatch",)


def test_deleted_blocks_leave_a_gap() -> None:
    blocks = chain(2, 3, 1, 2)
    assert check(blocks[:1] + blocks[2:]).problems == ("entries 3-5 missing: seq gap",)
    assert check(blocks[:2] + blocks[3:]).problems == ("entry 6 missing: seq gap",)
    assert check(blocks[1:]).problems == ("entries 1-2 missing: seq gap",)


def test_a_block_copied_again_is_out_of_order() -> None:
    blocks = chain(2, 2)
    assert check([*blocks, blocks[0]]).problems == (
        "block 1-2 out of order: it comes after entry 4",
    )


def test_an_entry_removed_from_a_block_is_found() -> None:
    blocks = chain(3)
    body = blocks[0].body
    cut = body[: body.index(b"\x1e") + 1]  # the first entry only, the range unchanged
    blocks[0] = dataclasses.replace(blocks[0], body=cut)
    assert check(blocks).problems == (
        "block 1-3 altered: its entries, digests and seq range disagree",
    )


def test_a_block_of_another_format_or_no_entries_is_reported_and_checking_resumes() -> None:
    blocks = chain(1, 1, 1)
    blocks[0] = dataclasses.replace(blocks[0], format="rmas-audit-entries/9")
    blocks[1] = dataclasses.replace(blocks[1], body=b"not entries")
    report = check(blocks)
    assert report.problems == (
        "block 1-1 altered: unknown format 'rmas-audit-entries/9'",
        "block 2-2 altered: its body does not end an entry",
    )


def test_a_seq_range_that_is_no_range_is_reported() -> None:
    v = BlockVerifier()
    v.feed("x", 2, FORMAT, GENESIS, "0" * 64, b"", b"")
    assert v.finish().problems == ("block 'x'-2 altered: its seq range is not one",)


def test_a_chain_must_start_at_genesis() -> None:
    blocks = chain(2, 2)
    blocks[0] = reseal(blocks[0], prev="f" * 64)
    assert check(blocks).problems[0] == (
        "block 1-2 does not start the chain: prev_hash is not the genesis hash"
    )


def test_a_deleted_tail_is_found_only_against_an_anchor() -> None:
    blocks = chain(2, 2, 2)
    anchor = (6, blocks[-1].hash)
    assert check(blocks[:2]).ok  # what is left is a valid chain
    assert check(blocks[:2], expect_head=anchor).problems == (
        "entries 5-6 missing: the chain ends at entry 4, before the anchored head 6 (tail deleted)",
    )
    assert check(blocks, expect_head=anchor).ok
    assert check(blocks, expect_head=(4, blocks[1].hash)).ok  # an older anchor still holds


def test_a_rewritten_chain_is_found_against_an_anchor() -> None:
    blocks = chain(2, 2)
    anchor = (4, blocks[-1].hash)
    first = reseal(edit(blocks[0], 0, "verdict", "ALERT"))
    rewritten = [first, reseal(blocks[1], prev=first.hash)]
    assert check(rewritten).ok
    assert check(rewritten, expect_head=anchor).problems == (
        "block 3-4 is not the anchored head: its hash differs from the anchor "
        "(entries up to 4 were rewritten)",
    )


def test_checking_resumes_after_a_problem_and_counts_them_all() -> None:
    blocks = chain(*([1] * 300))
    for i in range(0, 300, 2):
        blocks[i] = edit(blocks[i], 0, "reference", "edited")
    v = BlockVerifier(max_problems=10)
    for b in blocks:
        v.feed(*b.row())
    report = v.finish()
    assert (report.problem_count, len(report.problems)) == (150, 10)
    assert report.first_problem == "entry 1 edited: hash mismatch (block 1-1)"
    assert report.problems[-1] == "entry 19 edited: hash mismatch (block 19-19)"


def test_a_null_column_counts_as_an_alteration() -> None:
    (b,) = chain(2)
    v = BlockVerifier()
    v.feed(b.first_seq, b.last_seq, b.format, b.prev_hash, b.hash, b.digests, None)
    assert v.finish().problems == ("block 1-2 altered: a column is not of its type",)


def test_anchors_parse_as_printed_by_head() -> None:
    assert parse_anchor(f" 12:{'AB' * 32}\n") == (12, "ab" * 32)
    for bad in ("12", f"x:{'a' * 64}", f"0:{'a' * 64}", "12:abc", f"12:{'g' * 64}"):
        with pytest.raises(ValueError, match="SEQ:HASH"):
            parse_anchor(bad)


def test_reports_render_as_json() -> None:
    report = check([], expect_head=(1, "a" * 64))
    data = report.to_json()
    assert (
        data["ok"], data["problem_count"], data["head"]
    ) == (False, 1, {"seq": 0, "hash": GENESIS})  # fmt: skip
    assert data["expected_head"] == {"seq": 1, "hash": "a" * 64}
