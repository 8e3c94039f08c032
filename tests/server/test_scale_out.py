"""Two hubs behind one client-side load balancer, sharing PostgreSQL: one dies, checks go on.

Two ``rmas serve`` processes on loopback share one PostgreSQL database for their audit trail and a
PostgreSQL-backed economy store. A client balances across both (gRPC ``round_robin`` over both
addresses, retrying UNAVAILABLE as a load balancer would). One hub is killed with SIGKILL under
load: every check still gets its answer from the other, every answer is in the audit trail, and
the one chain both hubs wrote verifies.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
from pathlib import Path

import grpc
import pytest

from adapters.sqlstore.importer import import_csv
from rmas.audit.reader import verify
from rmas.client import document_pb
from rmas.v1 import check_pb2, check_pb2_grpc
from tests.audit import stored_check_ids
from tests.hubproc import free_port, serve

FIX = Path(__file__).resolve().parents[2] / "fixtures"

HUB = """
[hub]
listen = "127.0.0.1:{port}"
deadline_ms = 2000

[audit]
url = "{url}"
key_file = "audit.key"

[[providers]]
id = "NZL"
kind = "sql"
url = "{url}"
issuing_states = ["NZL"]
"""

SERVICE_CONFIG = json.dumps({
    "loadBalancingConfig": [{"round_robin": {}}],
    "methodConfig": [{
        "name": [{"service": "rmas.v1.DocumentCheck"}],
        "retryPolicy": {
            "maxAttempts": 4, "initialBackoff": "0.05s", "maxBackoff": "0.5s",
            "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }],
})  # fmt: skip


async def _psql(url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture
async def shared_db(postgres_url: str) -> object:
    """A private database for the two hubs (dropped afterwards)."""
    name = f"rmas_scaleout_{os.getpid()}_{secrets.token_hex(3)}"
    await _psql(postgres_url, f"CREATE DATABASE {name}")
    url = f"{postgres_url.rpartition('/')[0]}/{name}"
    try:
        yield url
    finally:
        await _psql(postgres_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def start(folder: Path, url: str) -> tuple[subprocess.Popen[str], int]:
    folder.mkdir()
    port = free_port()
    (folder / "hub.toml").write_text(HUB.format(port=port, url=url))
    (folder / "audit.key").write_text(KEY)
    return serve(folder / "hub.toml", port), port


KEY = os.urandom(32).hex()  # one key for both hubs: `rmas audit find` works across them


async def checks_served(port: int) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        st = await check_pb2_grpc.HubAdminStub(ch).Status(check_pb2.StatusRequest(), timeout=5)
    return int(st.checks)


@pytest.mark.slow
async def test_one_of_two_hubs_is_killed_under_load_and_every_check_is_still_answered(
    tmp_path: Path, shared_db: str
) -> None:
    report = await import_csv(shared_db, FIX / "records" / "nzl.csv")
    assert report.loaded > 100
    first, port1 = start(tmp_path / "a", shared_db)
    second, port2 = start(tmp_path / "b", shared_db)
    received: list[str] = []
    failures: list[str] = []
    killed = asyncio.Event()
    stop = asyncio.Event()
    try:
        target = f"ipv4:127.0.0.1:{port1},127.0.0.1:{port2}"
        options = [("grpc.service_config", SERVICE_CONFIG), ("grpc.enable_retries", 1)]
        async with grpc.aio.insecure_channel(target, options=options) as ch:
            stub = check_pb2_grpc.DocumentCheckStub(ch)

            async def client(n: int) -> None:
                i = 0
                while not stop.is_set():
                    i += 1
                    number = "LA000002" if i % 10 == 0 else f"LA{n:02d}{i:05d}"
                    try:
                        r = await stub.CheckDocument(
                            check_pb2.CheckDocumentRequest(
                                document=document_pb(number=number, state="NZL")
                            ),
                            timeout=10,
                        )
                        received.append(r.result.check_id)
                        expected = (
                            check_pb2.VERDICT_ALERT if i % 10 == 0 else check_pb2.VERDICT_CLEAR
                        )
                        if r.result.verdict != expected:
                            failures.append(f"verdict {r.result.verdict} for {number}")
                    except grpc.aio.AioRpcError as exc:
                        failures.append(f"{exc.code().name} after kill={killed.is_set()}")

            tasks = [asyncio.create_task(client(n)) for n in range(16)]
            await asyncio.sleep(1.5)
            served_before = (await checks_served(port1), await checks_served(port2))
            os.kill(first.pid, signal.SIGKILL)
            killed.set()
            at_kill = len(received)
            await asyncio.sleep(2.0)
            stop.set()
            await asyncio.gather(*tasks)
        after_kill = len(received) - at_kill
    finally:
        first.kill()
        second.send_signal(signal.SIGTERM)
        _out, err = second.communicate(timeout=20)
        first.wait(10)
    assert second.returncode == 0, err[-2000:]
    assert min(served_before) > 0, f"both hubs took checks before the kill: {served_before}"
    assert not failures, failures[:5]
    assert after_kill > 50, "the surviving hub answered the load after the kill"
    result = await verify(shared_db)
    assert result.ok, result.problems
    assert result.count >= len(received)
    stored = await stored_check_ids(shared_db)
    assert set(received) <= stored
