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
from rmas.testing import FakeProvider
from rmas.verdict import RecordStatus

PAX = Path(__file__).resolve().parents[2] / "fixtures" / "paxlst" / "manifest_480.edi"


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
