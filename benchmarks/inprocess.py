"""Where the hub's CPU goes, in one process: µs per document by stage (issue 20).

    python -m benchmarks.inprocess [manifest|single|coalescing|paxlst ...] [--profile]

No server and no load generator: the stages the hub runs for a request are called directly and
timed with the thread's CPU clock (``time.thread_time``), so other work on this machine inflates
them far less than it does wall-clock figures. Minimum of 7 repeats. Stores: two SQLite stores of
100,000 records (NZL, AUS; half the numbers asked are known) built once in ``bench-out/``, and
the demo's stores for the PAXLST (as ``benchmarks.bench_iapi`` uses them).

- ``manifest``: 400-document CheckManifest: validation (``document_from_pb``), ``Hub.check``,
  writing the result messages (``results_to_pb``), serialising the reply; µs per document; and
  ``Hub.check`` with in-memory providers (``FakeProvider``, every answer "no record").
- ``single``: 64 single checks at once (as 64 in flight): the same stages, µs per check, and
  ``Hub.check`` with in-memory providers (``FakeProvider``) to separate the store lookup.
- ``coalescing``: ``Hub.check`` for single checks, 64 at once (one ``gather``) and one at a
  time, with the sql provider as it is (a single key with no query waiting read at once) against
  every call waiting for the inline coalescer's query (as before session 8), swapped between
  interleaved rounds; µs per check. A live server hands the loop one call per iteration, so the
  "one at a time" rows are the ones it sees.
- ``paxlst``: the 480-passenger PAXLST: parsing alone, and the channel's whole answer (parse,
  validation, fan-out, CUSRES); ms of CPU per interchange. How long the event loop is held at
  a time while answers run two at a time and single checks keep coming (p99 and longest, wall
  ms: what a single check waits before gRPC can take it in). Then the garbage collector over 200
  answers with a serving hub's settings: its CPU per answer, its longest pause, the full
  collections, and the objects the answers keep (each a fresh interchange, as remembered for
  resends).

``--profile`` prints cProfile's top functions for each section instead.
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import random
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench-out"
RECORDS = 100_000
STATES = ("NZL", "AUS")
REPEATS = 7


def _stores() -> dict[str, Path]:
    from adapters.sqlstore.importer import build_synthetic

    OUT.mkdir(exist_ok=True)
    paths = {}
    for i, state in enumerate(STATES):
        path = OUT / f"bench-{state.lower()}-{RECORDS}.db"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.unlink(missing_ok=True)
            asyncio.run(build_synthetic(f"sqlite+aiosqlite:///{tmp}", RECORDS, [state], seed=i))
            tmp.rename(path)
        paths[state] = path
    return paths


def _documents(n: int, seed: int = 42) -> list[Any]:
    from adapters.sqlstore.importer import synthetic_number
    from rmas.v1 import common_pb2

    rnd = random.Random(seed)
    out: list[Any] = []
    for _ in range(n):
        state = STATES[rnd.randrange(len(STATES))]
        k = rnd.randrange(RECORDS) if rnd.random() < 0.5 else RECORDS + rnd.randrange(RECORDS)
        out.append(common_pb2.Document(issuing_state=state, number=synthetic_number(state, k)))
    return out


async def _sql_hub() -> object:
    from adapters.sqlstore.provider import SqlStoreProvider
    from rmas.hub import Hub
    from rmas.providers import ProviderInfo, Scope

    providers = [
        SqlStoreProvider(
            ProviderInfo(id=state, scope=Scope.ISSUER, issuing_states=(state,)),
            f"sqlite+aiosqlite:///{path}",
        )
        for state, path in _stores().items()
    ]
    for p in providers:
        await p.start()
    return Hub(providers)


def _best(rows: dict[str, list[float]]) -> dict[str, float]:
    return {k: round(min(v), 2) for k, v in rows.items()}


async def manifest(profile: bool) -> dict[str, float]:
    from rmas.grpckit.mapping import results_to_pb
    from rmas.hub import Hub
    from rmas.providers import ProviderInfo, Scope
    from rmas.server.check_service import _travellers_in
    from rmas.testing import FakeProvider
    from rmas.v1 import check_pb2

    hub = await _sql_hub()
    assert isinstance(hub, Hub)
    fake = Hub(
        [FakeProvider(ProviderInfo(id=s, scope=Scope.ISSUER, issuing_states=(s,))) for s in STATES]
    )
    pool = _documents(2000)
    rnd = random.Random(7)
    manifests = [
        check_pb2.CheckManifestRequest(
            travellers=[
                check_pb2.Traveller(ref=str(j), document=rnd.choice(pool)) for j in range(400)
            ]
        )
        for _ in range(16)
    ]
    clock = time.thread_time
    rows: dict[str, list[float]] = {
        "validate": [], "hub.check": [], "to_pb": [], "serialise": [],
        "hub.check, in-memory providers": [],
    }  # fmt: skip

    async def one(m: Any) -> tuple[float, float, float, float, float]:
        t0 = clock()
        items = await _travellers_in(m)  # as CheckManifest reads them
        t1 = clock()
        results = await hub.check(items, time.monotonic() + 5)
        t2 = clock()
        resp = check_pb2.CheckManifestResponse()
        results_to_pb(results, resp)  # as CheckManifest writes them
        t3 = clock()
        resp.SerializeToString()
        t4 = clock()
        await fake.check(items, time.monotonic() + 5)  # the store out of it (all "no record")
        for f in fake.providers:
            f.calls.clear()  # type: ignore[attr-defined]
        return t1 - t0, t2 - t1, t3 - t2, t4 - t3, clock() - t4

    for m in manifests:
        await one(m)
    if profile:
        await _profiled(lambda: asyncio.gather(*(one(m) for m in manifests)), 10)
        return {}
    for _ in range(REPEATS):
        sums = [0.0] * 5
        for m in manifests:
            for k, t in enumerate(await one(m)):
                sums[k] += t
        n = len(manifests) * 400
        for key, total in zip(rows, sums, strict=True):
            rows[key].append(total / n * 1e6)
    return _best(rows)


async def single(profile: bool) -> dict[str, float]:
    from rmas.grpckit.mapping import document_from_pb, result_to_pb
    from rmas.hub import Hub
    from rmas.providers import ProviderInfo, Scope
    from rmas.testing import FakeProvider
    from rmas.v1 import check_pb2

    hub = await _sql_hub()
    assert isinstance(hub, Hub)
    fakes = [
        FakeProvider(ProviderInfo(id=s, scope=Scope.ISSUER, issuing_states=(s,))) for s in STATES
    ]
    fake = Hub(fakes)
    docs = _documents(64)
    clock = time.thread_time
    rows: dict[str, list[float]] = {
        "validate": [], "hub.check": [], "hub.check, in-memory providers": [], "to_pb+serialise": []
    }  # fmt: skip

    async def round_() -> list[float]:
        t0 = clock()
        queries = [document_from_pb(d, ref="", prefix="document") for d in docs]
        t1 = clock()
        results = await asyncio.gather(*(hub.check([q], hub.deadline(5.0)) for q in queries))
        t2 = clock()
        await asyncio.gather(*(fake.check([q], fake.deadline(5.0)) for q in queries))
        t3 = clock()
        for f in fakes:
            f.calls.clear()
        for r in results:
            out = check_pb2.CheckDocumentResponse()
            result_to_pb(r[0], out.result)
            out.SerializeToString()
        return [t1 - t0, t2 - t1, t3 - t2, clock() - t3]

    for _ in range(20):
        await round_()
    if profile:
        await _profiled(round_, 200)
        return {}
    for _ in range(REPEATS):
        sums = [0.0] * 4
        for _ in range(30):
            for k, t in enumerate(await round_()):
                sums[k] += t
        for key, total in zip(rows, sums, strict=True):
            rows[key].append(total / (30 * len(docs)) * 1e6)
    return _best(rows)


async def coalescing(profile: bool) -> dict[str, float]:
    from adapters.sqlstore.lookup import InlineCoalescer
    from adapters.sqlstore.provider import SqlStoreProvider
    from rmas.grpckit.mapping import document_from_pb
    from rmas.hub import Hub

    class EveryCall(InlineCoalescer):
        """The inline coalescer, but the provider reads a single key at once only from an
        InlineCoalescer itself: with this class every call waits for the loop turn's query, as
        before session 8."""

        __slots__ = ()

    hub = await _sql_hub()
    assert isinstance(hub, Hub)
    coalescers = [p._coalescer for p in hub.providers if isinstance(p, SqlStoreProvider)]
    queries = [document_from_pb(d, ref="", prefix="document") for d in _documents(64)]
    variants = {"single keys at once": InlineCoalescer, "every call coalesced": EveryCall}
    rows: dict[str, list[float]] = {}
    clock = time.thread_time
    try:
        for _ in range(REPEATS):
            for name, kind in variants.items():
                for c in coalescers:
                    c.__class__ = kind  # the same slots: only the provider's test changes
                for _ in range(3):
                    await asyncio.gather(*(hub.check([q], hub.deadline(5.0)) for q in queries))
                t0 = clock()
                for _ in range(30):
                    await asyncio.gather(*(hub.check([q], hub.deadline(5.0)) for q in queries))
                t1 = clock()
                for q in queries * 10:
                    await hub.check([q], hub.deadline(5.0))
                t2 = clock()
                rows.setdefault(f"{name}, 64 at once", []).append((t1 - t0) / (30 * 64) * 1e6)
                rows.setdefault(f"{name}, one at a time", []).append((t2 - t1) / 640 * 1e6)
    finally:
        for c in coalescers:
            c.__class__ = InlineCoalescer
    return _best(rows)


async def paxlst(profile: bool) -> dict[str, float]:
    from adapters.sqlstore.provider import SqlStoreProvider
    from benchmarks.bench_iapi import PAX
    from benchmarks.bench_iapi import _stores as demo_stores
    from rmas.hub import Hub
    from rmas.iapi.channel import IapiChannel
    from rmas.iapi.paxlst import read_paxlst
    from rmas.providers import ProviderInfo, Registry, Scope

    workdir = OUT / "iapi"
    workdir.mkdir(parents=True, exist_ok=True)
    providers = [
        SqlStoreProvider(
            ProviderInfo(id=s, scope=Scope.ISSUER, issuing_states=(s,)), url,
            registry=Registry(registry),
        )
        for s, url, registry in await demo_stores(workdir)
    ]  # fmt: skip
    for p in providers:
        await p.start()
    channel = IapiChannel(Hub(providers))
    base = PAX.read_bytes()
    counter = iter(range(1, 1 << 30))

    async def answer() -> None:
        data = base.replace(b"ICR0480", f"B{next(counter):06d}".encode())
        await channel.answer(data, time.monotonic() + 5)

    for _ in range(5):
        await answer()
    if profile:
        await _profiled(answer, 20)
        return {}
    clock = time.thread_time
    rows: dict[str, list[float]] = {"parse (ms)": [], "whole answer (ms)": []}
    for _ in range(REPEATS):
        t0 = clock()
        read_paxlst(base)
        t1 = clock()
        await answer()
        t2 = clock()
        rows["parse (ms)"].append((t1 - t0) * 1000)
        rows["whole answer (ms)"].append((t2 - t1) * 1000)
    holds = await _holds(channel.hub, answer, HOLD_ANSWERS)
    return {**_best(rows), **holds, **await _collector(answer, GC_ANSWERS)}


#: Answers over which ``paxlst`` watches the garbage collector.
GC_ANSWERS = 200
#: Answers, 2 at a time, over which ``paxlst`` measures how long the loop is held.
HOLD_ANSWERS = 40


async def _holds(hub: Any, answer: Callable[[], Awaitable[object]], times: int) -> dict[str, float]:
    """How long the event loop is held at a time (wall ms) while ``times`` answers run, two at
    a time, as single checks keep coming (a ticker task stands for them: it notes a single
    check at every turn it gets, so the hub gives turns, and measures the time between its
    turns). Its p99 and longest: what a single check arriving then waits before gRPC can take
    it in (docs/benchmarks.md, session 12). With a serving hub's garbage collector settings."""
    import gc

    from rmas.runtime import settle_for_serving

    threshold = gc.get_threshold()
    gc.collect()
    settle_for_serving()
    gaps: list[float] = []
    running = True

    async def ticker() -> None:
        last = time.perf_counter()
        while running:
            hub.single_at = time.monotonic()
            await asyncio.sleep(0)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.get_running_loop().create_task(ticker())
    try:
        for _ in range(times // 2):
            await asyncio.gather(answer(), answer())
    finally:
        running = False
        await task
        gc.unfreeze()
        gc.set_threshold(*threshold)
    gaps.sort()
    return {
        "loop held p99 (ms)": round(gaps[int(len(gaps) * 0.99)] * 1000, 2),
        "loop held longest (ms)": round(gaps[-1] * 1000, 2),
    }


async def _collector(work: Callable[[], Awaitable[object]], times: int) -> dict[str, float]:
    """The garbage collector over ``times`` calls of ``work``, with a serving hub's settings
    (rmas.runtime.settle_for_serving, undone after): its CPU per call, its longest pause (CPU
    ms), the full collections, and the objects it tracks more per call at the end (what the
    calls keep: each is scanned by every full collection after)."""
    import gc

    from rmas.runtime import settle_for_serving

    threshold = gc.get_threshold()
    gc.collect()
    settle_for_serving()
    pauses: list[tuple[int, float]] = []
    started = [0.0]

    def probe(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.thread_time()
        else:
            pauses.append((info["generation"], time.thread_time() - started[0]))

    before = len(gc.get_objects())
    gc.callbacks.append(probe)
    try:
        for _ in range(times):
            await work()
    finally:
        gc.callbacks.remove(probe)
        kept = (len(gc.get_objects()) - before) / times
        gc.unfreeze()
        gc.set_threshold(*threshold)
    return {
        "gc per answer (ms)": round(sum(p for _g, p in pauses) / times * 1000, 2),
        "longest gc pause (ms)": round(max((p for _g, p in pauses), default=0.0) * 1000, 2),
        f"full collections in {times}": float(sum(1 for g, _p in pauses if g == 2)),
        "objects kept per answer": round(kept, 1),
    }


async def _profiled(work: Callable[[], Awaitable[object]], times: int) -> None:
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(times):
        await work()
    prof.disable()
    pstats.Stats(prof).sort_stats(
        "tottime" if "--cumulative" not in sys.argv else "cumulative"
    ).print_stats(25)


SECTIONS = {
    "manifest": manifest,
    "single": single,
    "coalescing": coalescing,
    "paxlst": paxlst,
}


def main(argv: list[str]) -> None:
    import uvloop

    profile = "--profile" in argv
    chosen = [a for a in argv if a in SECTIONS] or list(SECTIONS)
    _stores()  # built outside the event loop
    for name in chosen:
        result = uvloop.run(SECTIONS[name](profile))
        if result:
            print(f"{name}: {result}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
