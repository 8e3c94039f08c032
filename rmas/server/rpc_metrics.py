"""What the hub's metrics count per RPC, and the histogram bins they all keep.

:class:`MetricsInterceptor` counts every RPC by method and final status code, and times it;
:class:`Bins` is a fixed-bucket histogram kept as plain numbers (:mod:`rmas.server.metrics`
renders both when scraped).
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Sequence

import grpc

from rmas.grpckit.interceptors import Ctx, Handler, HandlerInterceptor, wrap_behavior

__all__ = ["RPC_BUCKETS_S", "Bins", "MetricsInterceptor", "buckets"]

#: Histogram bounds of RPC handling times, in seconds.
RPC_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                 10.0)  # fmt: skip


class Bins:
    """A fixed-bucket histogram as plain numbers: a count per bin (the last: above every bound)
    and the sum. ``observe`` is a bisect and two additions; the cumulative form Prometheus wants
    is built only when scraped."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value


def buckets(
    bounds: Sequence[float], counts: Sequence[int], divisor: float = 1.0
) -> list[tuple[str, float]]:
    """Cumulative ``(le, count)`` pairs ending with ``+Inf``; ``divisor`` converts the bounds'
    unit (milliseconds in :mod:`rmas.fanout`) to the exposed one (a division, not a product by
    0.001: 25 / 1000 is the double nearest 0.025, so ``le`` reads "0.025")."""
    out: list[tuple[str, float]] = []
    total = 0
    for bound, n in zip(bounds, counts, strict=False):
        total += n
        out.append((repr(float(bound) / divisor), float(total)))
    out.append(("+Inf", float(total + counts[-1])))
    return out


class _MethodStats:
    """One RPC method's status codes and handling times (for the interceptor)."""

    __slots__ = ("codes", "method", "service", "times")

    def __init__(self, full_method: str) -> None:
        service, _, method = full_method.lstrip("/").rpartition("/")
        self.service = service
        self.method = method
        self.codes: dict[grpc.StatusCode, int] = {}
        self.times = Bins(RPC_BUCKETS_S)

    def done(self, context: Ctx, started: float, error: BaseException | None) -> None:
        self.times.observe(time.perf_counter() - started)
        # code() is what the servicer set or aborted with; None when it did neither, which is OK
        # for a return and, for an exception gRPC turns into a status itself, UNKNOWN (or
        # CANCELLED when the call was cancelled: the client left or its deadline passed).
        code: grpc.StatusCode | None = context.code()
        if code is None:
            if error is None:
                code = grpc.StatusCode.OK
            elif isinstance(error, (asyncio.CancelledError, GeneratorExit)):
                code = grpc.StatusCode.CANCELLED
            else:
                code = grpc.StatusCode.UNKNOWN
        self.codes[code] = self.codes.get(code, 0) + 1


class MetricsInterceptor(HandlerInterceptor):
    """Counts every RPC by method and final status code, and times it.

    It must come first in the server's interceptor list, before
    :class:`~rmas.grpckit.auth.AccessInterceptor`: the first interceptor's handler is the outermost
    one, so a call the access check refuses (UNAUTHENTICATED, PERMISSION_DENIED) is counted too.

    The handler's behaviour is wrapped to see the call's outcome
    (:func:`~rmas.grpckit.interceptors.wrap_behavior`).
    Method names come only from handlers the server has: a call to a method it does not
    serve is counted under ``grpc_method="unknown"``, never under the name the caller sent.
    """

    def __init__(self) -> None:
        super().__init__()
        self.methods: dict[str, _MethodStats] = {}
        self.unknown = 0

    def unhandled(self) -> None:
        self.unknown += 1  # gRPC answers UNIMPLEMENTED

    def wrap(self, method: str, handler: Handler) -> Handler:
        stats = self.methods.get(method)
        if stats is None:
            stats = self.methods[method] = _MethodStats(method)
        return wrap_behavior(handler, _started, stats.done)


def _started(request: object, context: Ctx) -> float:
    return time.perf_counter()
