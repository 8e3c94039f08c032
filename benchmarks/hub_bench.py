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
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from benchmarks.loadgen import Result, closed_loop, open_loop
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
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        preexec_fn=lambda: pin(0),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
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


@dataclass
class RoundResult:
    echo_64: Result
    hub_64: Result
    echo_200: Result
    hub_200: Result
    echo_manifest: Result
    hub_manifest: Result


async def _run_round(
    hub_target: str | None, echo_target: str | None, docs: list[common_pb2.Document],
    seconds: float, manifest_size: int,
) -> dict[str, Result]:  # fmt: skip
    out: dict[str, Result] = {}
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
    opts = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
    if hub_target:
        async with grpc.aio.insecure_channel(hub_target, options=opts) as ch:
            stub = check_pb2_grpc.DocumentCheckStub(ch)
            it = iter(range(1 << 62))
            resp = await stub.CheckDocument(single[0])
            size_single = (len(single[0].SerializeToString()), resp.ByteSize())
            mresp = await stub.CheckManifest(manifests[0])
            size_manifest = (len(manifests[0].SerializeToString()), mresp.ByteSize())

            async def check() -> None:
                await stub.CheckDocument(single[next(it) % len(single)], timeout=5)

            async def manifest() -> None:
                r = await stub.CheckManifest(manifests[next(it) % len(manifests)], timeout=10)
                assert len(r.results) == manifest_size

            out["hub_64"] = await closed_loop(check, in_flight=64, seconds=seconds)
            out["hub_200"] = await open_loop(check, rate=200, seconds=seconds)
            out["hub_manifest"] = await closed_loop(manifest, in_flight=4, seconds=seconds)
            out["sizes"] = (size_single, size_manifest)  # type: ignore[assignment]
    if echo_target:
        sizes = _SIZES
        async with grpc.aio.insecure_channel(echo_target, options=opts) as ch:
            echo = ch.unary_unary("/bench.Echo/Echo")

            def payload(req: int, rep: int) -> bytes:
                return rep.to_bytes(4, "big") + b"y" * max(0, req - 4)

            p1 = payload(*sizes[0])
            pm = payload(*sizes[1])

            async def e1() -> None:
                await echo(p1, timeout=5)

            async def em() -> None:
                await echo(pm, timeout=10)

            out["echo_64"] = await closed_loop(e1, in_flight=64, seconds=seconds)
            out["echo_200"] = await open_loop(e1, rate=200, seconds=seconds)
            out["echo_manifest"] = await closed_loop(em, in_flight=4, seconds=seconds)
    return out


_SIZES: tuple[tuple[int, int], tuple[int, int]] = ((40, 300), (16000, 120000))


def run(records: int = 1_000_000, rounds: int = 3, seconds: float = 8.0) -> dict[str, object]:
    import uvloop

    global _SIZES
    pin(1)
    stores = build_stores(records)
    docs = sample_documents(2000, records)
    manifest_size = 400
    per_round: list[dict[str, float]] = []
    for r in range(rounds):
        hub_port, echo_port = free_port(), free_port()
        cfg = hub_config(stores, hub_port)
        with server_process([sys.executable, "-m", "rmas.cli", "serve", "--config", str(cfg)], hub_port):
            hub = uvloop.run(_run_round(f"127.0.0.1:{hub_port}", None, docs, seconds, manifest_size))
        _SIZES = hub.pop("sizes")  # type: ignore[assignment]
        with server_process([sys.executable, "-m", "benchmarks.echo_server", str(echo_port)], echo_port):
            echo = uvloop.run(_run_round(None, f"127.0.0.1:{echo_port}", docs, seconds, manifest_size))
        row = {
            "echo_64_rate": echo["echo_64"].rate,
            "hub_64_rate": hub["hub_64"].rate,
            "ratio_64": hub["hub_64"].rate / echo["echo_64"].rate,
            "echo_200_p99_ms": echo["echo_200"].p99_ms,
            "hub_200_p99_ms": hub["hub_200"].p99_ms,
            "hub_200_p50_ms": hub["hub_200"].p50_ms,
            "ratio_p99_200": hub["hub_200"].p99_ms / echo["echo_200"].p99_ms,
            "echo_manifest_items_s": echo["echo_manifest"].rate * manifest_size,
            "hub_manifest_docs_s": hub["hub_manifest"].rate * manifest_size,
            "ratio_manifest": hub["hub_manifest"].rate / echo["echo_manifest"].rate,
            "errors": float(sum(x.errors for x in (*hub.values(), *echo.values()))),
        }
        per_round.append(row)
        print(f"  round {r + 1}: " + ", ".join(f"{k}={v:.2f}" for k, v in row.items()), file=sys.stderr)
    med = {k: statistics.median(row[k] for row in per_round) for k in per_round[0]}
    return {"records": records, "rounds": rounds, "seconds": seconds, "sizes": _SIZES,
            "median": med, "per_round": per_round}  # fmt: skip
