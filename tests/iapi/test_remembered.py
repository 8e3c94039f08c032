"""What the airline channel keeps of each answered interchange (for resends), and for how long.

Every answered interchange is remembered (``[iapi] remember``, 10,000 by default): what is kept
must not grow with its passengers in objects, or every full garbage collection of the serving
process scans thousands of objects more per interchange (issue 20: the 480-passenger PAXLST's
p99 was such collections).
"""

from __future__ import annotations

import gc
import time
from pathlib import Path

from rmas.hub import Hub
from rmas.iapi.channel import IapiChannel
from rmas.iapiconfig import IapiConfig
from rmas.testing import FakeProvider
from rmas.verdict import RecordStatus

PAX = Path(__file__).resolve().parents[2] / "fixtures" / "paxlst" / "manifest_480.edi"
#: A PAXLST of no travellers (a flight's last part may be one).
EMPTY = (
    "UNB+UNOA:4+AIRNZ+RMASHUB+261123:0900+R00001'UNH+M1+PAXLST:D:05B:UN:IATA'BGM+745'"
    "TDT+20+NZ1+++NZ'LOC+125+AKL'DTM+189:2611231030:201'LOC+87+SYD'DTM+232:2611231300:201'"
    "CNT+42:0'UNT+9+M1'UNZ+1+R00001'"
)


def channel() -> IapiChannel:
    stolen = {("NZL", "NZ0000003"): RecordStatus.STOLEN}
    return IapiChannel(Hub([FakeProvider.issuer("NZL", ["NZL", "AUS", "PHL"], stolen)]))


async def answer(ch: IapiChannel, ref: str) -> None:
    data = PAX.read_bytes().replace(b"ICR0480", ref.encode())
    got = await ch.answer(data, time.monotonic() + 30)
    assert len(got.passengers) == 480 and not got.errors
    for provider in ch.hub.providers:
        assert isinstance(provider, FakeProvider)
        provider.calls.clear()  # what a FakeProvider keeps for tests to read


async def test_a_remembered_interchange_holds_no_object_per_passenger() -> None:
    ch = channel()
    for i in range(3):
        await answer(ch, f"W{i:06d}")
    gc.collect()
    before = len(gc.get_objects())
    for i in range(10):
        await answer(ch, f"R{i:06d}")
    gc.collect()
    grown = len(gc.get_objects()) - before
    assert len(ch._seen) == 13
    # 480 passengers each: remembering their results grew by about 1,000 objects an interchange.
    assert grown < 10 * 20, f"{grown} objects more for 10 remembered interchanges"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def kept_cusres(ch: IapiChannel) -> int:
    return sum(1 for e in ch._seen.values() if e.cusres is not None)


async def test_past_the_resend_window_only_the_digest_of_a_message_is_kept() -> None:
    clock = Clock()
    stolen = {("NZL", "NZ0000003"): RecordStatus.STOLEN}
    hub = Hub([FakeProvider.issuer("NZL", ["NZL", "AUS", "PHL"], stolen)])
    ch = IapiChannel(hub, IapiConfig(resend_window_s=60), clock=clock)
    first = PAX.read_bytes().replace(b"ICR0480", b"A000001")
    a = await ch.answer(first, time.monotonic() + 30)
    clock.now += 30
    again = await ch.answer(first, time.monotonic() + 30)
    assert again.duplicate and again.cusres == a.cusres  # within the window: the same bytes
    await answer(ch, "B000001")
    assert kept_cusres(ch) == 2
    clock.now += 31  # A: 61 s, B: 31 s
    await answer(ch, "C000001")
    assert kept_cusres(ch) == 2, "A's CUSRES is kept past the window"
    clock.now += 100
    await answer(ch, "D000001")
    assert kept_cusres(ch) == 1 and len(ch._seen) == 4
    # A resend past the window: checked and answered afresh, known as a resend by its digest.
    late = await ch.answer(first, time.monotonic() + 30)
    assert late.resend and not late.duplicate and late.transaction_ref != a.transaction_ref
    # Past the window, another message under the same reference is not refused either.
    clock.now += 100
    other = await ch.answer(first.replace(b"PAX1:TEST", b"PAX1:OTHER"), time.monotonic() + 30)
    assert not other.errors and not other.resend


async def test_a_window_grown_by_a_reload_does_not_replay_a_let_go_answer() -> None:
    clock = Clock()
    ch = IapiChannel(Hub([FakeProvider.issuer("NZL", ["NZL"])]), IapiConfig(resend_window_s=1),
                     clock=clock)  # fmt: skip
    empty = EMPTY.encode()
    first = await ch.answer(empty, time.monotonic() + 30)
    assert not first.errors and first.passengers == ()
    clock.now += 5
    await ch.answer(empty.replace(b"R00001", b"R00002"), time.monotonic() + 30)
    assert kept_cusres(ch) == 1
    ch.config = IapiConfig(resend_window_s=600)  # as a SIGHUP applies it
    again = await ch.answer(empty, time.monotonic() + 30)
    assert again.resend and not again.duplicate
    assert again.cusres != first.cusres  # its own answer: the first CUSRES was let go


async def test_an_interchange_answered_afresh_past_the_window_is_kept_for_a_window_of_its_own() -> (
    None
):
    clock = Clock()
    ch = IapiChannel(Hub([FakeProvider.issuer("NZL", ["NZL", "AUS", "PHL"])]),
                     IapiConfig(resend_window_s=60), clock=clock)  # fmt: skip
    data = PAX.read_bytes()
    first = await ch.answer(data, time.monotonic() + 30)
    clock.now += 61
    late = await ch.answer(data, time.monotonic() + 30)  # answered afresh, remembered anew
    assert late.resend and not late.duplicate and late.cusres != first.cusres
    clock.now += 1
    again = await ch.answer(data, time.monotonic() + 30)
    assert again.duplicate and again.cusres == late.cusres
