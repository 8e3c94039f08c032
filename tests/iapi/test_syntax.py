from __future__ import annotations

import json
from pathlib import Path

import pytest

from rmas.iapi.paxlst import read_paxlst
from rmas.iapi.syntax import (
    EdifactError,
    Separators,
    parse_interchange,
    tokenize,
    write_segments,
)

PAX = Path(__file__).resolve().parents[2] / "fixtures" / "paxlst"
EXPECTED = json.loads((PAX / "expected.json").read_text())


def test_the_release_character_works_both_ways() -> None:
    seps = Separators()
    text = write_segments([["NAD", "FL", "", "", ["O'BRIEN", "A+B", "C:D", "E?F"]]], seps)
    assert text == "UNA:+.? 'NAD+FL+++O?'BRIEN:A?+B:C?:D:E??F'"
    (seg,), _, una = tokenize(text)
    assert una
    assert seg.elements[3] == ("O'BRIEN", "A+B", "C:D", "E?F")


def test_any_separators_announced_by_una_are_used() -> None:
    seps = Separators("*", "|", ",", "!", " ", "~")
    text = write_segments([["NAD", "FL", "", "", ["O~NEIL", "X|Y"]]], seps)
    assert text.startswith("UNA*|,! ~")
    (seg,), got, _ = tokenize(text)
    assert got == seps
    assert seg.get(4, 0) == "O~NEIL"
    assert seg.get(4, 1) == "X|Y"


def test_segment_numbers_and_offsets_count_from_una() -> None:
    segs, _, _ = tokenize("junk\r\nUNA:+.? 'UNB+UNOA:4+A+B+1:2+R'\r\nUNZ+0+R'")
    assert [(s.tag, s.number) for s in segs] == [("UNB", 2), ("UNZ", 3)]
    assert segs[1].offset == len("junk\r\nUNA:+.? 'UNB+UNOA:4+A+B+1:2+R'\r\n")


@pytest.mark.parametrize("name", sorted(EXPECTED["broken"]))
def test_broken_messages_fail_naming_segment_and_position(name: str) -> None:
    expected = EXPECTED["broken"][name]
    with pytest.raises(EdifactError) as info:
        read_paxlst((PAX / name).read_bytes())
    err = info.value
    for key in ("segment", "tag", "element"):
        if key in expected:
            assert getattr(err, key) == expected[key], str(err)
    if "reason_contains" in expected:
        assert expected["reason_contains"] in err.reason
    assert err.offset > 0
    assert "offset" in str(err)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "no UNA or UNB"),
        ("UNA:+", "truncated"),
        ("UNB+UNOZ:4+A+B+1:2+R'UNZ+0+R'", "unknown syntax identifier"),
        ("UNB+UNOA:4+A+B+1:2'UNZ+0'", "control reference is missing"),
        ("UNB+UNOA:4+A+B+1:2+R'UNH+1+PAXLST:D:05B:UN'", "does not end with UNZ"),
        ("UNB+UNOA:4+A+B+1:2+R'UNH+1+PAXLST:D:05B:UN'UNZ+1+R'", "has no UNT"),
        ("UNB+UNOA:4+A+B+1:2+R'UNG+PAXLST+A+B+1:2+G1'UNE+0+G2'UNZ+1+R'", "group reference"),
        ("UNB+UNOA:4+A+B+1:2+R'BGM+745'UNZ+0+R'", "outside any message"),
        ("UNB+UNOA:4+A+B+1:2+R'UNH+1+PAXLST:D:05B:UN'UNT+2+9'UNZ+1+R'", "message reference"),
        ("UNB+UNOA:4+A+B+1:2+R'UNZ+x+R'", "not a number"),
        # Found by fuzzing: a superscript digit is a digit to str.isdigit, not to int().
        ("UNB+UNOA:4+A+B+1:2+R'UNZ+\u00b3+R'", "not a number"),
        ("UNB+UNOA:4+A+B+1:2+R'UNZ+" + "1" * 5000 + "+R'", "not a number of 1-6 digits"),
        # A letter as a separator would split tags: UNT's T as the release character.
        ("UNA:+.T 'UNB+UNOA:4+A+B+1:2+R'UNZ+0+R'", "must not be letters or digits"),
    ],
)
def test_envelope_faults_are_named(text: str, reason: str) -> None:
    with pytest.raises(EdifactError, match=reason):
        parse_interchange(text)


def test_groups_and_counts_are_read() -> None:
    ic = parse_interchange((PAX / "groups_d02b.edi").read_bytes())
    assert [g.ref for g in ic.groups] == ["G1"]
    assert ic.groups[0].messages[0].release == "02B"
    assert (ic.sender, ic.recipient, ic.control_ref, ic.syntax) == (
        "AIRNZ", "RMASHUB", "ICR0004", "UNOA",
    )  # fmt: skip
