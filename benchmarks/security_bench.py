"""The cost of mutual TLS plus the audit trail, against a plain hub in the same run.

Each round runs two hub processes one after the other over the same SQL stores (built by
benchmarks.hub_bench): *plain* (loopback, no TLS, no audit: the development mode) and *secure*
(mutual TLS with certificates from ``rmas certs init``, a ``[[callers]]`` table, and a required
SQLite audit trail with ``synchronous = FULL``, one entry per document, durable before each answer).
The client is an officer (the full view, as the plain hub's development mode gives), so both
answer the same bytes. Measured: CheckDocument at 64 in flight (checks/s) and CheckManifest of
400 documents at 4 in flight (documents/s). Target: secure/plain at least 0.7 on both.
"""

from __future__ import annotations

import os
import random
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
    sample_documents,
    server_process,
)
from benchmarks.loadgen import closed_loop
from rmas.v1 import check_pb2, check_pb2_grpc, common_pb2

SIZE = 400


def secure_config(stores: dict[str, Path], port: int, round_no: int) -> tuple[Path, Path]:
    """The plain config plus [tls], [[callers]] and [audit]; a fresh audit file per round."""
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
    text = (
        head
        + f'[tls]\ncert = "{certs / "hub.pem"}"\nkey = "{certs / "hub.key"}"\n'
        + f'ca = "{certs / "ca.pem"}"\n'
        + '[[callers]]\nidentity = "rmas://officer/*"\nrole = "officer"\n'
        + f'[audit]\nurl = "sqlite+aiosqlite:///{audit}"\nkey_file = "{key}"\n'
        + "[[providers]]"
        + providers
    )
    cfg = OUT / "bench-hub-secure.toml"
    cfg.write_text(text)
    return cfg, certs


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


async def _measure(
    target: str, certs: Path | None, docs: list[common_pb2.Document], seconds: float
) -> dict[str, Any]:
    rnd = random.Random(7)
    single = [check_pb2.CheckDocumentRequest(document=d) for d in docs]
    manifests = [
        check_pb2.CheckManifestRequest(
            travellers=[
                check_pb2.Traveller(ref=str(j), document=rnd.choice(docs)) for j in range(SIZE)
            ]
        )
        for _ in range(16)
    ]
    async with _channel(target, certs) as ch:
        stub = check_pb2_grpc.DocumentCheckStub(ch)
        counter = iter(range(1 << 62))
        one = await stub.CheckDocument(single[0], timeout=10)  # warm: handshake, stores

        async def check() -> None:
            await stub.CheckDocument(single[next(counter) % len(single)], timeout=5)

        async def manifest() -> None:
            r = await stub.CheckManifest(manifests[next(counter) % len(manifests)], timeout=10)
            if len(r.results) != SIZE:
                raise RuntimeError("short manifest answer")

        return {
            "c64": await closed_loop(check, in_flight=64, seconds=seconds),
            "manifest": await closed_loop(manifest, in_flight=4, seconds=seconds),
            "reply_bytes": one.ByteSize(),
        }


def run(records: int = 1_000_000, rounds: int = 3, seconds: float = 6.0) -> dict[str, Any]:
    import uvloop

    pin(1)
    stores = build_stores(records)
    docs = sample_documents(2000, records)
    per_round: list[dict[str, float]] = []
    for r in range(rounds):
        # Alternate which goes first, so a drift of the machine's speed favours neither.
        order = ("plain", "secure") if r % 2 == 0 else ("secure", "plain")
        got: dict[str, dict[str, Any]] = {}
        for kind in order:
            port = free_port()
            certs = None
            if kind == "plain":
                cfg = hub_config(stores, port)
            else:
                cfg, certs = secure_config(stores, port, r)
            serve = [sys.executable, "-m", "rmas.cli", "serve", "--config", str(cfg)]
            with server_process(serve, port):
                got[kind] = uvloop.run(_measure(f"127.0.0.1:{port}", certs, docs, seconds))
        plain, secure = got["plain"], got["secure"]
        row = {
            "plain_64_rate": plain["c64"].rate,
            "secure_64_rate": secure["c64"].rate,
            "ratio_64": secure["c64"].rate / plain["c64"].rate,
            "plain_manifest_docs_s": plain["manifest"].rate * SIZE,
            "secure_manifest_docs_s": secure["manifest"].rate * SIZE,
            "ratio_manifest": secure["manifest"].rate / plain["manifest"].rate,
            "secure_64_p99_ms": secure["c64"].p99_ms,
            "plain_64_p99_ms": plain["c64"].p99_ms,
            "errors": float(sum(x[k].errors for x in (plain, secure) for k in ("c64", "manifest"))),
        }
        per_round.append(row)
        shown = ", ".join(f"{k}={v:.2f}" for k, v in row.items())
        print(f"  round {r + 1}: {shown}", file=sys.stderr, flush=True)
    med = {k: statistics.median(row[k] for row in per_round) for k in per_round[0]}
    targets = [
        {"text": "mTLS+audit CheckDocument(64) / plain", "value": med["ratio_64"],
         "op": ">=", "bound": 0.7, "met": med["ratio_64"] >= 0.7},
        {"text": "mTLS+audit CheckManifest(400) / plain", "value": med["ratio_manifest"],
         "op": ">=", "bound": 0.7, "met": med["ratio_manifest"] >= 0.7},
    ]  # fmt: skip
    return {"records": records, "rounds": rounds, "seconds": seconds, "median": med,
            "per_round": per_round, "targets": targets}  # fmt: skip


if __name__ == "__main__":
    import json

    quick = "--quick" in sys.argv
    result = run(records=100_000, rounds=1, seconds=3.0) if quick else run()
    print(json.dumps(result, indent=1, default=str))
