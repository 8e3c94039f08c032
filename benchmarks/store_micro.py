"""CPU per looked-up key of the SQL store provider, in process (no gRPC, no other load).

``python -m benchmarks.store_micro [--store PATH] [--batch 200] [--rounds 200] [--repeats 7]``

On an SQLite store (default bench-out/bench-nzl-100000.db, built with 100,000 synthetic NZL
records when missing), with the provider's default ``io="inline"``, batches of ``--batch``
distinct keys; best of ``--repeats`` of ``--rounds`` batches, ``time.process_time``:

- ``query``: the coalescer alone (the batch query and its rows keyed for the callers);
- ``lookup_many``: the whole provider call (query, rows, a Record per hit);

for batches of hits only, misses only, and half of each (the hub bench's manifests ask half
known numbers). Figures are µs of CPU per key; compare before/after in the same session.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from adapters.sqlstore.importer import build_synthetic, synthetic_number
from adapters.sqlstore.lookup import InlineCoalescer
from adapters.sqlstore.provider import SqlStoreProvider
from rmas.documents import DocumentQuery
from rmas.providers import ProviderInfo

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STORE = ROOT / "bench-out" / "bench-nzl-100000.db"


async def _best(fn: Callable[[], Awaitable[object]], rounds: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        for _ in range(rounds):
            await fn()
        best = min(best, time.process_time() - t0)
    return best / rounds


def _state_and_count(path: Path) -> tuple[str, int]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        state, count = db.execute(
            "SELECT issuing_state, count(*) FROM documents GROUP BY issuing_state "
            "ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()
    return str(state), int(count)


async def run(store: Path, batch: int, rounds: int, repeats: int) -> dict[str, float]:
    if not await asyncio.to_thread(store.exists):
        await asyncio.to_thread(store.parent.mkdir, parents=True, exist_ok=True)
        await build_synthetic(f"sqlite+aiosqlite:///{store}", 100_000, ["NZL"])
    state, count = _state_and_count(store)
    rnd = random.Random(7)
    known = [synthetic_number(state, rnd.randrange(count)) for _ in range(batch * 4)]
    hits = list(dict.fromkeys(known))[:batch]
    misses = [f"Z{rnd.randrange(10**9):09d}" for _ in range(batch)]
    mixed = hits[: batch // 2] + misses[: batch - batch // 2]
    rnd.shuffle(mixed)
    p = SqlStoreProvider(ProviderInfo("micro"), f"sqlite+aiosqlite:///{store}")
    out: dict[str, float] = {}
    try:
        await p.start()
        coalescer = p._coalescer
        assert isinstance(coalescer, InlineCoalescer)
        for name, numbers in (("hits", hits), ("misses", misses), ("mixed", mixed)):
            queries = [DocumentQuery(state, n) for n in numbers]
            keys = [q.key for q in queries]

            async def query(keys: list[tuple[str, str]] = keys) -> object:
                return await coalescer.fetch(keys)

            async def lookup(queries: list[DocumentQuery] = queries) -> object:
                return await p.lookup_many(queries, time.monotonic() + 3600)

            await lookup()  # the statement is prepared once
            out[f"{name} query"] = await _best(query, rounds, repeats) / len(keys) * 1e6
            out[f"{name} lookup_many"] = await _best(lookup, rounds, repeats) / len(keys) * 1e6
    finally:
        await p.aclose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, default=DEFAULT_STORE)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=7)
    a = ap.parse_args()
    figures = asyncio.run(run(a.store, a.batch, a.rounds, a.repeats))
    print(f"store {a.store.name}, {a.batch} keys a batch, µs of CPU a key (best of {a.repeats})")
    for name, us in figures.items():
        print(f"  {name:22s} {us:6.2f}")


if __name__ == "__main__":
    main()
