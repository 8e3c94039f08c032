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
ratio to the echo, live, is at most (echo in process + transport) / (floor + transport), with
the echo's live cost measured in the same run (:func:`echo_live`; ``--echo-live-us`` gives it
instead). The floor is measured twice: writing the results with upb, field by field (as every
writer of rmas does), and as protobuf wire bytes joined by hand (``wire``: the least any Python
writer can do; checked to parse to the same answer). docs/benchmarks.md, "How far the manifest
target is" (sessions 11 and 12).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import struct
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


def _tag(message: Any, field: str) -> bytes:
    """The wire tag of ``field`` of ``message`` (a protobuf message class), from its descriptor:
    wire type 2 (length-delimited) for strings and messages, 0 (varint) for enums and bools,
    1 (64-bit) for doubles."""
    fd = message.DESCRIPTOR.fields_by_name[field]
    wire = {fd.TYPE_STRING: 2, fd.TYPE_MESSAGE: 2, fd.TYPE_BYTES: 2, fd.TYPE_DOUBLE: 1}
    return bytes([fd.number << 3 | wire.get(fd.type, 0)])


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _wire_writer() -> Any:
    """The floor's write step as protobuf wire bytes joined by hand (no message objects): the
    least any Python writer of these results can do. Tags from the descriptors; :func:`floor`
    checks that the bytes parse to the same answer as upb's."""
    from rmas.v1 import common_pb2

    cr, src, doc, rec = (check_pb2.CheckResult, check_pb2.SourceAnswer, common_pb2.Document,
                         common_pb2.Record)  # fmt: skip
    v = [_varint(i) for i in range(1 << 14)]
    results = check_pb2.CheckManifestResponse.DESCRIPTOR.fields_by_name["results"].number
    t_result = bytes([results << 3 | 2])
    t_id, t_ref, t_doc = _tag(cr, "check_id"), _tag(cr, "ref"), _tag(cr, "document")
    t_state, t_number = _tag(doc, "issuing_state"), _tag(doc, "number")
    directive = _tag(cr, "directive") + b"\x01"
    hit_head = _tag(cr, "verdict") + b"\x02" + _tag(cr, "issuer_consulted") + b"\x01"
    t_sources, t_pid = _tag(cr, "sources"), _tag(src, "provider_id")
    t_outcome, t_record = _tag(src, "outcome"), _tag(src, "record")
    src_tail = (_tag(src, "latency_ms") + struct.pack("<d", 1.0) + _tag(src, "required")
                + b"\x01" + _tag(src, "issuer") + b"\x01")  # fmt: skip
    status = _tag(rec, "status") + b"\x02"
    t_row = (_tag(rec, "reported_on"), _tag(rec, "record_ref"), _tag(rec, "reporting_authority"))

    def write(
        travellers: Any,
        where: list[tuple[str, int]],
        found: dict[str, dict[int, Any]],
        shared_miss: bytes,
        ids: bytes,
    ) -> list[bytes]:
        parts: list[bytes] = []
        append = parts.append
        k = 0
        for tr, (state, i) in zip(travellers, where, strict=True):
            ref = tr.ref.encode()
            number = tr.document.number.encode()
            st = state.encode()
            d = t_state + v[len(st)] + st + t_number + v[len(number)] + number
            row = found[state].get(i)
            if row is None:
                answers = shared_miss
            else:
                r = status
                for tag, value in zip(t_row, row[2:5], strict=True):
                    if value:
                        x = value.encode()
                        r += tag + v[len(x)] + x
                s = (
                    t_pid
                    + v[len(st)]
                    + st
                    + t_outcome
                    + b"\x01"
                    + t_record
                    + v[len(r)]
                    + r
                    + src_tail
                )
                answers = hit_head + t_sources + v[len(s)] + s
            body = b"".join((t_id, b"\x20", ids[k : k + 32], t_ref, v[len(ref)], ref, directive,
                             answers, t_doc, v[len(d)], d))  # fmt: skip
            k += 32
            append(t_result + v[len(body)] + body)
        return parts

    return write


def floor(raw: list[bytes], wire: bool = False) -> dict[str, float]:
    """µs a document by step, best of REPEATS (steps from the best repeat); ``wire``: the
    results written as wire bytes by hand (:func:`_wire_writer`) instead of with upb."""
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
    write_wire = _wire_writer()

    def one(data: bytes, t: list[float], wire: bool) -> bytes:
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
        if wire:
            ids_hex = ids.randbytes(16 * len(where)).hex().encode()
            parts = write_wire(m.travellers, where, found, shared_miss, ids_hex)
            t4 = clock()
            body = b"".join(parts)
            t5 = clock()
            for k, (a, b) in enumerate(((t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5))):
                t[k] += b - a
            return body
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

    # The two writers' answers are the same message (but for the random check ids).
    answers = [check_pb2.CheckManifestResponse.FromString(one(raw[0], [0.0] * 5, w))
               for w in (False, True)]  # fmt: skip
    for answer in answers:
        for r in answer.results:
            assert len(r.check_id) == 32
            r.check_id = ""
    assert answers[0] == answers[1], "the wire writer's answer differs from upb's"
    for data in raw:
        one(data, [0.0] * 5, wire)
    best: list[float] | None = None
    for _ in range(REPEATS):
        t = [0.0] * 5
        for data in raw:
            one(data, t, wire)
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


def echo_live(seconds: float = 2.0, rounds: int = 3) -> float:
    """The echo's live cost per item: ``benchmarks.echo_server`` (items padded as in
    :func:`echo`) pinned to CPU 0, CheckManifest of these manifests 4 in flight from this
    process on CPU 1, as the hub bench measures it; µs an item, the best of ``rounds`` (as the
    in-process figures are the best of their repeats: a slow spell of the machine must not
    pass for transport)."""
    import sys

    import grpc
    import uvloop

    from benchmarks.hub_bench import free_port, pin, server_process
    from benchmarks.loadgen import closed_loop
    from rmas.v1 import check_pb2_grpc

    pin(1)
    port = free_port()
    requests = [check_pb2.CheckManifestRequest.FromString(r) for r in _requests()]

    async def load() -> float:
        opts = [("grpc.max_receive_message_length", 64 << 20)]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=opts) as ch:
            stub = check_pb2_grpc.DocumentCheckStub(ch)
            counter = iter(range(1 << 62))

            async def call() -> None:
                r = await stub.CheckManifest(requests[next(counter) % len(requests)], timeout=10)
                if len(r.results) != SIZE:
                    raise RuntimeError("short manifest answer")

            await closed_loop(call, in_flight=4, seconds=1.0)  # warm
            best = 0.0
            for _ in range(rounds):
                best = max(best, (await closed_loop(call, in_flight=4, seconds=seconds)).rate)
            return 1e6 / (best * SIZE)

    cmd = [sys.executable, "-m", "benchmarks.echo_server", str(port), "0", "120"]
    with server_process(cmd, port):
        return round(uvloop.run(load()), 3)


def main() -> None:
    from benchmarks.inprocess import manifest as hub_stages

    parser = argparse.ArgumentParser(prog="python -m benchmarks.manifest_floor")
    parser.add_argument(
        "--echo-live-us", type=float, default=None,
        help="the echo's live µs an item (default: measured in this run, echo_live)",
    )  # fmt: skip
    args = parser.parse_args()
    raw = _requests()
    steps = floor(raw)
    wire = floor(raw, wire=True)
    echo_us = echo(raw)
    hub = asyncio.run(hub_stages(False))
    # Live last: gRPC's poller threads stay in this process and would slow what follows.
    live = args.echo_live_us if args.echo_live_us is not None else echo_live()
    transport = max(live - echo_us, 0.0)

    def ratio(total: float) -> float:
        return round((echo_us + transport) / (total + transport), 3)

    total, wire_total = sum(steps.values()), sum(wire.values())
    hub_total = sum(v for k, v in hub.items() if "in-memory" not in k)
    print(json.dumps({"floor_us": steps, "floor_total_us": round(total, 3),
                      "wire_floor_us": wire, "wire_floor_total_us": round(wire_total, 3),
                      "echo_in_process_us": echo_us, "echo_live_us": live,
                      "hub_stages_us": hub, "hub_total_us": round(hub_total, 3),
                      "transport_us": round(transport, 3),
                      "floor_ratio_to_echo_live": ratio(total),
                      "wire_floor_ratio_to_echo_live": ratio(wire_total),
                      "hub_stages_ratio_to_echo_live": ratio(hub_total)}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
