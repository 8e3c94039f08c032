"""WatchChanges: a national node streams its record changes to the hub (issue 17), through real
gRPC servers on loopback, a real `rmas provider serve` process and `rmas store apply`."""

from __future__ import annotations

import asyncio
import json
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest

from adapters.sqlstore.importer import import_csv
from adapters.sqlstore.provider import SqlStoreProvider
from rmas.changes import ChangesLost, DocumentChange
from rmas.changewatch import ChangeWatcher, MemoryPositions
from rmas.providers import ProviderInfo
from rmas.remote.client import RemoteProvider
from rmas.remote.conformance import run_conformance
from rmas.remote.node import ProviderNode
from rmas.testing import FakeProvider
from rmas.v1 import provider_pb2, provider_pb2_grpc
from rmas.verdict import RecordStatus

NZL = ProviderInfo(id="NZL", issuing_states=frozenset({"NZL"}))
HEADER = "issuing_state,document_number,document_type,status,reported_on,record_ref\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def feed_file(path: Path, *numbers: str, version: int = 1) -> Path:
    path.write_text("".join(
        json.dumps({"op": "upsert", "issuing_state": "NZL", "number": n, "status": "STOLEN",
                    "version": version}) + "\n" for n in numbers))  # fmt: skip
    return path


def store_apply_argv(url: str, feed: Path) -> list[str]:
    return [sys.executable, "-m", "rmas.cli", "store", "apply", "--url", url, str(feed)]


@pytest.fixture
def store(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'nzl.db'}"
    csv = tmp_path / "nzl.csv"
    csv.write_text(HEADER + "NZL,LA000001,P,VALID,,R1\nNZL,LA000002,P,VALID,,R2\n")
    asyncio.run(import_csv(url, csv))
    return url


@pytest.fixture
def node_process(tmp_path: Path, store: str) -> Iterator[str]:
    """`rmas provider serve` over the SQL store, in a process of its own."""
    port = free_port()
    cfg = tmp_path / "node.toml"
    cfg.write_text(f'[[providers]]\nid = "NZL"\nkind = "sql"\nissuing_states = ["NZL"]\n'
                   f'url = "{store}"\npoll_interval = 0.1\nabtc = false\n')  # fmt: skip
    log = (tmp_path / "node.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rmas.cli", "provider", "serve", "--config", str(cfg),
         "--listen", f"127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    log.close()
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "node.log").read_text()
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "the node did not listen"
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def test_a_hub_watching_a_node_process_sees_rmas_store_apply(
    tmp_path: Path, store: str, node_process: str
) -> None:
    client = RemoteProvider(NZL, node_process)
    seen: asyncio.Queue[DocumentChange] = asyncio.Queue()

    async def on_changes(pid: str, batch: Sequence[DocumentChange]) -> None:
        for c in batch:
            seen.put_nowait(c)

    async def on_lost(pid: str) -> None:
        raise AssertionError("nothing was lost")

    positions = MemoryPositions()
    watcher = ChangeWatcher([client], positions, on_changes, on_lost)
    watcher.start()
    try:
        for _ in range(200):
            if watcher.states()[0].connected:
                break
            await asyncio.sleep(0.05)
        assert watcher.states()[0].connected, watcher.states()
        out = await asyncio.to_thread(subprocess.run, store_apply_argv(
            store, feed_file(tmp_path / "f.jsonl", "LA000002")), capture_output=True, text=True,
            timeout=60, check=False)  # fmt: skip
        assert out.returncode == 0, out.stderr
        change = await asyncio.wait_for(seen.get(), 10)
        assert (change.issuing_state, change.number) == ("NZL", "LA000002")
        assert positions.positions["NZL"] == change.position
        assert client.snapshot()["watch_changes"] is True
        assert client.changes_dropped == 0
    finally:
        await watcher.aclose()
        await client.aclose()


def test_the_conformance_kit_checks_a_live_change_stream(
    tmp_path: Path, store: str, node_process: str
) -> None:
    command = shlex.join(store_apply_argv(store, feed_file(tmp_path / "k.jsonl", "LA000001",
                                                           "LA000003", "LA000004")))  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-m", "rmas.cli", "conformance", "--target", node_process, "--json",
         "--known", "NZL:LA000002:VALID", "--change-command", command],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    report = json.loads(out.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["watch_changes"]["status"] == "PASS", checks["watch_changes"]
    assert "3 change(s) streamed" in checks["watch_changes"]["detail"]
    assert out.returncode == 0, out.stdout + out.stderr
    # Without a command the live part cannot run: SKIPPED, never PASS.
    out = subprocess.run(
        [sys.executable, "-m", "rmas.cli", "conformance", "--target", node_process, "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    checks = {c["name"]: c for c in json.loads(out.stdout)["checks"]}
    assert checks["watch_changes"]["status"] == "SKIPPED", checks["watch_changes"]


@pytest.fixture
async def sql_node(store: str) -> AsyncIterator[tuple[ProviderNode, str]]:
    provider = SqlStoreProvider(NZL, store, poll_interval=0.05)
    node = ProviderNode(provider, "127.0.0.1:0")
    port = await node.start()
    try:
        yield node, f"127.0.0.1:{port}"
    finally:
        await node.stop(0)


async def test_a_lost_position_is_changes_lost_and_the_stream_resumes(
    tmp_path: Path, store: str, sql_node: tuple[ProviderNode, str]
) -> None:
    _node, target = sql_node
    client = RemoteProvider(NZL, target)
    try:
        start = await client.current_position()
        with pytest.raises(ChangesLost):
            await asyncio.wait_for(anext(client.watch_changes("999999")), 10)
        apply = store_apply_argv(store, feed_file(tmp_path / "a.jsonl", "LA000001", "LA000002"))
        assert (await asyncio.to_thread(subprocess.run, apply, check=False)).returncode == 0
        it = client.watch_changes(start)
        got: list[DocumentChange] = []
        while len(got) < 2:
            got.extend(await asyncio.wait_for(anext(it), 10))
        await it.aclose()
        assert [c.number for c in got] == ["LA000001", "LA000002"]
        it = client.watch_changes(got[0].position)  # resumes after the first
        assert [c.number for c in await asyncio.wait_for(anext(it), 10)] == ["LA000002"]
        await it.aclose()
        assert await client.current_position() == got[-1].position
    finally:
        await client.aclose()


class Lying(provider_pb2_grpc.DocumentStatusProviderServicer):
    """Describes NZL, then streams changes about other economies' documents too."""

    async def Describe(self, request: object, context: object) -> provider_pb2.DescribeResponse:
        return provider_pb2.DescribeResponse(provider_id="NZL", issuing_states=["NZL"],
                                             watch_changes=True, current_position="7")  # fmt: skip

    async def WatchChanges(
        self, request: provider_pb2.WatchChangesRequest, context: Any
    ) -> AsyncIterator[provider_pb2.ChangeBatch]:
        batch = provider_pb2.ChangeBatch()
        batch.changes.add(issuing_state="AUS", number="PA000001", position="8")
        batch.changes.add(issuing_state="NZL", number="la 000002", position="9")
        batch.changes.add(issuing_state="NZL", number="LA000002", position="")
        batch.changes.add(issuing_state="NZL", number="LA000003", position="10")
        yield batch
        await asyncio.sleep(3600)


async def serve(servicer: Any) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    provider_pb2_grpc.add_DocumentStatusProviderServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


async def test_changes_a_node_may_not_report_are_dropped_and_counted() -> None:
    server, target = await serve(Lying())
    client = RemoteProvider(NZL, target)
    try:
        assert await client.current_position() == "7"
        batch = await asyncio.wait_for(anext(client.watch_changes("7")), 10)
        assert [(c.issuing_state, c.number, c.position) for c in batch] == [
            ("NZL", "LA000003", "10")]  # fmt: skip
        assert client.changes_dropped == 3
        assert client.snapshot()["changes_dropped"] == 3
    finally:
        await client.aclose()
        await server.stop(0)


async def test_a_node_without_changes_says_so_and_is_waited_for_quietly() -> None:
    fake = FakeProvider.issuer("NZL", ["NZL"], {("NZL", "LA000002"): RecordStatus.STOLEN})
    node = ProviderNode(fake, "127.0.0.1:0")
    port = await node.start()
    client = RemoteProvider(NZL, f"127.0.0.1:{port}")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = provider_pb2_grpc.DocumentStatusProviderStub(ch)
            d = await stub.Describe(provider_pb2.DescribeRequest(), timeout=5)
            assert (d.watch_changes, d.current_position) == (False, "")
            with pytest.raises(grpc.aio.AioRpcError) as err:
                async for _ in stub.WatchChanges(provider_pb2.WatchChangesRequest(), timeout=5):
                    pass
            assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
        # The client neither fails nor yields: it waits for the node to offer changes.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.current_position(), 1.0)
        results = await run_conformance(f"127.0.0.1:{port}")
        watch = next(r for r in results if r.name == "watch_changes")
        assert watch.passed and "UNIMPLEMENTED" in watch.detail
    finally:
        await client.aclose()
        await node.stop(0)


class Sloppy(Lying):
    """Describes watch_changes but takes any position, even one it never handed out."""

    async def WatchChanges(
        self, request: provider_pb2.WatchChangesRequest, context: Any
    ) -> AsyncIterator[provider_pb2.ChangeBatch]:
        await asyncio.sleep(3600)
        yield provider_pb2.ChangeBatch()


async def test_the_kit_fails_a_node_that_takes_positions_it_never_gave() -> None:
    server, target = await serve(Sloppy())
    try:
        results = await run_conformance(target, call_timeout_s=1.0)
    finally:
        await server.stop(0)
    watch = next(r for r in results if r.name == "watch_changes")
    assert watch.status == "FAIL" and "never handed out" in watch.detail, watch


async def test_a_quiet_stream_outlives_the_hubs_keepalive_pings(
    sql_node: tuple[ProviderNode, str],
) -> None:
    """The hub pings every 10 s; a node that refused those pings (GOAWAY too_many_pings, after
    about 30 s) would cut every stream that stays quiet, as a change stream mostly does."""
    _node, target = sql_node
    client = RemoteProvider(NZL, target)
    try:
        it = client.watch_changes(await client.current_position())
        with pytest.raises(TimeoutError):  # no change, and no failure, for 40 s
            await asyncio.wait_for(anext(it), 40)
    finally:
        await client.aclose()
