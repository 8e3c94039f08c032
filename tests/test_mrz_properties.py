"""Property tests: valid zones round-trip, and single-character changes do not pass unnoticed.

What ICAO 9303 check digits can and cannot catch decides the second property. A check digit is
the weighted sum of character values mod 10, with weights 7, 3, 1 (all coprime to 10), so it
catches every single substitution *except* one between two characters whose values differ by a
multiple of 10 (``0``/``A``/``K``/``U``, ``<``/``A``, ``5``/``F``/``P``/``Z``...): those change the
sum by a multiple of 10 and verify. Fields no check digit covers (names, document code, issuing
state, nationality, sex) can change without a digit noticing. So the property is: a change at a
covered position whose value difference is not a multiple of 10 is always caught (a refuted check
digit or a field problem); any other change is at least visible (a field reads differently or a
problem is reported): a reading never silently equals the original after a change.
"""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rmas.mrz import Layout, read_mrz
from rmas.mrz.charset import VALUES as _VALUES
from rmas.testing import compose

TODAY = dt.date(2026, 11, 22)
STATES = ["UTO", "NZL", "AUS", "PHL", "D", "GBD", "XXA", "UNO", "BEL", "USA"]
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<"
WIDTH = {Layout.TD3: 44, Layout.MRV_A: 44, Layout.TD2: 36, Layout.MRV_B: 36, Layout.TD1: 30}

# Positions covered by at least one check digit: (line index, column).
COVERED = {
    Layout.TD3: {(1, c) for c in [*range(0, 10), *range(13, 20), *range(21, 44)]},
    Layout.TD2: {(1, c) for c in [*range(0, 10), *range(13, 20), *range(21, 36)]},
    Layout.MRV_A: {(1, c) for c in [*range(0, 10), *range(13, 20), *range(21, 28)]},
    Layout.MRV_B: {(1, c) for c in [*range(0, 10), *range(13, 20), *range(21, 28)]},
    Layout.TD1: {(0, c) for c in range(5, 30)}
    | {(1, c) for c in [*range(0, 7), *range(8, 15), *range(18, 30)]},
}

name_part = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=8)
dates = st.dates(min_value=dt.date(1930, 1, 1), max_value=dt.date(2026, 11, 22))
expiries = st.dates(min_value=dt.date(2010, 1, 1), max_value=dt.date(2046, 12, 31))


@st.composite
def zones(draw: st.DrawFn) -> tuple[Layout, dict[str, str], list[str]]:
    layout = draw(st.sampled_from(list(Layout)))
    long_ok = layout is Layout.TD1
    number = draw(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=5,
                          max_size=12 if long_ok else 9))  # fmt: skip
    birth = draw(dates)
    expiry = draw(expiries)
    fields = {
        "document_code": "V" if layout in (Layout.MRV_A, Layout.MRV_B) else
                         ("P" if layout is Layout.TD3 else "I"),
        "issuing_state": draw(st.sampled_from(STATES)),
        "surname": draw(name_part),
        "given_names": draw(name_part),
        "document_number": number,
        "nationality": draw(st.sampled_from(STATES)),
        "birth_date": birth.strftime("%y%m%d"),
        "sex": draw(st.sampled_from("MF")),
        "expiry_date": expiry.strftime("%y%m%d"),
    }  # fmt: skip
    return layout, fields, compose(layout, **fields)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(zones())
def test_valid_zones_read_back_to_the_same_fields(
    zone: tuple[Layout, dict[str, str], list[str]],
) -> None:
    layout, fields, lines = zone
    r = read_mrz(lines, today=TODAY)
    assert r.layout is layout
    assert r.valid, r.problems
    v = r.values
    assert v["document_number"] == fields["document_number"]
    assert v["issuing_state"] == fields["issuing_state"]
    assert v["nationality"] == fields["nationality"]
    assert v["surname"] == fields["surname"]
    assert v["given_names"] == fields["given_names"]
    assert v["sex"] == fields["sex"]
    assert dt.date.fromisoformat(v["birth_date"]).strftime("%y%m%d") == fields["birth_date"]
    assert dt.date.fromisoformat(v["expiry_date"]).strftime("%y%m%d") == fields["expiry_date"]


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(zones(), st.data())
def test_a_single_character_change_is_caught_or_visible(
    zone: tuple[Layout, dict[str, str], list[str]], data: st.DataObject
) -> None:
    layout, _fields, lines = zone
    li = data.draw(st.integers(0, len(lines) - 1))
    col = data.draw(st.integers(0, WIDTH[layout] - 1))
    old = lines[li][col]
    new = data.draw(st.sampled_from([c for c in ALPHABET if c != old]))
    changed = list(lines)
    changed[li] = lines[li][:col] + new + lines[li][col + 1 :]
    before = read_mrz(lines, today=TODAY)
    after = read_mrz(changed, today=TODAY)
    caught = not after.valid
    if (li, col) in COVERED[layout] and (_VALUES[old] - _VALUES[new]) % 10:
        assert caught, (layout, li, col, old, new)
    else:
        assert caught or after.values != before.values, (layout, li, col, old, new)
