"""What the hub keeps of a flight: the newest answer stands, outages are seen and caught up,
and two hubs on PostgreSQL share their open flights without telling the airline twice."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from rmas.changes import ChangesLost, DocumentChange
from rmas.flights.store import metadata
from rmas.testing import ChangingProvider
from rmas.v1 import check_pb2, check_pb2_grpc
from rmas.verdict import Record, RecordStatus
from tests.flights.kit import (
    TAYLOR,
    WIREMU,
    Subscriber,
    departure,
    flight_hub,
    flights_config,
    paxlst,
)

SECRETS = (WIREMU.number, TAYLOR.number, WIREMU.surname, TAYLOR.surname, "1988-10-12")


async def test_the_newest_request_stands_for_a_passenger_checked_again(tmp_path: Path) -> None:
    nzl = ChangingProvider.issuer("NZL", ["NZL"])
    renewed = replace(WIREMU, number="LA910009")
    async with flight_hub([nzl], flights_config(tmp_path)) as (_hub, stub, _channel):
        await stub.CheckPaxlst(check_pb2.CheckPaxlstRequest(message=paxlst([WIREMU, TAYLOR])))
        # BGM+745+CP: Wiremu travels on his new passport.
        await stub.CheckPaxlst(
            check_pb2.CheckPaxlstRequest(message=paxlst([renewed], function="CP", ref="2"))
        )
        sub = Subscriber(stub)
        try:
            await nzl.watched()
            nzl.change("NZL", WIREMU.number, RecordStatus.STOLEN)  # the old one: not his now
            assert await sub.nothing(1.5)
            nzl.change("NZL", renewed.number, RecordStatus.STOLEN)
            got = await sub.get()
            assert (got.passenger_ref, got.directive) == (
                WIREMU.abo,
                check_pb2.DIRECTIVE_DO_NOT_BOARD,
            )
        finally:
            await sub.close()


async def test_an_outage_is_seen_and_its_passengers_checked_again_once_over(
    tmp_path: Path,
) -> None:
    nzl = ChangingProvider.issuer("NZL", ["NZL"], failure="unavailable")
    cfg = flights_config(tmp_path, recheck_s=0.3)
    async with flight_hub([nzl], cfg, metrics_listen="127.0.0.1:0") as (hub, stub, channel):
        answer = await stub.CheckPaxlst(
            check_pb2.CheckPaxlstRequest(message=paxlst([WIREMU, TAYLOR]))
        )
        assert {p.directive for p in answer.passengers} == {check_pb2.DIRECTIVE_CONTACT_AUTHORITY}
        admin = check_pb2_grpc.HubAdminStub(channel)
        status = await admin.Status(check_pb2.StatusRequest())
        assert [(f.flight, f.incomplete) for f in status.incomplete_flights] == [("NZ103", 2)]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rmas.cli", "status", "--hub", hub.target,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        assert "INCOMPLETE: flight NZ103" in out.decode()
        assert "2 passengers" in out.decode()
        await asyncio.sleep(cfg.recheck_s * 2)  # the metrics are as of the last periodic pass
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{hub.metrics_port}/metrics") as resp,
        ):
            text = await resp.text()
        assert "rmas_flights_incomplete_passengers 2.0" in text
        assert "rmas_flights_open 1.0" in text
        sub = Subscriber(stub)
        try:
            nzl.failure = ""  # the provider is back
            got = {(await sub.get()).passenger_ref, (await sub.get()).passenger_ref}
            assert got == {WIREMU.abo, TAYLOR.abo}
        finally:
            await sub.close()
        status = await admin.Status(check_pb2.StatusRequest())
        assert list(status.incomplete_flights) == []
        assert status.unacknowledged_changes == 2


async def test_two_hubs_on_postgres_share_open_flights(tmp_path: Path, postgres_url: str) -> None:
    engine = create_async_engine(postgres_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)
    cfg = flights_config(tmp_path, url=postgres_url)
    nzl_a = ChangingProvider.issuer("NZL", ["NZL"])
    nzl_b = ChangingProvider.issuer("NZL", ["NZL"])
    async with (
        flight_hub([nzl_a], cfg) as (_a, hub_a, chan_a),
        flight_hub([nzl_b], cfg) as (_b, hub_b, chan_b),
    ):
        await hub_a.CheckPaxlst(check_pb2.CheckPaxlstRequest(message=paxlst([WIREMU, TAYLOR])))
        # Hub B takes a message for the flight hub A opened.
        await hub_b.CheckPaxlst(
            check_pb2.CheckPaxlstRequest(message=paxlst([TAYLOR], function="CP", ref="2"))
        )
        # Each hub records what it answered right after answering; every hub watches every
        # provider, so the one that answered a passenger always finds it. Here only hub B hears
        # of the next change: wait until both have recorded (Status waits for it).
        for channel in (chan_a, chan_b):
            status = await check_pb2_grpc.HubAdminStub(channel).Status(check_pb2.StatusRequest())
            assert status.open_flights == 1
        sub = Subscriber(hub_a)  # the airline is subscribed at hub A
        try:
            await nzl_b.watched()
            nzl_b.change("NZL", WIREMU.number, RecordStatus.STOLEN)  # only hub B hears of it
            got = await sub.get()
            assert got.passenger_ref == WIREMU.abo
            await sub.ack(got)
            # Both hubs hear of the next change: the airline is told once.
            await nzl_a.watched()
            nzl_a.change("NZL", TAYLOR.number, RecordStatus.LOST)
            nzl_b.change("NZL", TAYLOR.number, RecordStatus.LOST)
            got = await sub.get()
            assert got.passenger_ref == TAYLOR.abo
            await sub.ack(got)
            assert await sub.nothing(2.0)
        finally:
            await sub.close()
    async with engine.connect() as conn:
        n = (await conn.execute(sa.text("select count(*) from flights"))).scalar_one()
        assert n == 1
        changes = (
            await conn.execute(sa.text("select count(*) from flight_status_changes"))
        ).scalar_one()
        assert changes == 2
        for table in metadata.sorted_tables:
            rows = (await conn.execute(sa.select(table))).all()
            dump = repr(rows)
            for secret in SECRETS:
                assert secret not in dump, (table.name, secret)
                assert secret.encode().hex() not in dump.lower()
    await engine.dispose()


async def test_a_cancelled_flight_keeps_nothing_and_a_departed_one_is_purged(
    tmp_path: Path,
) -> None:
    nzl = ChangingProvider.issuer("NZL", ["NZL"])
    cfg = flights_config(tmp_path, recheck_s=0.2, purge_after_h=1.0)
    async with flight_hub([nzl], cfg) as (_hub, stub, _channel):
        await stub.CheckPaxlst(check_pb2.CheckPaxlstRequest(message=paxlst([WIREMU])))
        cancel = await stub.CheckPaxlst(
            check_pb2.CheckPaxlstRequest(message=paxlst([], bgm="266", function="XF", ref="2"))
        )
        assert list(cancel.errors) == []
        # A flight that left two hours ago (purged one hour after departure).
        await stub.CheckPaxlst(
            check_pb2.CheckPaxlstRequest(
                message=paxlst([TAYLOR], flight="NZ105", dep=departure(-2 / 24), ref="3")
            )
        )
        sub = Subscriber(stub)
        try:
            await nzl.watched()
            nzl.change("NZL", WIREMU.number, RecordStatus.STOLEN)
            assert await sub.nothing(1.0)
        finally:
            await sub.close()
        await asyncio.sleep(cfg.recheck_s * 3)  # a periodic pass or more
    con = sqlite3.connect(tmp_path / "flights.db")
    try:
        flights = con.execute("select number, state from flights").fetchall()
        kept = con.execute("select count(*) from flight_passengers").fetchone()
    finally:
        con.close()
    assert flights == [("NZ103", "cancelled")]
    assert kept == (0,)


async def test_an_override_ends_when_it_expires(tmp_path: Path) -> None:
    nzl = ChangingProvider.issuer("NZL", ["NZL"], {("NZL", WIREMU.number): RecordStatus.STOLEN})
    async with flight_hub([nzl], flights_config(tmp_path, recheck_s=0.2)) as (
        _hub,
        stub,
        _channel,
    ):
        answer = await stub.CheckPaxlst(check_pb2.CheckPaxlstRequest(message=paxlst([WIREMU])))
        until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
        await stub.OverrideDirective(
            check_pb2.OverrideDirectiveRequest(
                check_id=answer.passengers[0].check_ids[0],
                reason="one visit to the desk",
                expires=until.isoformat(),
            )
        )
        sub = Subscriber(stub)
        try:
            first = await sub.get()
            assert (first.directive, first.overridden) == (check_pb2.DIRECTIVE_OK_TO_BOARD, True)
            await sub.ack(first)
            ended = await sub.get()
            assert (ended.directive, ended.overridden) == (check_pb2.DIRECTIVE_DO_NOT_BOARD, False)
        finally:
            await sub.close()


@dataclass(slots=True)
class PrunedProvider(ChangingProvider):
    """A feed whose history is pruned: a record changes without a change it can still serve."""

    pruned: bool = False

    def prune(self, economy: str, number: str, status: RecordStatus) -> None:
        self.records[(economy, number)] = Record(status)
        self.pruned = True
        if self._news is not None:
            self._news.set()

    async def watch_changes(self, since: str) -> AsyncIterator[Sequence[DocumentChange]]:
        if self._news is None:
            self._news = asyncio.Event()
        self.mark_watched()
        at = int(since or "0")
        while True:
            self._news.clear()
            if self.pruned:
                self.pruned = False
                raise ChangesLost(f"history pruned past {since}")
            if len(self.log) > at:
                batch, at = self.log[at:], len(self.log)
                yield batch
            else:
                await self._news.wait()

    async def current_position(self) -> str:
        return str(len(self.log))


async def test_lost_changes_recheck_every_passenger_the_provider_answers_for(
    tmp_path: Path,
) -> None:
    nzl = PrunedProvider.issuer("NZL", ["NZL"])
    async with flight_hub([nzl], flights_config(tmp_path)) as (_hub, stub, _channel):
        await stub.CheckPaxlst(check_pb2.CheckPaxlstRequest(message=paxlst([WIREMU, TAYLOR])))
        sub = Subscriber(stub)
        try:
            await nzl.watched()
            nzl.prune("NZL", TAYLOR.number, RecordStatus.STOLEN)
            got = await sub.get()
            assert (got.passenger_ref, got.directive) == (
                TAYLOR.abo,
                check_pb2.DIRECTIVE_DO_NOT_BOARD,
            )
            await sub.ack(got)
            assert await sub.nothing(1.0)
        finally:
            await sub.close()
