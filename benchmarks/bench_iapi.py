"""The airline channel: PAXLST parsing rate, and a 480-passenger PAXLST answered end to end.

``python -m benchmarks.bench_iapi``. Parsing: best of 7 repeats, segments per second for
fixtures/paxlst/manifest_480.edi. End to end: ``rmas serve`` (pinned to CPU 0) with the demo's SQL
stores (NZL, AUS complete registry, PHL; fixtures/records), a client on CPU 1 sending the
480-passenger PAXLST one at a time (each with a fresh interchange reference, so none is answered
from the duplicate cache) for ``seconds``; latency percentiles of CheckPaxlst.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import timeit
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PAX = ROOT / "fixtures" / "paxlst" / "manifest_480.edi"
#: p99 of the 480-passenger PAXLST end to end (issue 20; 100 ms in issue 4).
P99_MS = 50.0


def parse_rate() -> dict[str, float]:
    from rmas.iapi.paxlst import read_paxlst
    from rmas.iapi.syntax import tokenize

    data = PAX.read_bytes()
    segments = len(tokenize(data)[0])
    best = min(timeit.repeat(lambda: read_paxlst(data), number=20, repeat=7)) / 20
    return {"segments": float(segments), "parse_ms": best * 1000, "segments_per_s": segments / best}


async def _stores(workdir: Path) -> list[tuple[str, str, str]]:
    from adapters.sqlstore.importer import import_csv

    out = []
    for state, registry in (("NZL", "alerts"), ("AUS", "complete"), ("PHL", "alerts")):
        url = f"sqlite+aiosqlite:///{workdir / state.lower()}.db"
        await import_csv(url, ROOT / "fixtures" / "records" / f"{state.lower()}.csv", replace=True)
        out.append((state, url, registry))
    return out


def fresh_paxlst(i: int) -> bytes:
    """The 480-passenger PAXLST with interchange reference ``i``: never answered from the
    duplicate cache."""
    return PAX.read_bytes().replace(b"ICR0480", f"B{i:06d}".encode())


def hub_config(workdir: Path, port: int) -> Path:
    """The demo's SQL stores (imported afresh into ``workdir``) and a plain hub on ``port``
    serving them; returns its configuration file."""
    workdir.mkdir(parents=True, exist_ok=True)
    stores = asyncio.run(_stores(workdir))
    cfg = workdir / "hub.toml"
    lines = ["[hub]", f'listen = "127.0.0.1:{port}"', 'log_level = "warning"']
    for state, url, registry in stores:
        lines += ["[[providers]]", f'id = "{state}"', 'kind = "sql"', f'url = "{url}"',
                  f'issuing_states = ["{state}"]', f'registry = "{registry}"']  # fmt: skip
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


async def _load(target: str, seconds: float) -> list[float]:
    import grpc

    from rmas.v1 import check_pb2, check_pb2_grpc

    lat: list[float] = []
    async with grpc.aio.insecure_channel(target) as ch:
        stub = check_pb2_grpc.DocumentCheckStub(ch)
        end = time.perf_counter() + seconds
        i = 0
        while time.perf_counter() < end:
            i += 1
            data = fresh_paxlst(i)
            t0 = time.perf_counter()
            resp = await stub.CheckPaxlst(check_pb2.CheckPaxlstRequest(message=data), timeout=5)
            if i > 5:  # warm-up
                lat.append(time.perf_counter() - t0)
            if resp.errors or len(resp.passengers) != 480:
                raise RuntimeError(f"unexpected answer: {list(resp.errors)[:1]}")
    return lat


def end_to_end(seconds: float = 10.0) -> dict[str, float]:
    import uvloop

    from benchmarks.hub_bench import OUT, free_port, pin, server_process

    pin(1)
    port = free_port()
    cfg = hub_config(OUT / "iapi", port)
    with server_process([sys.executable, "-m", "rmas.cli", "serve", "--config", str(cfg)], port):
        lat = sorted(uvloop.run(_load(f"127.0.0.1:{port}", seconds)))
    return {
        "calls": float(len(lat)),
        "p50_ms": lat[len(lat) // 2] * 1000,
        "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000,
        "max_ms": lat[-1] * 1000,
    }


def run(quick: bool = False) -> dict[str, Any]:
    parse = parse_rate()
    e2e = end_to_end(3.0 if quick else 10.0)
    return {
        "parse": parse,
        "end_to_end_480": e2e,
        "targets": [
            {"text": "PAXLST parsing, segments/s", "value": parse["segments_per_s"],
             "op": ">=", "bound": 50_000.0, "met": parse["segments_per_s"] >= 50_000},
            {"text": "480-passenger PAXLST end to end, p99 ms", "value": e2e["p99_ms"],
             "op": "<=", "bound": P99_MS, "met": e2e["p99_ms"] <= P99_MS,
             "reference": f"p50 {e2e['p50_ms']:.1f} ms over {e2e['calls']:.0f} calls; parsing "
                          f"alone {parse['parse_ms']:.1f} ms (absolute target, no same-run "
                          "reference)"},
        ],
    }  # fmt: skip


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))
