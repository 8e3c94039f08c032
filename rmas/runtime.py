"""Process-wide settings of rmas's commands: one event loop policy for every ``rmas`` command, and
the garbage collector's settings for a serving hub."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

__all__ = ["SERVING_GC_THRESHOLD", "run_async", "settle_for_serving"]

#: How many allocations (net of deallocations) start a collection of the youngest generation in a
#: serving hub: 50,000 instead of CPython's 700. An answer holds thousands of objects while it
#: waits for its stores (a 480-passenger PAXLST about 10,000, and creates some 20,000 more): at
#: 700, young collections scan them again and again and promote them into the older generations,
#: scanned again there. 10,000 halved the collector's CPU per PAXLST answer (session 8); 50,000
#: runs no collection in 200 answers (1.1 ms of CPU an answer at 10,000, 3.5% of the serving
#: hub's instructions). A collection then comes once per thousands of answers, when what the
#: hub keeps (caches, remembered interchanges) has grown by 50,000 objects, and scans at most
#: those (docs/benchmarks.md, session 9).
SERVING_GC_THRESHOLD = 50_000


def run_async(coro: Any) -> Any:
    """Run a coroutine on uvloop when available (about 15% faster for gRPC), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def settle_for_serving() -> None:
    """Once a hub has started: what was allocated so far (modules, config, providers, the gRPC
    server) lives as long as the process, so it is moved out of the collector's way; full
    collections then scan only what requests allocate (the start-up leaves a few dozen garbage
    objects uncollected to be frozen with it: measured, not worth a full collection). Then the
    young generation's threshold for serving (above)."""
    gc.freeze()
    gc.set_threshold(SERVING_GC_THRESHOLD, *gc.get_threshold()[1:])
