"""A large manifest gives the event loop turns while single checks are coming (rmas.hub.TURN).

gRPC's aio server accepts about one new call per turn of the event loop: a loop held for
milliseconds at a time by manifests left single checks waiting for seconds (docs/benchmarks.md,
session 11). Through real gRPC and a real SQLite store, a ticker task on the hub's loop counts
its own turns; each stage of the manifest (reading the travellers, merging, writing the answer)
notes the ticker's count as it starts each slice. While single checks are coming, every stage
must run in slices of TURN documents with the ticker running between them; when none has come
for a while, each stage runs in one piece (turns cost a busy hub's manifests CPU). The answers
are the same either way.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest

from adapters.sqlstore.provider import SqlStoreProvider
from rmas import hub as hub_module
from rmas.client import check_document_request, result_to_dict
from rmas.hub import SINGLES_WINDOW_S, TURN
from rmas.server import check_service
from rmas.testing import HubHandle, running_hub
from rmas.v1 import check_pb2, check_pb2_grpc, common_pb2
from tests.conftest import EconomyStores

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"

SIZE = 400


@pytest.fixture
async def provider(economy_stores: EconomyStores) -> SqlStoreProvider:
    """The demo's NZL store (fixtures/records): LA000001 on, every status."""
    (nzl,) = await economy_stores("NZL")
    return nzl


def manifest() -> check_pb2.CheckManifestRequest:
    """400 travellers: known numbers of every status, unknown ones, and a few bad lines."""
    travellers = []
    for j in range(SIZE):
        number = f"LA{j % 400 + 1:06d}" if j % 37 else "bad number!"
        doc = common_pb2.Document(issuing_state="NZL", number=number)
        travellers.append(check_pb2.Traveller(ref=f"T{j}", document=doc))
    return check_pb2.CheckManifestRequest(travellers=travellers)


class Ticker:
    """A task that counts its turns of the loop."""

    def __init__(self) -> None:
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.ticks += 1
            await asyncio.sleep(0)

    def __enter__(self) -> Ticker:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


@contextmanager
def noting(ticker: Ticker, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[int]]]:
    """Each stage's slices, as the ticker's count when each began (the stage's name -> list)."""
    seen: dict[str, list[int]] = {"read": [], "merge": [], "write": []}

    def wrap(name: str, f: Callable[..., Any]) -> Callable[..., Any]:
        def noted(*args: Any, **kwargs: Any) -> Any:
            seen[name].append(ticker.ticks)
            return f(*args, **kwargs)

        return noted

    monkeypatch.setattr(
        check_service, "_read_travellers", wrap("read", check_service._read_travellers)
    )
    monkeypatch.setattr(check_service, "results_to_pb", wrap("write", check_service.results_to_pb))
    monkeypatch.setattr(hub_module.Hub, "_merged", wrap("merge", hub_module.Hub._merged))
    yield seen


def comparable(response: check_pb2.CheckManifestResponse) -> list[dict[str, object]]:
    out = []
    for r in response.results:
        d = result_to_dict(r)
        d.pop("check_id")
        for source in d["sources"]:  # type: ignore[attr-defined]
            source.pop("latency_ms")
        out.append(d)
    return out


async def send(hub: HubHandle, *, single_first: bool = False) -> check_pb2.CheckManifestResponse:
    """The manifest; ``single_first``: after an officer's check of one document, on the same
    channel (single checks are coming)."""
    request = manifest()  # built first: the manifest follows the single check at once
    async with grpc.aio.insecure_channel(hub.target) as ch:
        stub = check_pb2_grpc.DocumentCheckStub(ch)
        if single_first:
            await stub.CheckDocument(check_document_request(number="LA000001", state="NZL"))
        return await stub.CheckManifest(request, timeout=10)


async def test_a_manifest_gives_the_loop_turns_while_single_checks_come(
    provider: SqlStoreProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_hub([provider]) as hub:
        with Ticker() as ticker, noting(ticker, monkeypatch) as seen:
            answer = await send(hub, single_first=True)
    assert len(answer.results) == SIZE
    slices = math.ceil(SIZE / TURN)
    seen["merge"] = seen["merge"][1:]  # the first was the single check's own
    for stage, counts in seen.items():
        assert len(counts) == slices, stage
        # The ticker ran between every two slices: the loop had a turn.
        assert all(b > a for a, b in itertools.pairwise(counts)), (stage, counts)


async def test_without_single_checks_each_stage_runs_in_one_piece(
    provider: SqlStoreProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_hub([provider]) as hub:
        assert hub.server is not None
        hub.server.hub.single_at = time.monotonic() - 2 * SINGLES_WINDOW_S
        with Ticker() as ticker, noting(ticker, monkeypatch) as seen:
            answer = await send(hub)
    assert len(answer.results) == SIZE
    assert {stage: len(counts) for stage, counts in seen.items()} == {
        "read": 1,
        "merge": 1,
        "write": 1,
    }


async def test_the_answers_are_the_same_in_turns_and_in_one_piece(
    provider: SqlStoreProvider,
) -> None:
    async with running_hub([provider]) as hub:
        assert hub.server is not None
        in_turns = await send(hub, single_first=True)
        hub.server.hub.single_at = time.monotonic() - 2 * SINGLES_WINDOW_S
        whole = await send(hub)
    assert comparable(in_turns) == comparable(whole)
    verdicts = {r.verdict for r in whole.results}
    assert len(verdicts) >= 3  # clear, alert, invalid data: every path of the merge
    assert len({r.check_id for r in in_turns.results}) == SIZE


async def paxlst(hub: HubHandle, data: bytes) -> check_pb2.CheckPaxlstResponse:
    """The PAXLST after an officer's check of one document, on the same channel."""
    async with grpc.aio.insecure_channel(hub.target) as ch:
        stub = check_pb2_grpc.DocumentCheckStub(ch)
        await stub.CheckDocument(check_document_request(number="LA000002", state="NZL"))
        return await stub.CheckPaxlst(check_pb2.CheckPaxlstRequest(message=data), timeout=10)


@pytest.mark.parametrize("singles", [True, False])
async def test_the_airline_channel_gives_turns_between_its_steps_while_single_checks_come(
    economy_stores: EconomyStores, monkeypatch: pytest.MonkeyPatch, singles: bool
) -> None:
    from rmas.iapi import channel
    from rmas.iapi.steps import STEP

    data = (FIXTURES / "paxlst" / "manifest_480.edi").read_bytes()
    segments = data.count(b"'") - 1  # UNA's release character is the only other quote
    stores = await economy_stores("NZL", "AUS", "PHL")
    async with running_hub(stores) as hub:
        assert hub.server is not None
        if not singles:  # the officer's check is long past
            monkeypatch.setattr(hub_module, "SINGLES_WINDOW_S", 0.0)
        with Ticker() as ticker:
            seen: dict[str, list[int]] = {
                "parse": [], "parsed": [], "items": [], "merge": [], "cusres": []
            }  # fmt: skip

            def note(name: str, f: Callable[..., Any]) -> Callable[..., Any]:
                def noted(*args: Any, **kwargs: Any) -> Any:
                    seen[name].append(ticker.ticks)
                    return f(*args, **kwargs)

                return noted

            def note_steps(f: Callable[..., Any]) -> Callable[..., Any]:
                """The reading's steps: the ticker's count as each begins, and when it ends."""

                def steps(*args: Any, **kwargs: Any) -> Any:
                    inner = f(*args, **kwargs)
                    while True:
                        seen["parse"].append(ticker.ticks)
                        try:
                            next(inner)
                        except StopIteration as done:
                            seen["parsed"].append(ticker.ticks)
                            return done.value
                        yield

                return steps

            monkeypatch.setattr(channel, "read_paxlst_steps", note_steps(channel.read_paxlst_steps))
            monkeypatch.setattr(channel, "traveller_items", note("items", channel.traveller_items))
            monkeypatch.setattr(channel, "write_cusres", note("cusres", channel.write_cusres))
            monkeypatch.setattr(hub_module.Hub, "_merged", note("merge", hub_module.Hub._merged))
            answer = await paxlst(hub, data)
    assert len(answer.passengers) == 480
    merge = seen["merge"][1:]  # the first was the single check's own
    parse = seen["parse"]
    (parsed,) = seen["parsed"]
    # Tokenizing alone takes a step every STEP segments, reading one more every STEP.
    assert len(parse) >= math.ceil(segments / STEP) > 8
    items = sorted(set(seen["items"]))
    if singles:
        assert all(b > a for a, b in itertools.pairwise(parse))  # a turn between every two
        assert items[0] > parsed  # a turn after parsing
        assert len(items) == math.ceil(480 / channel.TRAVELLERS_STEP)
        assert len(merge) == math.ceil(480 / TURN)
        assert all(b > a for a, b in itertools.pairwise(merge))
        assert seen["cusres"][0] > merge[-1]  # a turn before writing the CUSRES
    else:
        assert len(set(parse)) == 1
        assert items == [parsed]
        assert len(merge) == 1


def directives(answer: check_pb2.CheckPaxlstResponse) -> list[tuple[int, str, str, int, int]]:
    """What an airline applies: each passenger's position, references and directive, and how
    many documents were checked for it."""
    return [(p.position, p.booking_ref, p.passenger_ref, p.directive, len(p.check_ids))
            for p in answer.passengers]  # fmt: skip


async def test_interchanges_read_in_steps_side_by_side_give_their_own_answers(
    economy_stores: EconomyStores, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four interchanges in flight at once, their readings interleaved step by step (single
    checks coming), each answered as it is alone: no reader's state leaks into another's."""
    from rmas.iapi import channel

    steps: list[int] = []  # which reading took each step, in order
    readings = itertools.count()

    def noted(f: Callable[..., Any]) -> Callable[..., Any]:
        def reading(*args: Any, **kwargs: Any) -> Any:
            me = next(readings)
            inner = f(*args, **kwargs)
            while True:
                steps.append(me)
                try:
                    next(inner)
                except StopIteration as done:
                    return done.value
                yield

        return reading

    monkeypatch.setattr(channel, "read_paxlst_steps", noted(channel.read_paxlst_steps))
    base = (FIXTURES / "paxlst" / "manifest_480.edi").read_bytes()
    at = base.index(b"+++", base.index(b"NAD+FL+++")) + 3
    # Tokenized by the per-segment path (a released character), and told apart from the first
    # by every booking reference.
    released = (base[:at] + b"O?'" + base[at:]).replace(b"RFF+AVF:B", b"RFF+AVF:R")
    others = [(FIXTURES / "paxlst" / name).read_bytes()
              for name in ("multi_document.edi", "crew_list.edi")]  # fmt: skip
    interchanges = [base.replace(b"ICR0480", b"ICRSIDE1"), released, *others]
    stores = await economy_stores("NZL", "AUS", "PHL")
    async with running_hub(stores) as hub:
        assert hub.server is not None
        server_hub = hub.server.hub
        async with grpc.aio.insecure_channel(hub.target) as ch:
            stub = check_pb2_grpc.DocumentCheckStub(ch)

            async def answer(data: bytes) -> check_pb2.CheckPaxlstResponse:
                request = check_pb2.CheckPaxlstRequest(message=data)
                return await stub.CheckPaxlst(request, timeout=20)

            server_hub.single_at = time.monotonic() - 2 * SINGLES_WINDOW_S
            alone = [directives(await answer(d)) for d in interchanges]
            with Ticker():
                # Single checks keep coming: every turn of the loop notes one.
                async def singles() -> None:
                    while True:
                        server_hub.single_at = time.monotonic()
                        await asyncio.sleep(0)

                task = asyncio.get_running_loop().create_task(singles())
                try:
                    # Sent again (resends of the same interchanges): answered afresh, as the
                    # directives are compared, not the CUSRES bytes.
                    side_by_side = await asyncio.gather(*(answer(d) for d in interchanges))
                finally:
                    task.cancel()
    assert [directives(a) for a in side_by_side] == alone
    assert len(alone[0]) == len(alone[1]) == 480
    assert alone[0][0][1] == "B00000" and alone[1][0][1] == "R00000"
    assert all(a.passengers for a in side_by_side)
    # The readings side by side (the 5th to the 8th) took turns: read one after another, their
    # steps would change hands 3 times.
    together = [r for r in steps if r >= len(interchanges)]
    assert sum(1 for a, b in itertools.pairwise(together) if a != b) > len(interchanges) - 1
