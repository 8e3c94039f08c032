"""The cost of mutual TLS plus the audit trail, against a plain hub in the same run.

Two hub processes run side by side over the same SQL stores (built by benchmarks.hub_bench),
both pinned to CPU 0 (the secure hub's audit writer process inherits that CPU): *plain*
(loopback, no TLS, no audit: the development mode) and *secure* (mutual TLS with certificates
from ``rmas certs init``, a ``[[callers]]`` table, and a required SQLite audit trail with
``synchronous = FULL``, one entry per document, durable before each answer). The client, on CPU
1, is an officer (the full view, as the plain hub's development mode gives), so both answer the
same bytes. They are loaded one at a time, in neighbouring slices, the order swapped every pair:
CheckDocument at 64 in flight (checks/s) and CheckManifest of 400 documents at
``MANIFESTS_IN_FLIGHT`` (documents/s). Each pair gives a ratio; the figure is the median
ratio, so that a slow spell of this shared machine hits both sides of a pair instead of one
hub's whole run. The pairs are spread over :data:`PROCESSES` fresh pairs of hub processes (each
with a fresh audit file), so that one draw of a process's memory layout does not decide the
figure either.
Target: secure/plain at least 0.8 on both (issue 20; 0.7 in issue 8).
"""

from __future__ import annotations

import contextlib
import os
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
    requests,
    sample_documents,
    server_process,
)
from benchmarks.loadgen import closed_loop
from rmas.v1 import check_pb2_grpc, common_pb2

SIZE = 400
#: secure / plain, both RPCs (issue 20).
TARGET = 0.8
#: Manifests in flight: enough to keep both hubs' core busy. With 4 (the hub bench's figure), the
#: secure hub's core idles while all four wait for the same commit to reach the disk (measured:
#: hub 87% of its core, writer 13%, and 20-30% more hub CPU per document than with 8, from waking
#: up more often), so the ratio measured latency as much as throughput.
MANIFESTS_IN_FLIGHT = 8


#: Fresh pairs of hub processes the pairs are spread over. One process pair measures one draw of
#: what differs between two runs of the same code (memory layout, hash seeds): measured in
#: session 12, five runs of 4-6 pairs each, every run a new process pair, gave CheckManifest
#: ratios from 0.726 to 0.837, the hubs' CPU a document moving by up to 16% between runs, while
#: the pairs of one run agreed closely. The median over several process pairs is a steadier
#: figure than one pair's.
PROCESSES = 3
#: What the secure hub has: both (the target's figure), or one part alone (the cost split).
PARTS = ("both", "tls", "audit")


def secure_config(
    stores: dict[str, Path],
    port: int,
    round_no: int,
    linger_ms: float | None = None,
    parts: str = "both",
) -> tuple[Path, Path | None]:
    """The plain config plus [tls] and [[callers]], and [audit] (a fresh file per round), or
    one of the two (``parts``); the certificates' folder when TLS is on."""
    from rmas.security.certs import init_dir

    certs = OUT / "bench-certs"
    if not (certs / "ca.pem").exists():
        init_dir(certs, force=True)
    key = OUT / "bench-audit.key"
    key.write_text(os.urandom(32).hex())
    audit = OUT / f"bench-audit-{round_no}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{audit}{suffix}").unlink(missing_ok=True)
    base = hub_config(stores, port).read_text()
    head, providers = base.split("[[providers]]", 1)
    tls = (
        f'[tls]\ncert = "{certs / "hub.pem"}"\nkey = "{certs / "hub.key"}"\n'
        + f'ca = "{certs / "ca.pem"}"\n'
        + '[[callers]]\nidentity = "rmas://officer/*"\nrole = "officer"\n'
    )
    trail = f'[audit]\nurl = "sqlite+aiosqlite:///{audit}"\nkey_file = "{key}"\n' + (
        "" if linger_ms is None else f"linger_ms = {linger_ms}\n"
    )
    text = (
        head
        + (tls if parts in ("both", "tls") else "")
        + (trail if parts in ("both", "audit") else "")
        + "[[providers]]"
        + providers
    )
    cfg = OUT / "bench-hub-secure.toml"
    cfg.write_text(text)
    return cfg, certs if parts in ("both", "tls") else None


def _channel(target: str, certs: Path | None) -> grpc.aio.Channel:
    opts = [("grpc.max_receive_message_length", 64 << 20)]
    if certs is None:
        return grpc.aio.insecure_channel(target, options=opts)
    creds = grpc.ssl_channel_credentials(
        (certs / "ca.pem").read_bytes(),
        (certs / "officer.key").read_bytes(),
        (certs / "officer.pem").read_bytes(),
    )
    return grpc.aio.secure_channel(target, creds, options=opts)


def _cpu_s(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) used so far by process ``pid`` and by its children (the
    audit writer), from /proc."""
    from benchmarks.soak import _children

    tick = os.sysconf("SC_CLK_TCK")

    def used(p: int) -> float:
        try:
            f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(f[11]) + int(f[12])) / tick

    return used(pid), sum(used(c) for c in _children(pid))


async def _slice(
    call: Any, in_flight: int, seconds: float, pid: int, per_call: int
) -> tuple[Any, dict[str, float]]:
    """One closed-loop slice, and the CPU the hub and its writer spent per document in it."""
    wall0, (hub0, kids0) = time.perf_counter(), _cpu_s(pid)
    got = await closed_loop(call, in_flight=in_flight, seconds=seconds)
    wall, (hub1, kids1) = time.perf_counter() - wall0, _cpu_s(pid)
    docs_s = got.rate * per_call
    cpu = {  # utilisation over the slice / documents a second
        "hub_us": (hub1 - hub0) / wall / docs_s * 1e6 if docs_s else float("nan"),
        "writer_us": (kids1 - kids0) / wall / docs_s * 1e6 if docs_s else float("nan"),
        "hub_util": (hub1 - hub0) / wall,
    }
    return got, cpu


async def _alternate(
    targets: dict[str, tuple[str, Path | None, int]],
    docs: list[common_pb2.Document],
    pairs: int,
    seconds: float,
    manifests_in_flight: int = MANIFESTS_IN_FLIGHT,
) -> dict[str, dict[str, list[Any]]]:
    """Both hubs up at once, loaded one at a time: ``pairs`` neighbouring slices of each, for
    CheckDocument at 64 in flight and for CheckManifest(400), the order swapped every pair.
    A slow spell of the machine then hits both of a pair, not one hub's whole run."""
    single, manifests = requests(docs, SIZE)
    counter = iter(range(1 << 62))
    out: dict[str, dict[str, list[Any]]] = {
        k: {"c64": [], "manifest": [], "c64_cpu": [], "manifest_cpu": []} for k in targets
    }
    async with contextlib.AsyncExitStack() as stack:
        stubs = {}
        for kind, (address, certs, _pid) in targets.items():
            ch = await stack.enter_async_context(_channel(address, certs))
            stubs[kind] = check_pb2_grpc.DocumentCheckStub(ch)
            out[kind]["reply_bytes"] = [
                (await stubs[kind].CheckDocument(single[0], timeout=10)).ByteSize()
            ]  # also warms: handshake, stores

        def check(stub: Any) -> Any:
            async def call() -> None:
                await stub.CheckDocument(single[next(counter) % len(single)], timeout=5)

            return call

        def manifest(stub: Any) -> Any:
            async def call() -> None:
                r = await stub.CheckManifest(manifests[next(counter) % len(manifests)], timeout=10)
                if len(r.results) != SIZE:
                    raise RuntimeError("short manifest answer")

            return call

        kinds = list(targets)
        for kind in kinds:  # not measured: page cache, allocator, the audit file's first pages
            await closed_loop(check(stubs[kind]), in_flight=64, seconds=seconds)
            await closed_loop(manifest(stubs[kind]), in_flight=manifests_in_flight, seconds=seconds)
        for i in range(pairs):
            order = kinds if i % 2 == 0 else kinds[::-1]
            for kind in order:
                got, cpu = await _slice(check(stubs[kind]), 64, seconds, targets[kind][2], 1)
                out[kind]["c64"].append(got)
                out[kind]["c64_cpu"].append(cpu)
            for kind in order:
                got, cpu = await _slice(
                    manifest(stubs[kind]), manifests_in_flight, seconds, targets[kind][2], SIZE
                )
                out[kind]["manifest"].append(got)
                out[kind]["manifest_cpu"].append(cpu)
    return out


def _processes(
    stores: dict[str, Path],
    docs: list[common_pb2.Document],
    n: int,
    *,
    pairs: int,
    seconds: float,
    linger_ms: float | None,
    parts: str,
    manifests_in_flight: int,
) -> dict[str, dict[str, list[Any]]]:
    """``pairs`` slice pairs (:func:`_alternate`) against the ``n``-th fresh pair of hub
    processes, its audit trail a fresh file."""
    import uvloop

    plain_port, secure_port = free_port(), free_port()
    plain_cfg = hub_config(stores, plain_port)
    # hub_config writes one file per name: keep the plain one before writing the secure one.
    kept = OUT / "bench-hub-plain.toml"
    kept.write_text(plain_cfg.read_text())
    secure_cfg, certs = secure_config(stores, secure_port, n, linger_ms, parts)
    serve = [sys.executable, "-m", "rmas.cli", "serve", "--config"]
    with (
        server_process([*serve, str(kept)], plain_port) as plain_proc,
        server_process([*serve, str(secure_cfg)], secure_port) as secure_proc,
    ):
        # taskset execs the hub in place: the process ids are the hubs'.
        return uvloop.run(
            _alternate(
                {
                    "plain": (f"127.0.0.1:{plain_port}", None, plain_proc.pid),
                    "secure": (f"127.0.0.1:{secure_port}", certs, secure_proc.pid),
                },
                docs,
                pairs,
                seconds,
                manifests_in_flight,
            )
        )


def run(
    *,
    records: int = 1_000_000,
    pairs: int = 12,
    seconds: float = 2.0,
    linger_ms: float | None = None,
    parts: str = "both",
    manifests_in_flight: int = MANIFESTS_IN_FLIGHT,
    processes: int = PROCESSES,
) -> dict[str, Any]:
    """``pairs`` slice pairs in all, spread over ``processes`` fresh pairs of hub processes
    (:data:`PROCESSES`)."""
    pin(1)
    stores = build_stores(records)
    docs = sample_documents(2000, records)
    processes = max(1, min(processes, pairs))
    got: dict[str, dict[str, list[Any]]] = {}
    process_of: list[int] = []
    for n in range(processes):
        share = pairs // processes + (1 if n < pairs % processes else 0)
        process_of += [n] * share
        part = _processes(stores, docs, n, pairs=share, seconds=seconds, linger_ms=linger_ms,
                          parts=parts, manifests_in_flight=manifests_in_flight)  # fmt: skip
        for kind, lists in part.items():
            mine = got.setdefault(kind, {})
            for key, values in lists.items():
                if key == "reply_bytes":
                    mine.setdefault(key, values)
                else:
                    mine.setdefault(key, []).extend(values)
    plain, secure = got["plain"], got["secure"]
    per_pair: list[dict[str, float]] = []
    for i in range(pairs):
        p64, s64 = plain["c64"][i], secure["c64"][i]
        pm, sm = plain["manifest"][i], secure["manifest"][i]
        row = {
            "process": float(process_of[i]),
            "plain_64_rate": p64.rate,
            "secure_64_rate": s64.rate,
            "ratio_64": s64.rate / p64.rate,
            "plain_manifest_docs_s": pm.rate * SIZE,
            "secure_manifest_docs_s": sm.rate * SIZE,
            "ratio_manifest": sm.rate / pm.rate,
            "secure_64_p99_ms": s64.p99_ms,
            "plain_64_p99_ms": p64.p99_ms,
            "errors": float(p64.errors + s64.errors + pm.errors + sm.errors),
            # CPU microseconds per document: hub process, and the secure hub's audit writer.
            "plain_64_hub_us": plain["c64_cpu"][i]["hub_us"],
            "secure_64_hub_us": secure["c64_cpu"][i]["hub_us"],
            "secure_64_writer_us": secure["c64_cpu"][i]["writer_us"],
            "plain_manifest_hub_us": plain["manifest_cpu"][i]["hub_us"],
            "secure_manifest_hub_us": secure["manifest_cpu"][i]["hub_us"],
            "secure_manifest_writer_us": secure["manifest_cpu"][i]["writer_us"],
            "secure_manifest_hub_util": secure["manifest_cpu"][i]["hub_util"],
        }
        per_pair.append(row)
        shown = ", ".join(f"{k}={v:.2f}" for k, v in row.items())
        print(f"  pair {i + 1}: {shown}", file=sys.stderr, flush=True)
    med = {k: statistics.median(row[k] for row in per_pair) for k in per_pair[0]}
    del med["process"]
    med["errors"] = sum(row["errors"] for row in per_pair)
    med["reply_bytes_plain"] = plain["reply_bytes"][0]
    med["reply_bytes_secure"] = secure["reply_bytes"][0]
    over = f"medians of {pairs} pairs, {processes} process pair{'s' if processes > 1 else ''}"
    targets = [
        {"text": "mTLS+audit CheckDocument(64) / plain", "value": med["ratio_64"],
         "op": ">=", "bound": TARGET, "met": med["ratio_64"] >= TARGET,
         "reference": f"plain {med['plain_64_rate']:,.0f} checks/s, secure "
                      f"{med['secure_64_rate']:,.0f} ({over})"},
        {"text": "mTLS+audit CheckManifest(400) / plain", "value": med["ratio_manifest"],
         "op": ">=", "bound": TARGET, "met": med["ratio_manifest"] >= TARGET,
         "reference": f"plain {med['plain_manifest_docs_s']:,.0f} documents/s, secure "
                      f"{med['secure_manifest_docs_s']:,.0f} ({over})"},
    ]  # fmt: skip
    return {"records": records, "pairs": pairs, "processes": processes, "seconds": seconds,
            "linger_ms": linger_ms,
            "parts": parts, "manifests_in_flight": manifests_in_flight,
            "median": med,
            "per_pair": per_pair, "targets": targets}  # fmt: skip


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m benchmarks.security_bench")
    parser.add_argument("--quick", action="store_true", help="100,000 records, 3 short pairs")
    parser.add_argument(
        "--linger-ms",
        type=float,
        default=None,
        help="the secure hub's [audit] linger_ms (default: the config default)",
    )
    parser.add_argument(
        "--parts",
        choices=PARTS,
        default="both",
        help="what the secure hub has (tls or audit alone: the cost split)",
    )
    parser.add_argument("--manifests-in-flight", type=int, default=MANIFESTS_IN_FLIGHT)
    args = parser.parse_args()
    size = {"records": 100_000, "pairs": 3, "seconds": 1.5, "processes": 1} if args.quick else {}
    result = run(
        **size,
        linger_ms=args.linger_ms,
        parts=args.parts,
        manifests_in_flight=args.manifests_in_flight,
    )  # type: ignore[arg-type]
    print(json.dumps(result, indent=1, default=str))
