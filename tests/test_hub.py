"""The hub's batch of results: one decision per distinct answer set, results as the constructor
builds them (issue 20's per-document savings must not change a verdict)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from rmas.documents import DocumentQuery
from rmas.hub import TURN, CheckResult, Hub, HubPolicy
from rmas.providers import ProviderInfo
from rmas.testing import FakeProvider
from rmas.verdict import (
    Directive,
    IncompletePolicy,
    Record,
    RecordStatus,
    SourceAnswer,
    Verdict,
    merge,
)


async def test_documents_sharing_answers_get_each_their_own_merge() -> None:
    # An issuer that knows some numbers (STOLEN, VALID) and a global store that knows others:
    # documents with the same answers share a decision, the others must each get their own.
    nzl = FakeProvider.issuer(
        "nzl", ["NZL"], {("NZL", "S1"): RecordStatus.STOLEN, ("NZL", "V1"): RecordStatus.VALID}
    )
    sltd = FakeProvider.global_("sltd", {("NZL", "L1"): RecordStatus.LOST}, required=False)
    hub = Hub([nzl, sltd])
    numbers = ["N1", "S1", "N2", "V1", "L1", "N3", "S1", "L1", "N4"]
    queries = [DocumentQuery("NZL", n, ref=str(i)) for i, n in enumerate(numbers)]
    results = await hub.check([*queries, DocumentQuery("FRA", "F1")], time.monotonic() + 5)
    expected = {"S1": Verdict.ALERT, "L1": Verdict.ALERT}
    for q, r in zip(queries, results, strict=False):
        assert r.ref == q.ref and r.document == q
        assert r.verdict is expected.get(q.number, Verdict.CLEAR), q.number
        assert merge(r.sources).verdict is r.verdict
        assert [a.provider_id for a in r.sources] == ["nzl", "sltd"]
        assert r.issuer_consulted
        assert r.warnings == ()
    stolen = [r for r in results if r.document and r.document.number == "S1"]
    assert all(s.record == Record(RecordStatus.STOLEN) for s in stolen[0].sources[:1])
    # The French document is asked of the global store only: not consulted, and a warning.
    fra = results[-1]
    assert not fra.issuer_consulted and fra.verdict is Verdict.CLEAR
    assert "the issuer (FRA) was not consulted" in fra.warnings[0]
    assert len({r.check_id for r in results}) == len(results)


async def test_a_failed_call_and_no_record_are_not_mixed_up() -> None:
    up = FakeProvider.issuer("nzl", ["NZL"])
    down = FakeProvider.issuer("aus", ["AUS"], failure="unavailable")
    hub = Hub([up, down])
    docs = [DocumentQuery(s, f"X{i}") for i, s in enumerate(["NZL", "AUS", "NZL", "AUS"])]
    results = await hub.check(docs, time.monotonic() + 5)
    assert [r.verdict for r in results] == [
        Verdict.CLEAR, Verdict.INCOMPLETE, Verdict.CLEAR, Verdict.INCOMPLETE
    ]  # fmt: skip
    assert [r.directive for r in results][1] is Directive.CONTACT_AUTHORITY
    answers: list[SourceAnswer] = [r.sources[0] for r in results]
    assert answers[0] is answers[2] and answers[1] is answers[3]


async def test_a_batch_of_plain_documents_is_answered_as_within_a_mixed_batch() -> None:
    """The plain-documents path (every item a DocumentQuery) and the mixed path (here with an
    invalid document among them) give the same results, warnings and decisions included."""
    import datetime as dt

    from rmas.errors import FieldViolation
    from rmas.hub import InvalidDocument

    nzl = FakeProvider.issuer("nzl", ["NZL"], {("NZL", "S1"): RecordStatus.STOLEN})
    down = FakeProvider.issuer("aus", ["AUS"], failure="unavailable")
    sltd = FakeProvider.global_("sltd", {("FRA", "F2"): RecordStatus.LOST}, required=False)
    hub = Hub([nzl, down, sltd])
    past = dt.date(2001, 1, 1)
    queries = [
        DocumentQuery("NZL", "S1", ref="a"),
        DocumentQuery("AUS", "A1", ref="b"),
        DocumentQuery("FRA", "F2", ref="c"),
        DocumentQuery("NZL", "N1", ref="d", expiry_date=past),
        DocumentQuery("FRA", "F3", ref="e"),
        DocumentQuery("NZL", "N2", ref="f"),
    ]
    plain = await hub.check(queries, time.monotonic() + 5)
    bad = InvalidDocument("x", (FieldViolation("number", "required"),))
    mixed = await hub.check([bad, *queries], time.monotonic() + 5)
    assert mixed[0].verdict is Verdict.INVALID_DATA

    def seen(r: CheckResult) -> tuple[object, ...]:
        names = ("ref", "verdict", "directive", "unchecked", "warnings", "issuer_consulted")
        return (*(getattr(r, f) for f in names), r.document)

    assert [seen(r) for r in plain] == [seen(r) for r in mixed[1:]]
    assert [[(a.provider_id, a.outcome, a.record) for a in r.sources] for r in plain] == [
        [(a.provider_id, a.outcome, a.record) for a in r.sources] for r in mixed[1:]
    ]
    assert [r.verdict for r in plain] == [
        Verdict.ALERT, Verdict.INCOMPLETE, Verdict.ALERT, Verdict.CLEAR, Verdict.CLEAR,
        Verdict.CLEAR,
    ]  # fmt: skip
    assert plain[3].warnings == ("document expired on 2001-01-01",)
    assert "was not consulted" in plain[4].warnings[0]


async def test_a_reload_between_turns_does_not_split_a_batchs_policy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A large batch merged in turns (single checks are coming) while a reload switches the
    # incomplete policy from fail-closed to fail-open after its first slice: the whole batch
    # keeps the rule it started with.
    failing = FakeProvider(ProviderInfo("NZL", frozenset({"NZL"})), failure="unavailable")
    hub = Hub([failing], HubPolicy(on_incomplete=IncompletePolicy.CONTACT))
    hub.single_at = time.monotonic()
    merged = Hub._merged
    slices: list[int] = []

    def merging(self: Hub, *args: Any) -> list[CheckResult]:
        out = merged(self, *args)
        if not slices:
            hub.reconfigure([failing], HubPolicy(on_incomplete=IncompletePolicy.BOARD))
        slices.append(len(out))
        return out

    monkeypatch.setattr(Hub, "_merged", merging)
    n = 5 * TURN
    results = await hub.check(
        [DocumentQuery("NZL", f"N{i}") for i in range(n)], time.monotonic() + 5
    )
    assert slices == [TURN] * 5
    assert {r.verdict for r in results} == {Verdict.INCOMPLETE}
    assert {r.directive for r in results} == {Directive.CONTACT_AUTHORITY}
    # The next batch is under the new rule.
    after = await hub.check([DocumentQuery("NZL", "N1")], time.monotonic() + 5)
    assert after[0].directive is Directive.OK_TO_BOARD
