"""The MRZ reader against golden cases (fixtures/mrz/golden.json) and its edge behaviour."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from rmas.mrz import DigitState, Layout, check_digit, read_mrz
from rmas.testing import compose

GOLDEN = json.loads(
    (Path(__file__).resolve().parent.parent / "fixtures" / "mrz" / "golden.json").read_text()
)
TODAY = dt.date.fromisoformat(GOLDEN["today"])


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=[c["name"] for c in GOLDEN["cases"]])
def test_golden_cases_read_as_expected(case: dict[str, Any]) -> None:
    r = read_mrz(case["lines"], today=TODAY)
    assert (r.layout.value if r.layout else None) == case["layout"]
    assert r.valid is case["valid"], r.problems
    for name, value in case["values"].items():
        assert r.values.get(name, "") == value, name
    states = {d.name: d.state.value for d in r.check_digits}
    for name, state in case["check_digits"].items():
        assert states[name] == state, name
    assert {p.field for p in r.problems} == set(case["problems"])
    if case["suggested_numbers"]:
        assert r.candidate_numbers() == case["suggested_numbers"]
    if case["expired"] is not None:
        assert r.expired is case["expired"]


def test_check_digits_follow_the_7_3_1_rule() -> None:
    assert check_digit("L898902C3") == "6"
    assert check_digit("740812") == "2"
    assert check_digit("<<<<<<<<<<<<<<") == "0"
    with pytest.raises(KeyError):
        check_digit("AB#")


def test_every_field_carries_its_position_and_raw_text() -> None:
    r = read_mrz(GOLDEN["cases"][0]["lines"], today=TODAY)
    f = r.fields
    assert f["document_number"].raw == "L898902C3"
    assert (f["document_number"].line, f["document_number"].start) == (2, 0)
    assert f["names"].raw.startswith("ERIKSSON<<ANNA")
    assert f["birth_date"].value == "1974-08-12"
    assert f["birth_date"].problem is None


def test_a_long_td1_number_moves_the_number_span_into_optional_data() -> None:
    lines = compose(Layout.TD1, document_code="ID", issuing_state="BEL", surname="X",
                    given_names="Y", document_number="591234567890", nationality="BEL",
                    birth_date="900101", sex="M", expiry_date="300101")  # fmt: skip
    r = read_mrz(lines, today=TODAY)
    assert r.fields["document_number"].raw == "591234567<890"
    assert r.document_number == "591234567890"
    number_digit = next(d for d in r.check_digits if d.name == "document_number")
    assert number_digit.state is DigitState.VERIFIED
    assert number_digit.found == check_digit("591234567890")


def td1_long(state: str, number: str, *, filler: bool, expiry: str = "300101") -> list[str]:
    """A TD1 card with a long number, its check digit computed without (ICAO 9303) or with (as
    Belgian and Portuguese cards do) the '<' at position 15; composite computed accordingly."""
    covered = number[:9] + "<" + number[9:] if filler else number
    line1 = f"ID{state}{number[:9]}<{number[9:]}{check_digit(covered)}<".ljust(30, "<")
    exp_digit = "<" if expiry == "<<<<<<" else check_digit(expiry)
    head = f"900101{check_digit('900101')}M{expiry}{exp_digit}{state}".ljust(29, "<")
    composite = check_digit(line1[5:30] + head[0:7] + head[8:15] + head[18:29])
    return [line1, head + composite, "X<<Y".ljust(30, "<")]


# Chosen so that the two conventions give different digits (checked in the tests).
LONG = "592712345601"


@pytest.mark.parametrize("state", ["BEL", "PRT"])
def test_a_long_td1_number_verifies_with_the_filler_for_issuers_known_to_use_it(
    state: str,
) -> None:
    assert check_digit(LONG) != check_digit(LONG[:9] + "<" + LONG[9:])
    for filler, covers in ((True, ("document_number", "filler_at_15")),
                           (False, ("document_number",))):  # fmt: skip
        r = read_mrz(td1_long(state, LONG, filler=filler), today=TODAY)
        digit = next(d for d in r.check_digits if d.name == "document_number")
        assert (digit.state, digit.covers) == (DigitState.VERIFIED, covers)
        assert r.valid and r.document_number == LONG


def test_the_filler_convention_is_no_way_through_for_other_issuers() -> None:
    r = read_mrz(td1_long("NZL", LONG, filler=True), today=TODAY)
    digit = next(d for d in r.check_digits if d.name == "document_number")
    assert digit.state is DigitState.REFUTED
    assert not r.valid


def test_an_expiry_of_fillers_is_absent_not_refuted() -> None:
    r = read_mrz(td1_long("BEL", LONG, filler=True, expiry="<<<<<<"), today=TODAY)
    digit = next(d for d in r.check_digits if d.name == "expiry_date")
    assert digit.state is DigitState.ABSENT
    assert r.valid and r.fields["expiry_date"].value == ""


# The pre-2021 French identity card: 2 x 36, "IDFRA" + surname + office, then its 12-digit number
# (where a TD2 has the holder's nationality), given names, birth date and sex.
FRENCH_ID = [
    "IDFRA" + "MARTIN".ljust(25, "<") + "75P012",
    "880375601234" + "9" + "PIERRE".ljust(14, "<") + "9001011" + "M" + "6",
]


def test_a_french_national_identity_card_zone_is_refused_as_not_icao_9303() -> None:
    assert [len(x) for x in FRENCH_ID] == [36, 36]
    r = read_mrz(FRENCH_ID, today=TODAY)
    assert r.layout is None
    assert "not an ICAO 9303 zone" in r.problems[0].description
    assert "French" in r.problems[0].description


@pytest.mark.parametrize(
    ("yymmdd", "field", "expected"),
    [
        ("261122", "birth_date", "2026-11-22"),  # today: still the past
        ("261123", "birth_date", "1926-11-23"),  # tomorrow would be the future
        ("000229", "birth_date", "2000-02-29"),
        ("461231", "expiry_date", "2046-12-31"),  # 20 years ahead: plausible
        ("470101", "expiry_date", "1947-01-01"),  # beyond any validity: last century
        ("120415", "expiry_date", "2012-04-15"),
    ],
)
def test_two_digit_years_resolve_sensibly(yymmdd: str, field: str, expected: str) -> None:
    fields = {"birth_date": "800101", "expiry_date": "300101", field: yymmdd}
    lines = compose(Layout.TD3, document_code="P", issuing_state="UTO", surname="A",
                    given_names="B", document_number="X1", nationality="UTO", sex="F",
                    **fields)  # fmt: skip
    assert read_mrz(lines, today=TODAY).values[field] == expected


def test_expiry_is_reported_not_hidden() -> None:
    lines = compose(Layout.TD3, document_code="P", issuing_state="UTO", surname="A",
                    given_names="B", document_number="X1", nationality="UTO", sex="F",
                    birth_date="800101", expiry_date="261121")  # fmt: skip
    r = read_mrz(lines, today=TODAY)
    assert r.valid
    assert r.expired


@pytest.mark.parametrize("junk", ["", "\n\n", "hello world", "P<" * 50, "<" * 88, "\x00" * 60])
def test_garbage_never_raises(junk: str) -> None:
    r = read_mrz(junk, today=TODAY)
    assert not r.valid
    assert r.problems


def test_a_misread_check_digit_itself_is_suggested_too() -> None:
    good = GOLDEN["cases"][0]["lines"]
    # The composite digit '0' read as 'O': swapping it back verifies everything.
    r = read_mrz([good[0], good[1][:43] + "O"], today=TODAY)
    assert not r.valid
    assert [(s.field, s.found, s.replacement) for s in r.suggestions] == [
        ("composite_check_digit", "O", "0")
    ]
    assert r.candidate_numbers() == []  # the number as read stands


def test_shared_check_digit_evidence_names_the_fields_of_its_own_layout() -> None:
    # Evidence objects are shared between readings; a TD1's composite (over five fields) must
    # not stand in for a TD2's (over four) that has the same digits. The '#' in the names makes
    # both zones unclean, so every digit takes the general path.
    def zone(layout: Layout, number: str) -> list[str]:
        lines = compose(layout, document_code="I", issuing_state="UTO", surname="ERIKSSON",
                        given_names="ANNA", document_number=number, nationality="UTO",
                        birth_date="740812", sex="F", expiry_date="320415")  # fmt: skip
        lines[-1 if layout is Layout.TD1 else 0] = (
            lines[-1 if layout is Layout.TD1 else 0][:-1] + "#"
        )
        return lines

    td1 = zone(Layout.TD1, "D23145890")
    digit = td1[1][-1]
    td2 = next(z for z in (zone(Layout.TD2, f"X{n:08d}") for n in range(100)) if z[1][-1] == digit)
    covers = {
        Layout.TD1: ("document_number", "optional_data", "birth_date", "expiry_date",
                     "optional_data_2"),
        Layout.TD2: ("document_number", "birth_date", "expiry_date", "optional_data"),
    }  # fmt: skip
    for first, second in ((td1, td2), (td2, td1)):
        read_mrz(first, today=TODAY)
        r = read_mrz(second, today=TODAY)
        assert r.layout is not None
        (composite,) = [c for c in r.check_digits if c.name == "composite"]
        assert composite.state is DigitState.VERIFIED
        assert composite.covers == covers[r.layout]
