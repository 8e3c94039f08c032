"""Format 2 (``rmas-audit-entries/2``) on random calls and entries: the production decoder and
sealer against tests.audit.spec (the rules written again, byte by byte), and tamper evidence:
any corruption of a chain holding blocks of both formats is detected, and an edit inside an
entry is named by its group's sequence range."""

from __future__ import annotations

import dataclasses
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from rmas.audit.chain import BlockVerifier, VerifyReport
from rmas.audit.format import (
    FIELDS,
    FORMAT_1,
    FORMAT_2,
    GENESIS,
    AuditEntry,
    Sealed,
    decode,
    encode,
    seal,
)
from tests.audit import spec

#: Field text: anything but NUL and the separators (what clean() leaves), non-ASCII included.
texts = st.text(st.characters(codec="utf-8", exclude_characters="\x00\x1e\x1f"), max_size=6)


@st.composite
def calls(draw: st.DrawFn, most: int = 140) -> list[list[spec.Entry]]:
    """One to three calls: each its entries, which share the call's fields; entry fields
    drawn from a small pool (so repeats and empties happen), sizes across 64."""
    pool = draw(st.lists(texts, min_size=1, max_size=6))
    rnd: random.Random = draw(st.randoms(use_true_random=False))
    out = []
    for size in draw(st.lists(st.sampled_from([1, 2, 63, 64, 65, most]) | st.integers(1, most),
                              min_size=1, max_size=3)):  # fmt: skip
        call = {n: draw(texts) for n in spec.CALL}
        out.append([call | {n: rnd.choice(pool) for n in spec.ENTRY} for _ in range(size)])
    return out


def _body(block: list[list[spec.Entry]]) -> tuple[bytes, list[spec.Entry]]:
    entries = [e for call in block for e in call]
    return spec.encode2(spec.grouped(entries, [len(c) for c in block])), entries


@settings(max_examples=200, deadline=None)
@given(block=calls())
def test_production_reads_what_the_rules_say(block: list[list[spec.Entry]]) -> None:
    body, entries = _body(block)
    assert [dataclasses.asdict(e) for e in decode(FORMAT_2, body)] == entries
    assert spec.entries2(body) == entries
    sealed = seal("a" * 64, 41, len(entries), body, FORMAT_2)
    assert sealed.digests == spec.digests2(body)
    assert sealed.hash == spec.chain_hash(FORMAT_2, "a" * 64, 42, 41 + len(entries), body)
    # The production encoder makes a body the rules read back as the same entries.
    rows = [tuple(e[n] for n in FIELDS) for e in entries]
    made = encode(rows)
    assert spec.entries2(made) == entries
    assert all(len(records) <= spec.MOST for _call, records in spec.parse2(made))


def _chain(blocks: list[list[list[spec.Entry]]]) -> list[Sealed]:
    """A format-1 block (as older trails begin), then a block of format 2 for each."""
    first = [AuditEntry(*(f"{n}{i}" for n in FIELDS)) for i in range(3)]
    out = [seal(GENESIS, 0, 3, spec.encode1([dataclasses.asdict(e) for e in first]), FORMAT_1)]
    for block in blocks:
        body, entries = _body(block)
        out.append(seal(out[-1].hash, out[-1].last_seq, len(entries), body))
    return out


def _check(blocks: list[Sealed], anchor: tuple[int, str]) -> VerifyReport:
    v = BlockVerifier(expect_head=anchor)
    for b in blocks:
        v.feed(*b.row())
    return v.finish()


def _flip_hex(text: str, at: int) -> str:
    at %= len(text)
    return text[:at] + ("0" if text[at] != "0" else "1") + text[at + 1 :]


def _corrupt(blocks: list[Sealed], data: st.DataObject) -> list[Sealed]:
    """One corruption of one block (or of the order of blocks)."""
    out = list(blocks)
    i = data.draw(st.integers(0, len(out) - 1), label="block")
    b = out[i]
    kind = data.draw(st.sampled_from([
        "body byte", "call record byte", "body delete", "body insert", "groups swapped",
        "group copied", "digest byte", "digest delete", "digest insert", "first", "last",
        "format", "prev", "hash", "block deleted", "blocks swapped", "block copied",
    ]), label="kind")  # fmt: skip
    body, sums = bytearray(b.body), bytearray(b.digests)
    at = data.draw(st.integers(0, 10**6), label="at")
    if kind == "body byte":
        body[at % len(body)] ^= data.draw(st.integers(1, 255))
    elif kind == "call record byte":  # in format 1, any byte
        marks = [m for m, x in enumerate(b.body) if x == 0] or [0]
        start = marks[at % len(marks)]
        end = b.body.index(b"\x1e", start)
        body[start + at % (end - start + 1)] ^= data.draw(st.integers(1, 255))
    elif kind == "body delete":
        start = at % len(body)
        del body[start : start + data.draw(st.integers(1, 300))]
    elif kind == "body insert":
        body[at % (len(body) + 1) : at % (len(body) + 1)] = data.draw(st.binary(min_size=1))
    elif kind in ("groups swapped", "group copied") and b.format == FORMAT_2:
        parts = spec.group_bytes2(b.body)
        j, k = at % len(parts), (at // 7) % len(parts)
        if kind == "group copied":
            parts.insert(k, parts[j])
        elif parts[j] != parts[k]:
            parts[j], parts[k] = parts[k], parts[j]
        else:
            parts.append(parts[j])  # the same group twice: a copy
        body = bytearray(b"".join(b"\x00" + p for p in parts))
    elif kind in ("groups swapped", "group copied"):
        body += body[: body.index(b"\x1e") + 1]  # format 1: an entry copied
    elif kind == "digest byte":
        sums[at % len(sums)] ^= data.draw(st.integers(1, 255))
    elif kind == "digest delete":
        start = 32 * ((at // 32) % (len(sums) // 32))
        del sums[start : start + 32]
    elif kind == "digest insert":
        sums[at % (len(sums) + 1) : at % (len(sums) + 1)] = data.draw(st.binary(min_size=1))
    elif kind in ("first", "last"):
        delta = data.draw(st.integers(-3, 3).filter(bool))
        b = dataclasses.replace(b, **{f"{kind}_seq": getattr(b, f"{kind}_seq") + delta})
    elif kind == "format":
        b = dataclasses.replace(b, format=data.draw(
            st.sampled_from([FORMAT_1, FORMAT_2, "rmas-audit-entries/3", ""]).filter(
                lambda f: f != b.format)))  # fmt: skip
    elif kind in ("prev", "hash"):
        name = f"{kind}_hash" if kind == "prev" else "hash"
        b = dataclasses.replace(b, **{name: _flip_hex(getattr(b, name), at)})
    elif kind == "block deleted":
        del out[min(i, len(out) - 2)]  # not the last: a deleted tail is the anchor's to catch
        return out
    elif kind == "blocks swapped":
        j = (i + 1) % len(out)
        out[i], out[j] = out[j], out[i]
        return out
    else:  # block copied
        out.insert(data.draw(st.integers(0, len(out))), b)
        return out
    out[i] = dataclasses.replace(b, body=bytes(body), digests=bytes(sums))
    return out


@settings(max_examples=400, deadline=None)
@given(blocks=st.lists(calls(most=70), min_size=1, max_size=3), data=st.data())
def test_any_corruption_of_a_chain_of_both_formats_is_detected(
    blocks: list[list[list[spec.Entry]]], data: st.DataObject
) -> None:
    chain = _chain(blocks)
    anchor = (chain[-1].last_seq, chain[-1].hash)  # kept outside, as operators do
    assert _check(chain, anchor).ok
    corrupted = _corrupt(chain, data)
    if [b.row() for b in corrupted] == [b.row() for b in chain]:
        return  # a swap of two equal groups, say: nothing changed
    assert not _check(corrupted, anchor).ok


@settings(max_examples=300, deadline=None)
@given(block=calls(), data=st.data())
def test_an_edit_inside_an_entry_names_its_group(
    block: list[list[spec.Entry]], data: st.DataObject
) -> None:
    chain = _chain([block])
    b = chain[1]
    groups = spec.ranges2(b.body, b.first_seq)
    # A byte of a field of an entry record (not a separator, not of a call record).
    starts = [i for i, x in enumerate(b.body) if x == 0]
    g = data.draw(st.integers(0, len(groups) - 1), label="group")
    end = starts[g + 1] if g + 1 < len(starts) else len(b.body)
    first_entry = b.body.index(b"\x1e", starts[g]) + 1
    fields = [i for i in range(first_entry, end) if b.body[i] not in (0x1E, 0x1F)]
    if not fields:
        return  # every field of this group's entries is empty
    at = data.draw(st.sampled_from(fields), label="at")
    old = b.body[at]
    new = data.draw(st.sampled_from(b"ABCxyz01").filter(lambda c: c != old), label="byte")
    body = b.body[:at] + bytes([new]) + b.body[at + 1 :]
    report = _check([chain[0], dataclasses.replace(b, body=body)], (b.last_seq, b.hash))
    first, last = groups[g]
    span = f"entry {first}" if first == last else f"entries {first}-{last}"
    name = f"block {b.first_seq}-{b.last_seq}"
    if old < 0x80:  # still UTF-8: the group's digest differs
        assert report.problems == (f"{span} edited: hash mismatch ({name})",)
    else:  # a byte of a longer character: no longer UTF-8, the group's first entry named
        (problem,) = report.problems
        assert problem.startswith(f"{name} altered: not UTF-8 at byte ")
        assert problem.endswith(f"(the group from entry {first})")
