"""Hub throughput and latency against the bare grpc.aio echo, one right after the other.

Server processes run pinned to CPU 0, this load generator to CPU 1. Each round measures:

- ``check_64``: CheckDocument, 64 in flight, vs echo with the same request/reply sizes;
- ``check_200``: p99 latency at a steady 200 calls/s, vs echo at the same rate;
- ``manifest_400``: CheckManifest of 400 documents, documents/s vs a 400-item echo's items/s.

The hub serves two SQL store providers of ``--records`` records each (SQLite files built once and
kept in ``bench-out/``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc

from benchmarks.loadgen import closed_loop, open_loop
from rmas.v1 import check_pb2, check_pb2_grpc, common_pb2

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench-out"
STATES = ("NZL", "AUS")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pin(cpu: int) -> None:
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {cpu % (os.cpu_count() or 1)})


@contextlib.contextmanager
def server_process(args: list[str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # The server's stderr goes to a file, not a pipe nobody reads while it runs: a server logging
    # warnings under load (a provider timing out, say) would fill a pipe's 64 KB and then block
    # in its write, which looks like a stalled hub.
    with tempfile.TemporaryFile() as err:
        # taskset, not preexec_fn: the server gets CPU 0, this load generator keeps CPU 1.
        proc = subprocess.Popen(
            ["taskset", "-c", "0", *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
            stderr=err,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    err.seek(0)
                    raise RuntimeError(f"server exited: {err.read().decode()[-2000:]}")
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.1)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def build_stores(records: int) -> dict[str, Path]:
    from adapters.sqlstore.importer import build_synthetic

    OUT.mkdir(exist_ok=True)
    paths = {}
    for i, state in enumerate(STATES):
        path = OUT / f"bench-{state.lower()}-{records}.db"
        if not path.exists():
            t0 = time.perf_counter()
            tmp = path.with_suffix(".tmp")
            tmp.unlink(missing_ok=True)
            asyncio.run(build_synthetic(f"sqlite+aiosqlite:///{tmp}", records, [state], seed=i))
            tmp.rename(path)
            print(f"  built {path.name} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        paths[state] = path
    return paths


def hub_config(stores: dict[str, Path], port: int) -> Path:
    lines = [
        "[hub]",
        f'listen = "127.0.0.1:{port}"',
        "deadline_ms = 1500",
        'log_level = "warning"',
        "max_manifest = 1000",
    ]
    for state, path in stores.items():
        lines += [
            "[[providers]]",
            f'id = "{state}"',
            'kind = "sql"',
            f'url = "sqlite+aiosqlite:///{path}"',
            f'issuing_states = ["{state}"]',
        ]
    cfg = OUT / "bench-hub.toml"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def sample_documents(n: int, records: int, seed: int = 42) -> list[common_pb2.Document]:
    """Half known numbers, half unknown, across both economies."""
    from adapters.sqlstore.importer import synthetic_number

    rnd = random.Random(seed)
    docs = []
    for _ in range(n):
        i = rnd.randrange(len(STATES))
        state = STATES[i]
        k = rnd.randrange(records) if rnd.random() < 0.5 else records + rnd.randrange(records)
        docs.append(common_pb2.Document(issuing_state=state, number=synthetic_number(state, k)))
    return docs


def requests(
    docs: list[common_pb2.Document], manifest_size: int = 400
) -> tuple[list[check_pb2.CheckDocumentRequest], list[check_pb2.CheckManifestRequest]]:
    """The hub benchmarks' requests: a CheckDocument per document, and 16 manifests of
    ``manifest_size`` documents drawn from ``docs`` (the same for every benchmark that compares
    with this one)."""
    rnd = random.Random(7)
    single = [check_pb2.CheckDocumentRequest(document=d) for d in docs]
    manifests = [
        check_pb2.CheckManifestRequest(
            travellers=[
                check_pb2.Traveller(ref=str(j), document=rnd.choice(docs))
                for j in range(manifest_size)
            ]
        )
        for _ in range(16)
    ]
    return single, manifests


async def _measure(target: str, docs: list[common_pb2.Document], seconds: float,
                   manifest_size: int) -> dict[str, Any]:  # fmt: skip
    """The three measurements against one server (hub or echo: same service, same messages)."""
    single, manifests = requests(docs, manifest_size)
    opts = [("grpc.max_receive_message_length", 64 << 20)]
    async with grpc.aio.insecure_channel(target, options=opts) as ch:
        stub = check_pb2_grpc.DocumentCheckStub(ch)
        counter = iter(range(1 << 62))
        one = await stub.CheckDocument(single[0])
        many = await stub.CheckManifest(manifests[0])

        async def check() -> None:
            await stub.CheckDocument(single[next(counter) % len(single)], timeout=5)

        async def manifest() -> None:
            r = await stub.CheckManifest(manifests[next(counter) % len(manifests)], timeout=10)
            if len(r.results) != manifest_size:
                raise RuntimeError("short manifest answer")

        return {
            "c64": await closed_loop(check, in_flight=64, seconds=seconds),
            "r200": await open_loop(check, rate=200, seconds=seconds),
            "manifest": await closed_loop(manifest, in_flight=4, seconds=seconds),
            "reply_bytes": (one.ByteSize(), many.ByteSize()),
        }


def run(records: int = 1_000_000, rounds: int = 3, seconds: float = 8.0) -> dict[str, Any]:
    import uvloop

    pin(1)
    stores = build_stores(records)
    docs = sample_documents(2000, records)
    size = 400
    per_round: list[dict[str, float]] = []
    sizes: dict[str, Any] = {}
    for r in range(rounds):
        hub_port, echo_port = free_port(), free_port()
        cfg = hub_config(stores, hub_port)
        serve = [sys.executable, "-m", "rmas.cli", "serve", "--config", str(cfg)]
        with server_process(serve, hub_port):
            hub = uvloop.run(_measure(f"127.0.0.1:{hub_port}", docs, seconds, size))
        # Pad the echo's replies to the hub's reply sizes measured just now.
        one, many = hub["reply_bytes"]
        empty = check_pb2.CheckManifestResponse(
            results=[check_pb2.CheckResult(ref=str(j), document=docs[0]) for j in range(size)]
        ).ByteSize()
        pad_single = max(0, one - docs[0].ByteSize() - 8)
        pad_item = max(0, (many - empty) // size - 3)
        echo_cmd = [sys.executable, "-m", "benchmarks.echo_server", str(echo_port),
                    str(pad_single), str(pad_item)]  # fmt: skip
        with server_process(echo_cmd, echo_port):
            echo = uvloop.run(_measure(f"127.0.0.1:{echo_port}", docs, seconds, size))
        sizes = {"hub_reply_bytes": hub["reply_bytes"], "echo_reply_bytes": echo["reply_bytes"]}
        row = {
            "echo_64_rate": echo["c64"].rate,
            "hub_64_rate": hub["c64"].rate,
            "ratio_64": hub["c64"].rate / echo["c64"].rate,
            "echo_200_p99_ms": echo["r200"].p99_ms,
            "hub_200_p99_ms": hub["r200"].p99_ms,
            "hub_200_p50_ms": hub["r200"].p50_ms,
            "ratio_p99_200": hub["r200"].p99_ms / echo["r200"].p99_ms,
            "echo_manifest_items_s": echo["manifest"].rate * size,
            "hub_manifest_docs_s": hub["manifest"].rate * size,
            "ratio_manifest": hub["manifest"].rate / echo["manifest"].rate,
            "errors": float(
                sum(x[k].errors for x in (hub, echo) for k in ("c64", "r200", "manifest"))
            ),
        }
        per_round.append(row)
        shown = ", ".join(f"{k}={v:.2f}" for k, v in row.items())
        print(f"  round {r + 1}: {shown}", file=sys.stderr, flush=True)
    med = {k: statistics.median(row[k] for row in per_round) for k in per_round[0]}
    return {"records": records, "rounds": rounds, "seconds": seconds, **sizes,
            "median": med, "per_round": per_round}  # fmt: skip


if __name__ == "__main__":
    import json

    quick = "--quick" in sys.argv
    result = run(records=100_000, rounds=1, seconds=3.0) if quick else run()
    print(json.dumps(result, indent=1, default=str))
