"""Single checks beside large batches: what an officer waits while airlines' batches keep the
hub busy (session 11, issue 20).

    python -m benchmarks.mixed_bench [--rate 500] [--batch manifest|paxlst] [--size 400]
                                     [--in-flight 2] [--hold both|off] [--rounds 3] [--seconds 5]

One hub (``rmas serve`` pinned to CPU 0; this process on CPU 1, one channel) loaded at once by
a closed loop of large batches, ``--in-flight`` at a time, and an open loop of CheckDocument at
``--rate`` a second:

- ``--batch manifest``: CheckManifest of ``--size`` documents, the hub of ``benchmarks.hub_bench``
  (two SQLite stores of 100,000 records, half the numbers asked known);
- ``--batch paxlst``: CheckPaxlst of the 480-passenger interchange (a fresh interchange
  reference each time), the hub of ``benchmarks.bench_iapi`` (the demo's stores).

For each round, the hub with ``[hub] coalesce_ms = 0`` and (``--hold both``) with the default
hold. Reports the single checks' p50 and p99, the batches' documents (or interchanges) a
second, the share of single checks held (``rmas_answers_held_total``) and the errors; prints
the medians and writes ``bench-out/mixed.json``. No target: docs/benchmarks.md, "Single checks
beside large batches".
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import sys
import urllib.request
from typing import Any

import grpc

from benchmarks.bench_iapi import fresh_paxlst
from benchmarks.bench_iapi import hub_config as iapi_config
from benchmarks.coalesce_bench import HOLD_MS, RECORDS
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
from benchmarks.loadgen import Result, closed_loop, open_loop
from rmas.v1 import check_pb2, check_pb2_grpc


async def _load(
    port: int, args: argparse.Namespace, single: list[Any], batches: list[Any], seconds: float
) -> tuple[Result, Result]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = check_pb2_grpc.DocumentCheckStub(ch)
        counter = itertools.count()

        async def check() -> None:
            await stub.CheckDocument(single[next(counter) % len(single)], timeout=10)

        async def batch() -> None:
            if args.batch == "paxlst":
                message = fresh_paxlst(next(counter))
                await stub.CheckPaxlst(check_pb2.CheckPaxlstRequest(message=message), timeout=10)
            else:
                await stub.CheckManifest(batches[next(counter) % len(batches)], timeout=10)

        many, one = await asyncio.gather(
            closed_loop(batch, in_flight=args.in_flight, seconds=seconds, warmup=0.5),
            open_loop(check, rate=args.rate, seconds=seconds, warmup=0.5),
        )
        return many, one


def _held(metrics_port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read()
    for line in text.decode().splitlines():
        if line.startswith("rmas_answers_held_total"):
            return float(line.split()[-1])
    return float("nan")


def _base_config(args: argparse.Namespace) -> str:
    """The hub's configuration (stores built or imported once), with a port to fill in."""
    cfg = (
        iapi_config(OUT / "iapi", 1)
        if args.batch == "paxlst"
        else hub_config(build_stores(RECORDS), 1)
    )
    text = cfg.read_text().replace('listen = "127.0.0.1:1"', 'listen = "{listen}"')
    assert 'listen = "{listen}"' in text, "the bench config's listen line moved"
    return text


def _config(base: str, port: int, hold_ms: float) -> str:
    text = base.replace('listen = "{listen}"', f'listen = "127.0.0.1:{port}"')
    text = text.replace("[hub]\n", f"[hub]\ncoalesce_ms = {hold_ms}\n", 1)
    out = OUT / f"bench-mixed-{hold_ms}.toml"
    out.write_text(text)
    return str(out)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import uvloop

    pin(1)
    single, manifests = requests(sample_documents(2000, RECORDS), args.size)
    holds = {"hub, not held": 0.0, "hub, held": HOLD_MS}
    if args.hold == "off":
        del holds["hub, held"]
    per_batch = 480 if args.batch == "paxlst" else args.size
    base = _base_config(args)
    rows: dict[str, list[dict[str, float]]] = {}
    for r in range(args.rounds):
        for name, hold_ms in holds.items():
            port, metrics_port = free_port(), free_port()
            config = _config(base, port, hold_ms)
            cmd = [sys.executable, "-m", "rmas.cli", "serve", "--config", config,
                   "--metrics-listen", f"127.0.0.1:{metrics_port}"]  # fmt: skip
            with server_process(cmd, port):
                uvloop.run(_load(port, args, single, manifests, 0.5))  # warm
                held0 = _held(metrics_port)
                many, one = uvloop.run(_load(port, args, single, manifests, args.seconds))
                held = _held(metrics_port) - held0
            row = {"batch_docs_s": many.rate * per_batch, "single_p50_ms": one.p50_ms,
                   "single_p99_ms": one.p99_ms, "single_held_share": held / max(one.calls, 1),
                   "errors": float(many.errors + one.errors)}  # fmt: skip
            rows.setdefault(name, []).append(row)
            shown = ", ".join(f"{k}={v:.3f}" for k, v in row.items())
            print(f"round {r + 1} {name:14s} {shown}", file=sys.stderr, flush=True)
    median = {k: {f: statistics.median(x[f] for x in v) for f in v[0]} for k, v in rows.items()}
    out = {"args": vars(args), "hold_ms": HOLD_MS, "median": median, "rows": rows}
    (OUT / "mixed.json").write_text(json.dumps(out, indent=1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mixed_bench")
    parser.add_argument("--rate", type=float, default=500.0, help="single checks a second")
    parser.add_argument("--batch", choices=("manifest", "paxlst"), default="manifest")
    parser.add_argument("--size", type=int, default=400, help="documents a manifest")
    parser.add_argument("--in-flight", type=int, default=2, help="batches at a time")
    parser.add_argument("--hold", choices=("both", "off"), default="both")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    out = run(parser.parse_args())
    for key, m in out["median"].items():
        print(f"{key:16s} " + ", ".join(f"{k} {v:,.3f}" for k, v in m.items()))


if __name__ == "__main__":
    main()
