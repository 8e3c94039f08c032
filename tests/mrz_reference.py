"""Reference model of the MRZ reader: ``rmas.mrz.reader`` (with ``layout_of``, ``split_lines`` and
``encode``) as it was at commit 5fe1883, before session 8's speed-up, kept to test the fast reader
against (tests/test_mrz_reference.py).

Unchanged but for names and imports. Do not speed this up: it is the reference.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from operator import getitem, itemgetter, mul
from typing import NamedTuple

from rmas.documents import yymmdd
from rmas.errors import FieldViolation
from rmas.mrz.charset import BAD, CONFUSABLE, DIGITS, VALUES, WEIGHTS, check_digit
from rmas.mrz.layouts import COMPOSITE, LAYOUTS, MISSING_DIGITS, WIDTH, Layout, Span
from rmas.mrz.reading import CheckDigit, DigitState, MrzReading, Suggestion
from rmas.states import is_known_state

_TABLE = bytes(VALUES.get(chr(b), BAD) for b in range(256))


def encode(text: str) -> bytes:
    return text.encode("latin-1", "replace").translate(_TABLE)


def layout_of(lines: Sequence[str]) -> Layout | None:
    n = len(lines)
    if n == 2:
        width = len(lines[0])
        if len(lines[1]) != width:
            return None
        if width == 44:
            return Layout.MRV_A if lines[0][:1] == "V" else Layout.TD3
        if width == 36:
            if lines[0][:1] != "V" and any(c.isdigit() for c in lines[1][10:13]):
                return None  # not ICAO 9303: a TD2 has its holder's nationality there
            return Layout.MRV_B if lines[0][:1] == "V" else Layout.TD2
        return None
    if n == 3 and len(lines[0]) == len(lines[1]) == len(lines[2]) == 30:
        return Layout.TD1
    return None


def split_lines(text: str | Sequence[str]) -> list[str]:
    """Tolerate one string with line breaks, surrounding spaces and lower case.

    Spaces inside a line are removed: scanners insert them where the OCR-B font's spacing
    confuses them, and no MRZ character is a space.
    """
    joined = (text if isinstance(text, str) else "\n".join(text)).upper()
    if " " not in joined and "\t" not in joined:
        lines = joined.splitlines()
        return [x for x in lines if x] if "" in lines else lines
    out = []
    for line in joined.splitlines():
        squeezed = "".join(line.split()) if " " in line or "\t" in line else line
        if squeezed:
            out.append(squeezed)
    return out


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


class Plan(NamedTuple):
    """A layout's places as offsets into its lines joined (all lines are as wide), precomputed
    for the reader: one C-level call takes every field's text, one slice each check digit's."""

    spans: dict[str, Span]
    names: tuple[str, ...]
    #: The lines joined -> every field's text, in ``names``' order.
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


def _plan(layout: Layout) -> Plan:
    spans, digit_specs = LAYOUTS[layout]
    width = WIDTH[layout]

    def cut(li: int, start: int, end: int) -> slice:
        return slice(li * width + start, li * width + end)

    digits = tuple((name, covers, li * width + col) for name, (li, col, covers) in
                   digit_specs.items())  # fmt: skip
    coverings: list[_Covering] = [
        itemgetter(*(cut(*seg) for seg in COMPOSITE[layout])) if name == "composite"
        else cut(*spans[covers[0]])
        for name, covers, _at in digits
    ]  # fmt: skip
    return Plan(
        spans,
        tuple(spans),
        itemgetter(*(cut(*span) for span in spans.values())),
        digits[0][2],
        digits,
        tuple(coverings),
        itemgetter(*(at for _name, _covers, at in digits)),
        tuple(
            {v: CheckDigit(name, covers, v, v, DigitState.VERIFIED) for v in DIGITS}
            for name, covers, _at in digits
        ),
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


def reference_read_mrz(
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
    return _read(tuple(lines), layout, day, suggest)


def _read(lines: tuple[str, ...], layout: Layout, today: dt.date, suggest: bool) -> MrzReading:
    plan = PLANS[layout]
    spans = plan.spans
    problems: dict[str, str] = {}
    flat = "".join(lines)  # the lines are all as wide: plan positions are offsets in this
    coded = encode(flat)  # character values, BAD where not an MRZ character
    clean = BAD not in coded
    values = dict(zip(plan.names, plan.fields(flat), strict=True))

    # Long document numbers (TD1, TD2): '<' in the check digit's place, the number continues at
    # the start of the optional data, and the last character before the next '<' is the digit.
    number_text = values["document_number"]
    number_found = flat[plan.number_digit_at]
    long_number = False
    if number_found == "<" and layout in (Layout.TD1, Layout.TD2) and number_text[-1:] != "<":
        opt = values["optional_data"]
        cut = opt.find("<")
        cont = opt if cut < 0 else opt[:cut]
        if len(cont) >= 2:
            long_number = True
            spans = dict(spans)
            number_text += cont[:-1]
            number_found = cont[-1]
            values["optional_data"] = "" if cut < 0 else opt[cut + 1 :]
            li, start, _end = spans["document_number"]
            ostart = spans["optional_data"][1]
            spans["document_number"] = (li, start, ostart + len(cont) - 1)
            spans["optional_data"] = (li, ostart + len(cont) + (0 if cut < 0 else 1),
                                      spans["optional_data"][2])  # fmt: skip

    # Every digit's expected value; when each is the one printed (the usual case), the evidence
    # is one shared object per (digit, value).
    covered = [coded[c] if type(c) is slice else b"".join(c(coded)) for c in plan.coverings]
    expected = [DIGITS[sum(map(mul, c, WEIGHTS)) % 10] for c in covered]
    found = plan.found(flat)
    if clean and found == tuple(expected):
        digits = list(map(getitem, plan.verified, found))
        refuted: list[CheckDigit] = []
    else:
        continued = (number_text, number_found) if long_number else None
        digits, refuted = _digits(
            plan, lines, covered, expected, values, layout=layout, clean=clean, continued=continued
        )
    digits.extend(_ABSENT[layout])

    # Field values and their problems.
    values["document_number"] = number = number_text.replace("<", "")
    values["document_code"] = code = values["document_code"].replace("<", "")
    if not code or not code[0].isalpha():
        problems["document_code"] = "must start with a letter (P, I, A, C, V)"
    values["issuing_state"] = state = values["issuing_state"].replace("<", "")
    if not is_known_state(state):
        problems["issuing_state"] = f"unknown state code {state!r}"
    values["nationality"] = state = values["nationality"].replace("<", "")
    if not is_known_state(state):
        problems["nationality"] = f"unknown state code {state!r}"
    primary, _sep, secondary = values.pop("names").partition("<<")
    values["surname"] = surname = " ".join(primary.replace("<", " ").split())
    values["given_names"] = given = " ".join(secondary.replace("<", " ").split())
    if not surname and not given:
        problems["names"] = "no name"
    sex = values["sex"]
    if sex == "<":
        values["sex"] = "X"
    elif sex not in ("M", "F", "X"):
        problems["sex"] = f"{sex!r} is not M, F or <"
    values["birth_date"] = _date(values["birth_date"], "birth_date", today, problems)
    values["expiry_date"] = _date(values["expiry_date"], "expiry_date", today, problems)
    if not number:
        problems["document_number"] = "empty"
    values["optional_data"] = values["optional_data"].rstrip("<")
    if "optional_data_2" in values:
        values["optional_data_2"] = values["optional_data_2"].rstrip("<")
    if not clean:
        width = len(lines[0])
        for at, c in enumerate(coded):
            if c == BAD:
                li, col = divmod(at, width)
                problems.setdefault(f"line{li + 1}", f"character {flat[at]!r} at column {col + 1}")

    if not problems and not refuted:
        return MrzReading(lines, layout, values, tuple(digits), (), spans, problems, today)
    violations = [FieldViolation(f"mrz.{k}", v) for k, v in problems.items()]
    if refuted:
        violations += [
            FieldViolation(f"mrz.{c.name}_check_digit",
                           f"check digit {c.found!r} refuted (computed {c.expected or '?'})")
            for c in refuted
        ]  # fmt: skip
    reading = MrzReading(
        lines, layout, values, tuple(digits), tuple(violations), spans, problems, today
    )
    if refuted and suggest and clean:
        sugg = _suggestions(reading)
        if sugg:
            return reading._replace(suggestions=tuple(sugg))
    return reading


def _digits(
    plan: Plan,
    lines: tuple[str, ...],
    covered: list[bytes],
    expected: list[str],
    values: dict[str, str],
    *,
    layout: Layout,
    clean: bool,
    continued: tuple[str, str] | None,
) -> tuple[list[CheckDigit], list[CheckDigit]]:
    """Every check digit's evidence, and the refuted ones, when not all of them verify.

    ``continued``: a long number's text and check digit (TD1, TD2), None for a number in its field.
    """
    flat = "".join(lines)
    digits: list[CheckDigit] = []
    refuted: list[CheckDigit] = []
    for (name, covers, at), covered_values, expect in zip(
        plan.digits, covered, expected, strict=True
    ):
        found = flat[at]
        if continued is not None and name == "document_number":
            number_text, found = continued
            if layout is Layout.TD1 and clean:
                filler = _filler_convention(lines, number_text, found)
                if filler is not None:
                    digits.append(filler)
                    continue
            values_ = encode(number_text)
            digit = DIGITS[sum(map(mul, values_, WEIGHTS)) % 10]
        else:
            if name == "expiry_date" and found == "<" and values[name] == "<<<<<<":
                digits.append(_NO_EXPIRY)  # no expiry printed: nothing to verify, nothing refuted
                continue
            values_, digit = covered_values, expect
        if BAD in values_:
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


# Dates read, per (raw text, birth?) -> (ISO date or "", problem or ""), for the day in
# _dates_day: the same dates recur (expiry dates above all), and yymmdd costs more than a lookup.
# Cleared when the day changes or the memo reaches _DATES_MAX entries.
_dates: dict[tuple[str, bool], tuple[str, str]] = {}
_dates_day = dt.date.min
_DATES_MAX = 4096  # about 1 MB at most


def _date(raw: str, name: str, today: dt.date, problems: dict[str, str]) -> str:
    global _dates_day
    birth = name == "birth_date"
    if today != _dates_day:
        _dates.clear()
        _dates_day = today
    known = _dates.get((raw, birth))
    if known is None:
        known = _read_date(raw, birth, today)
        if len(_dates) >= _DATES_MAX:
            _dates.clear()
        _dates[raw, birth] = known
    if known[1]:
        problems[name] = known[1]
    return known[0]


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
        fixed = _read(tuple(lines), layout, reading.today, suggest=False)
        if fixed.check_digits_ok:
            out.append(Suggestion(field, li + 1, col + 1, ch, alt, fixed.document_number))
    return out
