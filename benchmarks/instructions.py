"""Instructions per call, hub against echo: the hub section's ratios without the clock (issue 20).

    python -m benchmarks.instructions [single] [manifest] [paxlst] [--calls N]

This machine's speed changes by up to 2.5x within minutes, and other work on it slows a pure-Python
server more than the C-heavy echo, so the wall-clock ratios of ``benchmarks.hub_bench`` move from
run to run. Valgrind's callgrind counts the instructions a process executes, which does not depend
on what else the machine does (the same total twice, once with the other core loaded): the hub
(``rmas serve``, the configuration of ``benchmarks.hub_bench`` over two SQLite stores of 100,000
records) and the echo (``benchmarks.echo_server``, padded to the hub's reply sizes as
``hub_bench`` pads it) each run under callgrind; after a warm-up the counters are zeroed
(``callgrind_control -z``), ``N`` calls are made with ``hub_bench``'s requests (CheckDocument at
64 in flight; CheckManifest of 400 documents one at a time: at 4 in flight, as ``hub_bench``
sends them, how often two manifests' lookups share one store query depends on timing, and
the count moved by 13% between runs of the same code), and the counters are dumped.

``paxlst``: the hub of ``benchmarks.bench_iapi``'s end-to-end run (the demo's three SQL stores)
answering the 480-passenger PAXLST one at a time, each with a fresh interchange reference;
instructions per call, with no echo to compare (its target is a latency).

Printed: instructions per call (per document for manifests) and echo / hub, the instruction
ratio. It is not the throughput ratio (an instruction of the interpreter and one of gRPC's C core
do not take the same time: the wall-clock ratios have been above the instruction ratios), but it
moves only when the code does: read it to compare two trees, not against the targets.
Needs valgrind (Debian's ``valgrind`` package); under it a server runs about 50x slower, so a
section takes one to three minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks import bench_iapi
from benchmarks.bench_iapi import fresh_paxlst
from benchmarks.hub_bench import (
    OUT,
    build_stores,
    free_port,
    hub_config,
    requests,
    sample_documents,
)

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = 400
PAXLST = 480
#: Interchange references: each PAXLST is new to the hub (a resend would be answered otherwise).
_INTERCHANGES = itertools.count(1)
RECORDS = 100_000


@contextlib.contextmanager
def _under_callgrind(args: list[str], port: int, out: Path) -> Iterator[int]:
    """Start ``args`` under callgrind, wait for ``port``; yield its pid."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p", *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 600  # imports under valgrind take a minute or two
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{args[2:4]} exited under callgrind")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start under callgrind")
            time.sleep(0.5)
        yield proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


async def _calls(target: str, mode: str, n: int, sizes: bool = False) -> tuple[int, int]:
    """``n`` calls of ``mode``; then, with ``sizes``, the reply sizes (one document, one
    manifest), else zeros."""
    import grpc

    from rmas.v1 import check_pb2, check_pb2_grpc

    single, manifests = requests(sample_documents(2000, RECORDS), MANIFEST)
    opts = [("grpc.max_receive_message_length", 64 << 20)]
    async with grpc.aio.insecure_channel(target, options=opts) as ch:
        stub = check_pb2_grpc.DocumentCheckStub(ch)
        todo = iter(range(n))

        async def worker() -> None:
            for i in todo:
                if mode == "single":
                    await stub.CheckDocument(single[i % len(single)], timeout=600)
                elif mode == "paxlst":
                    message = fresh_paxlst(next(_INTERCHANGES))
                    answer = await stub.CheckPaxlst(
                        check_pb2.CheckPaxlstRequest(message=message), timeout=600
                    )
                    if answer.errors or len(answer.passengers) != PAXLST:
                        raise RuntimeError(f"unexpected answer: {list(answer.errors)[:1]}")
                else:
                    await stub.CheckManifest(manifests[i % len(manifests)], timeout=600)

        await asyncio.gather(*(worker() for _ in range(64 if mode == "single" else 1)))
        if not sizes or mode == "paxlst":
            return 0, 0
        one = (await stub.CheckDocument(single[0], timeout=600)).ByteSize()
        many = (await stub.CheckManifest(manifests[0], timeout=600)).ByteSize()
    return one, many


def _count(args: list[str], port: int, mode: str, n: int) -> tuple[int, tuple[int, int]]:
    """Instructions the server at ``port`` executes for ``n`` calls (after n // 4 unmeasured)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        with _under_callgrind(args, port, out) as pid:
            target = f"127.0.0.1:{port}"
            asyncio.run(_calls(target, mode, max(n // 4, 1)))
            subprocess.run(["callgrind_control", "-z", str(pid)], check=True,
                           capture_output=True)  # fmt: skip
            asyncio.run(_calls(target, mode, n))
            subprocess.run(["callgrind_control", "-d", str(pid)], check=True,
                           capture_output=True)  # fmt: skip
            sizes = asyncio.run(_calls(target, mode, 0, sizes=True))  # after the dump
        dumps = sorted(glob.glob(f"{out}.*.1"))
        if not dumps:
            raise RuntimeError("callgrind wrote no dump")
        for line in Path(dumps[0]).read_text().splitlines():
            if line.startswith("summary:"):
                return int(line.split()[1]), sizes
    raise RuntimeError("no summary line in the callgrind dump")


def run(modes: list[str], calls: int) -> dict[str, Any]:
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("benchmarks.instructions needs valgrind (apt-get install valgrind)")
    stores = build_stores(RECORDS)
    docs = sample_documents(2000, RECORDS)
    out: dict[str, Any] = {"records": RECORDS}
    for mode in modes:
        if mode == "paxlst":
            out[mode] = _paxlst(max(calls // 50, 8))
            continue
        n = calls if mode == "single" else max(calls // 25, 8)
        per = 1 if mode == "single" else MANIFEST
        port = free_port()
        cfg = hub_config(stores, port)
        serve = [sys.executable, "-m", "rmas.cli", "serve", "--config", str(cfg)]
        hub, (one, many) = _count(serve, port, mode, n)
        from rmas.v1 import check_pb2

        empty = check_pb2.CheckManifestResponse(
            results=[check_pb2.CheckResult(ref=str(j), document=docs[0]) for j in range(MANIFEST)]
        ).ByteSize()
        pad_single = max(0, one - docs[0].ByteSize() - 8)
        pad_item = max(0, (many - empty) // MANIFEST - 3)
        port = free_port()
        echo_cmd = [sys.executable, "-m", "benchmarks.echo_server", str(port), str(pad_single),
                    str(pad_item)]  # fmt: skip
        echo, _ = _count(echo_cmd, port, mode, n)
        row = {
            "calls": n,
            "hub_instructions": round(hub / n / per),
            "echo_instructions": round(echo / n / per),
            "ratio": echo / hub,
        }
        out[mode] = row
        unit = "call" if mode == "single" else "document"
        print(f"  {mode}: hub {row['hub_instructions']:,} instructions a {unit}, echo "
              f"{row['echo_instructions']:,}: echo / hub {row['ratio']:.3f}",
              file=sys.stderr, flush=True)  # fmt: skip
    return out


def _paxlst(n: int) -> dict[str, Any]:
    """Instructions per 480-passenger PAXLST answered (``n`` calls)."""
    port = free_port()
    cfg = bench_iapi.hub_config(OUT / "iapi-instructions", port)
    serve = [sys.executable, "-m", "rmas.cli", "serve", "--config", str(cfg)]
    hub, _ = _count(serve, port, "paxlst", n)
    row = {"calls": n, "hub_instructions": round(hub / n)}
    print(f"  paxlst: hub {row['hub_instructions']:,} instructions a {PAXLST}-passenger PAXLST",
          file=sys.stderr, flush=True)  # fmt: skip
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modes", nargs="*", metavar="single|manifest|paxlst")
    parser.add_argument("--calls", type=int, default=1000, help="single checks (manifests: /25)")
    args = parser.parse_args()
    if set(args.modes) - {"single", "manifest", "paxlst"}:
        parser.error("modes are: single, manifest, paxlst")
    print(json.dumps(run(args.modes or ["single", "manifest"], args.calls), indent=1))


if __name__ == "__main__":
    main()
