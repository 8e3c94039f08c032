"""``rmas.v1.HubAdmin``: the operator's view of a running hub (``rmas status``)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from rmas import __version__
from rmas.hub import Hub
from rmas.providers import record_count
from rmas.v1 import check_pb2, check_pb2_grpc

__all__ = ["HubAdminService"]


class HubAdminService(check_pb2_grpc.HubAdminServicer):
    def __init__(
        self,
        hub: Hub,
        *,
        reload_outcome: Callable[[], Any] | None = None,
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
        return await self.status()

    async def status(self) -> check_pb2.StatusResponse:
        """The hub's status, as ``rmas status`` and the web console's operator page show it."""
        hub = self._hub
        out = check_pb2.StatusResponse(
            version=__version__,
            uptime_s=time.monotonic() - hub.started,
            checks=hub.checked,
            in_flight=hub.in_flight,
        )
        last = self._reload_outcome() if self._reload_outcome is not None else None
        if last is not None:
            out.last_reload_at = last.at.isoformat(timespec="milliseconds")
            out.last_reload_ok = last.ok
            out.last_reload_detail = last.detail
        if self._flights is not None:
            try:
                n, outages, pending = await self._flights()
            except Exception:  # the flight store is down: the rest of the status still shows
                n, outages, pending = 0, [], 0
            out.open_flights = n
            out.unacknowledged_changes = pending
            for owner, flight, departure, held in outages:
                out.incomplete_flights.add(
                    owner=owner, flight=flight, departure=departure, incomplete=held
                )
        for p in hub.providers:
            info = p.info
            st = hub.fanout.stats.get(info.id)
            summary = st.summary() if st is not None else {}
            ps = out.providers.add(
                provider_id=info.id,
                scope=info.scope.value,
                required=info.required,
                issuing_states=sorted(info.issuing_states),
                health=str(summary.get("health", "ok")),
                calls=st.calls if st else 0,
                failures=st.failures if st else 0,
                recent_error_rate=float(summary.get("error_rate", 0.0)),
                recent_p50_ms=float(summary.get("p50_ms", 0.0)),
                recent_p99_ms=float(summary.get("p99_ms", 0.0)),
                last_error=st.last_error if st else "",
            )
            count = await record_count(p, timeout_s=0.5)
            if count is not None:
                ps.record_count = count
            snapshot = getattr(p, "snapshot", None)
            if callable(snapshot):
                snap = snapshot()
                ps.breaker = str(snap.get("breaker", ""))
                ps.target = str(snap.get("target", ""))
                ps.described_states.extend(snap.get("described_states", []))
                ps.describe_problem = str(snap.get("describe_problem", ""))
                if ps.breaker == "open" or ps.describe_problem:
                    ps.health = "down"
        return out
