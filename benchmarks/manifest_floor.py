"""The least a CheckManifest document can cost in Python here: a floor for the manifest target.

    python -m benchmarks.manifest_floor

Not the hub: a stripped program that does only what no design can skip for a manifest of 400
documents, in one process (thread CPU, best of 7 over 16 manifests of the hub bench's documents,
two SQLite stores of 100,000 records, half the numbers known, as ``benchmarks.inprocess``):

- **read**: each traveller's state and number from the decoded request, the number matched
  against the document-number pattern, a key per document, grouped by store;
- **store**: one batch query per store (the SQL store's own ``batch_sql``), one ``json.loads``;
- **write**: per document a result message (check id, ref, directive; a miss's verdict and
  source merged from shared bytes; a hit's verdict, source and record fields) with its
  document;
- **encode**: the answer's bytes.

No DocumentQuery, no CheckResult, no verdict rule, no fan-out, no view, no audit, no metrics.
Beside it, in the same run: the echo of ``benchmarks.echo_server`` in process (decode the
request, one result per traveller, encode: the per-item work of the target's reference), and
the hub's own stages (``benchmarks.inprocess.manifest``). The echo's live cost per item minus
its in-process cost is gRPC's transport and the loop, which the hub pays too; so the floor's
ratio to the echo, live, is at most (echo in process + transport) / (floor + decode + transport),
printed with the echo's live cost given by ``--echo-live-us`` (default: 1.88 µs an item,
532,514 items/s, the end of session 10's full run). docs/benchmarks.md, "How far the manifest
target is" (session 11).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import time
from itertools import chain
from typing import Any

from adapters.sqlstore.lookup import READER_PRAGMAS, batch_sql
from benchmarks.inprocess import STATES, _documents, _stores
from rmas.documents import _NORMAL_NUMBER as NUMBER  # the rule's own pattern
from rmas.v1 import check_pb2

REPEATS = 7
SIZE = 400


def _requests() -> list[bytes]:
    pool = _documents(2000)
    rnd = random.Random(7)
    return [
        check_pb2.CheckManifestRequest(
            travellers=[
                check_pb2.Traveller(ref=str(j), document=rnd.choice(pool)) for j in range(SIZE)
            ]
        ).SerializeToString()
        for _ in range(16)
    ]


def floor(raw: list[bytes]) -> dict[str, float]:
    """µs a document by step, best of REPEATS (steps from the best repeat)."""
    conns = {}
    for state, path in _stores().items():
        conn = sqlite3.connect(str(path))
        for pragma in READER_PRAGMAS:
            conn.execute(pragma)
        conns[state] = conn
    ids = random.Random(os.urandom(16))
    miss = check_pb2.CheckResult(verdict=1, issuer_consulted=True)
    src = miss.sources.add(provider_id="NZL", outcome=1, latency_ms=1, required=True, issuer=True)
    assert src is not None
    shared_miss = miss.SerializeToString()
    clock = time.thread_time

    def one(data: bytes, t: list[float]) -> bytes:
        t0 = clock()
        m = check_pb2.CheckManifestRequest.FromString(data)
        t1 = clock()
        keys: dict[str, list[tuple[str, str]]] = {s: [] for s in STATES}
        where = []
        for tr in m.travellers:
            d = tr.document
            state, number = d.issuing_state, d.number
            if not NUMBER.fullmatch(number) or state not in keys:
                raise ValueError(number)
            group = keys[state]
            where.append((state, len(group)))
            group.append((state, number))
        t2 = clock()
        found: dict[str, dict[int, Any]] = {}
        for state, group in keys.items():
            if group:
                cur = conns[state].execute(batch_sql(len(group)), list(chain.from_iterable(group)))
                found[state] = {row[0]: row for row in json.loads(cur.fetchone()[0])}
        t3 = clock()
        out = check_pb2.CheckManifestResponse()
        add = out.results.add
        for tr, (state, i) in zip(m.travellers, where, strict=True):
            r = add()
            r.check_id = ids.getrandbits(128).to_bytes(16, "big").hex()
            r.ref = tr.ref
            r.directive = 1
            row = found[state].get(i)
            if row is None:
                r.MergeFromString(shared_miss)
            else:
                r.verdict = 2
                r.issuer_consulted = True
                o = r.sources.add()
                o.provider_id = state
                o.outcome = 1
                o.latency_ms = 1
                o.required = True
                o.issuer = True
                rec = o.record
                rec.status = 2
                if row[2]:
                    rec.reported_on = row[2]
                if row[3]:
                    rec.record_ref = row[3]
                if row[4]:
                    rec.reporting_authority = row[4]
            doc = r.document
            doc.issuing_state = state
            doc.number = tr.document.number
        t4 = clock()
        body = out.SerializeToString()
        t5 = clock()
        for k, (a, b) in enumerate(((t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5))):
            t[k] += b - a
        return body

    for data in raw:
        one(data, [0.0] * 5)
    best: list[float] | None = None
    for _ in range(REPEATS):
        t = [0.0] * 5
        for data in raw:
            one(data, t)
        if best is None or sum(t) < sum(best):
            best = t
    assert best is not None
    per = 1e6 / (len(raw) * SIZE)
    steps = dict(zip(("decode", "read", "store", "write", "encode"), best, strict=True))
    return {k: round(v * per, 3) for k, v in steps.items()}


def echo(raw: list[bytes]) -> float:
    """The echo's CheckManifest in process, decoding and encoding included: µs an item."""
    from benchmarks.echo_server import Echo

    e = Echo(0, 120)

    async def run() -> float:
        best = float("inf")
        for _ in range(REPEATS):
            t0 = time.thread_time()
            for data in raw:
                m = check_pb2.CheckManifestRequest.FromString(data)
                (await e.CheckManifest(m, None)).SerializeToString()
            best = min(best, time.thread_time() - t0)
        return best / (len(raw) * SIZE) * 1e6

    return round(asyncio.run(run()), 3)


def main() -> None:
    from benchmarks.inprocess import manifest as hub_stages

    parser = argparse.ArgumentParser(prog="python -m benchmarks.manifest_floor")
    parser.add_argument("--echo-live-us", type=float, default=1.88)
    args = parser.parse_args()
    raw = _requests()
    steps = floor(raw)
    echo_us = echo(raw)
    hub = asyncio.run(hub_stages(False))
    total = sum(steps.values())
    transport = max(args.echo_live_us - echo_us, 0.0)
    ratio = (echo_us + transport) / (total + transport)
    hub_total = sum(v for k, v in hub.items() if "in-memory" not in k)
    print(json.dumps({"floor_us": steps, "floor_total_us": round(total, 3),
                      "echo_in_process_us": echo_us, "hub_stages_us": hub,
                      "hub_total_us": round(hub_total, 3),
                      "transport_us": round(transport, 3),
                      "floor_ratio_to_echo_live": round(ratio, 3)}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
