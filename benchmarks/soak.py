"""`make soak`: a hub under steady load for a long time; memory and latency must stay flat.

A real ``rmas serve`` process (pinned to CPU 0) with two 1-million-record SQLite stores, a
required SQLite audit trail and metrics on, takes a steady open-loop load from this process
(CPU 1): single checks at ``--rate`` per second plus one 50-document manifest a second, for
``--minutes`` (default 10). Every ``--window`` seconds it records the resident memory (VmRSS)
of the hub and its audit writer process and the window's p50/p99 latency. Targets, against the
run's own first windows (after a one-minute warm-up, when caches and the audit file have grown
to their working size):

- memory: the last window's RSS at most 1.10x the first measured window's;
- latency: the median p99 of the last three windows at most 1.5x that of the first three
  measured ones (a single window's p99 here jumps 10-80x now and then, with no trend: the
  median of three shows a trend, not a spike), and no errors.

    python -m benchmarks.soak [--minutes 10] [--rate 300] [--window 30]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import grpc

from benchmarks.hub_bench import (
    OUT,
    build_stores,
    free_port,
    hub_config,
    pin,
    sample_documents,
    server_process,
)
from rmas.v1 import check_pb2, check_pb2_grpc


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def rss_mb(pid: int) -> float:
    """Resident memory of the hub and of its child processes (the audit writer)."""
    total = _rss_kb(pid)
    for child in _children(pid):
        with contextlib.suppress(OSError):
            total += _rss_kb(child)
    return total / 1024


def pct(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


async def soak(
    target: str, pid: int, docs: list[Any], *, minutes: float, rate: float, window: float
) -> list[dict[str, float]]:
    rnd = random.Random(3)
    singles = [check_pb2.CheckDocumentRequest(document=d) for d in docs]
    manifests = [
        check_pb2.CheckManifestRequest(
            travellers=[
                check_pb2.Traveller(ref=str(j), document=rnd.choice(docs)) for j in range(50)
            ]
        )
        for _ in range(20)
    ]
    windows: list[dict[str, float]] = []
    async with grpc.aio.insecure_channel(target) as ch:
        stub = check_pb2_grpc.DocumentCheckStub(ch)
        lat: list[float] = []
        errors = 0
        pending: set[asyncio.Task[None]] = set()

        async def one(request: Any, manifest: bool) -> None:
            nonlocal errors
            start = time.perf_counter()
            try:
                if manifest:
                    await stub.CheckManifest(request, timeout=5)
                else:
                    await stub.CheckDocument(request, timeout=5)
                lat.append((time.perf_counter() - start) * 1000)
            except grpc.aio.AioRpcError:
                errors += 1

        began = time.monotonic()
        end = began + minutes * 60
        next_window = began + window
        interval = 1.0 / rate
        n = 0
        while time.monotonic() < end:
            n += 1
            due = began + n * interval
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            manifest = n % int(rate) == 0
            req = manifests[n % len(manifests)] if manifest else singles[n % len(singles)]
            task = asyncio.create_task(one(req, manifest))
            pending.add(task)
            task.add_done_callback(pending.discard)
            if time.monotonic() >= next_window:
                row = {
                    "t_s": round(time.monotonic() - began, 1),
                    "rss_mb": round(rss_mb(pid), 1),
                    "p50_ms": round(pct(lat, 0.5), 2),
                    "p99_ms": round(pct(lat, 0.99), 2),
                    "calls": float(len(lat)),
                    "errors": float(errors),
                }
                windows.append(row)
                print(f"  {json.dumps(row)}", file=sys.stderr, flush=True)
                lat, errors = [], 0
                next_window += window
        await asyncio.gather(*pending)
    return windows


def main(argv: list[str] | None = None) -> int:
    import uvloop

    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=300.0, help="single checks a second")
    parser.add_argument("--window", type=float, default=30.0, help="seconds per sample")
    parser.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    pin(1)
    stores = build_stores(args.records)
    docs = sample_documents(5000, args.records)
    port = free_port()
    cfg = hub_config(stores, port)
    key = OUT / "soak-audit.key"
    key.write_text(os.urandom(32).hex())
    audit = OUT / "soak-audit.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{audit}{suffix}").unlink(missing_ok=True)
    text = cfg.read_text().replace(
        "[[providers]]",
        f'metrics_listen = "127.0.0.1:{free_port()}"\n'
        f'[audit]\nurl = "sqlite+aiosqlite:///{audit}"\nkey_file = "{key}"\n[[providers]]',
        1,
    )
    cfg.write_text(text)
    serve = [sys.executable, "-m", "rmas.cli", "serve", "--config", str(cfg)]
    with server_process(serve, port) as proc:
        # taskset execs the hub in place: the process id is the hub's.
        windows = uvloop.run(
            soak(
                f"127.0.0.1:{port}",
                proc.pid,
                docs,
                minutes=args.minutes,
                rate=args.rate,
                window=args.window,
            )
        )
    warm = max(1, int(60 / args.window))  # the first minute is warm-up
    measured = windows[warm:] or windows
    first, last = measured[0], measured[-1]
    # Latency: the median of three windows at each end. One window's p99 on this shared machine
    # jumps 10-80x for a window now and then (a stalled disk or neighbour), anywhere in the run
    # and with no trend; a growing latency moves the median of three, a spike does not.
    k = min(3, max(1, len(measured) // 2))
    head_p99 = statistics.median(w["p99_ms"] for w in measured[:k])
    tail_p99 = statistics.median(w["p99_ms"] for w in measured[-k:])
    head_p50 = statistics.median(w["p50_ms"] for w in measured[:k])
    tail_p50 = statistics.median(w["p50_ms"] for w in measured[-k:])
    result = {
        "minutes": args.minutes,
        "rate": args.rate,
        "windows": windows,
        "rss_ratio_last_first": last["rss_mb"] / first["rss_mb"],
        "p99_ratio_last_first": tail_p99 / head_p99,
        "p50_ratio_last_first": tail_p50 / head_p50,
        "p99_max_ms": max(w["p99_ms"] for w in measured),
        "errors": sum(w["errors"] for w in windows),
        "audit_entries_file_mb": round(audit.stat().st_size / 2**20, 1),
    }
    result["targets"] = [
        {"text": "soak: RSS last/first window", "value": result["rss_ratio_last_first"],
         "op": "<=", "bound": 1.10, "met": result["rss_ratio_last_first"] <= 1.10},
        {"text": "soak: p99, last/first 3 windows (medians)",
         "value": result["p99_ratio_last_first"],
         "op": "<=", "bound": 1.5, "met": result["p99_ratio_last_first"] <= 1.5},
        {"text": "soak: errors", "value": result["errors"], "op": "<=", "bound": 0,
         "met": result["errors"] == 0},
    ]  # fmt: skip
    print(json.dumps(result, indent=1))
    return 0 if all(t["met"] for t in result["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
