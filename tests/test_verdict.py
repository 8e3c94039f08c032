"""The verdict rules, one table row per case (architecture brief, "Verdict rules")."""

from __future__ import annotations

import pytest

from rmas.verdict import (
    ALERTING,
    Directive,
    HolderMatch,
    IncompletePolicy,
    Outcome,
    Record,
    RecordStatus,
    SourceAnswer,
    Verdict,
    merge,
)

A = Outcome.ANSWERED


def src(
    outcome: Outcome = A,
    status: RecordStatus | None = RecordStatus.NO_RECORD,
    *,
    required: bool = True,
    issuer: bool = True,
    match: HolderMatch = HolderMatch.NOT_CHECKED,
) -> SourceAnswer:
    record = Record(status, holder_match=match) if status and outcome is A else None
    return SourceAnswer(
        "p", outcome, required=required, issuer=issuer, latency_ms=1.0, record=record
    )


S = RecordStatus
CONTACT = IncompletePolicy.CONTACT
BOARD = IncompletePolicy.BOARD

# (case, answers, data_valid, policy, verdict, directive, unchecked, data_suspect)
TABLE = [
    # Rule 1: invalid data -> INVALID_DATA, whatever else.
    ("invalid data", [], False, CONTACT, Verdict.INVALID_DATA, Directive.INSUFFICIENT_DATA, False),
    ("invalid data, board policy", [], False, BOARD, Verdict.INVALID_DATA,
     Directive.INSUFFICIENT_DATA, False),
    # Rule 2: every alerting status, from issuer or global, even when others failed.
    *[
        (f"issuer says {s.value}", [src(status=s)], True, CONTACT, Verdict.ALERT,
         Directive.DO_NOT_BOARD, False)
        for s in sorted(ALERTING, key=lambda s: s.value)
    ],
    *[
        (f"global says {s.value}", [src(), src(status=s, issuer=False)], True, CONTACT,
         Verdict.ALERT, Directive.DO_NOT_BOARD, False)
        for s in sorted(ALERTING, key=lambda s: s.value)
    ],
    ("global alert while issuer timed out", [src(Outcome.TIMEOUT, None),
     src(status=S.STOLEN, issuer=False)], True, BOARD, Verdict.ALERT, Directive.DO_NOT_BOARD,
     False),
    ("optional global alert counts", [src(), src(status=S.LOST, issuer=False, required=False)],
     True, CONTACT, Verdict.ALERT, Directive.DO_NOT_BOARD, False),
    ("issuer holder mismatch", [src(status=S.VALID, match=HolderMatch.MISMATCH)], True, CONTACT,
     Verdict.ALERT, Directive.DO_NOT_BOARD, False),
    ("non-issuer holder mismatch is not an alert",
     [src(status=S.VALID), src(status=S.NO_RECORD, issuer=False, match=HolderMatch.MISMATCH)],
     True, CONTACT, Verdict.CLEAR, Directive.OK_TO_BOARD, False),
    # Rule 3: everyone required answered, no alert -> CLEAR.
    ("issuer no record", [src()], True, CONTACT, Verdict.CLEAR, Directive.OK_TO_BOARD, False),
    ("issuer valid, holder matches", [src(status=S.VALID, match=HolderMatch.MATCH)], True,
     CONTACT, Verdict.CLEAR, Directive.OK_TO_BOARD, False),
    ("issuer and global clear", [src(), src(issuer=False)], True, CONTACT, Verdict.CLEAR,
     Directive.OK_TO_BOARD, False),
    ("optional global down, issuer clear", [src(), src(Outcome.UNAVAILABLE, None, issuer=False,
     required=False)], True, CONTACT, Verdict.CLEAR, Directive.OK_TO_BOARD, False),
    ("non-participating issuer, required global clear", [src(issuer=False)], True, CONTACT,
     Verdict.CLEAR, Directive.OK_TO_BOARD, False),
    # Rule 4: something required missing -> INCOMPLETE, directive by policy.
    *[
        (f"issuer {o.value}, contact policy", [src(o, None)], True, CONTACT, Verdict.INCOMPLETE,
         Directive.CONTACT_AUTHORITY, False)
        for o in (Outcome.TIMEOUT, Outcome.UNAVAILABLE, Outcome.ERROR)
    ],
    *[
        (f"issuer {o.value}, board policy", [src(o, None)], True, BOARD, Verdict.INCOMPLETE,
         Directive.OK_TO_BOARD, True)
        for o in (Outcome.TIMEOUT, Outcome.UNAVAILABLE, Outcome.ERROR)
    ],
    ("required global timed out", [src(), src(Outcome.TIMEOUT, None, issuer=False)], True,
     CONTACT, Verdict.INCOMPLETE, Directive.CONTACT_AUTHORITY, False),
    ("no provider covers the document", [], True, CONTACT, Verdict.INCOMPLETE,
     Directive.CONTACT_AUTHORITY, False),
    ("no provider covers the document, board policy", [], True, BOARD, Verdict.INCOMPLETE,
     Directive.OK_TO_BOARD, True),
    ("only an optional provider, and it failed", [src(Outcome.ERROR, None, issuer=False,
     required=False)], True, CONTACT, Verdict.INCOMPLETE, Directive.CONTACT_AUTHORITY, False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("answers", "data_valid", "policy", "verdict", "directive", "unchecked"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_merge_follows_the_verdict_table(
    answers: list[SourceAnswer],
    data_valid: bool,
    policy: IncompletePolicy,
    verdict: Verdict,
    directive: Directive,
    unchecked: bool,
) -> None:
    d = merge(answers, policy, data_valid=data_valid)
    assert (verdict, directive, unchecked) == (d.verdict, d.directive, d.unchecked)


def test_the_table_covers_every_status_outcome_and_verdict() -> None:
    statuses = {a.record.status for row in TABLE for a in row[1] if a.record}
    outcomes = {a.outcome for row in TABLE for a in row[1]}
    assert set(RecordStatus) == statuses
    assert set(Outcome) == outcomes
    assert set(Verdict) == {row[4] for row in TABLE}
    assert set(Directive) == {row[5] for row in TABLE}
