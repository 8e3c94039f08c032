"""ICAO Doc 9303 machine-readable zones: read every layout, report evidence per field, never raise.

Written in-house because no maintained permissive-licence library handles what real documents
carry: ICAO's own state codes (``D<<`` for Germany, GBD, UNO, XXA, UTO...), long TD1/TD2 document
numbers continued in the optional data, ``<`` as the check digit of empty optional data, and
single-name holders; and because the hub needs evidence (which check digit verified, which was
refuted, which one-character misread would fix it), not a bare valid/invalid flag.

Layouts: TD3 (passports, 2x44), TD2 (2x36), TD1 (cards, 3x30), MRV-A (visas, 2x44) and MRV-B
(visas, 2x36). A reading holds, for every field, its raw text, its value and any problem; for
every check digit, VERIFIED / REFUTED / ABSENT; and, where a check digit is refuted, the
candidates in which swapping one commonly confused character (O/0, I/1, B/8, S/5, Z/2, G/6) makes
every check digit verify. Candidates are reported, never applied.

Two-digit years: a birth date takes the most recent century that does not put it in the future;
an expiry date takes 20YY unless that lies more than 20 years ahead (longer than any travel
document is valid), in which case 19YY.

Reading is on the hot path of every scanned check: a TD3 costs a few microseconds, because the
per-field evidence objects are built only when asked for (:attr:`MrzReading.fields`).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from operator import mul
from typing import NamedTuple

from rmas.documents import yymmdd
from rmas.errors import FieldViolation
from rmas.states import is_known_state

__all__ = [
    "CheckDigit",
    "DigitState",
    "Field",
    "Layout",
    "MrzReading",
    "Suggestion",
    "check_digit",
    "read_mrz",
]


class Layout(enum.StrEnum):
    TD1 = "TD1"
    TD2 = "TD2"
    TD3 = "TD3"
    MRV_A = "MRV-A"
    MRV_B = "MRV-B"


class DigitState(enum.StrEnum):
    VERIFIED = "VERIFIED"
    REFUTED = "REFUTED"
    ABSENT = "ABSENT"


_VALUES: dict[str, int] = {"<": 0}
_VALUES.update({str(d): d for d in range(10)})
_VALUES.update({chr(ord("A") + i): 10 + i for i in range(26)})
_ALLOWED = frozenset(_VALUES)
_WEIGHTS = (7, 3, 1) * 30
_CONFUSABLE = {"O": "0", "0": "O", "I": "1", "1": "I", "B": "8", "8": "B", "S": "5", "5": "S",
               "Z": "2", "2": "Z", "G": "6", "6": "G"}  # fmt: skip


# Byte -> character value, 255 for characters an MRZ cannot hold: bytes.translate does the lookup
# in C, which makes a check digit about 40% cheaper than a dict lookup per character.
_TABLE = bytes(_VALUES.get(chr(b), 255) for b in range(256))


def check_digit(s: str) -> str:
    """The ICAO 9303 check digit of ``s`` (values 0-9, A-Z 10-35, ``<`` 0; weights 7, 3, 1).

    Raises KeyError for a character an MRZ cannot hold.
    """
    values = s.encode("latin-1", "replace").translate(_TABLE)
    if 255 in values:
        raise KeyError(s)
    return str(sum(map(mul, values, _WEIGHTS)) % 10)


class Field(NamedTuple):
    """One field of the zone: where it is, what it says, and what is wrong with it."""

    name: str
    raw: str
    value: str
    line: int  # 1-based
    start: int  # 0-based column, end exclusive
    end: int
    problem: str | None = None


class CheckDigit(NamedTuple):
    """The evidence of one check digit."""

    name: str
    covers: tuple[str, ...]
    found: str
    expected: str
    state: DigitState


class Suggestion(NamedTuple):
    """A one-character misread that, corrected, makes every check digit verify."""

    field: str
    line: int
    column: int
    found: str
    replacement: str
    #: The document number once corrected (the same as read when the swap is elsewhere).
    document_number: str


# Field spans: name -> (line index, start, end). Check digits: name -> (line, column, covers).
_Span = tuple[int, int, int]
_TD3: dict[str, _Span] = {
    "document_code": (0, 0, 2), "issuing_state": (0, 2, 5), "names": (0, 5, 44),
    "document_number": (1, 0, 9), "nationality": (1, 10, 13), "birth_date": (1, 13, 19),
    "sex": (1, 20, 21), "expiry_date": (1, 21, 27), "optional_data": (1, 28, 42),
}  # fmt: skip
_TD3_DIGITS = {
    "document_number": (1, 9, ("document_number",)),
    "birth_date": (1, 19, ("birth_date",)),
    "expiry_date": (1, 27, ("expiry_date",)),
    "optional_data": (1, 42, ("optional_data",)),
    "composite": (1, 43, ("document_number", "birth_date", "expiry_date", "optional_data")),
}
_MRVA = {**_TD3, "optional_data": (1, 28, 44)}
_MRV_DIGITS = {k: v for k, v in _TD3_DIGITS.items() if k in ("document_number", "birth_date",
                                                              "expiry_date")}  # fmt: skip
_TD2: dict[str, _Span] = {
    "document_code": (0, 0, 2), "issuing_state": (0, 2, 5), "names": (0, 5, 36),
    "document_number": (1, 0, 9), "nationality": (1, 10, 13), "birth_date": (1, 13, 19),
    "sex": (1, 20, 21), "expiry_date": (1, 21, 27), "optional_data": (1, 28, 35),
}  # fmt: skip
_TD2_DIGITS = {
    "document_number": (1, 9, ("document_number",)),
    "birth_date": (1, 19, ("birth_date",)),
    "expiry_date": (1, 27, ("expiry_date",)),
    "composite": (1, 35, ("document_number", "birth_date", "expiry_date", "optional_data")),
}
_MRVB = {**_TD2, "optional_data": (1, 28, 36)}
_TD1: dict[str, _Span] = {
    "document_code": (0, 0, 2), "issuing_state": (0, 2, 5), "document_number": (0, 5, 14),
    "optional_data": (0, 15, 30), "birth_date": (1, 0, 6), "sex": (1, 7, 8),
    "expiry_date": (1, 8, 14), "nationality": (1, 15, 18), "optional_data_2": (1, 18, 29),
    "names": (2, 0, 30),
}  # fmt: skip
_TD1_DIGITS = {
    "document_number": (0, 14, ("document_number",)),
    "birth_date": (1, 6, ("birth_date",)),
    "expiry_date": (1, 14, ("expiry_date",)),
    "composite": (1, 29, ("document_number", "optional_data", "birth_date", "expiry_date",
                          "optional_data_2")),
}  # fmt: skip

_ABSENT = {
    layout: tuple(CheckDigit(name, (), "", "", DigitState.ABSENT)
                  for name in ("optional_data", "composite") if name not in digits)
    for layout, digits in ((Layout.TD3, _TD3_DIGITS), (Layout.MRV_A, _MRV_DIGITS),
                           (Layout.TD2, _TD2_DIGITS), (Layout.MRV_B, _MRV_DIGITS),
                           (Layout.TD1, _TD1_DIGITS))
}  # fmt: skip

# Check-digit evidence is immutable and takes few distinct values (name x found x expected):
# shared instances spare the hot path an allocation per digit. Bounded by construction (< 4,000).
_DIGITS: dict[tuple[str, str, str, bool], CheckDigit] = {}

_LAYOUTS = {
    Layout.TD3: (_TD3, _TD3_DIGITS),
    Layout.MRV_A: (_MRVA, _MRV_DIGITS),
    Layout.TD2: (_TD2, _TD2_DIGITS),
    Layout.MRV_B: (_MRVB, _MRV_DIGITS),
    Layout.TD1: (_TD1, _TD1_DIGITS),
}


def _composite_text(layout: Layout, lines: Sequence[str]) -> str:
    """The characters the composite check digit covers, as ICAO 9303 lists them."""
    if layout is Layout.TD3:
        l2 = lines[1]
        return l2[0:10] + l2[13:20] + l2[21:43]
    if layout is Layout.TD2:
        l2 = lines[1]
        return l2[0:10] + l2[13:20] + l2[21:35]
    l1, l2 = lines[0], lines[1]
    return l1[5:30] + l2[0:7] + l2[8:15] + l2[18:29]


def _layout_of(lines: Sequence[str]) -> Layout | None:
    n = len(lines)
    width = len(lines[0]) if lines else 0
    if n > 1 and len(set(map(len, lines))) != 1:
        return None
    if n == 3 and width == 30:
        return Layout.TD1
    if n == 2 and width == 44:
        return Layout.MRV_A if lines[0][:1] == "V" else Layout.TD3
    if n == 2 and width == 36:
        if lines[0][:1] != "V" and any(c.isdigit() for c in lines[1][10:13]):
            return None  # not ICAO 9303: a TD2 has its holder's nationality there
        return Layout.MRV_B if lines[0][:1] == "V" else Layout.TD2
    return None


def _split_lines(text: str | Sequence[str]) -> list[str]:
    """Tolerate one string with line breaks, surrounding spaces and lower case.

    Spaces inside a line are removed: scanners insert them where the OCR-B font's spacing
    confuses them, and no MRZ character is a space.
    """
    raw = text.splitlines() if isinstance(text, str) else [p for t in text for p in t.splitlines()]
    out = []
    for line in raw:
        squeezed = "".join(line.split()) if " " in line or "\t" in line else line
        if squeezed:
            out.append(squeezed.upper())
    return out


class MrzReading(NamedTuple):
    """What a machine-readable zone says, with the evidence for each field and check digit.

    Immutable (a NamedTuple: half the construction cost of a frozen dataclass on this hot path).
    """

    lines: tuple[str, ...]
    layout: Layout | None
    values: dict[str, str]
    check_digits: tuple[CheckDigit, ...]
    problems: tuple[FieldViolation, ...]
    #: Spans of the fields actually read (long numbers move the document number's span).
    spans: dict[str, tuple[int, int, int]]
    field_problems: dict[str, str]
    today: dt.date
    suggestions: tuple[Suggestion, ...] = ()

    @property
    def fields(self) -> dict[str, Field]:
        """Every field's evidence (built on demand: reading stays cheap on the hot path)."""
        out: dict[str, Field] = {}
        for name, (li, start, end) in self.spans.items():
            line = self.lines[li] if li < len(self.lines) else ""
            out[name] = Field(
                name, line[start:end], self.values.get(name, ""), li + 1, start, end,
                self.field_problems.get(name),
            )  # fmt: skip
        return out

    @property
    def check_digits_ok(self) -> bool:
        return all(c.state is not DigitState.REFUTED for c in self.check_digits)

    @property
    def valid(self) -> bool:
        """Every check digit verified or absent, and no field problem."""
        return not self.problems and self.check_digits_ok

    @property
    def expired(self) -> bool:
        exp = self.values.get("expiry_date", "")
        return bool(exp) and dt.date.fromisoformat(exp) < self.today

    @property
    def document_number(self) -> str:
        return self.values.get("document_number", "")

    def document_fields(self) -> dict[str, str]:
        """The fields as :func:`rmas.documents.validate_document` takes them."""
        v = self.values
        return {
            "issuing_state": v.get("issuing_state", ""),
            "number": v.get("document_number", ""),
            "type_code": v.get("document_code", ""),
            "surname": v.get("surname", ""),
            "given_names": v.get("given_names", ""),
            "birth_date": v.get("birth_date", ""),
            "sex": v.get("sex", ""),
            "nationality": v.get("nationality", ""),
            "expiry_date": v.get("expiry_date", ""),
        }

    def candidate_numbers(self) -> list[str]:
        """Document numbers other than the one read that a suggestion would give."""
        read = self.document_number
        return list(dict.fromkeys(s.document_number for s in self.suggestions
                                  if s.document_number != read))  # fmt: skip


def read_mrz(
    text: str | Sequence[str], *, today: dt.date | None = None, suggest: bool = True
) -> MrzReading:
    """Read a machine-readable zone. Never raises: every problem is in the reading."""
    day = today or dt.date.today()
    lines = _split_lines(text)
    layout = _layout_of(lines)
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
    spans, digit_specs = _LAYOUTS[layout]
    problems: dict[str, str] = {}
    clean = all(_ALLOWED.issuperset(x) for x in lines)
    values = {name: lines[li][start:end] for name, (li, start, end) in spans.items()}

    # Long document numbers (TD1, TD2): '<' in the check digit's place, the number continues at
    # the start of the optional data, and the last character before the next '<' is the digit.
    number_text = values["document_number"]
    nli, ncol, _ = digit_specs["document_number"]
    number_found = lines[nli][ncol]
    if number_found == "<" and layout in (Layout.TD1, Layout.TD2) and number_text[-1:] != "<":
        opt = values["optional_data"]
        cut = opt.find("<")
        cont = opt if cut < 0 else opt[:cut]
        if len(cont) >= 2:
            spans = dict(spans)
            number_text += cont[:-1]
            number_found = cont[-1]
            values["optional_data"] = "" if cut < 0 else opt[cut + 1 :]
            li, start, _end = spans["document_number"]
            ostart = spans["optional_data"][1]
            spans["document_number"] = (li, start, ostart + len(cont) - 1)
            spans["optional_data"] = (li, ostart + len(cont) + (0 if cut < 0 else 1),
                                      spans["optional_data"][2])  # fmt: skip

    digits: list[CheckDigit] = []
    for name, (li, col, covers) in digit_specs.items():
        if name == "document_number":
            covered, found = number_text, number_found
            if len(number_text) > 9 and layout is Layout.TD1 and clean:
                filler = _filler_convention(lines, number_text, found)
                if filler is not None:
                    digits.append(filler)
                    continue
        elif name == "expiry_date" and values["expiry_date"] == "<<<<<<" and lines[li][col] == "<":
            digits.append(_NO_EXPIRY)  # no expiry printed: nothing to verify, nothing refuted
            continue
        else:
            covered = _composite_text(layout, lines) if name == "composite" else values[covers[0]]
            found = lines[li][col]
        if clean:
            expected = check_digit(covered)
        else:
            try:
                expected = check_digit(covered)
            except KeyError:
                digits.append(CheckDigit(name, covers, found, "", DigitState.REFUTED))
                continue
        ok = found == expected or (
            found == "<" and expected == "0" and name == "optional_data" and not covered.strip("<")
        )
        dkey = (name, found, expected, ok)
        evidence = _DIGITS.get(dkey)
        if evidence is None:
            dstate = DigitState.VERIFIED if ok else DigitState.REFUTED
            evidence = _DIGITS[dkey] = CheckDigit(name, covers, found, expected, dstate)
        digits.append(evidence)
    digits.extend(_ABSENT[layout])
    bad_chars = [] if clean else [
        (li, col) for li, x in enumerate(lines) for col, c in enumerate(x) if c not in _ALLOWED
    ]  # fmt: skip

    # Field values and their problems.
    values["document_number"] = number_text.replace("<", "")
    code = values["document_code"].replace("<", "")
    values["document_code"] = code
    if not code or not code[0].isalpha():
        problems["document_code"] = "must start with a letter (P, I, A, C, V)"
    for key in ("issuing_state", "nationality"):
        state = values[key].replace("<", "")
        values[key] = state
        if not is_known_state(state):
            problems[key] = f"unknown state code {state!r}"
    surname, given = _names(values.pop("names"))
    values["surname"], values["given_names"] = surname, given
    if not surname and not given:
        problems["names"] = "no name"
    sex = values["sex"]
    values["sex"] = "X" if sex == "<" else sex
    if sex not in ("M", "F", "<", "X"):
        problems["sex"] = f"{sex!r} is not M, F or <"
    values["birth_date"] = _date(values["birth_date"], "birth_date", today, problems)
    values["expiry_date"] = _date(values["expiry_date"], "expiry_date", today, problems)
    if not values["document_number"]:
        problems["document_number"] = "empty"
    for key in ("optional_data", "optional_data_2"):
        if key in values:
            values[key] = values[key].rstrip("<")
    for li, col in bad_chars:
        problems.setdefault(f"line{li + 1}", f"character {lines[li][col]!r} at column {col + 1}")

    refuted = [c for c in digits if c.state is DigitState.REFUTED]
    violations = [FieldViolation(f"mrz.{k}", v) for k, v in problems.items()] if problems else []
    if refuted:
        violations += [
            FieldViolation(f"mrz.{c.name}_check_digit",
                           f"check digit {c.found!r} refuted (computed {c.expected or '?'})")
            for c in refuted
        ]  # fmt: skip
    reading = MrzReading(
        lines, layout, values, tuple(digits), tuple(violations), spans, problems, today
    )
    if refuted and suggest and not bad_chars:
        sugg = _suggestions(reading)
        if sugg:
            return MrzReading(
                lines, layout, values, tuple(digits), tuple(violations), spans, problems, today,
                tuple(sugg),
            )  # fmt: skip
    return reading


#: Issuers whose TD1 cards with long numbers compute the number's check digit over the first
#: nine characters, the ``<`` at position 15 and the continuation (seen on Belgian and Portuguese
#: identity cards), instead of over the number alone as ICAO 9303 says. Only they get the second
#: convention, so a misread number elsewhere has no new way to verify.
FILLER_CONVENTION_ISSUERS = frozenset({"BEL", "PRT"})
#: Evidence of a number verified by that convention: it covers the filler too.
FILLER_COVERS = ("document_number", "filler_at_15")
_NO_EXPIRY = CheckDigit("expiry_date", ("expiry_date",), "<", "", DigitState.ABSENT)


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


def _names(raw: str) -> tuple[str, str]:
    primary, _sep, secondary = raw.partition("<<")
    return " ".join(primary.replace("<", " ").split()), " ".join(
        secondary.replace("<", " ").split()
    )


def _date(raw: str, name: str, today: dt.date, problems: dict[str, str]) -> str:
    if not raw.isdigit() or len(raw) != 6:
        if raw.strip("<"):
            problems[name] = f"{raw!r} is not YYMMDD"
        return ""
    try:
        d = yymmdd(raw, "birth" if name == "birth_date" else "expiry", today)
    except ValueError:
        problems[name] = f"{raw!r} is not a real date"
        return ""
    return f"{d.year}-{raw[2:4]}-{raw[4:]}"


def _suggestions(reading: MrzReading) -> list[Suggestion]:
    """Single confusable-character swaps after which every check digit verifies."""
    layout = reading.layout
    assert layout is not None
    refuted = {c.name for c in reading.check_digits if c.state is DigitState.REFUTED}
    spans, digit_specs = _LAYOUTS[layout]
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
        alt = _CONFUSABLE.get(ch)
        if alt is None:
            continue
        line = reading.lines[li]
        lines = list(reading.lines)
        lines[li] = line[:col] + alt + line[col + 1 :]
        fixed = _read(tuple(lines), layout, reading.today, suggest=False)
        if fixed.check_digits_ok:
            out.append(Suggestion(field, li + 1, col + 1, ch, alt, fixed.document_number))
    return out
