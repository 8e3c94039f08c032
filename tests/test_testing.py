"""rmas.testing's FakeProvider: a handler function, with the scripted records built on it."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest

from rmas.documents import DocumentQuery
from rmas.errors import ProviderUnavailable
from rmas.providers import Provider, Scope
from rmas.testing import FakeProvider
from rmas.verdict import NO_RECORD, Record, RecordStatus


async def test_a_fake_provider_answers_through_its_handler_and_records_the_calls() -> None:
    seen: list[tuple[list[str], float]] = []

    async def handler(queries: Sequence[DocumentQuery], deadline: float) -> list[Record]:
        seen.append(([q.number for q in queries], deadline))
        return [Record(RecordStatus.LOST) if q.number == "A2" else NO_RECORD for q in queries]

    p = FakeProvider.answering("NZL", handler, states=["NZL"])
    assert isinstance(p, Provider) and p.info.scope is Scope.ISSUER
    deadline = time.monotonic() + 5
    records = await p.lookup_many(
        [DocumentQuery("NZL", "A1"), DocumentQuery("NZL", "A2")], deadline
    )
    assert [r.status for r in records] == [RecordStatus.NO_RECORD, RecordStatus.LOST]
    assert seen == [(["A1", "A2"], deadline)]
    assert [[q.number for q in call] for call in p.calls] == [["A1", "A2"]]
    assert FakeProvider.answering("SLTD", handler).info.scope is Scope.GLOBAL
    assert "FakeProvider(" in repr(p)


async def test_the_scripted_records_are_the_default_handler_and_follow_changes() -> None:
    p = FakeProvider.issuer("NZL", ["NZL"], {("NZL", "A1"): RecordStatus.STOLEN})
    assert p.handler == p.scripted
    (r,) = await p.lookup_many([DocumentQuery("NZL", "A1")], time.monotonic() + 5)
    assert r.status is RecordStatus.STOLEN
    p.failure = "unavailable"  # a test changes the script as it goes
    with pytest.raises(ProviderUnavailable):
        await p.lookup_many([DocumentQuery("NZL", "A1")], time.monotonic() + 5)
    assert "FakeProvider(" in repr(p)  # the handler is not shown (it would show the provider)
