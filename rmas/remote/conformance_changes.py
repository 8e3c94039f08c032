"""The conformance kit's ``watch_changes`` check (rmas.remote.conformance).

A node that does not describe ``watch_changes`` must answer WatchChanges UNIMPLEMENTED. One that
does must give a ``current_position``, refuse a position it never handed out with OUT_OF_RANGE,
and, while the kit runs ``--change-command`` (something that changes a record at the node, e.g.
``rmas store apply``), stream the change: a known state the node describes, a normalised number,
a position; positions distinct and increasing in the node's order (resuming from one gives only
the changes after it), replay from the position before the change, and a Describe position that
has moved. Without ``--change-command`` the live part cannot run: the check is SKIPPED after the
parts that can.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from rmas.documents import normalise_number
from rmas.v1 import provider_pb2

__all__ = ["ChangeCheckFailed", "ChangeCheckSkipped", "check_watch_changes"]

#: How long the kit waits for a change the command made to arrive.
ARRIVAL_S = 15.0


class ChangeCheckFailed(Exception):
    pass


class ChangeCheckSkipped(Exception):
    pass


Change = tuple[str, str, str]


class _Stream:
    """A WatchChanges call read by a task into a queue (the kit waits on the queue with time
    limits; the call is cancelled at the end)."""

    def __init__(self, stub: Any, since: str) -> None:
        self.call = stub.WatchChanges(provider_pb2.WatchChangesRequest(since=since))
        self.queue: asyncio.Queue[Change | BaseException | None] = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            async for batch in self.call:
                if not batch.changes:
                    self.queue.put_nowait(ChangeCheckFailed("the node sent an empty batch"))
                for c in batch.changes:
                    self.queue.put_nowait((c.issuing_state, c.number, c.position))
            self.queue.put_nowait(None)
        except grpc.aio.AioRpcError as exc:
            self.queue.put_nowait(exc)

    async def next(self, wait_s: float) -> Change | None:
        """The next change; None when none came within ``wait_s``."""
        try:
            item = await asyncio.wait_for(self.queue.get(), wait_s)
        except TimeoutError:
            return None
        if item is None:
            raise ChangeCheckFailed("the node ended the change stream (it must stay open)")
        if isinstance(item, grpc.aio.AioRpcError):
            raise ChangeCheckFailed(f"the change stream failed: {item.code().name}: "
                                    f"{item.details()}")  # fmt: skip
        if isinstance(item, BaseException):
            raise item
        return item

    async def close(self) -> None:
        self.call.cancel()
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def check_watch_changes(
    stub: Any,
    described: provider_pb2.DescribeResponse | None,
    call_s: float,
    make_change: Callable[[], Awaitable[object]] | None,
) -> str:
    if described is None or not described.watch_changes:
        try:
            s = _Stream(stub, "")
            try:
                await s.next(call_s)
            finally:
                await s.close()
        except ChangeCheckFailed as exc:
            if "UNIMPLEMENTED" in str(exc):
                return "the node does not describe watch_changes (WatchChanges: UNIMPLEMENTED)"
            raise
        raise ChangeCheckFailed("the node does not describe watch_changes but answered it")
    start = described.current_position
    if not start:
        raise ChangeCheckFailed("Describe says watch_changes but gives no current_position")
    await _refuses_unknown_positions(stub, call_s)
    live = _Stream(stub, start)
    try:
        if await live.next(1.0) is not None:
            raise ChangeCheckFailed("the stream from current_position replayed an older change")
        if make_change is None:
            raise ChangeCheckSkipped(
                "current_position given, unknown positions refused; no --change-command to make "
                "a live change, so streaming, positions and resuming were not checked"
            )
        await make_change()
        seen = await _arrivals(live, set(described.issuing_states))
    finally:
        await live.close()
    again: provider_pb2.DescribeResponse = await stub.Describe(
        provider_pb2.DescribeRequest(), timeout=call_s
    )
    if again.current_position == start:
        raise ChangeCheckFailed("Describe's current_position did not move after a change")
    await _resumes(stub, start, seen)
    return (f"{len(seen)} change(s) streamed within {ARRIVAL_S:g} s, positions distinct, "
            "resume and replay from a position work, unknown positions OUT_OF_RANGE")  # fmt: skip


async def _refuses_unknown_positions(stub: Any, call_s: float) -> None:
    bogus = _Stream(stub, "rmas-conformance-" + os.urandom(4).hex())
    try:
        got = await bogus.next(call_s)
        raise ChangeCheckFailed(
            "a position the node never handed out was accepted"
            + (" (and changes streamed from it)" if got else "")
        )
    except ChangeCheckFailed as exc:
        if "OUT_OF_RANGE" not in str(exc):
            raise
    finally:
        await bogus.close()


async def _arrivals(stream: _Stream, states: set[str]) -> list[Change]:
    first = await stream.next(ARRIVAL_S)
    if first is None:
        raise ChangeCheckFailed(f"no change streamed within {ARRIVAL_S:g} s of --change-command")
    seen = [first]
    while (more := await stream.next(0.5)) is not None:
        seen.append(more)
    for state, number, position in seen:
        if state not in states:
            raise ChangeCheckFailed(f"a change names {state[:3]!r}, not a state the node serves")
        if not number or number != normalise_number(number):
            raise ChangeCheckFailed("a change names a number that is not normalised")
        if not position:
            raise ChangeCheckFailed("a change has no position")
    if len({p for _s, _n, p in seen}) != len(seen):
        raise ChangeCheckFailed("two changes carry the same position")
    return seen


async def _resumes(stub: Any, start: str, seen: list[Change]) -> None:
    replay = _Stream(stub, start)
    try:
        got = await replay.next(ARRIVAL_S)
        if got != seen[0]:
            raise ChangeCheckFailed("resuming from the position before the change did not "
                                    "replay the same first change")  # fmt: skip
    finally:
        await replay.close()
    resumed = _Stream(stub, seen[0][2])
    try:
        for expected in seen[1:]:
            if await resumed.next(ARRIVAL_S) != expected:
                raise ChangeCheckFailed("resuming from a change's position did not give the "
                                        "changes after it, in order")  # fmt: skip
        extra = await resumed.next(1.0)
        if extra is not None and extra in seen:
            raise ChangeCheckFailed("resuming from a position gave an earlier change again "
                                    "(positions must increase)")  # fmt: skip
    finally:
        await resumed.close()
