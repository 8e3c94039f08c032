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
document is valid), in which case 19YY (:func:`rmas.documents.yymmdd`).

Modules: :mod:`~rmas.mrz.charset` (character values, check digits), :mod:`~rmas.mrz.layouts`
(where each field and digit sits), :mod:`~rmas.mrz.reading` (what a reading holds),
:mod:`~rmas.mrz.weighing` (every check digit of a zone at once), :mod:`~rmas.mrz.reader`
(reading). Writing a zone (``compose``) is a test helper: :func:`rmas.testing.compose`.
"""

from __future__ import annotations

from rmas.mrz.charset import check_digit
from rmas.mrz.layouts import Layout
from rmas.mrz.reader import read_mrz
from rmas.mrz.reading import CheckDigit, DigitState, Field, MrzReading, Suggestion

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
