"""The one check pipeline, driven directly as an edge drives it: a real hub with scripted
providers and a real SQLite audit trail.

The RPC tests (test_check_service, test_audit_rpc, test_security, test_metrics) see the same
steps from outside; these pin their order: admit before anything is checked, the answer built in
the caller's view before the commit, and no answer once the commit fails."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from rmas.audit.entry import Caller, Channel, DocumentKeyer
from rmas.audit.sink import AuditSink
from rmas.audit.trail import AuditTrail
from rmas.documents import DocumentQuery, validate_document
from rmas.grpckit.auth import Admitted
from rmas.hub import Hub
from rmas.security.access import AccessPolicy, CallerRule, RateLimited, Role, View
from rmas.server.pipeline import CheckOutcome, CheckPipeline, CheckRequest, Unrecorded
from rmas.testing import FakeProvider
from rmas.verdict import Directive, RecordStatus
from tests.audit import stored_entries

AIRLINE = CallerRule("rmas://airline/QF", Role.AIRLINE, documents_per_s=0.001, burst=3)
QF = Admitted(Caller(AIRLINE.identity, Role.AIRLINE.value), View.DIRECTIVE, AIRLINE)


def documents(n: int) -> list[DocumentQuery]:
    return [
        validate_document(issuing_state="NZL", number=f"LA{i:06d}", ref=f"t{i}", prefix="document")
        for i in range(1, n + 1)
    ]


@pytest.fixture
async def trail(tmp_path: Path) -> AsyncIterator[AuditTrail]:
    sink = AuditSink(f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}", timeout_s=0.2)
    trail = AuditTrail(sink, DocumentKeyer(os.urandom(32)))
    await trail.start()
    yield trail
    await trail.aclose()


def count(outcome: CheckOutcome) -> int:
    return len(outcome.results)


def pipeline(trail: AuditTrail) -> tuple[Hub, CheckPipeline]:
    nzl = FakeProvider.issuer("NZL", ["NZL"], {("NZL", "LA000002"): RecordStatus.STOLEN})
    hub = Hub([nzl])
    policy = AccessPolicy([AIRLINE], documents_per_s=0.001, burst=3)
    return hub, CheckPipeline(hub, policy=policy, audit=trail)


async def test_the_answer_is_built_in_the_callers_view_while_the_entries_commit(
    trail: AuditTrail,
) -> None:
    _, steps = pipeline(trail)
    seen: list[tuple[int, CheckOutcome]] = []

    def answer(outcome: CheckOutcome) -> list[Directive]:
        seen.append((trail.sink.commits, outcome))
        return [r.directive for r in outcome.results]

    request = CheckRequest(QF, Channel.MANIFEST, documents(3), reference="m-1")
    directives = await steps.run(request, answer)
    [(commits_then, outcome)] = seen
    assert directives == [Directive.OK_TO_BOARD, Directive.DO_NOT_BOARD, Directive.OK_TO_BOARD]
    assert (outcome.view, outcome.reference) == (View.DIRECTIVE, "m-1")
    assert commits_then == 0  # built before the commit
    assert trail.sink.commits == 1  # returned after it
    entries = await stored_entries(trail.sink.url)
    assert [e.check_id for e in entries] == [r.check_id for r in outcome.results]
    assert {(e.caller, e.channel, e.reference) for e in entries} == {
        (QF.caller.identity, Channel.MANIFEST, "m-1")
    }


async def test_a_caller_over_its_rate_is_refused_before_anything_is_checked(
    trail: AuditTrail,
) -> None:
    hub, steps = pipeline(trail)
    await steps.run(CheckRequest(QF, Channel.MANIFEST, documents(3)), count)
    checked = hub.checked
    with pytest.raises(RateLimited):
        await steps.run(CheckRequest(QF, Channel.DOCUMENT, documents(1)), count)
    assert hub.checked == checked
    assert trail.sink.commits == 1


async def test_no_answer_leaves_when_the_entries_cannot_be_committed(trail: AuditTrail) -> None:
    _, steps = pipeline(trail)
    await steps.run(CheckRequest(QF, Channel.DOCUMENT, documents(1)), count)
    answered: list[CheckOutcome] = []
    blocker = sqlite3.connect(
        trail.sink.url.removeprefix("sqlite+aiosqlite:///"), isolation_level=None
    )
    blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the file: the commit times out
    try:
        with pytest.raises(Unrecorded) as err:
            await steps.run(CheckRequest(QF, Channel.MANIFEST, documents(2)), answered.append)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    [outcome] = answered  # built, but never returned
    ids = ", ".join(r.check_id for r in outcome.results)
    assert f"(check ids {ids})" in str(err.value)
