"""400-document manifests with the SLTD-style central store in the path (target ≥ 20,000 docs/s).

``python -m benchmarks.sltd_bench``. Processes: the hub (``rmas serve``, CPU 0) with the two SQL
stores of ``benchmarks/hub_bench.py`` plus the ``sltd`` provider; the central store service
(``rmas sltd serve``, CPU 1, 100,000 records, some matching the manifests' documents); the client
(CPU 1) sending CheckManifest of 400 documents, 4 in flight. The same hub without the central
store is measured right before, as the reference.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from typing import Any

from benchmarks.hub_bench import (
    OUT,
    STATES,
    build_stores,
    free_port,
    hub_config,
    pin,
    sample_documents,
    server_process,
)
from benchmarks.loadgen import closed_loop


async def _seed_sltd(db: str, records: int, hub_records: int) -> None:
    from adapters.sltd.store import SltdStore
    from adapters.sqlstore.importer import synthetic_number

    store = SltdStore(db)
    await store.open()
    rnd = random.Random(3)
    rows = []
    for k in range(records):
        state = STATES[k % 2]
        # Every 20th record is a document the manifests may carry.
        number = synthetic_number(state, rnd.randrange(2 * hub_records)) if k % 20 == 0 else (
            f"Z{k:09d}")  # fmt: skip
        rows.append({"country": "NZ" if state == "NZL" else "AU", "doc_type": "PASSPORT",
                     "number": number, "status": "STOLEN", "reporting_country": "NZ"
                     if state == "NZL" else "AU"})  # fmt: skip
    await store.bulk_load(rows)
    await store.close()


async def _measure(target: str, docs: list[Any], seconds: float) -> float:
    import grpc

    from rmas.v1 import check_pb2, check_pb2_grpc

    rnd = random.Random(11)
    manifests = [
        check_pb2.CheckManifestRequest(travellers=[
            check_pb2.Traveller(ref=str(j), document=rnd.choice(docs)) for j in range(400)
        ])
        for _ in range(16)
    ]  # fmt: skip
    async with grpc.aio.insecure_channel(
        target, options=[("grpc.max_receive_message_length", 64 << 20)]
    ) as ch:
        stub = check_pb2_grpc.DocumentCheckStub(ch)
        counter = iter(range(1 << 62))

        async def call() -> None:
            r = await stub.CheckManifest(manifests[next(counter) % 16], timeout=10)
            if any(x.verdict == check_pb2.VERDICT_INCOMPLETE for x in r.results):
                raise RuntimeError("a provider did not answer")

        res = await closed_loop(call, in_flight=4, seconds=seconds)
    if res.errors:
        raise RuntimeError(f"{res.errors} failed calls")
    return res.rate * 400


def run(quick: bool = False) -> dict[str, Any]:
    import uvloop

    records = 100_000 if quick else 1_000_000
    seconds = 3.0 if quick else 8.0
    pin(1)
    stores = build_stores(records)
    docs = sample_documents(2000, records)
    work = OUT / "sltd"
    work.mkdir(parents=True, exist_ok=True)
    db_path = work / f"sltd-{records}.db"
    db = f"sqlite+aiosqlite:///{db_path}"
    if not db_path.exists():
        asyncio.run(_seed_sltd(db, 100_000, records))
    tokens = work / "tokens.json"
    tokens.write_text(json.dumps({"tokens": {"bench-token": "NZ"}}))

    port = free_port()
    base_cfg = hub_config(stores, port)
    with server_process([sys.executable, "-m", "rmas.cli", "serve", "--config", str(base_cfg)],
                        port):  # fmt: skip
        without = uvloop.run(_measure(f"127.0.0.1:{port}", docs, seconds))

    sltd_port, port = free_port(), free_port()
    cfg = hub_config(stores, port)
    cfg.write_text(cfg.read_text() + "\n".join([
        "[[providers]]", 'id = "SLTD"', 'kind = "sltd"', 'scope = "global"', "required = true",
        f'url = "http://127.0.0.1:{sltd_port}"', 'token = "bench-token"', "",
    ]))  # fmt: skip
    # The central store stands for a remote system: it gets CPU 1 (server_process's taskset
    # for CPU 0 is overridden by this inner one), shared with the load generator.
    sltd_cmd = [
        "taskset", "-c", "1", sys.executable, "-m", "rmas.cli", "sltd", "serve", "--url", db,
        "--listen", f"127.0.0.1:{sltd_port}", "--tokens", str(tokens),
    ]  # fmt: skip
    with (
        server_process(sltd_cmd, sltd_port),
        server_process([sys.executable, "-m", "rmas.cli", "serve", "--config", str(cfg)], port),
    ):
        with_sltd = uvloop.run(_measure(f"127.0.0.1:{port}", docs, seconds))
    return {
        "records_per_store": records,
        "docs_per_s_without_sltd": without,
        "docs_per_s_with_sltd": with_sltd,
        "ratio": with_sltd / without,
        "targets": [
            {"text": "400-document manifests with SLTD, documents/s", "value": with_sltd,
             "op": ">=", "bound": 20_000.0, "met": with_sltd >= 20_000},
        ],
    }  # fmt: skip


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))
