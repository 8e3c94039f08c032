"""What a reading of a machine-readable zone holds: values, and the evidence for each of them."""

from __future__ import annotations

import datetime as dt
import enum
from typing import NamedTuple

from rmas.errors import FieldViolation
from rmas.mrz.layouts import Layout, Span


class DigitState(enum.StrEnum):
    VERIFIED = "VERIFIED"
    REFUTED = "REFUTED"
    ABSENT = "ABSENT"


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
    spans: dict[str, Span]
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
