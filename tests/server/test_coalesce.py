"""Single-check answers held and sent together while the loop is saturated (``[hub]
coalesce_ms``).

The coalescer alone (its saturation test on the loop thread's real CPU, its hold, a caller
leaving, a short deadline), then the real gRPC path: 64 checks at once against SQLite stores
give the same answers held as not held, and a lone check is never held.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import pytest

from adapters.sqlstore.importer import import_csv
from adapters.sqlstore.provider import SqlStoreProvider
from rmas.client import check_document_request, result_to_dict
from rmas.config import parse_config
from rmas.providers import ProviderInfo
from rmas.server.coalesce import COOLDOWN, DEADLINE_MARGIN, WINDOW_S, AnswerCoalescer
from rmas.testing import running_hub
from rmas.v1 import check_pb2, check_pb2_grpc

HOLD = 0.05


def drive(c: AnswerCoalescer, seconds: float, *, spin: bool) -> list[asyncio.Future[None]]:
    """An answer every half millisecond for ``seconds`` (2,000 a second), the loop's thread
    busy between them (``spin``: a saturated loop) or asleep (a loop with room); the futures
    of the answers held."""
    held = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        f = c.hold(None)
        if f is not None:
            held.append(f)
        until = time.perf_counter() + 0.0005
        if spin:
            while time.perf_counter() < until:
                pass
        else:
            time.sleep(0.0005)
    return held


async def test_a_loop_with_room_answers_at_once_whatever_the_rate() -> None:
    c = AnswerCoalescer(HOLD)
    assert drive(c, 0.08, spin=False) == []
    assert c.held == 0 and not c.saturated


async def test_a_saturated_loop_holds_answers_and_releases_them_together() -> None:
    c = AnswerCoalescer(HOLD)
    held = drive(c, 0.08, spin=True)
    assert c.saturated and len(held) == c.held > 10
    assert not any(f.done() for f in held)
    await asyncio.wait_for(asyncio.gather(*held), HOLD * 40)
    assert 1 <= c.released <= 2 + int(0.08 / HOLD)
    # Room again: a window without any answer ends the saturation.
    await asyncio.sleep(3 * WINDOW_S)
    assert c.hold(None) is None and not c.saturated


async def test_a_lone_answer_is_not_held_on_a_saturated_loop() -> None:
    """The loop busy with something else (a manifest, say) and one single check a window:
    saturated, but a hold would batch nothing."""
    c = AnswerCoalescer(HOLD)
    got = []
    for _ in range(5):
        got.append(c.hold(None))
        until = time.perf_counter() + WINDOW_S
        while time.perf_counter() < until:
            pass
    assert c.saturated
    assert got == [None] * 5


async def test_a_caller_alone_is_held_once_in_a_while_only() -> None:
    """A batch that released one answer (nothing else came during the hold) means one caller
    waiting for each answer: the next COOLDOWN answers leave at once."""
    c = AnswerCoalescer(HOLD)
    first = drive(c, 0.05, spin=True)
    assert first
    c.flush()  # a batch of many: no cooldown
    alone = c.hold(None)
    assert alone is not None
    c.flush()  # released alone
    got = [c.hold(None) for _ in range(COOLDOWN + 1)]
    assert got[:COOLDOWN] == [None] * COOLDOWN
    assert got[COOLDOWN] is not None
    c.flush()


async def test_no_hold_when_switched_off() -> None:
    c = AnswerCoalescer(0.0)
    assert drive(c, 0.05, spin=True) == []


async def test_an_answer_is_not_held_into_its_callers_deadline() -> None:
    c = AnswerCoalescer(HOLD)
    assert drive(c, 0.05, spin=True)  # saturated now
    assert c.hold(DEADLINE_MARGIN * HOLD * 0.9) is None
    assert c.hold(DEADLINE_MARGIN * HOLD * 1.1) is not None
    c.flush()


async def test_a_caller_leaving_does_not_release_or_cancel_the_others() -> None:
    c = AnswerCoalescer(HOLD)
    held = drive(c, 0.05, spin=True)
    held += [f for f in (c.hold(None), c.hold(None)) if f is not None]
    held = [f for f in held if not f.done()][-5:]  # one batch's, still held
    assert len(held) == 5

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
    held = drive(c, 0.05, spin=True)
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
    return [comparable(r) for r in got]


def comparable(response: check_pb2.CheckDocumentResponse) -> dict[str, object]:
    """An answer without its check id and latencies (they differ from run to run)."""
    d = result_to_dict(response.result)
    d.pop("check_id")
    for source in d["sources"]:  # type: ignore[attr-defined]
        source.pop("latency_ms")
    return d


async def test_held_answers_are_the_answers(provider: SqlStoreProvider) -> None:
    async with running_hub([provider], coalesce_ms=0) as plain:
        expected = await answers(plain.target)
    async with running_hub([provider], coalesce_ms=20) as hub:
        assert hub.server is not None
        coalescer = hub.server.service.coalescer
        # Any CPU share counts as saturated: 64 checks at once then hold on any test machine,
        # whatever else it runs.
        coalescer.engage_share = 0.0
        held = await answers(hub.target)
        assert coalescer.held > 0  # 64 at once: busy
    assert held == expected
    verdicts = {str(a["verdict"]) for a in held}
    assert verdicts == {"CLEAR", "ALERT"}


async def test_a_lone_check_is_never_held(provider: SqlStoreProvider) -> None:
    async with running_hub([provider], coalesce_ms=20) as hub:
        assert hub.server is not None
        hub.server.service.coalescer.engage_share = 0.0
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


async def test_callers_walking_away_while_held_cost_nobody_else(provider: SqlStoreProvider) -> None:
    """A hostile or impatient client: a quarter of 64 checks at once are cancelled by their
    callers while answers are being held; every other caller gets its answer, the same as with
    ``coalesce_ms = 0``, and the hub answers afterwards."""
    async with running_hub([provider], coalesce_ms=0) as plain:
        expected = await answers(plain.target)
    async with running_hub([provider], coalesce_ms=20) as hub:
        assert hub.server is not None
        coalescer = hub.server.service.coalescer
        coalescer.engage_share = 0.0
        async with grpc.aio.insecure_channel(hub.target) as ch:
            stub = check_pb2_grpc.DocumentCheckStub(ch)
            calls = [
                stub.CheckDocument(check_document_request(number=n, state="NZL"), timeout=10)
                for n in NUMBERS
            ]
            for _ in range(5000):  # until answers are being held (5 s at most)
                await asyncio.sleep(0.001)
                if coalescer.held:
                    break
            assert coalescer.held
            for call in calls[::4]:
                call.cancel()
            got = await asyncio.gather(*calls, return_exceptions=True)
        kept = [(i, r) for i, r in enumerate(got) if i % 4]
        assert all(not isinstance(r, BaseException) for _, r in kept)
        assert [comparable(r) for _, r in kept] == [expected[i] for i, _ in kept]  # type: ignore[arg-type]
        assert all(isinstance(r, asyncio.CancelledError) or not isinstance(r, BaseException)
                   for r in got[::4])  # fmt: skip
        assert await answers(hub.target) == expected
