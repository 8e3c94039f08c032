"""The SLTD-style store's vocabulary, and its translation to and from rmas's.

The store speaks like a central international database, not like rmas: countries are ISO 3166-1
alpha-2 codes, document types are words, and its statuses have their own names. Translation is
explicit in both directions; a code the store cannot express is reported, never guessed.
"""

from __future__ import annotations

from rmas.documents import DocumentType
from rmas.states import ISO_ALPHA3, canonical_economy
from rmas.verdict import RecordStatus

__all__ = [
    "COUNTRIES",
    "STATUSES",
    "TYPES",
    "country_from_sltd",
    "country_to_sltd",
    "status_from_sltd",
    "type_from_sltd",
]

#: ISO alpha-2 codes the store accepts.
COUNTRIES = frozenset(a2 for a2, _ in ISO_ALPHA3.values())
TYPES = ("PASSPORT", "ID_CARD", "VISA", "OTHER")

STATUSES = ("STOLEN", "LOST", "REVOKED", "INVALIDATED", "STOLEN_BLANK")

_STATUS = {
    "STOLEN": RecordStatus.STOLEN,
    "LOST": RecordStatus.LOST,
    "REVOKED": RecordStatus.REVOKED,
    "INVALIDATED": RecordStatus.INVALID,
    "STOLEN_BLANK": RecordStatus.STOLEN_BLANK,
}


def country_to_sltd(state: str) -> str | None:
    """rmas state code (alpha-3 or ICAO) -> alpha-2; None when it has none (UTO, XXA...)."""
    entry = ISO_ALPHA3.get(canonical_economy(state))
    return entry[0] if entry else None


_FROM_ALPHA2 = {a2: a3 for a3, (a2, _name) in ISO_ALPHA3.items()}


def country_from_sltd(country: str) -> str | None:
    """The store's alpha-2 -> rmas's alpha-3; None for a code it should never send."""
    return _FROM_ALPHA2.get(country)


def type_from_sltd(t: str) -> DocumentType:
    """The store's word as rmas's type (the one table: :meth:`DocumentType.from_code`)."""
    return DocumentType.from_code(t)


def status_from_sltd(s: str) -> RecordStatus:
    """Raises KeyError for a status the store should never send."""
    return _STATUS[s]
