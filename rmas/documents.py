"""Document identity: the normalised key every provider is asked about, and holder data.

A document is identified by (issuing state, normalised number). Numbers are normalised the way an
MRZ writes them: upper case, with spaces, dashes, dots, slashes and ``<`` fillers removed. Holder
names are compared the way an MRZ writes them too: upper case, punctuation and fillers removed.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import unicodedata
from dataclasses import dataclass

from rmas.errors import FieldViolation, ValidationError
from rmas.frozen import fast_init
from rmas.states import canonical_economy, to_alpha3
from rmas.verdict import HolderMatch

__all__ = [
    "EMPTY_HOLDER",
    "MAX_NUMBER_LENGTH",
    "DocumentQuery",
    "DocumentType",
    "Holder",
    "match_holder",
    "normalise_name",
    "normalise_number",
    "number_problem",
    "parse_date",
    "parse_sex",
    "valid_holder",
    "valid_plain",
    "validate_document",
    "yymmdd",
]

#: ICAO 9303 TD1 numbers may run past 9 characters (Belgian cards use 12); nothing real exceeds 20.
MAX_NUMBER_LENGTH = 20

_NUMBER_JUNK = re.compile(r"[\s\-./<]+")
#: A document number as the hub keeps it: what :func:`number_problem` accepts, and what
#: :func:`normalise_number` leaves as it is (ASCII capitals and digits).
_NORMAL_NUMBER = re.compile(rf"[A-Z0-9]{{1,{MAX_NUMBER_LENGTH}}}")
_NAME_JUNK = re.compile(r"[^A-Z ]+")
_SPACES = re.compile(r"\s+")
#: A name :func:`normalise_name` leaves as it is: words of A-Z, one space between them.
_NORMAL_NAME = re.compile(r"[A-Z]+(?: [A-Z]+)*")


class DocumentType(enum.StrEnum):
    """Document kinds as ICAO 9303 codes them (first letter of the document code).

    Every channel's spelling of a document type goes through :meth:`from_code` (lenient: what a
    message says is kept, an unfamiliar code is OTHER) or :meth:`parse` (strict: for what a person
    types, an unknown code is refused). The type is shown to officers and may rank candidates; it
    never decides whether a record matches: records match on issuing state and number alone.
    """

    UNSPECIFIED = "UNSPECIFIED"
    PASSPORT = "P"
    IDENTITY_CARD = "I"
    VISA = "V"
    OTHER = "OTHER"

    @classmethod
    def from_code(cls, code: str) -> DocumentType:
        """Map any channel's document code to a type; an unfamiliar code is OTHER.

        ``P``, ``PT``, ``PD`` (MRZ, PAXLST ``DOC``), ``I``, ``ID``, ``A``, ``AC``, ``C``, ``IP``,
        ``V``, ``VS``..., the words of the proto enum, the SLTD-style store (``ID_CARD``) and the
        CSV store letters (``O``).
        """
        c = code.strip().upper()
        if not c:
            return cls.UNSPECIFIED
        word = _TYPE_WORDS.get(c)
        if word is not None:
            return word
        return _TYPE_FAMILIES.get(c[0], cls.OTHER)

    @classmethod
    def parse(cls, code: str) -> DocumentType:
        """Like :meth:`from_code`, but refuse (ValueError) a code no channel defines."""
        c = code.strip().upper()
        if c and c not in _TYPE_WORDS and c not in _OTHER_CODES and not _ICAO_CODE.fullmatch(c):
            raise ValueError(
                f"unknown document type {code.strip()[:12]!r} (P, I, A, C, V and their two-letter "
                f"ICAO codes, {', '.join(sorted(_OTHER_CODES))}, or PASSPORT, ID_CARD, VISA, OTHER)"
            )
        return cls.from_code(c)

    @property
    def letter(self) -> str:
        """The one-letter code stores keep ("" unspecified, ``O`` other)."""
        return _TYPE_LETTERS[self]


#: The one table of document-type codes, for every channel. ICAO 9303 document codes are a
#: family letter and an optional second character chosen by the issuer (``PD`` diplomatic, ``ID``,
#: ``AC`` crew member certificate, ``VS``...); PAXLST ``DOC`` codes (UN/EDIFACT 1001 as used by
#: API/iAPI) add ``IP`` (passport card, an identity card), ``F`` (approved non-standard document),
#: ``M`` (military), ``T`` (re-entry permit) and ``L`` (pilot licence), which are OTHER here.
_TYPE_FAMILIES: dict[str, DocumentType] = {
    "P": DocumentType.PASSPORT,
    "I": DocumentType.IDENTITY_CARD,
    "A": DocumentType.IDENTITY_CARD,
    "C": DocumentType.IDENTITY_CARD,
    "V": DocumentType.VISA,
}
_TYPE_WORDS: dict[str, DocumentType] = {
    "PASSPORT": DocumentType.PASSPORT,
    "IDENTITY_CARD": DocumentType.IDENTITY_CARD,
    "ID_CARD": DocumentType.IDENTITY_CARD,
    "VISA": DocumentType.VISA,
    "OTHER": DocumentType.OTHER,
    "O": DocumentType.OTHER,
    "UNSPECIFIED": DocumentType.UNSPECIFIED,
}
_OTHER_CODES = frozenset({"F", "M", "T", "L"})
_ICAO_CODE = re.compile(r"[PIACV][A-Z<]?")
_TYPE_LETTERS: dict[DocumentType, str] = {
    DocumentType.UNSPECIFIED: "",
    DocumentType.PASSPORT: "P",
    DocumentType.IDENTITY_CARD: "I",
    DocumentType.VISA: "V",
    DocumentType.OTHER: "O",
}


def normalise_number(raw: str) -> str:
    """Upper case, separators and ``<`` fillers stripped: ``"ab 123-456<"`` -> ``"AB123456"``.

    Only ASCII is upper-cased: ``str.upper`` turns ``ß`` into ``SS`` and ``ﬁ`` into ``FI``, which
    would ask about another number; a non-ASCII number stays as it is and fails
    :func:`number_problem`.
    """
    # Letters and digits only (the usual case): nothing to strip, no pattern to run.
    s = raw if raw.isalnum() else _NUMBER_JUNK.sub("", raw)
    return s.upper() if s.isascii() else s


def number_problem(number: str) -> str | None:
    """Why a normalised number cannot be a document number, or None when it can."""
    if _NORMAL_NUMBER.fullmatch(number):
        return None
    if not number:
        return "required"
    if len(number) > MAX_NUMBER_LENGTH:
        return f"longer than {MAX_NUMBER_LENGTH} characters"
    # [A-Z0-9]+ without a pattern: ASCII letters and digits, and no lower case.
    if not (number.isascii() and number.isalnum() and (number.isupper() or number.isdigit())):
        return "only letters A-Z and digits 0-9 allowed"
    return None


def parse_sex(raw: str) -> str:
    """``M``, ``F``, ``X`` or "" (absent); an MRZ's ``<`` and the PAXLST/ICAO ``U`` are ``X``.

    Raises ValueError for anything else.
    """
    sx = raw.strip().upper()
    if sx in ("<", "U"):
        return "X"
    if sx not in ("", "M", "F", "X"):
        raise ValueError("must be M, F or X")
    return sx


def normalise_name(raw: str) -> str:
    """A name as an MRZ writes it: upper case, ``<``/punctuation become spaces, runs collapsed.

    ``"O'Brien-Smith"`` -> ``"OBRIEN SMITH"``: the MRZ drops apostrophes and turns hyphens into
    fillers, so comparison ignores both. Latin letters with diacritics are transliterated as ICAO
    9303 Part 3 recommends (``Müller`` -> ``MUELLER``, ``Øst`` -> ``OEST``, others lose the mark).
    """
    s = raw.upper()
    if _NORMAL_NAME.fullmatch(s):  # already as an MRZ writes it (most PAXLST names)
        return s
    if not s.isascii():
        s = _transliterate(s)
    s = s.replace("<", " ").replace("-", " ").replace("'", "")
    s = _NAME_JUNK.sub("", s)
    return _SPACES.sub(" ", s).strip()


# ICAO 9303 Part 3, section 6: the recommended transliterations that are not just a dropped mark.
_ICAO_TRANSLIT = str.maketrans(
    {
        "Ä": "AE",
        "Æ": "AE",
        "Å": "AA",
        "Ö": "OE",
        "Ø": "OE",
        "Œ": "OE",
        "Ü": "UE",
        "ß": "SS",
        "Þ": "TH",
        "Ð": "D",
        "Đ": "D",
        "Ħ": "H",
        "Ł": "L",
        "Ŀ": "L",
        "Ŋ": "N",
        "Ŧ": "T",
        "ẞ": "SS",
        "Ĳ": "IJ",
    }
)


def _transliterate(s: str) -> str:
    s = s.translate(_ICAO_TRANSLIT)
    decomposed = unicodedata.normalize("NFKD", s)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def yymmdd(raw: str, kind: str, today: dt.date) -> dt.date:
    """A two-digit-year date (MRZ, PAXLST), ``kind`` "birth" or "expiry"; raises ValueError.

    A birth date takes the most recent century that does not put it in the future; an expiry
    date takes 20YY unless that lies more than 20 years ahead (longer than any travel document is
    valid), and then 19YY.
    """
    if len(raw) != 6 or not raw.isdigit():
        raise ValueError(f"{raw!r} is not YYMMDD")
    yy = int(raw[:2])
    if kind == "birth":
        year = 2000 + yy if 2000 + yy <= today.year else 1900 + yy
    else:
        year = 2000 + yy if 2000 + yy <= today.year + 20 else 1900 + yy
    d = dt.date(year, int(raw[2:4]), int(raw[4:]))
    if kind == "birth" and d > today:
        d = d.replace(year=year - 100)
    return d


def parse_date(raw: str) -> dt.date | None:
    """An ISO date (``YYYY-MM-DD`` or ``YYYYMMDD``); None when empty. Raises ValueError when bad."""
    s = raw.strip()
    if not s:
        return None
    if len(s) == 8 and s.isdigit():
        return dt.date(int(s[:4]), int(s[4:6]), int(s[6:]))
    return dt.date.fromisoformat(s)


@fast_init
@dataclass(frozen=True, slots=True)
class Holder:
    """Holder data carried by a query or a registry record (names already normalised)."""

    surname: str = ""
    given_names: str = ""
    birth_date: dt.date | None = None
    sex: str = ""
    nationality: str = ""

    def is_empty(self) -> bool:
        return not (self.surname or self.given_names or self.birth_date or self.sex)


EMPTY_HOLDER = Holder()


def match_holder(asked: Holder, known: Holder) -> HolderMatch:
    """Does a record's holder (``known``) match the holder data a query gives (``asked``)?

    Each field present on both sides is compared (names normalised as :func:`normalise_name`
    does on both sides): one difference is a MISMATCH; no field to compare is NOT_CHECKED.
    Nationality is not compared: it is not a property of the document. Every provider that
    compares holder data calls this, so that "matches" means one thing everywhere.
    """
    if asked is EMPTY_HOLDER:
        return HolderMatch.NOT_CHECKED
    compared = False
    for mine, theirs in (
        (asked.surname, known.surname),
        (asked.given_names, known.given_names),
        (asked.birth_date, known.birth_date),
        (asked.sex, known.sex),
    ):
        if mine and theirs:
            compared = True
            if mine != theirs:
                return HolderMatch.MISMATCH
    return HolderMatch.MATCH if compared else HolderMatch.NOT_CHECKED


@fast_init
@dataclass(frozen=True, slots=True)
class DocumentQuery:
    """One document to check, normalised and validated.

    ``issuing_state`` is the code as written on the document (``D`` stays ``D``); ``economy`` is the
    participant that answers for it (``D`` -> ``DEU``). ``ref`` is the caller's reference for this
    document inside a batch (a manifest line, a PAXLST traveller); it travels back unchanged.
    """

    issuing_state: str
    number: str
    type: DocumentType = DocumentType.UNSPECIFIED
    holder: Holder = EMPTY_HOLDER
    expiry_date: dt.date | None = None
    ref: str = ""

    @property
    def economy(self) -> str:
        return canonical_economy(self.issuing_state)

    @property
    def key(self) -> tuple[str, str]:
        """(economy, number): what a store is keyed by."""
        return (canonical_economy(self.issuing_state), self.number)

    def untyped(self) -> DocumentQuery:
        """This query without its type: what providers are asked (they match on issuing state
        and number alone). ``dataclasses.replace`` costs more than twice as much per document."""
        return DocumentQuery(
            self.issuing_state,
            self.number,
            DocumentType.UNSPECIFIED,
            self.holder,
            self.expiry_date,
            self.ref,
        )


def validate_document(
    *,
    issuing_state: str,
    number: str,
    type_code: str = "",
    surname: str = "",
    given_names: str = "",
    birth_date: str | dt.date | None = "",
    sex: str = "",
    nationality: str = "",
    expiry_date: str | dt.date | None = "",
    ref: str = "",
    prefix: str = "document",
) -> DocumentQuery:
    """Normalise and validate raw document fields; raise ValidationError naming every bad field.

    ``prefix`` is the field path of the document in the caller's request, so violations read
    ``travellers[3].document.number``. Dates are ISO text, or a ``date`` a channel has already
    read (taken as it is; None or "" when absent).
    """
    bad: list[FieldViolation] = []
    # Fast paths matter here: a 480-passenger manifest validates every document on one core.
    state = to_alpha3(issuing_state) if issuing_state else None
    if state is None:
        code = issuing_state.strip()
        bad.append(
            FieldViolation(f"{prefix}.issuing_state", "required")
            if not code
            else FieldViolation(
                f"{prefix}.issuing_state",
                f"unknown state code {code[:8]!r} (ISO 3166-1 alpha-3 or ICAO code)",
            )
        )
    num = normalise_number(number)
    problem = number_problem(num)
    if problem is not None:
        bad.append(FieldViolation(f"{prefix}.number", problem))
    holder = EMPTY_HOLDER
    if surname or given_names or birth_date or sex or nationality:
        holder = _holder(surname, given_names, birth_date, sex, nationality, prefix, bad)
    expiry = _date_field(expiry_date, f"{prefix}.expiry_date", bad) if expiry_date else None
    if bad:
        raise ValidationError(bad)
    assert state is not None
    return DocumentQuery(
        issuing_state=state,
        number=num,
        type=DocumentType.from_code(type_code) if type_code else DocumentType.UNSPECIFIED,
        holder=holder,
        expiry_date=expiry,
        ref=ref,
    )


_UNTYPED = DocumentType.UNSPECIFIED


def valid_plain(  # noqa: PLR0917 - positional on purpose: called once per document
    issuing_state: str,
    number: str,
    ref: str = "",
    type_code: str = "",
    holder: Holder = EMPTY_HOLDER,
    expiry_date: dt.date | None = None,
) -> DocumentQuery | None:
    """:func:`validate_document` of a document whose state and number are valid, or None when
    either is not; then :func:`validate_document` says why. The same rules
    (:func:`~rmas.states.to_alpha3`, :func:`normalise_number`, :func:`number_problem`), without
    the keyword call, the field paths and the checks of absent fields: a 400-document manifest
    (state and number alone) or a 480-passenger PAXLST validates every document on the hub's
    one core.

    ``holder`` is one :func:`valid_holder` gave (or EMPTY_HOLDER), ``expiry_date`` a date a
    channel has read, ``type_code`` any channel's code (:meth:`DocumentType.from_code`)."""
    state = to_alpha3(issuing_state) if issuing_state else None
    if state is None:
        return None
    if _NORMAL_NUMBER.fullmatch(number) is None:  # not already normal and valid (rare)
        number = normalise_number(number)
        if number_problem(number) is not None:
            return None
    doc_type = DocumentType.from_code(type_code) if type_code else _UNTYPED
    return DocumentQuery(state, number, doc_type, holder, expiry_date, ref)


def valid_holder(
    surname: str, given_names: str, birth_date: dt.date | None, sex: str, nationality: str
) -> Holder | None:
    """The holder :func:`validate_document` builds of these fields (EMPTY_HOLDER when all are
    empty), or None when one is at fault; then :func:`validate_document` names it. A channel
    with several documents per traveller (PAXLST) builds it once, with the same rules
    (:func:`normalise_name`, :func:`parse_sex`, :func:`~rmas.states.to_alpha3`)."""
    if not (surname or given_names or birth_date or sex or nationality):
        return EMPTY_HOLDER
    nat = ""
    if nationality.strip():
        found = to_alpha3(nationality)
        if found is None:
            return None
        nat = found
    try:
        sx = parse_sex(sex)
    except ValueError:
        return None
    return Holder(
        normalise_name(surname) if surname else "",
        normalise_name(given_names) if given_names else "",
        birth_date,
        sx,
        nat,
    )


def _holder(  # noqa: PLR0917 - private helper of validate_document
    surname: str,
    given_names: str,
    birth_date: str | dt.date | None,
    sex: str,
    nationality: str,
    prefix: str,
    bad: list[FieldViolation],
) -> Holder:
    nat = ""
    if nationality.strip():
        n = to_alpha3(nationality)
        if n is None:
            bad.append(FieldViolation(f"{prefix}.holder.nationality", "unknown nationality code"))
        else:
            nat = n
    birth = _date_field(birth_date, f"{prefix}.holder.birth_date", bad)
    try:
        sx = parse_sex(sex)
    except ValueError as exc:
        bad.append(FieldViolation(f"{prefix}.holder.sex", str(exc)))
        sx = ""
    return Holder(
        surname=normalise_name(surname) if surname else "",
        given_names=normalise_name(given_names) if given_names else "",
        birth_date=birth,
        sex=sx,
        nationality=nat,
    )


def _date_field(raw: str | dt.date | None, name: str, bad: list[FieldViolation]) -> dt.date | None:
    if raw is None or isinstance(raw, dt.date):
        return raw
    try:
        return parse_date(raw)
    except ValueError:
        bad.append(FieldViolation(name, "not a date (YYYY-MM-DD)"))
        return None
