"""The characters a machine-readable zone holds, their ICAO 9303 values, and check digits.

Values: ``0``-``9`` are 0-9, ``A``-``Z`` 10-35, the filler ``<`` 0; weights 7, 3, 1 repeating;
the check digit is the weighted sum mod 10.
"""

from __future__ import annotations

from operator import mul

#: Character -> ICAO 9303 value.
VALUES: dict[str, int] = {"<": 0}
VALUES.update({str(d): d for d in range(10)})
VALUES.update({chr(ord("A") + i): 10 + i for i in range(26)})
ALLOWED = frozenset(VALUES)
WEIGHTS = (7, 3, 1) * 30
#: Characters OCR commonly confuses, each with the one it is taken for.
CONFUSABLE = {"O": "0", "0": "O", "I": "1", "1": "I", "B": "8", "8": "B", "S": "5", "5": "S",
              "Z": "2", "2": "Z", "G": "6", "6": "G"}  # fmt: skip
#: Weighted sum mod 10 -> check digit character.
DIGITS = "0123456789"
#: Value of a character an MRZ cannot hold, in :func:`encode`'s output.
BAD = 255

# Byte -> character value, BAD for characters an MRZ cannot hold: bytes.translate does the lookup
# in C, for a whole line at once.
_TABLE = bytes(VALUES.get(chr(b), BAD) for b in range(256))


def encode(text: str) -> bytes:
    """The ICAO 9303 value of every character of ``text``, one byte each (BAD where an MRZ cannot
    hold the character). One byte per character, so columns stay where they were."""
    return text.encode("latin-1", "replace").translate(_TABLE)


def digit_of(values: bytes) -> str:
    """The check digit over encoded characters (none of them BAD)."""
    return DIGITS[sum(map(mul, values, WEIGHTS)) % 10]


def check_digit(s: str) -> str:
    """The ICAO 9303 check digit of ``s``.

    Raises KeyError for a character an MRZ cannot hold.
    """
    values = encode(s)
    if BAD in values:
        raise KeyError(s)
    return DIGITS[sum(map(mul, values, WEIGHTS)) % 10]
