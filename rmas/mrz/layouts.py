"""The ICAO 9303 layouts: which zone is which, where each field and check digit sits.

Layouts: TD3 (passports, 2x44), TD2 (2x36), TD1 (cards, 3x30), MRV-A (visas, 2x44) and MRV-B
(visas, 2x36).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import NamedTuple


class Layout(enum.StrEnum):
    TD1 = "TD1"
    TD2 = "TD2"
    TD3 = "TD3"
    MRV_A = "MRV-A"
    MRV_B = "MRV-B"


#: A field's place: (line index, start column, end column exclusive).
Span = tuple[int, int, int]


class DigitSpec(NamedTuple):
    """Where a check digit sits and the fields it covers."""

    line: int  # 0-based
    column: int
    covers: tuple[str, ...]


# Field spans: name -> (line index, start, end). Check digits: name -> (line, column, covers).
TD3: dict[str, Span] = {
    "document_code": (0, 0, 2), "issuing_state": (0, 2, 5), "names": (0, 5, 44),
    "document_number": (1, 0, 9), "nationality": (1, 10, 13), "birth_date": (1, 13, 19),
    "sex": (1, 20, 21), "expiry_date": (1, 21, 27), "optional_data": (1, 28, 42),
}  # fmt: skip
TD3_DIGITS = {
    "document_number": DigitSpec(1, 9, ("document_number",)),
    "birth_date": DigitSpec(1, 19, ("birth_date",)),
    "expiry_date": DigitSpec(1, 27, ("expiry_date",)),
    "optional_data": DigitSpec(1, 42, ("optional_data",)),
    "composite": DigitSpec(1, 43, ("document_number", "birth_date", "expiry_date",
                                   "optional_data")),
}  # fmt: skip
MRVA = {**TD3, "optional_data": (1, 28, 44)}
MRV_DIGITS = {k: v for k, v in TD3_DIGITS.items() if k in ("document_number", "birth_date",
                                                            "expiry_date")}  # fmt: skip
TD2: dict[str, Span] = {
    "document_code": (0, 0, 2), "issuing_state": (0, 2, 5), "names": (0, 5, 36),
    "document_number": (1, 0, 9), "nationality": (1, 10, 13), "birth_date": (1, 13, 19),
    "sex": (1, 20, 21), "expiry_date": (1, 21, 27), "optional_data": (1, 28, 35),
}  # fmt: skip
TD2_DIGITS = {
    "document_number": DigitSpec(1, 9, ("document_number",)),
    "birth_date": DigitSpec(1, 19, ("birth_date",)),
    "expiry_date": DigitSpec(1, 27, ("expiry_date",)),
    "composite": DigitSpec(1, 35, ("document_number", "birth_date", "expiry_date",
                                   "optional_data")),
}  # fmt: skip
MRVB = {**TD2, "optional_data": (1, 28, 36)}
TD1: dict[str, Span] = {
    "document_code": (0, 0, 2), "issuing_state": (0, 2, 5), "document_number": (0, 5, 14),
    "optional_data": (0, 15, 30), "birth_date": (1, 0, 6), "sex": (1, 7, 8),
    "expiry_date": (1, 8, 14), "nationality": (1, 15, 18), "optional_data_2": (1, 18, 29),
    "names": (2, 0, 30),
}  # fmt: skip
TD1_DIGITS = {
    "document_number": DigitSpec(0, 14, ("document_number",)),
    "birth_date": DigitSpec(1, 6, ("birth_date",)),
    "expiry_date": DigitSpec(1, 14, ("expiry_date",)),
    "composite": DigitSpec(1, 29, ("document_number", "optional_data", "birth_date",
                                   "expiry_date", "optional_data_2")),
}  # fmt: skip

LAYOUTS: dict[Layout, tuple[dict[str, Span], dict[str, DigitSpec]]] = {
    Layout.TD3: (TD3, TD3_DIGITS),
    Layout.MRV_A: (MRVA, MRV_DIGITS),
    Layout.TD2: (TD2, TD2_DIGITS),
    Layout.MRV_B: (MRVB, MRV_DIGITS),
    Layout.TD1: (TD1, TD1_DIGITS),
}

#: The check digits a layout does not have (reported ABSENT).
MISSING_DIGITS = {
    layout: tuple(name for name in ("optional_data", "composite") if name not in digits)
    for layout, (_spans, digits) in LAYOUTS.items()
}


#: The characters each composite check digit covers, in ICAO 9303's order: (line, start, end).
COMPOSITE: dict[Layout, tuple[Span, ...]] = {
    Layout.TD3: ((1, 0, 10), (1, 13, 20), (1, 21, 43)),
    Layout.TD2: ((1, 0, 10), (1, 13, 20), (1, 21, 35)),
    Layout.TD1: ((0, 5, 30), (1, 0, 7), (1, 8, 15), (1, 18, 29)),
}
WIDTH = {Layout.TD3: 44, Layout.MRV_A: 44, Layout.TD2: 36, Layout.MRV_B: 36, Layout.TD1: 30}


def layout_of(lines: Sequence[str]) -> Layout | None:
    n = len(lines)
    if n == 2:
        width = len(lines[0])
        if len(lines[1]) != width:
            return None
        if width == 44:
            return Layout.MRV_A if lines[0][:1] == "V" else Layout.TD3
        if width == 36:
            if lines[0][:1] != "V" and any(map(str.isdigit, lines[1][10:13])):
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
