"""Single-check answers held and sent together (``[hub] coalesce_ms``), against not (session 10).

    python -m benchmarks.coalesce_bench [--rounds N] [--seconds S] [--rates 200,1000,2000]

The hub of ``benchmarks.hub_bench`` (two SQLite stores of 100,000 records, ``rmas serve`` pinned
to CPU 0, this process on CPU 1) with ``coalesce_ms = 0`` and with the default, and the echo
bare (the reference of the issue-20 targets) and with the hub's coalescer on CheckDocument (an
echo that coalesces too, for an honest comparison), alternating round by round:

- **closed loop**: CheckDocument at 64 in flight, checks/s and the server's CPU (user + system,
  all threads, from ``/proc``) per check;
- **open loop**, hub only: CheckDocument at each of ``--rates`` (a steady rate), p50 and p99
  latency and CPU per check, with and without the hold: what the hold costs a caller below
  saturation.

Prints the medians per server and writes ``bench-out/coalesce.json``. The same hold under a
mixed load: ``benchmarks.mixed_bench``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import grpc

from benchmarks.hub_bench import (
    OUT,
    build_stores,
    free_port,
    hub_config,
    pin,
    requests,
    sample_documents,
    server_process,
)
from benchmarks.loadgen import closed_loop, open_loop
from benchmarks.security_bench import _cpu_s
from rmas.v1 import check_pb2_grpc

RECORDS = 100_000
#: Echo padding: the hub's single answer is about 110 bytes (``hub_bench`` pads its echo alike).
PAD_SINGLE = 80
HOLD_MS = 2.0


def _server(name: str, port: int, stores: dict[str, Path]) -> list[str]:
    if name.startswith("echo"):
        hold = str(HOLD_MS) if name == "echo, held" else "0"
        return [sys.executable, "-m", "benchmarks.echo_server", str(port), str(PAD_SINGLE), "0",
                hold]  # fmt: skip
    cfg = hub_config(stores, port)
    hold = "0" if name == "hub, not held" else str(HOLD_MS)
    text = cfg.read_text().replace("[hub]\n", f"[hub]\ncoalesce_ms = {hold}\n", 1)
    cfg = cfg.with_name(f"bench-hub-coalesce-{hold}.toml")
    cfg.write_text(text)
    return [sys.executable, "-m", "rmas.cli", "serve", "--config", str(cfg)]


async def _load(port: int, single: list[Any], seconds: float, rate: float | None) -> Any:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = check_pb2_grpc.DocumentCheckStub(ch)
        counter = itertools.count()

        async def call() -> None:
            await stub.CheckDocument(single[next(counter) % len(single)], timeout=10)

        if rate is None:
            return await closed_loop(call, in_flight=64, seconds=seconds, warmup=0.5)
        return await open_loop(call, rate=rate, seconds=seconds, warmup=0.5)


def _measure(
    name: str, stores: dict[str, Path], single: list[Any], seconds: float, rate: float | None
) -> dict[str, float]:
    import uvloop

    port = free_port()
    with server_process(_server(name, port, stores), port) as proc:
        uvloop.run(_load(port, single, 0.5, rate))  # connections and caches warm
        before = _cpu_s(proc.pid)[0]
        got = uvloop.run(_load(port, single, seconds, rate))
        cpu = _cpu_s(proc.pid)[0] - before
    calls = got.rate * (seconds + 0.5)  # the CPU counts the warm-up half second too
    return {"rate": got.rate, "cpu_us": cpu / calls * 1e6, "p50_ms": got.p50_ms,
            "p99_ms": got.p99_ms, "errors": float(got.errors)}  # fmt: skip


def run(rounds: int = 3, seconds: float = 5.0, rates: tuple[float, ...] = (200, 1000, 2000)) -> Any:
    pin(1)
    stores = build_stores(RECORDS)
    single, _ = requests(sample_documents(2000, RECORDS))
    closed = ("hub, not held", "hub, held", "echo", "echo, held")
    rows: dict[str, list[dict[str, float]]] = {}
    for r in range(rounds):
        for name in closed:
            row = _measure(name, stores, single, seconds, None)
            rows.setdefault(f"{name}, 64 in flight", []).append(row)
            print(f"round {r + 1} {name:14s} 64 in flight: {row['rate']:8,.0f} checks/s, "
                  f"{row['cpu_us']:6.1f} µs CPU a check", file=sys.stderr, flush=True)  # fmt: skip
        for rate in rates:
            for name in closed[:2]:
                row = _measure(name, stores, single, seconds, rate)
                rows.setdefault(f"{name}, {rate:g}/s", []).append(row)
                print(f"round {r + 1} {name:14s} {rate:6g}/s: p50 {row['p50_ms']:.2f} ms, p99 "
                      f"{row['p99_ms']:.2f} ms, {row['cpu_us']:6.1f} µs CPU a check",
                      file=sys.stderr, flush=True)  # fmt: skip
    median = {k: {f: statistics.median(x[f] for x in v) for f in v[0]} for k, v in rows.items()}
    out = {"hold_ms": HOLD_MS, "rounds": rounds, "seconds": seconds, "median": median,
           "rows": rows}  # fmt: skip
    (OUT / "coalesce.json").write_text(json.dumps(out, indent=1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.coalesce_bench")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rates", default="200,1000,2000", help="open-loop rates, checks/s")
    args = parser.parse_args()
    rates = tuple(float(x) for x in args.rates.split(",") if x)
    out = run(args.rounds, args.seconds, rates)
    for key, m in out["median"].items():
        print(f"{key:32s} {m['rate']:9,.0f}/s  {m['cpu_us']:6.1f} µs CPU a check  "
              f"p50 {m['p50_ms']:6.2f} ms  p99 {m['p99_ms']:6.2f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
