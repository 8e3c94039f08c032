"""Reading a machine-readable zone: values, check digits, problems and OCR suggestions.

Reading is on the hot path of every scanned check. The lines are turned into character values
once (:func:`rmas.mrz.charset.encode`, one C-level translate), every check digit's expected value
comes from one weighing of those (:mod:`rmas.mrz.weighing`); check-digit evidence objects are
shared; per-field evidence is built only when asked for (:attr:`MrzReading.fields`).
docs/benchmarks.md has the figures.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from operator import getitem, itemgetter
from typing import NamedTuple

from rmas.documents import yymmdd
from rmas.errors import FieldViolation
from rmas.mrz.charset import BAD, CONFUSABLE, DIGITS, check_digit, digit_of, encode
from rmas.mrz.layouts import (
    COMPOSITE,
    LAYOUTS,
    MISSING_DIGITS,
    WIDTH,
    Layout,
    Span,
    layout_of,
    split_lines,
)
from rmas.mrz.reading import CheckDigit, DigitState, MrzReading, Suggestion
from rmas.mrz.weighing import Weighing, expected_digits, weighing_of
from rmas.states import is_known_state

_VERIFIED = DigitState.VERIFIED
_REFUTED = DigitState.REFUTED

_ABSENT = {
    layout: tuple(CheckDigit(name, (), "", "", DigitState.ABSENT) for name in names)
    for layout, names in MISSING_DIGITS.items()
}

# Check-digit evidence is immutable and takes few distinct values (name x found x expected):
# shared instances spare the hot path an allocation per digit. Bounded by construction (< 4,000).
_DIGITS: dict[tuple[str, tuple[str, ...], str, str, bool], CheckDigit] = {}

#: Issuers whose TD1 cards with long numbers compute the number's check digit over the first
#: nine characters, the ``<`` at position 15 and the continuation (seen on Belgian and Portuguese
#: identity cards), instead of over the number alone as ICAO 9303 says. Only they get the second
#: convention, so a misread number elsewhere has no new way to verify.
FILLER_CONVENTION_ISSUERS = frozenset({"BEL", "PRT"})
#: Evidence of a number verified by that convention: it covers the filler too.
FILLER_COVERS = ("document_number", "filler_at_15")
_NO_EXPIRY = CheckDigit("expiry_date", ("expiry_date",), "<", "", DigitState.ABSENT)


_Covering = slice | Callable[[bytes], tuple[bytes, ...]]

#: The canonical order in which :attr:`Plan.fields` gives a zone's fields (``optional_data_2``,
#: TD1's alone, is empty elsewhere).
_FIELD_ORDER = ("document_code", "issuing_state", "names", "document_number", "nationality",
                "birth_date", "sex", "expiry_date", "optional_data", "optional_data_2")  # fmt: skip


class Plan(NamedTuple):
    """A layout's places as offsets into its lines joined (all lines are as wide), precomputed
    for the reader: one C-level call takes every field's text, one weighing
    (:mod:`rmas.mrz.weighing`) every check digit's expected value."""

    layout: Layout
    spans: dict[str, Span]
    #: TD1: a second optional data field, and the fields in another order.
    td1: bool
    #: The lines joined -> every field's text, in ``_FIELD_ORDER``.
    fields: Callable[[str], tuple[str, ...]]
    #: Where the document number's check digit sits.
    number_digit_at: int
    #: (name, covers, where the digit sits), in ICAO 9303's order.
    digits: tuple[tuple[str, tuple[str, ...], int], ...]
    #: Per digit, the slice of the encoded lines it covers, or a getter of its segments.
    coverings: tuple[_Covering, ...]
    #: The lines joined -> the check digits printed, in ``digits``' order.
    found: Callable[[str], tuple[str, ...]]
    #: Per digit, printed value -> its VERIFIED evidence (shared objects).
    verified: tuple[dict[str, CheckDigit], ...]
    #: The evidence of the check digits the layout does not have.
    absent: tuple[CheckDigit, ...]
    #: How every digit's expected value is computed (``digits``' order too).
    weighing: Weighing


def _plan(layout: Layout) -> Plan:
    spans, digit_specs = LAYOUTS[layout]
    width = WIDTH[layout]

    def at(li: int, col: int) -> int:
        return li * width + col

    def cut(li: int, start: int, end: int) -> slice:
        return slice(at(li, start), at(li, end))

    digits = tuple((name, covers, at(li, col)) for name, (li, col, covers) in
                   digit_specs.items())  # fmt: skip
    coverings: list[_Covering] = [
        itemgetter(*(cut(*seg) for seg in COMPOSITE[layout])) if name == "composite"
        else cut(*spans[covers[0]])
        for name, covers, _at in digits
    ]  # fmt: skip
    return Plan(
        layout,
        spans,
        layout is Layout.TD1,
        itemgetter(*(cut(*spans[name]) if name in spans else slice(0, 0) for name in _FIELD_ORDER)),
        digits[0][2],
        digits,
        tuple(coverings),
        itemgetter(*(at for _name, _covers, at in digits)),
        tuple(
            {v: CheckDigit(name, covers, v, v, DigitState.VERIFIED) for v in DIGITS}
            for name, covers, _at in digits
        ),
        _ABSENT[layout],
        weighing_of(layout),
    )


PLANS = {layout: _plan(layout) for layout in LAYOUTS}


# Today's date and the local-time window (epoch seconds) it holds for: date.today() costs a
# localtime() call, a clock read and a comparison do not.
_day: tuple[float, float, dt.date] = (0.0, 0.0, dt.date.min)


def _today() -> dt.date:
    global _day
    now = time.time()
    start, end, day = _day
    if start <= now < end:
        return day
    day = dt.date.today()
    start = time.mktime(day.timetuple())
    end = time.mktime((day + dt.timedelta(days=1)).timetuple())
    _day = (start, end, day)
    return day


def read_mrz(
    text: str | Sequence[str], *, today: dt.date | None = None, suggest: bool = True
) -> MrzReading:
    """Read a machine-readable zone. Never raises: every problem is in the reading."""
    day = today or _today()
    lines = split_lines(text)
    layout = layout_of(lines)
    if layout is None:
        shape = " x ".join(str(len(x)) for x in lines) or "nothing"
        if len(lines) == 2 and {len(x) for x in lines} == {36}:
            text = (
                "not an ICAO 9303 zone: 2 lines of 36 characters with digits where a TD2 has "
                "the nationality (a national format, such as the French identity card's)"
            )
        else:
            text = (
                f"not an ICAO 9303 zone: got {len(lines)} line(s) of {shape} characters "
                "(expected 2x44, 2x36 or 3x30)"
            )
        problem = FieldViolation("mrz_lines", text)
        return MrzReading(tuple(lines), None, {}, (), (problem,), {}, {}, day)
    return _read(tuple(lines), PLANS[layout], day, suggest)


_new_reading = tuple.__new__  # MrzReading's own __new__ without its Python-level frame


def _read(lines: tuple[str, ...], plan: Plan, today: dt.date, suggest: bool) -> MrzReading:
    layout, spans, td1, fields, number_at, _d, coverings, found_of, verified, absent, weighing = (
        plan
    )
    problems: dict[str, str] = {}
    flat = "".join(lines)  # the lines are all as wide: plan positions are offsets in this
    coded = encode(flat)  # character values, BAD where not an MRZ character
    clean = BAD not in coded
    code, state, names, number_text, nationality, birth, sex, expiry, optional, optional_2 = fields(
        flat
    )

    # Long document numbers (TD1, TD2): '<' in the check digit's place, the number continues at
    # the start of the optional data, and the last character before the next '<' is the digit.
    number_found = flat[number_at]
    long_number = False
    if number_found == "<" and layout in (Layout.TD1, Layout.TD2) and number_text[-1:] != "<":
        cut = optional.find("<")
        cont = optional if cut < 0 else optional[:cut]
        if len(cont) >= 2:
            long_number = True
            spans = dict(spans)
            number_text += cont[:-1]
            number_found = cont[-1]
            optional = "" if cut < 0 else optional[cut + 1 :]
            li, start, _end = spans["document_number"]
            ostart = spans["optional_data"][1]
            spans["document_number"] = (li, start, ostart + len(cont) - 1)
            spans["optional_data"] = (li, ostart + len(cont) + (0 if cut < 0 else 1),
                                      spans["optional_data"][2])  # fmt: skip

    # Every digit's expected value; when each is the one printed (the usual case), the evidence
    # is one shared object per (digit, value).
    found = found_of(flat)
    refuted: list[CheckDigit] = []
    expected: Sequence[str | None]
    if clean:
        expected = expected_digits(weighing, coded)
        all_verified = found == expected
    else:  # None: a digit that covers a character an MRZ cannot hold
        expected = [
            None if BAD in c else digit_of(c)
            for c in (coded[c] if type(c) is slice else b"".join(c(coded)) for c in coverings)
        ]
        all_verified = False
    if all_verified:
        digits = tuple(map(getitem, verified, found)) + absent
    else:
        continued = (number_text, number_found) if long_number else None
        raw = {"optional_data": optional, "expiry_date": expiry}
        digit_list, refuted = _digits(
            plan, lines, expected, raw, layout=layout, clean=clean, continued=continued
        )
        digits = tuple(digit_list) + absent

    # Field values and their problems.
    number = number_text.replace("<", "")
    code = code.replace("<", "")
    if not code or not code[0].isalpha():
        problems["document_code"] = "must start with a letter (P, I, A, C, V)"
    state = state.replace("<", "")
    if not is_known_state(state):
        problems["issuing_state"] = f"unknown state code {state!r}"
    nationality = nationality.replace("<", "")
    if not is_known_state(nationality):
        problems["nationality"] = f"unknown state code {nationality!r}"
    surname, given = _names(names, clean)
    if not surname and not given:
        problems["names"] = "no name"
    if sex == "<":
        sex = "X"
    elif sex not in ("M", "F", "X"):
        problems["sex"] = f"{sex!r} is not M, F or <"
    if today != _dates_day:
        _new_day(today)
    birth_iso, problem = _birth_dates.get(birth) or _memo_date(_birth_dates, birth, True, today)
    if problem:
        problems["birth_date"] = problem
    expiry_iso, problem = _expiry_dates.get(expiry) or _memo_date(
        _expiry_dates, expiry, False, today
    )
    if problem:
        problems["expiry_date"] = problem
    if not number:
        problems["document_number"] = "empty"
    if td1:
        values = {
            "document_code": code, "issuing_state": state, "document_number": number,
            "optional_data": optional.rstrip("<"), "birth_date": birth_iso, "sex": sex,
            "expiry_date": expiry_iso, "nationality": nationality,
            "optional_data_2": optional_2.rstrip("<"), "surname": surname, "given_names": given,
        }  # fmt: skip
    else:
        values = {
            "document_code": code, "issuing_state": state, "document_number": number,
            "nationality": nationality, "birth_date": birth_iso, "sex": sex,
            "expiry_date": expiry_iso, "optional_data": optional.rstrip("<"),
            "surname": surname, "given_names": given,
        }  # fmt: skip
    if not clean:
        width = len(lines[0])
        for at, c in enumerate(coded):
            if c == BAD:
                li, col = divmod(at, width)
                problems.setdefault(f"line{li + 1}", f"character {flat[at]!r} at column {col + 1}")

    if not problems and not refuted:
        return _new_reading(
            MrzReading, (lines, layout, values, digits, (), spans, problems, today, ())
        )
    violations = [FieldViolation(f"mrz.{k}", v) for k, v in problems.items()]
    if refuted:
        violations += [
            FieldViolation(f"mrz.{c.name}_check_digit",
                           f"check digit {c.found!r} refuted (computed {c.expected or '?'})")
            for c in refuted
        ]  # fmt: skip
    reading = MrzReading(lines, layout, values, digits, tuple(violations), spans, problems, today)
    if refuted and suggest and clean:
        sugg = _suggestions(reading)
        if sugg:
            return reading._replace(suggestions=tuple(sugg))
    return reading


def _names(names: str, clean: bool) -> tuple[str, str]:
    """Surname and given names: the primary and secondary identifiers (split at the first
    ``<<``), each with its ``<`` runs as single spaces and none at either end."""
    primary, _sep, secondary = names.partition("<<")
    secondary = secondary.rstrip("<")
    # Only MRZ characters, a one-word primary identifier, and no "<<" nor "<" at either end of
    # the secondary one (the usual case): each "<" is one space, as the general rule below says.
    if clean and "<" not in primary and secondary[:1] != "<" and "<<" not in secondary:
        return primary, secondary.replace("<", " ")
    return " ".join(primary.replace("<", " ").split()), " ".join(
        secondary.replace("<", " ").split()
    )


def _digits(
    plan: Plan,
    lines: tuple[str, ...],
    expected: Sequence[str | None],
    values: dict[str, str],
    *,
    layout: Layout,
    clean: bool,
    continued: tuple[str, str] | None,
) -> tuple[list[CheckDigit], list[CheckDigit]]:
    """Every check digit's evidence, and the refuted ones, when not all of them verify.

    ``expected``: each digit's expected value, None where it covers a character an MRZ cannot
    hold. ``values``: the raw expiry date and optional data. ``continued``: a long number's text
    and check digit (TD1, TD2), None for a number in its field.
    """
    flat = "".join(lines)
    digits: list[CheckDigit] = []
    refuted: list[CheckDigit] = []
    for (name, covers, at), expect in zip(plan.digits, expected, strict=True):
        found = flat[at]
        if continued is not None and name == "document_number":
            number_text, found = continued
            if layout is Layout.TD1 and clean:
                filler = _filler_convention(lines, number_text, found)
                if filler is not None:
                    digits.append(filler)
                    continue
            number_values = encode(number_text)
            digit = None if BAD in number_values else digit_of(number_values)
        else:
            if name == "expiry_date" and found == "<" and values[name] == "<<<<<<":
                digits.append(_NO_EXPIRY)  # no expiry printed: nothing to verify, nothing refuted
                continue
            digit = expect
        if digit is None:
            unreadable = CheckDigit(name, covers, found, "", _REFUTED)
            digits.append(unreadable)
            refuted.append(unreadable)
            continue
        ok = found == digit or (
            found == "<"
            and digit == "0"
            and name == "optional_data"
            and not values[name].strip("<")
        )
        dkey = (name, covers, found, digit, ok)
        evidence = _DIGITS.get(dkey)
        if evidence is None:
            dstate = _VERIFIED if ok else _REFUTED
            evidence = _DIGITS[dkey] = CheckDigit(name, covers, found, digit, dstate)
        digits.append(evidence)
        if not ok:
            refuted.append(evidence)
    return digits, refuted


def _filler_convention(lines: Sequence[str], number_text: str, found: str) -> CheckDigit | None:
    """The evidence when a long TD1 number verifies only with the ``<`` at position 15 counted,
    for an issuer known to write it so; None otherwise (the ICAO 9303 digit decides)."""
    if check_digit(number_text) == found:
        return None
    if lines[0][2:5].replace("<", "") not in FILLER_CONVENTION_ISSUERS:
        return None
    expected = check_digit(number_text[:9] + "<" + number_text[9:])
    if expected != found:
        return None
    return CheckDigit("document_number", FILLER_COVERS, found, expected, DigitState.VERIFIED)


# Dates read, per kind, raw text -> (ISO date or "", problem or ""), for the day in _dates_day:
# the same dates recur (expiry dates above all), and yymmdd costs more than a lookup. Cleared when
# the day changes or a memo reaches _DATES_MAX entries.
_birth_dates: dict[str, tuple[str, str]] = {}
_expiry_dates: dict[str, tuple[str, str]] = {}
_dates_day = dt.date.min
_DATES_MAX = 2048  # per kind: about 1 MB at most in all


def _new_day(today: dt.date) -> None:
    global _dates_day
    _birth_dates.clear()
    _expiry_dates.clear()
    _dates_day = today


def _memo_date(
    memo: dict[str, tuple[str, str]], raw: str, birth: bool, today: dt.date
) -> tuple[str, str]:
    """Read a date the memo does not hold, and remember it."""
    known = _read_date(raw, birth, today)
    if len(memo) >= _DATES_MAX:
        memo.clear()
    memo[raw] = known
    return known


def _read_date(raw: str, birth: bool, today: dt.date) -> tuple[str, str]:
    if not raw.isdigit() or len(raw) != 6:
        return "", f"{raw!r} is not YYMMDD" if raw.strip("<") else ""
    try:
        return yymmdd(raw, "birth" if birth else "expiry", today).isoformat(), ""
    except ValueError:
        return "", f"{raw!r} is not a real date"


def _suggestions(reading: MrzReading) -> list[Suggestion]:
    """Single confusable-character swaps after which every check digit verifies."""
    layout = reading.layout
    assert layout is not None
    refuted = {c.name for c in reading.check_digits if c.state is DigitState.REFUTED}
    spans, digit_specs = LAYOUTS[layout]
    # Positions worth trying: the fields and check digits a refuted digit covers.
    positions: list[tuple[str, int, int]] = []
    for name in refuted:
        li, col, covers = digit_specs[name]
        positions.append((f"{name}_check_digit", li, col))
        for f in covers:
            fl, fs, fe = reading.spans.get(f, spans[f])
            positions.extend((f, fl, c) for c in range(fs, fe))
    out: list[Suggestion] = []
    seen: set[tuple[int, int]] = set()
    for field, li, col in positions:
        if (li, col) in seen:
            continue
        seen.add((li, col))
        ch = reading.lines[li][col]
        alt = CONFUSABLE.get(ch)
        if alt is None:
            continue
        line = reading.lines[li]
        lines = list(reading.lines)
        lines[li] = line[:col] + alt + line[col + 1 :]
        fixed = _read(tuple(lines), PLANS[layout], reading.today, suggest=False)
        if fixed.check_digits_ok:
            out.append(Suggestion(field, li + 1, col + 1, ch, alt, fixed.document_number))
    return out
