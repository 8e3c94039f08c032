"""Load generation for `make bench`: closed-loop (N in flight) and open-loop (steady rate) clients.

Runs in its own process, pinned to its own core, so the server under test has the other one.
Each function calls a zero-argument coroutine factory ``call()`` and measures it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    calls: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0


def _pct(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))] * 1000.0


async def closed_loop(
    call: Callable[[], Awaitable[object]], *, in_flight: int, seconds: float, warmup: float = 1.0
) -> Result:
    """``in_flight`` workers calling back to back; counts completions in the measured window."""
    lat: list[float] = []
    errors = 0
    measuring = False
    stop_at = time.perf_counter() + warmup + seconds

    async def worker() -> None:
        nonlocal errors
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                return
            try:
                await call()
            except Exception:
                if measuring:
                    errors += 1
                continue
            if measuring:
                lat.append(time.perf_counter() - t0)

    tasks = [asyncio.create_task(worker()) for _ in range(in_flight)]
    await asyncio.sleep(warmup)
    measuring = True
    start = time.perf_counter()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    return Result(len(lat), errors, elapsed, _pct(lat, 0.5), _pct(lat, 0.99))


async def open_loop(
    call: Callable[[], Awaitable[object]], *, rate: float, seconds: float, warmup: float = 1.0
) -> Result:
    """Calls started at a steady ``rate`` regardless of completions; latency from the start time."""
    lat: list[float] = []
    errors = 0
    interval = 1.0 / rate
    pending: set[asyncio.Task[None]] = set()

    async def one(record: bool) -> None:
        nonlocal errors
        t0 = time.perf_counter()
        try:
            await call()
        except Exception:
            if record:
                errors += 1
            return
        if record:
            lat.append(time.perf_counter() - t0)

    total = int((warmup + seconds) * rate)
    warm = int(warmup * rate)
    begin = time.perf_counter()
    for i in range(total):
        due = begin + i * interval
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        t = asyncio.create_task(one(i >= warm))
        pending.add(t)
        t.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    return Result(len(lat), errors, seconds, _pct(lat, 0.5), _pct(lat, 0.99))
