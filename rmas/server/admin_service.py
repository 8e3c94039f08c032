"""``rmas.v1.HubAdmin``: the operator's view of a running hub (``rmas status``).

The figures are one :class:`~rmas.server.snapshot.HubSnapshot`; this servicer only writes it
into a ``StatusResponse`` (the web console renders the same snapshot as HTML).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc

from rmas.hub import Hub
from rmas.server.snapshot import (
    FlightsReading,
    HubSnapshot,
    ReloadOutcome,
    record_counts,
    take_snapshot,
)
from rmas.v1 import check_pb2, check_pb2_grpc

__all__ = ["HubAdminService"]


class HubAdminService(check_pb2_grpc.HubAdminServicer):
    def __init__(
        self,
        hub: Hub,
        *,
        reload_outcome: Callable[[], ReloadOutcome | None] | None = None,
        flights: Callable[[], Awaitable[tuple[int, list[tuple[str, str, str, int]], int]]]
        | None = None,
    ) -> None:
        self._hub = hub
        #: The open flights' summary (rmas.flights.store.FlightStore.summary), when kept.
        self._flights = flights
        #: Returns the hub server's last ReloadOutcome (at, ok, detail), or None.
        self._reload_outcome = reload_outcome

    async def Status(
        self, request: check_pb2.StatusRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> check_pb2.StatusResponse:
        return snapshot_to_pb(await self.snapshot())

    async def snapshot(self) -> HubSnapshot:
        """The hub's status, as ``rmas status`` and the web console's operator page show it:
        with every provider's record count (each asked for at most half a second)."""
        counts = await record_counts(self._hub, timeout_s=0.5)
        last = self._reload_outcome() if self._reload_outcome is not None else None
        flights = None
        if self._flights is not None:
            try:
                n, outages, pending = await self._flights()
                flights = FlightsReading(n, tuple(outages), pending)
            except Exception:  # the flight store is down: the rest of the status still shows
                flights = FlightsReading(0, (), 0)
        return take_snapshot(self._hub, last_reload=last, counts=counts, flights=flights)


def snapshot_to_pb(snap: HubSnapshot) -> check_pb2.StatusResponse:
    out = check_pb2.StatusResponse(
        version=snap.version, uptime_s=snap.uptime_s, checks=snap.checks, in_flight=snap.in_flight
    )
    last = snap.last_reload
    if last is not None:
        out.last_reload_at = last.at.isoformat(timespec="milliseconds")
        out.last_reload_ok = last.ok
        out.last_reload_detail = last.detail
    if snap.flights is not None:
        out.open_flights = snap.flights.open_flights
        out.unacknowledged_changes = snap.flights.unacknowledged_changes
        for owner, flight, departure, held in snap.flights.incomplete:
            out.incomplete_flights.add(
                owner=owner, flight=flight, departure=departure, incomplete=held
            )
    for p in snap.providers:
        ps = out.providers.add(
            provider_id=p.id,
            scope=p.scope,
            required=p.required,
            issuing_states=p.issuing_states,
            health=p.health,
            calls=p.calls,
            failures=p.failures,
            recent_error_rate=p.recent_error_rate,
            recent_p50_ms=p.recent_p50_ms,
            recent_p99_ms=p.recent_p99_ms,
            last_error=p.last_error,
            breaker=p.breaker,
            target=p.target,
            described_states=p.described_states,
            describe_problem=p.describe_problem,
        )
        if p.record_count is not None:
            ps.record_count = p.record_count
    return out
