"""Economy stores at national scale (`make bench-store`): 10,000,000 records, SQLite and PostgreSQL.

``python -m benchmarks.store_bench [--quick] [--records N]``. For each engine:

- import: ``rmas store import --replace`` of a CSV of N records (two states, numbers in key order)
  over the store the last run left, rows/s; for SQLite also the raw sqlite3 ceiling in the same
  run (the CSV's fields straight into ``executemany``, no validation, no WAL, unique index built
  after: performance.md's bulk load), as a reference for how fast the machine is at the time;
- batch lookups: 400 keys (half present) through the provider, one batch at a time, p50/p99;
- point lookups: 64 concurrent single-document lookups through the provider for 5 s, against the
  raw driver doing the same point query from 64 tasks in the same run (ratio);
- (SQLite) a node (``rmas provider serve``) on the store, its resident memory while answering.

PostgreSQL comes from RMAS_BENCH_POSTGRES_URL, default
postgresql+asyncpg://postgres@127.0.0.1:5432/rmas_bench (created when missing).
"""

from __future__ import annotations

import asyncio
import csv as csvlib
import itertools
import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench-out" / "store"
STATES = ("NZL", "AUS")
PG_DEFAULT = "postgresql+asyncpg://postgres@127.0.0.1:5432/rmas_bench"


def _csv(n: int) -> Path:
    from adapters.sqlstore.importer import synthetic_number

    path = OUT / f"records-{n}.csv"
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as f:
        f.write("issuing_state,document_number,document_type,status,reported_on,record_ref\n")
        per = n // len(STATES)
        statuses = ("VALID", "LOST", "STOLEN", "REVOKED", "INVALID", "STOLEN_BLANK")
        for state in STATES:
            f.writelines(
                f"{state},{synthetic_number(state, k)},P,{statuses[k % 6]},2024-01-01,R{k}\n"
                for k in range(per)
            )
    tmp.rename(path)
    return path


async def _pg_url() -> str:
    import asyncpg

    url = os.environ.get("RMAS_BENCH_POSTGRES_URL", PG_DEFAULT)
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    base, _, db = dsn.rpartition("/")
    conn = await asyncpg.connect(f"{base}/postgres")
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", db):
            await conn.execute(f'CREATE DATABASE "{db}"')
    finally:
        await conn.close()
    return url


def _keys(n: int, count: int, seed: int) -> list[tuple[str, str]]:
    from adapters.sqlstore.importer import synthetic_number

    rnd = random.Random(seed)
    per = n // len(STATES)
    out = []
    for _ in range(count):
        state = rnd.choice(STATES)
        k = rnd.randrange(per) if rnd.random() < 0.5 else per + rnd.randrange(per)
        out.append((state, synthetic_number(state, k)))
    return out


async def _engine_figures(url: str, csv: Path, n: int) -> dict[str, float]:
    from adapters.sqlstore.importer import import_csv
    from adapters.sqlstore.provider import SqlStoreProvider
    from rmas.documents import DocumentQuery
    from rmas.providers import ProviderInfo

    t0 = time.perf_counter()
    report = await import_csv(url, csv, replace=True)
    import_s = time.perf_counter() - t0
    info = ProviderInfo(id="X", issuing_states=frozenset(STATES))
    provider = SqlStoreProvider(info, url, readers=4)
    await provider.start()
    batches = [_keys(n, 400, seed) for seed in range(200)]
    lat = []
    for keys in batches:
        qs = [DocumentQuery(s, k) for s, k in keys]
        t = time.perf_counter()
        await provider.lookup_many(qs, time.monotonic() + 5)
        lat.append(time.perf_counter() - t)
    lat.sort()
    singles = [DocumentQuery(s, k) for s, k in _keys(n, 5000, 99)]

    async def through_provider(i: int) -> None:
        await provider.lookup_many([singles[i % len(singles)]], time.monotonic() + 5)

    prov_rate = await _rate(through_provider)
    await provider.aclose()
    raw_rate = await _raw_rate(url, singles)
    return {
        "import_rows_per_s": report.loaded / import_s,
        "import_s": import_s,
        "batch400_p50_ms": lat[len(lat) // 2] * 1000,
        "batch400_p99_ms": lat[int(len(lat) * 0.99)] * 1000,
        "point_provider_per_s": prov_rate,
        "point_raw_driver_per_s": raw_rate,
        "point_ratio": prov_rate / raw_rate,
    }


async def _rate(call: Any, seconds: float = 5.0, tasks: int = 64) -> float:
    done = 0
    stop = time.perf_counter() + seconds
    counter = iter(range(1 << 62))

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await call(next(counter))
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return done / (time.perf_counter() - start)


async def _raw_rate(url: str, singles: list[Any]) -> float:
    sql = "SELECT status FROM documents WHERE issuing_state = {} AND number = {}"
    if url.startswith("sqlite"):
        import aiosqlite

        async with aiosqlite.connect(url.split("///", 1)[1]) as db:
            q = sql.format("?", "?")

            async def one(i: int) -> None:
                d = singles[i % len(singles)]
                await db.execute_fetchall(q, (d.issuing_state, d.number))

            return await _rate(one)
    import asyncpg

    pool = await asyncpg.create_pool(
        url.replace("postgresql+asyncpg", "postgresql"), min_size=8, max_size=8
    )
    q = sql.format("$1", "$2")

    async def one_pg(i: int) -> None:
        d = singles[i % len(singles)]
        await pool.fetch(q, d.issuing_state, d.number)

    try:
        return await _rate(one_pg)
    finally:
        await pool.close()


def _raw_sqlite_rate(csv: Path) -> float:
    """Rows/s of the raw sqlite3 bulk load of the same CSV, measured in the same run."""
    db = OUT / "raw-reference.db"
    db.unlink(missing_ok=True)
    t0 = time.perf_counter()
    con = sqlite3.connect(db, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode = OFF")
        con.execute("PRAGMA synchronous = OFF")
        con.execute("CREATE TABLE d (state, number, type, status, reported_on, record_ref)")
        n = 0
        with csv.open(newline="") as f:
            reader = csvlib.reader(f)
            next(reader)
            con.execute("BEGIN")
            while chunk := list(itertools.islice(reader, 50_000)):
                con.executemany("INSERT INTO d VALUES (?, ?, ?, ?, ?, ?)", chunk)
                n += len(chunk)
            con.execute("CREATE UNIQUE INDEX d_key ON d (state, number)")
            con.execute("COMMIT")
    finally:
        con.close()
        db.unlink(missing_ok=True)
    return n / (time.perf_counter() - t0)


def _node_rss(url: str) -> dict[str, float]:
    """Resident memory of a node serving the store, after answering for a few seconds."""
    from benchmarks.hub_bench import free_port, server_process

    cfg = OUT / "node.toml"
    cfg.write_text(f'[[providers]]\nid = "X"\nkind = "sql"\nurl = "{url}"\n'
                   f'issuing_states = ["NZL", "AUS"]\n')  # fmt: skip
    port = free_port()
    cmd = [sys.executable, "-m", "rmas.cli", "provider", "serve", "--config", str(cfg),
           "--listen", f"127.0.0.1:{port}"]  # fmt: skip
    with server_process(cmd, port) as proc:
        conformance = subprocess.run(
            [sys.executable, "-m", "rmas.cli", "conformance", "--target", f"127.0.0.1:{port}"],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        status = Path(f"/proc/{proc.pid}/status").read_text()
    fields = {
        k: v.split()[0]
        for k, _, v in (line.partition(":") for line in status.splitlines())
        if v.split()
    }
    # server_process wraps the command in taskset, which execs it: same pid.
    return {
        "vm_rss_mb": int(fields.get("VmRSS", "0")) / 1024,
        "rss_anon_mb": int(fields.get("RssAnon", "0")) / 1024,
        "rss_file_mb": int(fields.get("RssFile", "0")) / 1024,
        "conformance_passed": float(conformance.returncode == 0),
    }


def run(quick: bool = False, records: int | None = None) -> dict[str, Any]:
    n = records or (500_000 if quick else 10_000_000)
    csv = _csv(n)
    sqlite_url = f"sqlite+aiosqlite:///{OUT / f'store-{n}.db'}"
    out: dict[str, Any] = {"records": n}
    raw_rate = _raw_sqlite_rate(csv)
    out["sqlite"] = asyncio.run(_engine_figures(sqlite_url, csv, n))
    out["sqlite"]["raw_sqlite_rows_per_s"] = raw_rate
    out["sqlite"]["import_vs_raw_sqlite"] = out["sqlite"]["import_rows_per_s"] / raw_rate
    out["sqlite"]["node"] = _node_rss(sqlite_url)
    pg = asyncio.run(_pg_url())
    out["postgres"] = asyncio.run(_engine_figures(pg, csv, n))
    s, p = out["sqlite"], out["postgres"]
    out["targets"] = [
        {"text": "import into SQLite, rows/s", "value": s["import_rows_per_s"], "op": ">=",
         "bound": 100_000.0, "met": s["import_rows_per_s"] >= 100_000},
        {"text": "import into PostgreSQL, rows/s", "value": p["import_rows_per_s"], "op": ">=",
         "bound": 50_000.0, "met": p["import_rows_per_s"] >= 50_000},
        {"text": "SQLite batch of 400, p99 ms", "value": s["batch400_p99_ms"], "op": "<=",
         "bound": 20.0, "met": s["batch400_p99_ms"] <= 20},
        {"text": "PostgreSQL batch of 400, p99 ms", "value": p["batch400_p99_ms"], "op": "<=",
         "bound": 20.0, "met": p["batch400_p99_ms"] <= 20},
        {"text": "SQLite point lookups, provider / raw driver", "value": s["point_ratio"],
         "op": ">=", "bound": 0.5, "met": s["point_ratio"] >= 0.5},
        {"text": "PostgreSQL point lookups, provider / raw driver", "value": p["point_ratio"],
         "op": ">=", "bound": 0.5, "met": p["point_ratio"] >= 0.5},
        {"text": "node resident memory while serving, MB", "value": s["node"]["vm_rss_mb"],
         "op": "<=", "bound": 300.0, "met": s["node"]["vm_rss_mb"] <= 300},
    ]  # fmt: skip
    return out


if __name__ == "__main__":
    from rmas.logs import configure_logging

    # The importer's phase timings as JSON lines on stderr; stdout stays the figures alone.
    configure_logging("info")
    arg = sys.argv[sys.argv.index("--records") + 1] if "--records" in sys.argv else None
    print(json.dumps(run(quick="--quick" in sys.argv, records=int(arg) if arg else None),
                     indent=1))  # fmt: skip
