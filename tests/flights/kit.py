"""What the flight tests share: a key file, a [flights] table, PAXLST messages for a flight
departing tomorrow, and readers of what the airline receives."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import warnings
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from pydifact.segmentcollection import Interchange

from rmas.flights.config import FlightsConfig
from rmas.testing import HubHandle, running_hub
from rmas.v1 import check_pb2, check_pb2_grpc


@dataclass(frozen=True)
class Pax:
    abo: str
    avf: str
    surname: str
    given: str
    birth: str  # YYMMDD
    number: str
    state: str = "NZL"


WIREMU = Pax("1001", "K7QF2A", "WIREMU", "ARA", "881012", "LA910001")
TAYLOR = Pax("1003", "K7QF2C", "TAYLOR", "ANNA", "800101", "LA000002")


def key_file(tmp: Path) -> Path:
    path = tmp / "flights.key"
    if not path.exists():
        path.write_text(os.urandom(32).hex())
    return path


def flights_config(tmp: Path, url: str = "", **kw: float) -> FlightsConfig:
    return FlightsConfig(
        url=url or f"sqlite+aiosqlite:///{tmp / 'flights.db'}",
        key_file=key_file(tmp),
        purge_after_h=float(kw.pop("purge_after_h", 24.0)),
        resend_initial_s=float(kw.pop("resend_initial_s", 30.0)),
        resend_max_s=float(kw.pop("resend_max_s", 600.0)),
        poll_ms=int(kw.pop("poll_ms", 50)),
        recheck_s=float(kw.pop("recheck_s", 3600.0)),
    )


def departure(days: int = 1) -> str:
    """YYMMDDHHMM of a departure ``days`` from now (UTC)."""
    return (dt.datetime.now(dt.UTC) + dt.timedelta(days=days)).strftime("%y%m%d%H%M")


#: paxlst's departure when none is given: tomorrow, read once per test process. A departure
#: read per message would change when a test's messages straddle a minute, and a flight is its
#: number and departure: the later message (an offload, the close) would open another flight.
TOMORROW = departure()


def paxlst(
    passengers: Sequence[Pax],
    *,
    function: str = "",
    bgm: str = "745",
    flight: str = "NZ103",
    dep: str = "",
    ref: str = "NZ00000101",
) -> bytes:
    """A PAXLST as a departure-control system writes it (BGM+745, BGM+745+CP, BGM+266+CLOB...)."""
    dep = dep or TOMORROW
    arr = dep[:6] + "2355"
    segs = [
        f"UNB+UNOA:4+AIRNZ+RMASHUB+{dep[:6]}:0700+{ref}++IAPI",
        f"UNH+{flight}P1+PAXLST:D:05B:UN:IATA+{flight}{dep[:6]}+01:F",
        f"BGM+{bgm}" + (f"+{function}" if function else ""),
        "RFF+TN:7100201",
        "NAD+MS+++AIR NEW ZEALAND DCS",
        f"TDT+20+{flight}+++NZ",
        "LOC+125+AKL",
        f"DTM+189:{dep}:201",
        "LOC+87+SYD",
        f"DTM+232:{arr}:201",
    ]
    for p in passengers:
        segs += [
            f"NAD+FL+++{p.surname}:{p.given}",
            "ATT+2++M",
            f"DTM+329:{p.birth}",
            f"NAT+2+{p.state}",
            f"RFF+AVF:{p.avf}",
            f"RFF+ABO:{p.abo}",
            f"DOC+P:110:111+{p.number}",
            "DTM+36:310505",
            f"LOC+91+{p.state}",
        ]
    segs.append(f"CNT+42:{len(passengers)}")
    count = len(segs) - 1 + 1  # UNH .. UNT
    segs.append(f"UNT+{count}+{flight}P1")
    segs.append(f"UNZ+1+{ref}")
    return ("UNA:+.? '" + "'".join(segs) + "'").encode("ascii")


def read_status_change(data: bytes) -> dict[str, str]:
    """A BGM+132 read with pydifact (an independent EDIFACT parser), as an airline reads it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ic = Interchange.from_str(data.decode("latin-1"))
    out: dict[str, str] = {}
    for seg in ic.segments:
        e = seg.elements
        if seg.tag == "BGM":
            out["BGM"] = str(e[0])
        elif seg.tag == "RFF" and isinstance(e[0], list):
            out[f"RFF+{e[0][0]}"] = str(e[0][1])
        elif seg.tag == "ERC":
            out["ERC"] = str(e[0])
        elif seg.tag == "FTX":
            out["FTX"] = str(e[-1])
    return out


class Subscriber:
    """An airline's WatchStatusChanges stream read into a queue by a task of its own."""

    def __init__(self, stub: check_pb2_grpc.DocumentCheckStub) -> None:
        self.stub = stub
        self.call = stub.WatchStatusChanges(check_pb2.WatchStatusChangesRequest())
        self.queue: asyncio.Queue[check_pb2.StatusChange] = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for change in self.call:
            await self.queue.put(change)

    async def get(self, within: float = 20.0) -> check_pb2.StatusChange:
        return await asyncio.wait_for(self.queue.get(), within)

    async def nothing(self, wait: float = 2.0) -> bool:
        """True when no status change arrives within ``wait`` seconds."""
        try:
            await asyncio.wait_for(self.queue.get(), wait)
        except TimeoutError:
            return True
        return False

    async def ack(self, change: check_pb2.StatusChange) -> None:
        await self.stub.AckStatusChange(
            check_pb2.AckStatusChangeRequest(change_id=change.change_id)
        )

    async def close(self) -> None:
        self.call.cancel()
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task


@contextlib.asynccontextmanager
async def flight_hub(
    providers: Sequence[object], cfg: FlightsConfig, **kw: object
) -> AsyncIterator[tuple[HubHandle, check_pb2_grpc.DocumentCheckStub, grpc.aio.Channel]]:
    """A hub keeping open flights, and a plain channel to it (development mode: the caller is
    ``insecure:127.0.0.1``, as any process on this host)."""
    async with (
        running_hub(providers, flights=cfg, **kw) as hub,  # type: ignore[arg-type]
        grpc.aio.insecure_channel(hub.target) as channel,
    ):
        yield hub, check_pb2_grpc.DocumentCheckStub(channel), channel
