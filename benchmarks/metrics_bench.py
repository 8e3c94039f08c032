"""The cost of Prometheus metrics: the same hub with ``metrics_listen`` on and off, same run.

``python -m benchmarks.metrics_bench [--quick]``. Two hubs (``rmas serve``), one with metrics and
one without, run at the same time, both pinned to CPU 0; this load generator runs on CPU 1, as
in :mod:`benchmarks.hub_bench`. Providers are in-memory fakes (``kind = "fake"``): with no store
lookup the hub does the least work per check, so a fixed per-RPC metrics cost shows up at its
largest (the stricter comparison). Two measurements of CheckDocument at 64 in flight:

- **side by side** (the target figure): both hubs loaded at once for windows of a few seconds.
  They share CPU 0 evenly (the kernel's fair scheduler), so each one's throughput is half the
  core divided by its CPU time per check, and the ratio of the two is the ratio of their costs
  per check, measured at the same instant: whatever else runs on the machine slows both alike.
  The hubs are started again in the other order halfway, because the one started second was
  measured about 0.5-1% faster with identical configs; the figure is the geometric mean of the
  two orders' medians. Also measured this way: CheckManifest of 400 documents, 4 in flight.
- **alternating**: one hub at a time, in short slices (off-on, then on-off, ...), each
  neighbouring pair giving one ratio; the median is reported. This is the classic same-run
  reference, but with the machine's speed moving by 10% from one second to the next (other work
  shares it), its pairs spread far wider than the effect measured.

While the hub with metrics is loaded, its ``/metrics`` is scraped once a second (far more often
than a Prometheus would), so the scrape cost is in its figures; the last scrape must show the
checks counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchmarks.hub_bench import OUT, free_port, pin, server_process
from benchmarks.loadgen import closed_loop

STATES = ("NZL", "AUS")
MANIFEST = 400
SCRAPE_EVERY_S = 1.0


def hub_config(port: int, metrics_port: int | None) -> Path:
    lines = [
        "[hub]",
        f'listen = "127.0.0.1:{port}"',
        "deadline_ms = 1500",
        'log_level = "warning"',
        "max_manifest = 1000",
    ]
    if metrics_port is not None:
        lines.append(f'metrics_listen = "127.0.0.1:{metrics_port}"')
    for state in STATES:
        # A few alerting records, so the checks spread over several verdict series.
        records = ", ".join(f'"{state}:X{i:07d}" = "STOLEN"' for i in range(0, 2000, 97))
        lines += [
            "[[providers]]",
            f'id = "{state}"',
            'kind = "fake"',
            f'issuing_states = ["{state}"]',
            f"records = {{ {records} }}",
        ]
    cfg = OUT / f"bench-metrics-{'on' if metrics_port is not None else 'off'}.toml"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


async def _scraper(port: int, stop: asyncio.Event, out: dict[str, Any]) -> None:
    """Scrape like a (very eager) Prometheus until ``stop``; keeps the last body's facts."""
    import aiohttp
    from prometheus_client.parser import text_string_to_metric_families

    url = f"http://127.0.0.1:{port}/metrics"
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            try:
                async with session.get(url) as resp:
                    body = await resp.text()
                out["scrapes"] = out.get("scrapes", 0) + 1
                out["bytes"] = len(body)
                out["body"] = body
            except aiohttp.ClientError:
                pass  # not listening yet: the hub starts its metrics after the gRPC port
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SCRAPE_EVERY_S)
    body = out.pop("body", "")
    for family in text_string_to_metric_families(body):
        if family.name == "rmas_checks":
            out["checks_counted"] = sum(s.value for s in family.samples)


class _Load:
    """Request factories against the two hubs (``False``: metrics off, ``True``: on)."""

    def __init__(self, stubs: dict[bool, Any]) -> None:
        from rmas.v1 import check_pb2, common_pb2

        rnd = random.Random(42)
        docs = [
            common_pb2.Document(
                issuing_state=rnd.choice(STATES), number=f"X{rnd.randrange(4000):07d}"
            )
            for _ in range(2000)
        ]
        self.single = [check_pb2.CheckDocumentRequest(document=d) for d in docs]
        self.manifests = [
            check_pb2.CheckManifestRequest(
                travellers=[
                    check_pb2.Traveller(ref=str(j), document=rnd.choice(docs))
                    for j in range(MANIFEST)
                ]
            )
            for _ in range(8)
        ]
        self.stubs = stubs
        self.counter = iter(range(1 << 62))

    def call(self, kind: str, metrics: bool) -> Callable[[], Awaitable[object]]:
        stub = self.stubs[metrics]
        if kind == "c64":
            return lambda: stub.CheckDocument(
                self.single[next(self.counter) % len(self.single)], timeout=5
            )
        return lambda: stub.CheckManifest(
            self.manifests[next(self.counter) % len(self.manifests)], timeout=10
        )


async def _with_hubs(
    off: int, on: int, metrics_port: int, body: Callable[[_Load, dict[str, Any]], Awaitable[Any]]
) -> tuple[Any, dict[str, Any]]:
    import grpc

    from rmas.v1 import check_pb2_grpc

    opts = [("grpc.max_receive_message_length", 64 << 20)]
    scraped: dict[str, Any] = {}
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{off}", options=opts) as ch_off,
        grpc.aio.insecure_channel(f"127.0.0.1:{on}", options=opts) as ch_on,
    ):
        load = _Load({False: check_pb2_grpc.DocumentCheckStub(ch_off),
                      True: check_pb2_grpc.DocumentCheckStub(ch_on)})  # fmt: skip
        for metrics in (False, True):
            await load.call("c64", metrics)()

        async def scraped_while(work: Awaitable[Any]) -> Any:
            stop = asyncio.Event()
            scraper = asyncio.create_task(_scraper(metrics_port, stop, scraped))
            try:
                return await work
            finally:
                stop.set()
                await scraper

        return await body(load, {"scraped_while": scraped_while}), scraped


def _per_second(kind: str, rate: float) -> float:
    return rate * MANIFEST if kind == "manifest" else rate


async def _side_by_side(
    load: _Load, tools: dict[str, Any], windows: int, window_s: float, label: str
) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"c64": [], "manifest": []}
    for kind, n, in_flight in (("c64", windows, 64), ("manifest", max(1, windows // 2), 4)):
        for w in range(n):
            off, on = await tools["scraped_while"](
                asyncio.gather(
                    closed_loop(load.call(kind, False), in_flight=in_flight, seconds=window_s,
                                warmup=0.3),
                    closed_loop(load.call(kind, True), in_flight=in_flight, seconds=window_s,
                                warmup=0.3),
                )
            )  # fmt: skip
            if off.errors or on.errors:
                raise RuntimeError(f"{off.errors + on.errors} failed calls")
            out[kind].append(on.rate / off.rate)
            print(f"  side by side ({label}) {kind} window {w + 1}: "
                  f"off={_per_second(kind, off.rate):.0f}/s on={_per_second(kind, on.rate):.0f}/s "
                  f"ratio={on.rate / off.rate:.3f}", file=sys.stderr, flush=True)  # fmt: skip
    return out


async def _alternating(
    load: _Load, tools: dict[str, Any], pairs: int, slice_s: float
) -> list[dict[str, float]]:
    rows = []
    for i in range(pairs):
        order = (False, True) if i % 2 == 0 else (True, False)
        got: dict[bool, float] = {}
        for metrics in order:
            work = closed_loop(load.call("c64", metrics), in_flight=64, seconds=slice_s,
                               warmup=0.25)  # fmt: skip
            res = await (tools["scraped_while"](work) if metrics else work)
            if res.errors:
                raise RuntimeError(f"{res.errors} failed calls")
            got[metrics] = res.rate
        row = {"off": got[False], "on": got[True], "ratio": got[True] / got[False]}
        rows.append(row)
        print(f"  alternating pair {i + 1} ({'on-off' if order[0] else 'off-on'}): "
              f"off={row['off']:.0f}/s on={row['on']:.0f}/s ratio={row['ratio']:.3f}",
              file=sys.stderr, flush=True)  # fmt: skip
    return rows


def run(
    windows: int = 6, window_s: float = 3.0, pairs: int = 16, slice_s: float = 1.5
) -> dict[str, Any]:
    import uvloop

    pin(1)
    OUT.mkdir(exist_ok=True)
    serve = [sys.executable, "-m", "rmas.cli", "serve", "--config"]
    side: dict[str, dict[str, list[float]]] = {}
    alternating: list[dict[str, float]] = []
    scrapes = 0
    for on_first in (False, True):
        off_port, on_port, metrics_port = free_port(), free_port(), free_port()
        off_cmd = [*serve, str(hub_config(off_port, None))]
        on_cmd = [*serve, str(hub_config(on_port, metrics_port))]
        first, second = ((on_cmd, on_port), (off_cmd, off_port))[:: 1 if on_first else -1]
        label = "on started first" if on_first else "off started first"

        async def body(load: _Load, tools: dict[str, Any], label: str = label,
                       on_first: bool = on_first) -> Any:  # fmt: skip
            got = await _side_by_side(load, tools, windows, window_s, label)
            rows = [] if on_first else await _alternating(load, tools, pairs, slice_s)
            return got, rows

        with server_process(first[0], first[1]), server_process(second[0], second[1]):
            (side[label], rows), scraped = uvloop.run(
                _with_hubs(off_port, on_port, metrics_port, body)
            )
        alternating += rows
        scrapes += scraped.get("scrapes", 0)
        if scraped.get("checks_counted", 0) <= 0:
            raise RuntimeError("metrics on, but the last scrape counted no checks")

    def geo(kind: str) -> float:
        meds = [statistics.median(v[kind]) for v in side.values()]
        return math.exp(sum(map(math.log, meds)) / len(meds))

    ratio = geo("c64")
    med = {
        "ratio_64": ratio,
        "ratio_manifest": geo("manifest"),
        **{f"ratio_64 ({k})": statistics.median(v["c64"]) for k, v in side.items()},
        "alternating_ratio_64": statistics.median(r["ratio"] for r in alternating),
        "alternating_off_64_rate": statistics.median(r["off"] for r in alternating),
        "alternating_on_64_rate": statistics.median(r["on"] for r in alternating),
    }
    return {
        "windows": windows,
        "window_s": window_s,
        "pairs": pairs,
        "slice_s": slice_s,
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "median": med,
        "scrapes": scrapes,
        "scrape_bytes": scraped.get("bytes", 0),
        "side_by_side": side,
        "alternating": alternating,
        "targets": [{"text": "CheckDocument at 64 in flight, metrics on / off (side by side)",
                     "value": ratio, "op": ">=", "bound": 0.95, "met": ratio >= 0.95}],
    }  # fmt: skip


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    result = run(windows=2, window_s=1.0, pairs=2, slice_s=1.0) if quick else run()
    print(json.dumps(result, indent=1, default=str))
