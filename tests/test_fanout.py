"""Routing and fan-out against scripted providers (no network: the fan-out is pure asyncio)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from rmas.documents import DocumentQuery
from rmas.fanout import FanOut, Router
from rmas.testing import FakeProvider
from rmas.verdict import Outcome, Record, RecordStatus


def q(state: str, number: str) -> DocumentQuery:
    return DocumentQuery(issuing_state=state, number=number)


def test_documents_go_to_their_issuer_and_every_global_provider() -> None:
    nzl = FakeProvider.issuer("NZL", ["NZL"])
    deu = FakeProvider.issuer("DEU", ["DEU"])
    sltd = FakeProvider.global_("SLTD")
    router = Router([nzl, deu, sltd])
    assert [nzl, sltd] == router.route(q("NZL", "A1"))
    assert [deu, sltd] == router.route(q("D", "A1"))  # ICAO's D is Germany
    assert [sltd] == router.route(q("USA", "A1"))
    assert router.participates("NZL") and not router.participates("USA")


async def test_a_batch_becomes_one_call_per_provider() -> None:
    nzl = FakeProvider.issuer("NZL", ["NZL"], {("NZL", "A2"): RecordStatus.STOLEN})
    aus = FakeProvider.issuer("AUS", ["AUS"])
    sltd = FakeProvider.global_("SLTD")
    fan = FanOut(Router([nzl, aus, sltd]))
    queries = [q("NZL", "A1"), q("AUS", "B1"), q("NZL", "A2"), q("USA", "C1")]
    answers = await fan.ask(queries, time.monotonic() + 1)
    assert len(nzl.calls) == 1 and len(aus.calls) == 1 and len(sltd.calls) == 1
    assert [x.number for x in nzl.calls[0]] == ["A1", "A2"]
    assert len(sltd.calls[0]) == 4
    assert [a.provider_id for a in answers[2]] == ["NZL", "SLTD"]
    assert answers[2][0].record is not None
    assert RecordStatus.STOLEN is answers[2][0].record.status
    assert [a.provider_id for a in answers[3]] == ["SLTD"]


async def test_batch_limits_split_calls() -> None:
    nzl = FakeProvider.issuer("NZL", ["NZL"])
    nzl.info = type(nzl.info)(id="NZL", issuing_states=frozenset({"NZL"}), max_batch=3)
    fan = FanOut(Router([nzl]))
    answers = await fan.ask([q("NZL", f"A{i}") for i in range(7)], time.monotonic() + 1)
    assert [len(c) for c in nzl.calls] == [3, 3, 1]
    assert all(a[0].outcome is Outcome.ANSWERED for a in answers)


async def test_a_hanging_provider_times_out_at_the_deadline_without_delaying_others() -> None:
    slow = FakeProvider.global_("SLOW", failure="hang")
    nzl = FakeProvider.issuer("NZL", ["NZL"])
    fan = FanOut(Router([nzl, slow]))
    start = time.monotonic()
    (answers,) = await fan.ask([q("NZL", "A1")], start + 0.2)
    elapsed = time.monotonic() - start
    assert 0.19 <= elapsed < 0.4
    assert {a.provider_id: a.outcome for a in answers} == {
        "NZL": Outcome.ANSWERED,
        "SLOW": Outcome.TIMEOUT,
    }


async def test_failures_become_outcomes() -> None:
    providers = [
        FakeProvider.global_("T", failure="timeout"),
        FakeProvider.global_("U", failure="unavailable"),
        FakeProvider.global_("E", failure="error"),
        FakeProvider.global_("G", failure="garbage"),
    ]
    (answers,) = await FanOut(Router(providers)).ask([q("NZL", "A1")], time.monotonic() + 1)
    got = {a.provider_id: a.outcome for a in answers}
    assert got == {
        "T": Outcome.TIMEOUT,
        "U": Outcome.UNAVAILABLE,
        "E": Outcome.ERROR,
        "G": Outcome.ERROR,
    }
    errors = {a.provider_id: a.error for a in answers}
    assert "0 records for 1 documents" in errors["G"]


async def test_a_provider_timeout_is_capped_by_its_own_budget() -> None:
    slow = FakeProvider.issuer("NZL", ["NZL"], latency_s=0.5)
    slow.info = type(slow.info)(id="NZL", issuing_states=frozenset({"NZL"}), timeout_s=0.05)
    start = time.monotonic()
    (answers,) = await FanOut(Router([slow])).ask([q("NZL", "A1")], start + 2)
    assert Outcome.TIMEOUT is answers[0].outcome
    assert time.monotonic() - start < 0.3


async def test_cancelling_the_caller_cancels_provider_calls() -> None:
    cancelled: list[str] = []

    class Hanging(FakeProvider):
        async def lookup_many(
            self, queries: Sequence[DocumentQuery], deadline: float
        ) -> list[Record]:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append(self.info.id)
                raise
            return []

    a = Hanging.global_("A")
    b = Hanging.global_("B")
    task = asyncio.create_task(FanOut(Router([a, b])).ask([q("NZL", "1")], time.monotonic() + 5))
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    assert sorted(cancelled) == ["A", "B"]


class _Hang(FakeProvider):
    """Never answers; ``also_cancel`` makes it cancel its caller's task when the deadline's
    cancellation reaches it (a caller's cancel arriving at the same moment)."""

    also_cancel = False

    async def lookup_many(self, queries: Sequence[DocumentQuery], deadline: float) -> list[Record]:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            if self.also_cancel:
                task = asyncio.current_task()
                assert task is not None
                task.cancel()
            raise
        return []


async def test_a_single_provider_deadline_leaves_the_caller_uncancelled() -> None:
    # One provider: no task of its own, the deadline cancels the caller's task and takes it back.
    fan = FanOut(Router([_Hang.issuer("NZL", ["NZL"])]))
    (answers,) = await fan.ask([q("NZL", "A1")], time.monotonic() + 0.05)
    assert answers[0].outcome is Outcome.TIMEOUT
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0.01)  # still a live task: no cancellation left pending


async def test_a_caller_cancelled_during_a_single_provider_call_is_cancelled_not_timed_out() -> (
    None
):
    fan = FanOut(Router([_Hang.issuer("NZL", ["NZL"])]))
    task = asyncio.create_task(fan.ask([q("NZL", "A1")], time.monotonic() + 5))
    await asyncio.sleep(0.02)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    # A caller's cancel that arrives together with the deadline's is the caller's: cancelled.
    both = _Hang.issuer("NZL", ["NZL"])
    both.also_cancel = True
    task = asyncio.create_task(
        FanOut(Router([both])).ask([q("NZL", "A1")], time.monotonic() + 0.02)
    )
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()


_STATES = ("NZL", "AUS", "D", "DEU", "USA")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(_STATES), st.sampled_from(["A1", "A2", "B7", "C9"])),
        max_size=30,
    ),
    st.booleans(),
)
async def test_grouped_fan_out_answers_each_document_as_a_per_document_route_would(
    docs: list[tuple[str, str]], with_global: bool
) -> None:
    """Interleaved economies, ICAO ``D`` beside ``DEU``, a global provider asked about every
    group: each document gets exactly its route's providers, in route order, each with the
    record for its own number (a grouping bug would hand one group another's answers)."""
    stolen = {("NZL", "A2"): RecordStatus.STOLEN, ("DEU", "B7"): RecordStatus.LOST}
    nzl = FakeProvider.issuer("NZL", ["NZL"], stolen)
    deu = FakeProvider.issuer("DEU", ["DEU"], stolen)
    aus = FakeProvider.issuer("AUS", ["AUS"], stolen, failure="unavailable")
    providers = [nzl, deu, aus]
    if with_global:
        providers.append(FakeProvider.global_("SLTD", records={("AUS", "C9"): RecordStatus.STOLEN}))
    router = Router(providers)
    queries = [q(s, n) for s, n in docs]
    answers = await FanOut(router).ask(queries, time.monotonic() + 1)
    assert len(answers) == len(queries)
    for query, got in zip(queries, answers, strict=True):
        assert isinstance(got, tuple)
        assert [a.provider_id for a in got] == [p.info.id for p in router.route(query)]
        for a, p in zip(got, router.route(query), strict=True):
            if p is aus:
                assert a.outcome is Outcome.UNAVAILABLE and a.record is None
                continue
            assert a.outcome is Outcome.ANSWERED and a.record is not None
            script = (
                stolen
                if p is not providers[-1] or not with_global
                else {("AUS", "C9"): RecordStatus.STOLEN}
            )
            expected = script.get(query.key, RecordStatus.NO_RECORD)
            assert a.record.status is expected, (query, p.info.id)
    # One call per routed provider, each asked about its documents exactly once.
    for p in providers:
        asked = sorted((x.issuing_state, x.number) for c in p.calls for x in c)
        expected = sorted(docs[i] for i, x in enumerate(queries) if p in router.route(x))
        assert asked == expected and len(p.calls) <= 1


async def test_documents_with_the_same_answers_share_one_tuple() -> None:
    nzl = FakeProvider.issuer("NZL", ["NZL"], {("NZL", "A2"): RecordStatus.STOLEN})
    answers = await FanOut(Router([nzl])).ask(
        [q("NZL", "A1"), q("NZL", "A2"), q("NZL", "A3")], time.monotonic() + 1
    )
    assert answers[0] is answers[2] and answers[1] is not answers[0]
