"""The chain of blocks and its verifier, on blocks built in memory (pure): blocks of format 2
(what is written now), of format 1 (what earlier trails hold), and chains of both."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from rmas.audit.chain import BlockVerifier, VerifyReport, parse_anchor
from rmas.audit.format import (
    FORMAT,
    FORMAT_1,
    FORMAT_2,
    GENESIS,
    Sealed,
    block_hash,
    encode,
    seal,
)
from tests.audit import entries, spec


def rows(n: int) -> list[tuple[str, ...]]:
    return [dataclasses.astuple(e) for e in entries(n)]


def chain(*sizes: int, fmt: str = FORMAT) -> list[Sealed]:
    """Blocks of these many entries each, chained from genesis, in format ``fmt`` (format 2:
    one call a block, so a group per 64 entries; format 1 written by tests.audit.spec)."""
    out: list[Sealed] = []
    prev, seq = GENESIS, 0
    for n in sizes:
        made = entries(n)
        body = (
            spec.encode1([dataclasses.asdict(e) for e in made]) if fmt == FORMAT_1
            else encode(dataclasses.astuple(e) for e in made)
        )  # fmt: skip
        block = seal(prev, seq, n, body, fmt)
        out.append(block)
        prev, seq = block.hash, block.last_seq
    return out


def check(blocks: list[Sealed], expect_head: tuple[int, str] | None = None) -> VerifyReport:
    v = BlockVerifier(expect_head=expect_head)
    for b in blocks:
        v.feed(*b.row())
    return v.finish()


def edit(block: Sealed, index: int, field: str, value: str) -> Sealed:
    """The block with one entry's field changed (in format 2 a call field is its group's),
    its hash and digests left as they were."""
    body = spec.edited(block.format, block.body, index, {field: value})
    return dataclasses.replace(block, body=body)


def reseal(block: Sealed, prev: str | None = None) -> Sealed:
    """The block's hash and digests recomputed over its bytes (an attacker who knows the
    format), after ``prev``."""
    prev = block.prev_hash if prev is None else prev
    n = block.last_seq - block.first_seq + 1
    return seal(prev, block.first_seq - 1, n, block.body, block.format)


@pytest.mark.parametrize("fmt", [FORMAT_1, FORMAT_2])
def test_the_hash_covers_format_prev_hash_seq_range_and_the_bytes(fmt: str) -> None:
    (b,) = chain(3, fmt=fmt)
    assert b.format == fmt
    expected = hashlib.sha256(f"{fmt}\n{GENESIS}\n1\n3\n".encode() + b.body).hexdigest()
    assert b.hash == expected == spec.chain_hash(fmt, GENESIS, 1, 3, b.body)
    assert b.hash != block_hash(fmt, GENESIS, 1, 4, b.body)
    assert b.hash != block_hash(fmt, GENESIS, 2, 3, b.body)
    assert b.hash != block_hash(fmt, "1" * 64, 1, 3, b.body)
    other = FORMAT_2 if fmt == FORMAT_1 else FORMAT_1
    assert b.hash != block_hash(other, GENESIS, 1, 3, b.body)
    assert b.hash != block_hash(fmt, GENESIS, 1, 3, b.body + b" ")


def test_new_blocks_are_format_2_with_a_digest_per_group_of_64() -> None:
    (b,) = chain(150)
    assert (FORMAT, b.format) == (FORMAT_2, FORMAT_2)
    assert spec.ranges2(b.body, 1) == [(1, 64), (65, 128), (129, 150)]
    assert b.digests == spec.digests2(b.body) and len(b.digests) == 3 * 32
    (one,) = chain(150, fmt=FORMAT_1)
    assert one.digests == spec.digests1(one.body) and len(one.digests) == 150 * 32


def test_an_intact_chain_verifies() -> None:
    blocks = chain(2, 1, 4)
    report = check(blocks)
    assert report.ok and report.first_problem is None
    assert (7, (7, blocks[-1].hash)) == (report.count, report.head)


def test_an_empty_chain_is_intact_with_the_genesis_head() -> None:
    assert VerifyReport(0, (0, GENESIS)) == check([])


def test_an_edited_entry_is_named_with_its_block_in_format_1() -> None:
    blocks = chain(2, 4, 2, fmt=FORMAT_1)
    blocks[1] = edit(blocks[1], 2, "verdict", "ALERT")
    assert check(blocks).problems == ("entry 5 edited: hash mismatch (block 3-6)",)


def test_an_edited_entry_is_named_with_its_group_and_block_in_format_2() -> None:
    blocks = chain(2, 150, 2)
    blocks[1] = edit(blocks[1], 70, "verdict", "ALERT")  # entry 73: the group of 67-130
    assert check(blocks).problems == ("entries 67-130 edited: hash mismatch (block 3-152)",)
    # A call field is the group's: an edit of it is an edit of the group.
    blocks = chain(2, 150, 2)
    blocks[1] = edit(blocks[1], 140, "caller", "rmas://airline/XX")
    assert check(blocks).problems == ("entries 131-152 edited: hash mismatch (block 3-152)",)
    blocks = chain(2, 1)
    blocks[1] = edit(blocks[1], 0, "reference", "QF2")
    assert check(blocks).problems == ("entry 3 edited: hash mismatch (block 3-3)",)


def test_edits_in_two_groups_name_both() -> None:
    blocks = chain(150)
    blocks[0] = edit(edit(blocks[0], 0, "check_id", "x"), 149, "sources", "[]")
    assert check(blocks).problems == (
        "entries 1-64 edited: hash mismatch (block 1-150)",
        "entries 129-150 edited: hash mismatch (block 1-150)",
    )


@pytest.mark.parametrize("fmt", [FORMAT_1, FORMAT_2])
def test_an_edit_that_rewrote_the_digests_too_names_the_block(fmt: str) -> None:
    blocks = chain(2, 4, fmt=fmt)
    edited = edit(blocks[1], 0, "directive", "DO_NOT_BOARD")
    sums = reseal(edited).digests
    blocks[1] = dataclasses.replace(edited, digests=sums)
    what = "entry" if fmt == FORMAT_1 else "group"
    assert check(blocks).problems == (
        f"block 3-6 edited: hash mismatch (its {what} digests were rewritten too, so the {what} "
        "cannot be named)",
    )


def test_an_altered_digest_alone_is_reported_as_such() -> None:
    blocks = chain(3, fmt=FORMAT_1)
    sums = bytearray(blocks[0].digests)
    sums[40] ^= 1
    blocks[0] = dataclasses.replace(blocks[0], digests=bytes(sums))
    assert check(blocks).problems == (
        "block 1-3: the digests of entry 2 were altered (the entries themselves are intact)",
    )
    blocks = chain(3, 150)
    sums = bytearray(blocks[1].digests)
    sums[40] ^= 1
    blocks[1] = dataclasses.replace(blocks[1], digests=bytes(sums))
    assert check(blocks).problems == (
        "block 4-153: the digests of entries 68-131 were altered (the entries themselves are "
        "intact)",
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
    blocks = chain(3, fmt=FORMAT_1)
    body = blocks[0].body
    cut = body[: body.index(b"\x1e") + 1]  # the first entry only, the range unchanged
    blocks[0] = dataclasses.replace(blocks[0], body=cut)
    assert check(blocks).problems == (
        "block 1-3 altered: its entries, digests and seq range disagree",
    )
    blocks = chain(150)
    (call, records), *rest = spec.parse2(blocks[0].body)
    cut = spec.encode2([(call, records[:-1]), *rest])  # entry 64 gone, the range unchanged
    blocks[0] = dataclasses.replace(blocks[0], body=cut)
    assert check(blocks).problems == (
        "block 1-150 altered: its entries, digests and seq range disagree (first in the group "
        "from entry 1)",
    )


def test_a_mark_added_or_removed_is_found_with_the_group() -> None:
    (block,) = chain(150)
    groups = spec.parse2(block.body)
    call, records = groups[1]
    # Entries 65-128 as two groups (the call record repeated): a well-formed body, groups added.
    split = spec.encode2([groups[0], (call, records[:10]), (call, records[10:]), groups[2]])
    assert check([dataclasses.replace(block, body=split)]).problems == (
        "block 1-150 altered: its entries, digests and seq range disagree (first in the group "
        "from entry 65)",
    )
    # A mark inside a record (not at its start), or gone.
    at = block.body.index(b"\x00", 1) + 5
    inside = block.body[:at] + b"\x00" + block.body[at:]
    assert check([dataclasses.replace(block, body=inside)]).problems == (
        "block 1-150 altered: group 2 is not a call record and 1-64 entries of 6 fields (the "
        "group from entry 65)",
    )
    gone = block.body.replace(b"\x00", b"", 1)
    assert check([dataclasses.replace(block, body=gone)]).problems == (
        "block 1-150 altered: its body does not start with a group (the group from entry 1)",
    )


def test_a_block_of_another_format_or_no_entries_is_reported_and_checking_resumes() -> None:
    blocks = chain(1, 1, 1, 1)
    blocks[0] = dataclasses.replace(blocks[0], format="rmas-audit-entries/9")
    blocks[1] = dataclasses.replace(blocks[1], body=b"not entries")
    blocks[2] = dataclasses.replace(blocks[2], format=FORMAT_1)  # read as format 1
    blocks[3] = dataclasses.replace(blocks[3], body=b"\x00not entries\x1e")
    report = check(blocks)
    assert report.problems == (
        "block 1-1 altered: unknown format 'rmas-audit-entries/9'",
        "block 2-2 altered: its body does not start with a group (the group from entry 2)",
        "block 3-3 altered: not 12 fields in each entry",
        "block 4-4 altered: group 1 is not a call record and 1-64 entries of 6 fields (the "
        "group from entry 4)",
    )
    old = chain(1, fmt=FORMAT_1)
    old[0] = dataclasses.replace(old[0], body=b"not entries")
    assert check(old).problems == ("block 1-1 altered: its body does not end an entry",)


def test_blocks_of_both_formats_may_alternate() -> None:
    """Hubs of both versions appending to one trail during an upgrade: each block is read by
    its own format column, whatever came before it."""
    blocks: list[Sealed] = []
    prev, seq = GENESIS, 0
    for fmt in (FORMAT_2, FORMAT_1, FORMAT_1, FORMAT_2, FORMAT_1):
        made = entries(3)
        body = (
            spec.encode1([dataclasses.asdict(e) for e in made]) if fmt == FORMAT_1
            else encode(dataclasses.astuple(e) for e in made)
        )  # fmt: skip
        blocks.append(seal(prev, seq, 3, body, fmt))
        prev, seq = blocks[-1].hash, blocks[-1].last_seq
    report = check(blocks)
    assert report.ok and report.formats == ((FORMAT_2, 6), (FORMAT_1, 9))


def test_a_chain_of_format_1_blocks_then_format_2_blocks_verifies() -> None:
    old = chain(3, 2, fmt=FORMAT_1)
    new = seal(old[-1].hash, 5, 70, encode(rows(70)))
    blocks = [*old, new, seal(new.hash, 75, 1, encode(rows(1)))]
    report = check(blocks)
    assert report.ok and report.count == 76 and report.head == (76, blocks[-1].hash)
    assert report.formats == ((FORMAT_1, 5), (FORMAT_2, 71))
    assert report.to_json()["formats"] == {FORMAT_1: 5, FORMAT_2: 71}
    blocks[1] = edit(blocks[1], 0, "verdict", "ALERT")
    blocks[2] = edit(blocks[2], 66, "verdict", "ALERT")
    assert check(blocks).problems == (
        "entry 4 edited: hash mismatch (block 4-5)",
        "entries 70-75 edited: hash mismatch (block 6-75)",
    )
    # The format's name is in the chain: naming the other one breaks the block.
    renamed = [*old[:1], dataclasses.replace(old[1], format=FORMAT_2)]
    assert check(renamed).problems == (
        "block 4-5 altered: its body does not start with a group (the group from entry 4)",
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


@pytest.mark.parametrize("fmt", [FORMAT_1, FORMAT_2])
def test_checking_resumes_after_a_problem_and_counts_them_all(fmt: str) -> None:
    blocks = chain(*([1] * 300), fmt=fmt)
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
