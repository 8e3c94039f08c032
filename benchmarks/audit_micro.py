"""The audit trail's per-document work, in process.

    python -m benchmarks.audit_micro [--quick]

- ``encode``: the hub's side, :func:`rmas.audit.entry.encode_entries` for a manifest of 400
  results (the document keys' HMAC included);
- ``seal``: the writer's checks, entry digests and block hash of those bytes
  (:func:`rmas.audit.format.seal`);
- ``commit``: :meth:`rmas.audit.writer.SqliteChainWriter.commit` of that block to a fresh
  SQLite file (``synchronous = FULL``, checkpoints included), CPU time (user + system) per
  entry, with the pages a new trail gets (16 KB) and with SQLite's default (4 KB);
- ``single_*``: the same for single checks: ``encode_entries`` of one result (per call), and
  the seal and commit of a block of :data:`SINGLES` such calls joined (as the sink joins the
  calls that share a commit), per entry;
- ``writer_process_us``: the CPU of the SQLite writer process (:mod:`rmas.audit.writer`, read
  from /proc) per manifest document, fed by an :class:`~rmas.audit.sink.AuditSink` one manifest
  a commit: what the writer costs on a hub's core, its frame reading and wake-ups included.

Whatever the format of new blocks (:data:`rmas.audit.format.FORMAT`) is: run this file with the
``rmas`` of another tree first on ``PYTHONPATH`` to compare formats
(``PYTHONPATH=OTHER python benchmarks/audit_micro.py``).

Each figure is the best of several repeats (microseconds per document or entry). No target: the
end-to-end figure is benchmarks.security_bench's.
"""

from __future__ import annotations

import json
import os
import random
import resource
import sqlite3
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

from rmas.audit import writer as w
from rmas.audit.entry import Caller, Channel, DocumentKeyer, encode_entries
from rmas.audit.format import GENESIS, seal
from rmas.documents import validate_document
from rmas.hub import CheckResult, new_check_id
from rmas.verdict import NO_RECORD, Directive, Outcome, SourceAnswer, Verdict

SIZE = 400
#: Single checks a commit in the ``single_*`` figures (the linger gathers about this many).
SINGLES = 32


def _results() -> list[CheckResult]:
    rnd = random.Random(1)
    out = []
    for i in range(SIZE):
        state = rnd.choice(["NZL", "AUS"])
        doc = validate_document(issuing_state=state, number=f"LA{rnd.randrange(10**6, 10**7)}")
        answer = SourceAnswer(state, Outcome.ANSWERED, required=True, issuer=True,
                              latency_ms=1.0, record=NO_RECORD)  # fmt: skip
        out.append(CheckResult(new_check_id(), str(i), Verdict.CLEAR, Directive.OK_TO_BOARD,
                               sources=(answer,), document=doc))  # fmt: skip
    return out


def _best_us(call: Any, number: int, repeat: int) -> float:
    # CPU time of this thread: on a shared machine, wall time counts the other sessions too.
    times = timeit.repeat(call, number=number, repeat=repeat, timer=time.thread_time)
    return min(times) / number / SIZE * 1e6


def _commit_us(body: bytes, page_size: int, commits: int, size: int = SIZE) -> float:
    """CPU (user + system) per entry of ``commits`` commits, checkpoints included."""
    with tempfile.TemporaryDirectory(dir=os.environ.get("RMAS_BENCH_TMP")) as tmp:
        path = os.path.join(tmp, "audit.db")
        db = sqlite3.connect(path)
        db.execute(f"PRAGMA page_size = {page_size}")
        db.execute("VACUUM")
        db.close()
        writer = w.SqliteChainWriter(path, "FULL", 5.0)
        writer.open(True)
        for _ in range(5):  # warm
            writer.commit(size, body)
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        for _ in range(commits):
            writer.commit(size, body)
            if writer.maintenance_due:
                writer.maintain()
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        writer.close()
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return cpu / commits / size * 1e6


def _writer_process_us(body: bytes, commits: int) -> float:
    """CPU of the writer process per document, ``commits`` manifests through a real sink."""
    import asyncio

    from rmas.audit.sink import AuditSink

    def cpu_s(pid: int) -> float:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")

    async def feed(path: str) -> float:
        sink = AuditSink(f"sqlite+aiosqlite:///{path}")
        await sink.start()
        try:
            for _ in range(10):  # warm
                await sink.submit_encoded(SIZE, body, encoded_here=True)
            pid = sink._writer.pid  # type: ignore[attr-defined]
            before = cpu_s(pid)
            for _ in range(commits):
                await sink.submit_encoded(SIZE, body, encoded_here=True)
            return cpu_s(pid) - before
        finally:
            await sink.aclose()

    with tempfile.TemporaryDirectory(dir=os.environ.get("RMAS_BENCH_TMP")) as tmp:
        used = asyncio.run(feed(os.path.join(tmp, "audit.db")))
    return used / commits / SIZE * 1e6


def run(quick: bool = False) -> dict[str, Any]:
    results = _results()
    caller = Caller("rmas://officer/nz-akl", "officer")
    keyer = DocumentKeyer(os.urandom(32))
    ref = new_check_id()
    number, repeat, commits = (20, 3, 40) if quick else (200, 7, 300)

    def encode() -> bytes:
        return encode_entries(results, caller, Channel.MANIFEST, keyer, hub="h1", reference=ref)

    def encode_one() -> bytes:
        return encode_entries(results[:1], caller, Channel.DOCUMENT, keyer, hub="h1")

    body = encode()
    singles = b"".join(
        encode_entries([r], caller, Channel.DOCUMENT, keyer, hub="h1") for r in results[:SINGLES]
    )
    per_single = SIZE / SINGLES  # _best_us divides by SIZE
    out: dict[str, float] = {
        "encode_us": _best_us(encode, number, repeat),
        "seal_us": _best_us(lambda: seal(GENESIS, 0, SIZE, body), number, repeat),
        "commit_16k_us": _commit_us(body, w.PAGE_SIZE, commits),
        "commit_4k_us": _commit_us(body, 4096, commits),
        "single_encode_us": _best_us(encode_one, number, repeat) * SIZE,
        "single_seal_us": _best_us(lambda: seal(GENESIS, 0, SINGLES, singles), number, repeat)
        * per_single,
        "single_commit_16k_us": _commit_us(singles, w.PAGE_SIZE, commits, SINGLES),
        "writer_process_us": _writer_process_us(body, 3 * commits),
        "bytes_a_document": len(body) / SIZE,
    }
    for k, v in out.items():
        print(f"  {k}: {v:.3f}", file=sys.stderr)
    return {"median": out, "targets": []}


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv), indent=1))
