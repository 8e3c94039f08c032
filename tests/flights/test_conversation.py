"""The flight as a conversation, end to end: a real hub (gRPC on loopback, a SQL store behind
it, its flight store in a real SQLite file), an airline subscribed with the real
``rmas iapi watch`` process, and a record that changes after the PAXLST was answered."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from adapters.sqlstore.importer import import_csv
from adapters.sqlstore.provider import SqlStoreProvider
from rmas.documents import DocumentQuery
from rmas.providers import ProviderInfo, Scope
from rmas.testing import ChangingProvider
from rmas.v1 import check_pb2, check_pb2_grpc
from rmas.verdict import Record, RecordStatus
from tests.flights.kit import (
    TAYLOR,
    WIREMU,
    Subscriber,
    flight_hub,
    flights_config,
    paxlst,
    read_status_change,
)

HEADER = "issuing_state,document_number,document_type,status,reported_on,record_ref"


async def sltd(tmp: Path) -> SqlStoreProvider:
    """The global (SLTD-style) list, a real SQL store (kind sql)."""
    (tmp / "global.csv").write_text(f"{HEADER}\nPHL,P1234567A,P,LOST,,G-2\n")
    url = f"sqlite+aiosqlite:///{tmp / 'global.db'}"
    assert (await import_csv(url, tmp / "global.csv")).rejected == ()
    return SqlStoreProvider(ProviderInfo(id="GLOBAL", scope=Scope.GLOBAL), url)


async def watch_process(target: str, *extra: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rmas.cli", "iapi", "watch", "--hub", target, *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def line(proc: asyncio.subprocess.Process, within: float = 30.0) -> bytes:
    assert proc.stdout is not None
    return await asyncio.wait_for(proc.stdout.readline(), within)


async def stop(proc: asyncio.subprocess.Process) -> None:
    """End the watcher (when it has not ended by itself) and read its pipes to the end, so that
    nothing of the process is left to the event loop's teardown."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
    await asyncio.wait_for(proc.communicate(), 30)


async def test_a_passport_reported_stolen_after_check_in_reaches_the_airline(
    tmp_path: Path,
) -> None:
    nzl = ChangingProvider.issuer("NZL", ["NZL"])
    cfg = flights_config(tmp_path, resend_initial_s=1.0)
    async with flight_hub([nzl, await sltd(tmp_path)], cfg) as (hub, stub, channel):
        answer = await stub.CheckPaxlst(
            check_pb2.CheckPaxlstRequest(message=paxlst([WIREMU, TAYLOR]))
        )
        assert [p.directive for p in answer.passengers] == [check_pb2.DIRECTIVE_OK_TO_BOARD] * 2
        proc = await watch_process(hub.target)
        try:
            await nzl.watched()
            nzl.change("NZL", WIREMU.number, RecordStatus.STOLEN)
            got = read_status_change((await line(proc)).rstrip(b"\n"))
            assert got["BGM"] == "132"
            assert got["ERC"] == "1Z"
            assert got["RFF+ABO"] == WIREMU.abo and got["RFF+AVF"] == WIREMU.avf
            assert got["RFF+AF"] == "NZ103"
            # Acknowledged by the watcher: nothing is sent again, even after the resend time.
            assert proc.stdout is not None
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(proc.stdout.readline(), 3.5)
        finally:
            await stop(proc)
        status = await check_pb2_grpc.HubAdminStub(channel).Status(check_pb2.StatusRequest())
        assert status.open_flights == 1
        assert status.unacknowledged_changes == 0
    # What the flight store holds: no number, no name, no birth date.
    _assert_no_clear_data(tmp_path / "flights.db")


def _assert_no_clear_data(db: Path) -> None:
    con = sqlite3.connect(db)
    try:
        dump = "\n".join(con.iterdump())
    finally:
        con.close()
    assert "flight_documents" in dump and "NZ103" in dump  # the dump does hold the flight
    for secret in (WIREMU.number, TAYLOR.number, WIREMU.surname, TAYLOR.surname, "ARA",
                   WIREMU.birth, "1988-10-12", "LA91", "WIREMU"):  # fmt: skip
        assert secret not in dump, secret
        assert secret.encode().hex() not in dump.lower(), secret


async def test_watch_json_prints_one_object_per_change(tmp_path: Path) -> None:
    nzl = ChangingProvider.issuer("NZL", ["NZL"])
    async with flight_hub([nzl], flights_config(tmp_path)) as (hub, stub, _channel):
        answer = await stub.CheckPaxlst(
            check_pb2.CheckPaxlstRequest(message=paxlst([WIREMU, TAYLOR]))
        )
        proc = await watch_process(hub.target, "--json", "--count", "1")
        try:
            await nzl.watched()
            nzl.change("NZL", TAYLOR.number, RecordStatus.REVOKED)
            got = json.loads(await line(proc))
        finally:
            await stop(proc)
    assert got["flight"] == "NZ103"
    assert (got["passenger_ref"], got["booking_ref"]) == (TAYLOR.abo, TAYLOR.avf)
    assert got["directive"] == "DO_NOT_BOARD"
    assert len(got["check_ids"]) == 1
    assert got["check_ids"] != list(answer.passengers[1].check_ids)  # a fresh check


async def test_offload_and_close_end_the_conversation(tmp_path: Path) -> None:
    nzl = ChangingProvider.issuer("NZL", ["NZL"])
    async with flight_hub([nzl], flights_config(tmp_path)) as (_hub, stub, _channel):
        await stub.CheckPaxlst(check_pb2.CheckPaxlstRequest(message=paxlst([WIREMU, TAYLOR])))
        # Wiremu is offloaded (BGM+745+XR): a change of his passport is never sent.
        await stub.CheckPaxlst(
            check_pb2.CheckPaxlstRequest(message=paxlst([WIREMU], function="XR", ref="2"))
        )
        sub = Subscriber(stub)
        try:
            await nzl.watched()
            nzl.change("NZL", WIREMU.number, RecordStatus.STOLEN)
            assert await sub.nothing(2.0)
            # Taylor is still on the flight: her change is sent.
            nzl.change("NZL", TAYLOR.number, RecordStatus.STOLEN)
            got = await sub.get()
            assert got.passenger_ref == TAYLOR.abo
            await sub.ack(got)
            # The flight closes (BGM+266+CLOB): nothing more, for anyone on it.
            await stub.CheckPaxlst(
                check_pb2.CheckPaxlstRequest(
                    message=paxlst([TAYLOR], bgm="266", function="CLOB", ref="3")
                )
            )
            nzl.change("NZL", TAYLOR.number, None)  # withdrawn: would be OK TO BOARD again
            assert await sub.nothing(2.0)
        finally:
            await sub.close()
    con = sqlite3.connect(tmp_path / "flights.db")
    try:
        assert con.execute("select count(*) from flight_passengers").fetchone() == (0,)
        assert con.execute("select state from flights").fetchall() == [("closed",)]
    finally:
        con.close()


async def test_an_unacknowledged_change_is_sent_again_after_a_restart(tmp_path: Path) -> None:
    cfg = flights_config(tmp_path)
    nzl = ChangingProvider.issuer("NZL", ["NZL"])
    async with flight_hub([nzl], cfg) as (_hub, stub, _channel):
        await stub.CheckPaxlst(check_pb2.CheckPaxlstRequest(message=paxlst([WIREMU])))
        sub = Subscriber(stub)
        try:
            await nzl.watched()
            nzl.change("NZL", WIREMU.number, RecordStatus.STOLEN)
            first = await sub.get()
            assert first.attempt == 1
        finally:
            await sub.close()  # never acknowledged
    nzl2 = ChangingProvider.issuer("NZL", ["NZL"], {("NZL", WIREMU.number): RecordStatus.STOLEN})
    async with flight_hub([nzl2], cfg) as (_hub, stub, _channel):
        sub = Subscriber(stub)
        try:
            again = await sub.get()
            assert again.change_id == first.change_id
            assert again.attempt == 2
            assert again.directive == check_pb2.DIRECTIVE_DO_NOT_BOARD
            assert read_status_change(again.cusres)["RFF+TN"] == first.change_id
            await sub.ack(again)
            assert await sub.nothing(1.0)
        finally:
            await sub.close()


async def test_an_unacknowledged_change_is_sent_again_with_backoff(tmp_path: Path) -> None:
    nzl = ChangingProvider.issuer("NZL", ["NZL"])
    cfg = flights_config(tmp_path, resend_initial_s=0.5, resend_max_s=1.0)
    async with flight_hub([nzl], cfg) as (_hub, stub, _channel):
        await stub.CheckPaxlst(check_pb2.CheckPaxlstRequest(message=paxlst([WIREMU])))
        sub = Subscriber(stub)
        try:
            await nzl.watched()
            nzl.change("NZL", WIREMU.number, RecordStatus.STOLEN)
            sent = [await sub.get() for _ in range(3)]  # first, then two resends
            assert {c.change_id for c in sent} == {sent[0].change_id}
            assert [c.attempt for c in sent] == [1, 2, 3]
            assert {read_status_change(c.cusres)["RFF+TN"] for c in sent} == {sent[0].change_id}
            await sub.ack(sent[-1])
            while not sub.queue.empty():  # a resend may have crossed the acknowledgment
                sub.queue.get_nowait()
            assert await sub.nothing(2.5)
        finally:
            await sub.close()


@dataclass(slots=True)
class SlowToAnswer(ChangingProvider):
    """Reads its records at once, answers a second later: a change can fall in between."""

    asked: asyncio.Event = field(default_factory=asyncio.Event)

    async def lookup_many(self, queries: Sequence[DocumentQuery], deadline: float) -> list[Record]:
        out = [self.records.get(q.key, self.default) for q in queries]
        self.asked.set()
        await asyncio.sleep(1.0)
        return out


async def test_a_change_while_the_paxlst_is_being_answered_is_not_lost(tmp_path: Path) -> None:
    nzl = SlowToAnswer.issuer("NZL", ["NZL"])
    async with flight_hub([nzl], flights_config(tmp_path), deadline_ms=5000) as (
        _hub,
        stub,
        _channel,
    ):
        await nzl.watched()
        sub = Subscriber(stub)
        try:
            pending = asyncio.ensure_future(
                stub.CheckPaxlst(check_pb2.CheckPaxlstRequest(message=paxlst([WIREMU])), timeout=10)
            )
            await nzl.asked.wait()
            nzl.change("NZL", WIREMU.number, RecordStatus.STOLEN)  # after the provider read it
            answer = await pending
            assert answer.passengers[0].directive == check_pb2.DIRECTIVE_OK_TO_BOARD
            got = await sub.get()
            assert (got.passenger_ref, got.directive) == (
                WIREMU.abo,
                check_pb2.DIRECTIVE_DO_NOT_BOARD,
            )
        finally:
            await sub.close()
