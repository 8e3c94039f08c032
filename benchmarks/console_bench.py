"""What rendering the console's answer page adds to a CheckDocument's server time.

``python -m benchmarks.console_bench [--quick]``. One hub in this process with a required
SQLite audit trail (``synchronous = FULL``, no linger: the shortest commit, so the strictest
comparison) and an in-memory provider that knows the document as STOLEN. The document is a
scanned zone with a misread number (a refuted check digit and an OCR candidate): the answer page
with the most on it (every source, the zone, the digits, the candidates).

Both paths go through :meth:`CheckPipeline.run <rmas.server.pipeline.CheckPipeline.run>`, the
servicer's own steps (charge, check, audit entry, answer built while the entry commits, sent once
it is durable):

- **grpc**: the answer is the CheckDocumentResponse (``result_to_pb``), as CheckDocument does;
- **console**: the answer is the rendered HTML page, as the console's ``POST /check`` does.

Measured with the trail at ``synchronous = FULL`` (the hub's default; the target) and again at
``NORMAL`` (no fsync per commit: the shortest server time, where the page shows most; reported,
``normal_*``). In alternating slices of ``N`` checks each (grpc, console, console, grpc, ...), the
median of each slice's mean, plus **render** alone: the page rendered from a finished result,
the cost if it did not overlap the commit at all. Figures:

- ``added_ratio`` = console / grpc - 1: what the page adds to the server time (target <= 0.10);
- ``render_ratio`` = render / grpc: the same cost with no overlap (reported, the worst case).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rmas.audit.entry import Caller, Channel, DocumentKeyer
from rmas.audit.sink import AuditSink
from rmas.audit.trail import AuditTrail
from rmas.config import HubConfig
from rmas.grpckit.auth import Admitted
from rmas.grpckit.mapping import result_to_pb, scanned_from_lines
from rmas.mrz import Layout
from rmas.security.access import View
from rmas.server.app import HubServer
from rmas.server.pipeline import CheckOutcome, CheckRequest
from rmas.testing import FakeProvider, compose
from rmas.v1 import check_pb2
from rmas.verdict import RecordStatus

TARGET = 0.10


def _zone() -> list[str]:
    line1, line2 = compose(
        Layout.TD3, document_code="P", issuing_state="NZL", surname="TESTER", given_names="ALEX",
        document_number="LA000002", nationality="NZL", birth_date="900101", sex="F",
        expiry_date="300101",
    )  # fmt: skip
    return [line1, line2[:6] + "O" + line2[7:]]  # LA0000O2: a misread 0


async def _measure(quick: bool, synchronous: str) -> dict[str, Any]:
    slices, per_slice = (6, 30) if quick else (30, 100)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "audit.db"
        trail = AuditTrail(
            AuditSink(f"sqlite+aiosqlite:///{db}", synchronous=synchronous, linger_s=0.0),
            DocumentKeyer(os.urandom(32)),
        )
        nzl = FakeProvider.issuer(
            "NZL", ["NZL"], {("NZL", "LA000002"): RecordStatus.STOLEN, ("NZL", "LA0000O2"):
                             RecordStatus.NO_RECORD})  # fmt: skip
        server = HubServer(
            HubConfig(listen="127.0.0.1:0", console_listen="127.0.0.1:0"), [nzl], audit=trail
        )
        await server.start()
        try:
            assert server.console is not None
            pages = server.console.pages
            pipeline = server.service.pipeline
            who = Admitted(Caller("bench:officer", "officer"), View.FULL)
            item = scanned_from_lines(_zone(), prefix="mrz")

            def grpc_answer(o: CheckOutcome) -> check_pb2.CheckDocumentResponse:
                out = check_pb2.CheckDocumentResponse()
                result_to_pb(o.results[0], out.result, o.view)
                return out

            def page(o: CheckOutcome) -> str:
                return pages.answer_page(o.results[0], None)

            sample = await pipeline.run(CheckRequest(who, Channel.DOCUMENT, (item,)), lambda o: o)
            html = page(sample)
            assert "OCR candidate LA000002" in html, "page incomplete"
            assert "STOLEN" in html, "page incomplete"

            async def timed(answer: Callable[[CheckOutcome], Any]) -> float:
                slow = answer is page  # as each edge calls it
                start = time.perf_counter()
                for _ in range(per_slice):
                    await pipeline.run(
                        CheckRequest(who, Channel.DOCUMENT, (item,)), answer, slow_answer=slow
                    )
                return (time.perf_counter() - start) / per_slice * 1e6

            for answer in (grpc_answer, page):  # warm up both paths
                await timed(answer)
            grpc_us: list[float] = []
            console_us: list[float] = []
            for i in range(slices):
                order = (grpc_answer, page) if i % 2 == 0 else (page, grpc_answer)
                for answer in order:
                    (grpc_us if answer is grpc_answer else console_us).append(await timed(answer))
            render_us = []
            for _ in range(slices):
                start = time.perf_counter()
                for _ in range(per_slice):
                    page(sample)
                render_us.append((time.perf_counter() - start) / per_slice * 1e6)
        finally:
            await server.stop(grace=0.5)
    grpc_m, console_m, render_m = (statistics.median(x) for x in (grpc_us, console_us, render_us))
    return {
        "slices": slices,
        "checks_per_slice": per_slice,
        "page_bytes": len(html.encode()),
        "grpc_server_us": round(grpc_m, 1),
        "console_server_us": round(console_m, 1),
        "render_us": round(render_m, 1),
        "added_ratio": round(console_m / grpc_m - 1.0, 4),
        "render_ratio": round(render_m / grpc_m, 4),
    }


async def _run(quick: bool) -> dict[str, Any]:
    full = await _measure(quick, "FULL")  # the hub's default [audit] synchronous
    normal = await _measure(quick, "NORMAL")  # no fsync per commit: the page shows most
    added = full["added_ratio"]
    return {
        "median": {
            **{k: v for k, v in full.items() if k not in ("slices", "checks_per_slice")},
            **{f"normal_{k}": v for k, v in normal.items() if k.endswith(("_us", "_ratio"))},
        },
        "slices": full["slices"],
        "checks_per_slice": full["checks_per_slice"],
        "targets": [
            {
                "text": "console answer page: added server time / CheckDocument",
                "value": added,
                "op": "<=",
                "bound": TARGET,
                "met": added <= TARGET,
            }
        ],
    }


def run(quick: bool = False) -> dict[str, Any]:
    return asyncio.run(_run(quick))


if __name__ == "__main__":
    from rmas.logs import configure_logging

    configure_logging("error")
    print(json.dumps(run("--quick" in sys.argv), indent=1))
