"""Single-check answers held and sent together while the hub is busy (``[hub] coalesce_ms``).

The coalescer alone (its busy test, its hold, a caller leaving, a short deadline), then the real
gRPC path: 64 checks at once against SQLite stores give the same answers held as not held, and
a lone check is never held.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from adapters.sqlstore.importer import import_csv
from adapters.sqlstore.provider import SqlStoreProvider
from rmas.client import check_document_request, result_to_dict
from rmas.config import parse_config
from rmas.providers import ProviderInfo
from rmas.server.coalesce import BUSY_CALLS, DEADLINE_MARGIN, AnswerCoalescer
from rmas.testing import running_hub
from rmas.v1 import check_pb2_grpc

HOLD = 0.05


def busy(c: AnswerCoalescer, remaining_s: float | None = None) -> list[asyncio.Future[None]]:
    """Answers until the coalescer holds one: the futures it handed out."""
    held = []
    for _ in range(BUSY_CALLS):
        f = c.hold(remaining_s)
        if f is not None:
            held.append(f)
    return held


async def test_a_quiet_hub_answers_at_once() -> None:
    c = AnswerCoalescer(HOLD)
    assert [c.hold(None) for _ in range(BUSY_CALLS - 1)] == [None] * (BUSY_CALLS - 1)
    assert c.held == 0


async def test_a_busy_hub_holds_answers_and_releases_them_together() -> None:
    c = AnswerCoalescer(HOLD)
    held = busy(c)
    held += [f for f in (c.hold(None), c.hold(None)) if f is not None]
    assert len(held) == 3 and c.held == 3
    assert not any(f.done() for f in held)
    await asyncio.sleep(HOLD / 2)
    assert not any(f.done() for f in held)
    await asyncio.wait_for(asyncio.gather(*held), HOLD * 20)
    assert c.released == 1
    # The hold outlasted the busy windows: the next answer leaves at once, until busy again,
    # when a new batch opens.
    assert c.hold(None) is None
    later = busy(c)
    assert later and not any(f.done() for f in later)
    await asyncio.wait_for(asyncio.gather(*later), HOLD * 20)
    assert c.released == 2


async def test_no_hold_when_switched_off() -> None:
    c = AnswerCoalescer(0.0)
    assert [c.hold(None) for _ in range(BUSY_CALLS * 3)] == [None] * (BUSY_CALLS * 3)


async def test_an_answer_is_not_held_into_its_callers_deadline() -> None:
    c = AnswerCoalescer(HOLD)
    assert busy(c)  # busy now
    assert c.hold(DEADLINE_MARGIN * HOLD * 0.9) is None
    assert c.hold(DEADLINE_MARGIN * HOLD * 1.1) is not None
    c.flush()


async def test_a_caller_leaving_does_not_release_or_cancel_the_others() -> None:
    c = AnswerCoalescer(HOLD)
    held = [f for f in (*busy(c), c.hold(None), c.hold(None)) if f is not None]

    async def wait(f: asyncio.Future[None]) -> str:
        await f
        return "sent"

    tasks = [asyncio.create_task(wait(f)) for f in held]
    await asyncio.sleep(0)
    tasks[0].cancel()
    await asyncio.sleep(0)
    assert not any(t.done() for t in tasks[1:])
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert results[1:] == ["sent"] * (len(tasks) - 1)


async def test_a_reload_releases_what_is_held() -> None:
    c = AnswerCoalescer(10.0)
    held = busy(c)
    assert held
    c.reconfigure(0.0)
    assert all(f.done() for f in held)
    assert c.hold(None) is None


def test_the_config_key() -> None:
    assert parse_config("").hub.coalesce_ms == 2.0
    assert parse_config("[hub]\ncoalesce_ms = 0").hub.coalesce_ms == 0.0
    with pytest.raises(ValueError, match="0 or more"):
        AnswerCoalescer(-1.0)


HEADER = "issuing_state,document_number,document_type,status,reported_on,record_ref"
ROWS = "".join(
    f"NZL,LB{k:06d},P,{('STOLEN', 'LOST', 'VALID', 'REVOKED')[k % 4]},2024-01-02,NZ-{k}\n"
    for k in range(1, 41)
)


@pytest.fixture
async def provider(tmp_path: Path) -> SqlStoreProvider:
    (tmp_path / "nzl.csv").write_text(f"{HEADER}\n{ROWS}")
    url = f"sqlite+aiosqlite:///{tmp_path / 'nzl.db'}"
    report = await import_csv(url, tmp_path / "nzl.csv")
    assert report.rejected == ()
    return SqlStoreProvider(
        ProviderInfo(id="NZL", issuing_states=frozenset({"NZL"}), contact="NZ desk"), url
    )


#: Numbers asked: reported (every status), valid, and unknown.
NUMBERS = [f"LB{k:06d}" for k in range(1, 41)] + [f"LC{k:06d}" for k in range(24)]


async def answers(target: str) -> list[dict[str, object]]:
    """Every number checked at once over one channel; the answers without their check ids
    and latencies."""
    async with grpc.aio.insecure_channel(target) as ch:
        stub = check_pb2_grpc.DocumentCheckStub(ch)
        got = await asyncio.gather(
            *(
                stub.CheckDocument(check_document_request(number=n, state="NZL"), timeout=10)
                for n in NUMBERS
            )
        )
    out = []
    for r in got:
        d = result_to_dict(r.result)
        d.pop("check_id")
        for source in d["sources"]:  # type: ignore[attr-defined]
            source.pop("latency_ms")
        out.append(d)
    return out


async def test_held_answers_are_the_answers(provider: SqlStoreProvider) -> None:
    async with running_hub([provider], coalesce_ms=0) as plain:
        expected = await answers(plain.target)
    async with running_hub([provider], coalesce_ms=20) as hub:
        assert hub.server is not None
        coalescer = hub.server.service.coalescer
        # Busy from the fourth answer on: 64 at once is busy on any machine (the bound, 30 in
        # 10-20 ms, is for rates a slow test machine may not reach).
        coalescer.busy_calls = 4
        held = await answers(hub.target)
        assert coalescer.held > 0  # 64 at once: busy
    assert held == expected
    verdicts = {str(a["verdict"]) for a in held}
    assert verdicts == {"CLEAR", "ALERT"}


async def test_a_lone_check_is_never_held(provider: SqlStoreProvider) -> None:
    async with running_hub([provider], coalesce_ms=20) as hub:
        assert hub.server is not None
        hub.server.service.coalescer.busy_calls = 4
        async with grpc.aio.insecure_channel(hub.target) as ch:
            stub = check_pb2_grpc.DocumentCheckStub(ch)
            for n in NUMBERS[:3]:
                await stub.CheckDocument(check_document_request(number=n, state="NZL"), timeout=5)
                await asyncio.sleep(0.05)
        assert hub.server.service.coalescer.held == 0


RELOADED = """
[hub]
listen = "127.0.0.1:0"
{hold}
[[providers]]
id = "NZL"
kind = "fake"
issuing_states = ["NZL"]
"""


async def test_a_reload_sets_the_hold() -> None:
    from rmas.plugins import build_providers
    from rmas.server.app import HubServer
    from rmas.server.reload import reload_hub

    cfg = parse_config(RELOADED.format(hold=""))
    server = HubServer.from_config(cfg, build_providers(cfg.providers))
    await server.start()
    try:
        assert server.service.coalescer.hold_s == pytest.approx(0.002)
        await reload_hub(server, parse_config(RELOADED.format(hold="coalesce_ms = 7.5")))
        assert server.service.coalescer.hold_s == pytest.approx(0.0075)
        await reload_hub(server, parse_config(RELOADED.format(hold="coalesce_ms = 0")))
        assert server.service.coalescer.hold_s == 0.0
    finally:
        await server.stop(grace=0)
