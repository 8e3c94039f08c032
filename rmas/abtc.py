"""APEC Business Travel Card (ABTC) checks: the card's identity, what its home economy knows of
it, and the one rule that says whether an officer's lane may accept it.

Pure: no gRPC, SQL or HTTP. An ABTC is identified by its **home economy** (the member that issued
it) and its **card number**, normalised like a document number (:func:`rmas.documents.
normalise_number`). Every card is tied to one passport and lists the economies that pre-cleared
its holder. The hub asks the providers of the card's home economy that answer ABTC lookups (and
every global ABTC provider) under the passport check's deadline, then :func:`judge_card` joins
their answers into a :class:`CardResult` for the **checking economy** (the hub's own, or the one
the request names).

A card problem never changes the passport's verdict or directive: it decides the lane, not
boarding; airlines never see any of it.

The rule (tested row by row in tests/test_abtc.py), in order:

1. a provider that answered says NOT_ISSUED, STOLEN, LOST, CANCELLED or EXPIRED (most severe
   first, from any provider that answered, even when others failed) -> not usable, that reason;
2. the home economy's provider (or a required global one) did not answer, or nobody answers for
   the card's economy -> INCOMPLETE (not usable: no card is accepted on a guess);
3. the card is VALID but its expiry date is before today -> EXPIRED;
4. the card is tied to another passport than the one presented -> TIED_TO_OTHER_PASSPORT;
5. the checking economy is not among those that pre-cleared the holder -> NOT_PRE_CLEARED;
6. otherwise usable.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rmas.documents import normalise_number, number_problem
from rmas.errors import FieldViolation, ValidationError
from rmas.states import canonical_economy, to_alpha3
from rmas.verdict import HolderMatch, Outcome

__all__ = [
    "STORED_STATUSES",
    "UNKNOWN_CARD",
    "CardAnswer",
    "CardQuery",
    "CardReason",
    "CardRecord",
    "CardResult",
    "CardStatus",
    "judge_card",
    "parse_economies",
    "validate_card",
    "validate_economy",
]


class CardStatus(enum.StrEnum):
    """What the card's home economy (or a central ABTC store) knows of a card."""

    VALID = "VALID"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"
    LOST = "LOST"
    STOLEN = "STOLEN"
    #: The home economy never issued this number (a counterfeit card, physical or virtual). A card
    #: store is a complete registry of the cards its economy issued: an unknown number is this.
    NOT_ISSUED = "NOT_ISSUED"


#: The statuses a store keeps (NOT_ISSUED is an answer, never stored).
STORED_STATUSES: frozenset[CardStatus] = frozenset(CardStatus) - {CardStatus.NOT_ISSUED}


class CardReason(enum.StrEnum):
    """Why a card is not usable at the checking economy's lane ("" when it is)."""

    NONE = ""
    NOT_ISSUED = "NOT_ISSUED"
    STOLEN = "STOLEN"
    LOST = "LOST"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"
    INCOMPLETE = "INCOMPLETE"
    TIED_TO_OTHER_PASSPORT = "TIED_TO_OTHER_PASSPORT"
    NOT_PRE_CLEARED = "NOT_PRE_CLEARED"


# Rule 1's order: the most severe answer wins.
_REFUSING: tuple[CardStatus, ...] = (
    CardStatus.NOT_ISSUED,
    CardStatus.STOLEN,
    CardStatus.LOST,
    CardStatus.CANCELLED,
    CardStatus.EXPIRED,
)


@dataclass(frozen=True, slots=True)
class CardQuery:
    """One card to check, normalised and validated (see :func:`validate_card`)."""

    #: The economy that issued the card (alpha-3, as routing keys it: ``D`` is ``DEU``).
    home_economy: str
    #: Normalised as a document number is.
    number: str
    #: The economy whose lane the card is presented at.
    checking_economy: str
    #: The passport presented with the card (normalised number; "" when none was given).
    passport_number: str = ""
    #: Its issuing economy ("" when unknown).
    passport_economy: str = ""

    @property
    def key(self) -> tuple[str, str]:
        """(home economy, number): what a card store is keyed by."""
        return (self.home_economy, self.number)


@dataclass(frozen=True, slots=True)
class CardRecord:
    """A provider's answer for one card."""

    status: CardStatus
    expiry_date: dt.date | None = None
    #: The passport the card is tied to (normalised number), and its issuing economy if known.
    passport_number: str = ""
    passport_economy: str = ""
    #: Economies that pre-cleared the holder (alpha-3 codes).
    pre_cleared: frozenset[str] = frozenset()
    record_ref: str = ""
    reporting_authority: str = ""


#: What a complete card registry answers for a number it does not hold.
UNKNOWN_CARD = CardRecord(CardStatus.NOT_ISSUED)


@dataclass(frozen=True, slots=True)
class CardAnswer:
    """One provider's contribution to a card's verdict (like :class:`rmas.verdict.SourceAnswer`)."""

    provider_id: str
    outcome: Outcome
    required: bool
    #: The card's home economy's own provider.
    issuer: bool
    latency_ms: float = 0.0
    record: CardRecord | None = None
    contact: str = ""
    error: str = ""


@dataclass(frozen=True, slots=True)
class CardResult:
    """The card's verdict for the checking economy: what the officer's lane needs."""

    query: CardQuery
    usable: bool
    reason: CardReason
    #: The decisive record's status; None when no provider answered.
    status: CardStatus | None
    pre_cleared_for_us: bool
    expiry_date: dt.date | None
    #: The provider whose answer decided (or, when INCOMPLETE, the one that did not answer).
    provider_id: str
    outcome: Outcome | None
    passport_match: HolderMatch = HolderMatch.NOT_CHECKED
    #: Human-readable explanation for the officer.
    detail: str = ""
    record: CardRecord | None = None
    contact: str = ""
    answers: tuple[CardAnswer, ...] = ()


def judge_card(
    query: CardQuery, answers: Sequence[CardAnswer], today: dt.date | None = None
) -> CardResult:
    """Join the providers' answers about one card into its verdict. See the module docstring."""
    today = today or dt.date.today()
    answered = [a for a in answers if a.outcome is Outcome.ANSWERED and a.record is not None]
    # Rule 1: a refusing status from any provider that answered.
    for status in _REFUSING:
        for a in answered:
            assert a.record is not None
            if a.record.status is status:
                return _result(query, a, CardReason(status.value), answers, today,
                               _REFUSAL_TEXT[status])  # fmt: skip
    missing = [a for a in answers if a.outcome is not Outcome.ANSWERED and a.required]
    if missing or not answered:
        gone = missing[0] if missing else None
        if gone is not None:
            text = f"{gone.provider_id} did not answer ({gone.outcome.value}: {gone.error})"
        else:
            text = f"no provider answers for ABTC cards of {query.home_economy}"
        return CardResult(
            query=query, usable=False, reason=CardReason.INCOMPLETE, status=None,
            pre_cleared_for_us=False, expiry_date=None,
            provider_id=gone.provider_id if gone else "",
            outcome=gone.outcome if gone else None, detail=text[:300],
            contact=gone.contact if gone else "", answers=tuple(answers),
        )  # fmt: skip
    # Every answer is VALID: the home economy's word first.
    decisive = next((a for a in answered if a.issuer), answered[0])
    rec = decisive.record
    assert rec is not None
    if rec.expiry_date is not None and rec.expiry_date < today:
        return _result(query, decisive, CardReason.EXPIRED, answers, today,
                       f"card expired on {rec.expiry_date.isoformat()}")  # fmt: skip
    if _passport_match(query, rec) is HolderMatch.MISMATCH:
        return _result(query, decisive, CardReason.TIED_TO_OTHER_PASSPORT, answers, today,
                       "the card is tied to another passport than the one presented")  # fmt: skip
    if query.checking_economy not in rec.pre_cleared:
        return _result(query, decisive, CardReason.NOT_PRE_CLEARED, answers, today,
                       f"the holder is not pre-cleared for {query.checking_economy}")  # fmt: skip
    return _result(query, decisive, CardReason.NONE, answers, today,
                   f"valid, pre-cleared for {query.checking_economy}")  # fmt: skip


_REFUSAL_TEXT = {
    CardStatus.NOT_ISSUED: "the home economy never issued this card number (counterfeit?)",
    CardStatus.STOLEN: "the card is reported stolen",
    CardStatus.LOST: "the card is reported lost",
    CardStatus.CANCELLED: "the card is cancelled",
    CardStatus.EXPIRED: "the card has expired",
}


def _passport_match(query: CardQuery, rec: CardRecord) -> HolderMatch:
    """Is the card tied to the passport presented? Compared on number, and on issuing economy
    when both sides know it."""
    if not query.passport_number or not rec.passport_number:
        return HolderMatch.NOT_CHECKED
    if rec.passport_number != query.passport_number:
        return HolderMatch.MISMATCH
    both = rec.passport_economy and query.passport_economy
    if both and rec.passport_economy != query.passport_economy:
        return HolderMatch.MISMATCH
    return HolderMatch.MATCH


def _result(  # noqa: PLR0917 - private helper of judge_card
    query: CardQuery,
    a: CardAnswer,
    reason: CardReason,
    answers: Sequence[CardAnswer],
    today: dt.date,
    detail: str,
) -> CardResult:
    rec = a.record
    assert rec is not None
    return CardResult(
        query=query,
        usable=reason is CardReason.NONE,
        reason=reason,
        status=rec.status,
        pre_cleared_for_us=query.checking_economy in rec.pre_cleared,
        expiry_date=rec.expiry_date,
        provider_id=a.provider_id,
        outcome=a.outcome,
        passport_match=_passport_match(query, rec),
        detail=detail,
        record=rec,
        contact=a.contact,
        answers=tuple(answers),
    )


# -- validation (what every channel and store calls) -------------------------------------------


def validate_economy(raw: str) -> str | None:
    """An economy code (alpha-3, ICAO or alpha-2) as routing keys it; None when unknown."""
    code = to_alpha3(raw) if raw.strip() else None
    return canonical_economy(code) if code is not None else None


def parse_economies(raw: Iterable[str]) -> frozenset[str]:
    """Economy codes (a CSV's space-separated ``pre_cleared``, a feed's list); raises ValueError
    naming the first unknown code."""
    out: set[str] = set()
    for code in raw:
        if not code.strip():
            continue
        economy = validate_economy(code)
        if economy is None:
            raise ValueError(f"unknown economy code {code.strip()[:8]!r}")
        out.add(economy)
    return frozenset(out)


def validate_card(
    *,
    home_economy: str,
    number: str,
    checking_economy: str,
    passport_number: str = "",
    passport_state: str = "",
    prefix: str = "abtc",
    checking_field: str = "checking_economy",
) -> CardQuery:
    """Normalise and validate a card to check; raise ValidationError naming every bad field.

    ``home_economy`` defaults to the passport's issuing state when empty; ``checking_economy``
    is required (the request's, or the hub's own).
    """
    bad: list[FieldViolation] = []
    home_raw = home_economy or passport_state
    home = validate_economy(home_raw) if home_raw else None
    if home is None:
        bad.append(FieldViolation(
            f"{prefix}.home_economy",
            f"unknown economy code {home_raw.strip()[:8]!r}" if home_raw.strip() else "required",
        ))  # fmt: skip
    num = normalise_number(number)
    problem = number_problem(num)
    if problem is not None:
        bad.append(FieldViolation(f"{prefix}.number", problem))
    checking = validate_economy(checking_economy) if checking_economy else None
    if checking is None:
        bad.append(FieldViolation(
            checking_field,
            f"unknown economy code {checking_economy.strip()[:8]!r}"
            if checking_economy.strip()
            else "required: the hub has no [hub] economy, name the checking economy",
        ))  # fmt: skip
    if bad:
        raise ValidationError(bad)
    assert home is not None
    assert checking is not None
    passport = normalise_number(passport_number)
    return CardQuery(
        home_economy=home,
        number=num,
        checking_economy=checking,
        passport_number=passport,
        passport_economy=validate_economy(passport_state) or "" if passport_state else "",
    )
