"""The ABTC rule (rmas.abtc.judge_card), row by row, and card validation."""

from __future__ import annotations

import datetime as dt

import pytest

from rmas.abtc import (
    CardAnswer,
    CardQuery,
    CardReason,
    CardRecord,
    CardStatus,
    judge_card,
    parse_economies,
    validate_card,
)
from rmas.errors import ValidationError
from rmas.verdict import HolderMatch, Outcome

TODAY = dt.date(2026, 12, 7)
LATER = dt.date(2029, 1, 31)
QUERY = CardQuery("AUS", "AU1234567", "NZL", passport_number="PA0000101", passport_economy="AUS")


def rec(
    status: CardStatus = CardStatus.VALID,
    *,
    expiry: dt.date | None = LATER,
    passport: str = "PA0000101",
    passport_economy: str = "",
    pre: tuple[str, ...] = ("NZL", "JPN"),
) -> CardRecord:
    return CardRecord(status, expiry, passport, passport_economy, frozenset(pre), "R-1", "DHA")


def home(record: CardRecord | None = None, outcome: Outcome = Outcome.ANSWERED) -> CardAnswer:
    return CardAnswer("AUS", outcome, required=True, issuer=True,
                      record=record if outcome is Outcome.ANSWERED else None,
                      error="" if outcome is Outcome.ANSWERED else "down")  # fmt: skip


def central(
    record: CardRecord | None = None, outcome: Outcome = Outcome.ANSWERED, required: bool = True
) -> CardAnswer:
    return CardAnswer("ABTC", outcome, required=required, issuer=False,
                      record=record if outcome is Outcome.ANSWERED else None)  # fmt: skip


# (label, answers, usable, reason, status, pre_cleared_for_us, passport_match)
ROWS = [
    ("genuine, pre-cleared for the checking economy", [home(rec())],
     True, CardReason.NONE, CardStatus.VALID, True, HolderMatch.MATCH),
    ("not pre-cleared for the checking economy", [home(rec(pre=("AUS", "JPN")))],
     False, CardReason.NOT_PRE_CLEARED, CardStatus.VALID, False, HolderMatch.MATCH),
    ("no pre-clearance at all", [home(rec(pre=()))],
     False, CardReason.NOT_PRE_CLEARED, CardStatus.VALID, False, HolderMatch.MATCH),
    ("expired by status", [home(rec(CardStatus.EXPIRED))],
     False, CardReason.EXPIRED, CardStatus.EXPIRED, True, HolderMatch.MATCH),
    ("VALID but its expiry date has passed", [home(rec(expiry=dt.date(2026, 12, 6)))],
     False, CardReason.EXPIRED, CardStatus.VALID, True, HolderMatch.MATCH),
    ("expiring today is still valid", [home(rec(expiry=TODAY))],
     True, CardReason.NONE, CardStatus.VALID, True, HolderMatch.MATCH),
    ("cancelled", [home(rec(CardStatus.CANCELLED))],
     False, CardReason.CANCELLED, CardStatus.CANCELLED, True, HolderMatch.MATCH),
    ("lost", [home(rec(CardStatus.LOST))],
     False, CardReason.LOST, CardStatus.LOST, True, HolderMatch.MATCH),
    ("stolen", [home(rec(CardStatus.STOLEN))],
     False, CardReason.STOLEN, CardStatus.STOLEN, True, HolderMatch.MATCH),
    ("tied to an older passport", [home(rec(passport="PA0000007"))],
     False, CardReason.TIED_TO_OTHER_PASSPORT, CardStatus.VALID, True, HolderMatch.MISMATCH),
    ("tied to the same number of another state", [home(rec(passport_economy="NZL"))],
     False, CardReason.TIED_TO_OTHER_PASSPORT, CardStatus.VALID, True, HolderMatch.MISMATCH),
    ("tied passport's state known and equal", [home(rec(passport_economy="AUS"))],
     True, CardReason.NONE, CardStatus.VALID, True, HolderMatch.MATCH),
    ("the store does not know the tied passport", [home(rec(passport=""))],
     True, CardReason.NONE, CardStatus.VALID, True, HolderMatch.NOT_CHECKED),
    ("never issued: the counterfeit", [home(CardRecord(CardStatus.NOT_ISSUED))],
     False, CardReason.NOT_ISSUED, CardStatus.NOT_ISSUED, False, HolderMatch.NOT_CHECKED),
    ("home economy down", [home(outcome=Outcome.UNAVAILABLE)],
     False, CardReason.INCOMPLETE, None, False, HolderMatch.NOT_CHECKED),
    ("home economy timed out, central store says VALID", [
        home(outcome=Outcome.TIMEOUT), central(rec())],
     False, CardReason.INCOMPLETE, None, False, HolderMatch.NOT_CHECKED),
    ("home economy down, central store says STOLEN: a refusal wins", [
        home(outcome=Outcome.UNAVAILABLE), central(rec(CardStatus.STOLEN))],
     False, CardReason.STOLEN, CardStatus.STOLEN, True, HolderMatch.MATCH),
    ("nobody answers for the card's economy", [],
     False, CardReason.INCOMPLETE, None, False, HolderMatch.NOT_CHECKED),
    ("only a central store, VALID", [central(rec())],
     True, CardReason.NONE, CardStatus.VALID, True, HolderMatch.MATCH),
    ("optional central store down, home VALID", [
        home(rec()), central(outcome=Outcome.ERROR, required=False)],
     True, CardReason.NONE, CardStatus.VALID, True, HolderMatch.MATCH),
    ("the home economy's record decides among VALID answers", [
        central(rec(pre=())), home(rec())],
     True, CardReason.NONE, CardStatus.VALID, True, HolderMatch.MATCH),
    ("stolen beats expired", [home(rec(CardStatus.EXPIRED)), central(rec(CardStatus.STOLEN))],
     False, CardReason.STOLEN, CardStatus.STOLEN, True, HolderMatch.MATCH),
    ("not issued beats stolen", [
        home(CardRecord(CardStatus.NOT_ISSUED)), central(rec(CardStatus.STOLEN))],
     False, CardReason.NOT_ISSUED, CardStatus.NOT_ISSUED, False, HolderMatch.NOT_CHECKED),
    ("expired beats another passport and no pre-clearance", [
        home(rec(expiry=dt.date(2020, 1, 1), passport="X1", pre=()))],
     False, CardReason.EXPIRED, CardStatus.VALID, False, HolderMatch.MISMATCH),
    ("another passport beats no pre-clearance", [home(rec(passport="X1", pre=()))],
     False, CardReason.TIED_TO_OTHER_PASSPORT, CardStatus.VALID, False, HolderMatch.MISMATCH),
]  # fmt: skip


@pytest.mark.parametrize(
    ("answers", "usable", "reason", "status", "pre_cleared", "match"),
    [row[1:] for row in ROWS],
    ids=[row[0] for row in ROWS],
)
def test_rule(
    answers: list[CardAnswer],
    usable: bool,
    reason: CardReason,
    status: CardStatus | None,
    pre_cleared: bool,
    match: HolderMatch,
) -> None:
    r = judge_card(QUERY, answers, TODAY)
    assert (r.usable, r.reason, r.status, r.pre_cleared_for_us, r.passport_match) == (
        usable, reason, status, pre_cleared, match,
    )  # fmt: skip
    assert r.detail


def test_incomplete_names_the_provider_that_did_not_answer() -> None:
    r = judge_card(QUERY, [home(outcome=Outcome.UNAVAILABLE)], TODAY)
    assert (r.provider_id, r.outcome) == ("AUS", Outcome.UNAVAILABLE)
    assert "AUS did not answer" in r.detail


def test_decisive_provider_and_expiry_are_reported() -> None:
    r = judge_card(QUERY, [central(rec(pre=())), home(rec())], TODAY)
    assert (r.provider_id, r.expiry_date, r.outcome) == ("AUS", LATER, Outcome.ANSWERED)


def test_validate_card_normalises_like_documents_and_defaults_home_to_the_passport() -> None:
    q = validate_card(home_economy="", number="au 123-4567", checking_economy="nz",
                      passport_number="pa 0000101", passport_state="AUS")  # fmt: skip
    assert q == CardQuery("AUS", "AU1234567", "NZL", "PA0000101", "AUS")
    d = validate_card(home_economy="", number="C1", checking_economy="NZL", passport_state="D")
    assert d.home_economy == "DEU"


def test_validate_card_names_every_bad_field() -> None:
    with pytest.raises(ValidationError) as err:
        validate_card(home_economy="QQQ", number="A!", checking_economy="")
    fields = [v.field for v in err.value.violations]
    assert fields == ["abtc.home_economy", "abtc.number", "checking_economy"]
    with pytest.raises(ValidationError) as err:
        validate_card(home_economy="", number="", checking_economy="XXZ")
    assert [v.description for v in err.value.violations] == [
        "required", "required", "unknown economy code 'XXZ'",
    ]  # fmt: skip


def test_parse_economies() -> None:
    assert parse_economies(["nzl", "AU", "JPN"]) == {"NZL", "AUS", "JPN"}
    with pytest.raises(ValueError, match="QQ"):
        parse_economies(["NZL", "QQ"])
