"""The MRZ reader gives exactly what its reference model gives (tests/mrz_reference.py: the reader
before session 8's speed-up), reading for reading, on random zones: valid ones of every layout,
the same with characters changed (OCR confusions, other MRZ characters, characters an MRZ cannot
hold), lines cut or lengthened, lower case, spaces, random text, and dates around today.

Equal means ``==`` and the same ``repr`` (dict order included: values, spans and problems are
shown and serialised in that order).
"""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rmas.mrz import Layout, MrzReading, check_digit, read_mrz
from rmas.mrz.charset import CONFUSABLE, encode
from rmas.mrz.layouts import COMPOSITE, LAYOUTS, WIDTH
from rmas.mrz.weighing import expected_digits, weighing_of
from rmas.testing import compose
from tests.mrz_reference import reference_read_mrz

MRZ_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<"
#: Characters a zone may hold by mistake: lower case, spaces of several kinds, punctuation, letters
#: outside A-Z, a line break, and characters beyond Latin-1.
STRAY = "abcxyz #-.,/\t\xa0\u2000éßØ\nŁ€\x00\x0c"
STATES = ["UTO", "NZL", "AUS", "D", "GBD", "XXA", "UNO", "BEL", "PRT", "USA"] * 3
STATES += ["ZZZ", "", "1AB"]
CODES = ["P", "PP", "I", "ID", "A", "C", "V", "VX"] * 3 + ["", "1", "<P"]

name = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ ", max_size=20)
yymmdd_dates = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2099, 12, 31)).map(
    lambda d: d.strftime("%y%m%d")
)
#: Mostly real dates; else unreal ones, fillers, O for 0.
raw_dates = st.integers(0, 7).flatmap(
    lambda k: st.text(alphabet="0123456789<O", min_size=6, max_size=6) if k == 0 else yymmdd_dates
)
todays = st.one_of(
    st.none(), st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2080, 12, 31))
)


@st.composite
def valid_zones(draw: st.DrawFn) -> list[str]:
    layout = draw(st.sampled_from(list(Layout)))
    long_ok = layout in (Layout.TD1, Layout.TD2)
    number = draw(st.text(alphabet=MRZ_CHARS[:-1], min_size=draw(st.sampled_from([0, 5, 5, 5])),
                          max_size=14 if long_ok else 9))  # fmt: skip
    return compose(
        layout,
        document_code=draw(st.sampled_from(CODES)),
        issuing_state=draw(st.sampled_from(STATES)),
        surname=draw(name),
        given_names=draw(name),
        document_number=number,
        nationality=draw(st.sampled_from(STATES)),
        birth_date=draw(raw_dates),
        sex=draw(st.sampled_from("MFX<")),
        expiry_date=draw(st.one_of(raw_dates, st.just("<<<<<<"))),
        optional_data=draw(st.text(alphabet=MRZ_CHARS, max_size=16)),
        optional_data_2=draw(st.text(alphabet=MRZ_CHARS, max_size=11)),
    )


@st.composite
def filler_td1(draw: st.DrawFn) -> list[str]:
    """A Belgian or Portuguese TD1 (or another state's) whose long number's check digit counts the
    ``<`` at position 15, as some such cards do."""
    number = draw(st.text(alphabet=MRZ_CHARS[:-1], min_size=10, max_size=14))
    state = draw(st.sampled_from(["BEL", "PRT", "UTO"]))
    digit = check_digit(number[:9] + "<" + number[9:])
    line1 = ("ID" + state + number[:9] + "<" + number[9:] + digit + "<" * 15)[:30]
    line2 = draw(raw_dates) + "0M" + draw(raw_dates) + "0" + state + "<" * 11
    line2 = line2[:29] + check_digit(line1[5:30] + line2[0:7] + line2[8:15] + line2[18:29])
    line2 = line2[:6] + check_digit(line2[:6]) + line2[7:14] + check_digit(line2[8:14]) + line2[15:]
    return [line1, line2, "SURNAME<<GIVEN<<<<<<<<<<<<<<<<"]


@st.composite
def changed(draw: st.DrawFn, zone: list[str]) -> list[str]:
    """``zone`` with one to three characters replaced (an OCR confusion, another MRZ character
    or a stray one)."""
    lines = list(zone)
    for _ in range(draw(st.integers(1, 3))):
        li = draw(st.integers(0, len(lines) - 1))
        if not lines[li]:
            continue
        col = draw(st.integers(0, len(lines[li]) - 1))
        old = lines[li][col]
        kind = draw(st.integers(0, 2))
        if kind == 0 and old in CONFUSABLE:
            new = CONFUSABLE[old]
        elif kind == 1:
            new = draw(st.sampled_from(MRZ_CHARS))
        else:
            new = draw(st.sampled_from(STRAY))
        lines[li] = lines[li][:col] + new + lines[li][col + 1 :]
    return lines


@st.composite
def confused(draw: st.DrawFn, zone: list[str]) -> list[str]:
    """``zone`` with one character OCR commonly confuses swapped for its twin."""
    places = [(li, col) for li, line in enumerate(zone) for col, c in enumerate(line)
              if c in CONFUSABLE]  # fmt: skip
    if not places:
        return zone
    li, col = draw(st.sampled_from(places))
    line = zone[li]
    return [*zone[:li], line[:col] + CONFUSABLE[line[col]] + line[col + 1 :], *zone[li + 1 :]]


@st.composite
def reshaped(draw: st.DrawFn, zone: list[str]) -> list[str]:
    """``zone`` with a line cut, lengthened, dropped or doubled."""
    lines = list(zone)
    li = draw(st.integers(0, len(lines) - 1))
    kind = draw(st.integers(0, 3))
    if kind == 0:
        lines[li] = lines[li][: draw(st.integers(0, max(len(lines[li]) - 1, 0)))]
    elif kind == 1:
        lines[li] += draw(st.text(alphabet=MRZ_CHARS, min_size=1, max_size=8))
    elif kind == 2:
        del lines[li]
    else:
        lines.insert(li, lines[li])
    return lines


def presented(draw: st.DrawFn, lines: list[str]) -> str | list[str] | tuple[str, ...]:
    """The lines as a scanner may hand them over: a list, a tuple, or one text; in any case,
    perhaps in lower case, with spaces, or with blank lines."""
    form = draw(st.integers(0, 5))
    if form == 1:
        lines = [x.lower() for x in lines]
    elif form == 2:
        lines = [x[:5].lower() + " " + x[5:] + " \t" for x in lines]
    elif form == 3:
        lines = ["", *lines, "  "]
    how = draw(st.integers(0, 2))
    if how == 0:
        return lines
    if how == 1:
        return tuple(lines)
    return draw(st.sampled_from(["\n", "\r\n", "\n\n"])).join(lines)


@st.composite
def zones(draw: st.DrawFn) -> str | list[str] | tuple[str, ...]:
    kind = draw(st.integers(0, 10))
    if kind >= 9:
        return draw(
            st.one_of(
                st.text(max_size=100),
                st.lists(st.text(alphabet=MRZ_CHARS + STRAY, max_size=50), max_size=4),
            )
        )
    zone = draw(filler_td1() if kind == 8 else valid_zones())
    if kind == 3:
        zone = draw(confused(zone))
    elif kind in (4, 5):
        zone = draw(changed(zone))
    elif kind == 6:
        zone = draw(reshaped(zone))
    elif kind == 7:
        zone = draw(reshaped(draw(changed(zone))))
    return presented(draw, zone)


def assert_same(got: MrzReading, want: MrzReading) -> None:
    assert got == want
    assert repr(got) == repr(want)
    assert got.fields == want.fields
    assert (got.valid, got.candidate_numbers()) == (want.valid, want.candidate_numbers())


SPECIMEN = [
    "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
    "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
]


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(zones(), todays, st.booleans())
@example(SPECIMEN, None, True)
@example([SPECIMEN[0], "L8989O2C36UTO7408122F1204159ZE184226B<<<<<10"], None, True)
@example([SPECIMEN[0], "L8989#2C36UTO7408122F1204159ZE184226B<<<<<10"], None, True)
@example(
    ["I<UTOD231458907<<<<<<<<<<<<<<<", "7408122F1204159UTO<<<<<<<<<<<6",
     "ERIKSSON<<ANNA<MARIA<<<<<<<<<<"], dt.date(2010, 1, 1), True,
)  # fmt: skip
@example(["P<UTOVAN<DER<BERG<<<ANNA<<MARIA<<<<<<<<<<<<<", SPECIMEN[1]], None, True)
@example(["P<UTOERIKSSON<<" + "A" * 28 + "<", SPECIMEN[1]], None, True)
@example(["P<UTOERIKSSON<<<ANNA" + "<" * 24, SPECIMEN[1]], None, True)
@example(["P<UTO" + "A" * 38 + "<", SPECIMEN[1]], None, True)
@example(["P<UTO<ERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<", SPECIMEN[1]], None, True)
def test_the_reader_reads_every_zone_as_the_reference_does(
    zone: str | list[str] | tuple[str, ...], today: dt.date | None, suggest: bool
) -> None:
    want = reference_read_mrz(zone, today=today, suggest=suggest)
    assert_same(read_mrz(zone, today=today, suggest=suggest), want)
    # Again: what the reader shares or remembers between reads changes nothing.
    assert_same(read_mrz(zone, today=today, suggest=suggest), want)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(valid_zones(), min_size=2, max_size=6), todays)
def test_reads_in_turn_do_not_leak_into_each_other(
    zone_list: list[list[str]], today: dt.date | None
) -> None:
    for zone in zone_list + zone_list[::-1]:
        assert_same(read_mrz(zone, today=today), reference_read_mrz(zone, today=today))


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(list(Layout)), st.data())
def test_one_weighing_gives_every_check_digit_as_check_digit_does(
    layout: Layout, data: st.DataObject
) -> None:
    """Any text of MRZ characters the size of a layout's zone, even where a zone holds letters
    in the place of digits: the weighing's expected digits are ``check_digit`` of what each digit
    covers, in the layout's digits' order."""
    width = WIDTH[layout]
    count = 3 if layout is Layout.TD1 else 2
    flat = data.draw(st.text(alphabet=MRZ_CHARS, min_size=width * count, max_size=width * count))
    spans, digit_specs = LAYOUTS[layout]
    want = []
    for name, (_li, _col, covers) in digit_specs.items():
        segments = COMPOSITE[layout] if name == "composite" else [spans[covers[0]]]
        want.append(check_digit("".join(flat[li * width + s : li * width + e]
                                        for li, s, e in segments)))  # fmt: skip
    assert expected_digits(weighing_of(layout), encode(flat)) == tuple(want)


def test_a_date_reads_by_its_kind_and_the_day_whatever_was_read_before() -> None:
    """The same six digits as birth and expiry date, read on two days: what the reader remembers
    of dates read before is per kind and per day."""
    zone = compose(Layout.TD3, document_code="P", issuing_state="UTO", surname="A",
                   given_names="B", document_number="X1234567", nationality="UTO",
                   birth_date="300101", sex="F", expiry_date="300101")  # fmt: skip
    for today in (dt.date(2026, 12, 7), dt.date(2031, 1, 1), dt.date(2026, 12, 7)):
        got = read_mrz(zone, today=today)
        assert_same(got, reference_read_mrz(zone, today=today))
        birth = "1930-01-01" if today.year < 2030 else "2030-01-01"
        assert (got.values["birth_date"], got.values["expiry_date"]) == (birth, "2030-01-01")
