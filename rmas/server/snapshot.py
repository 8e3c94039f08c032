"""One typed reading of a running hub, taken in one place and rendered by its readers.

``rmas status`` (``HubAdmin.Status``, :mod:`rmas.server.admin_service`), the web console's status
page and the Prometheus metrics (:mod:`rmas.server.metrics`) all show the same figures: the hub's
counters, and per provider its call statistics (:class:`~rmas.fanout.ProviderStats`), what it
reports of itself (breaker, calls in flight, its node's Describe) and its record count.
:func:`take_snapshot` reads them; the readers only render a :class:`HubSnapshot`.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from rmas import __version__
from rmas.hub import Hub
from rmas.providers import record_count, snapshot_of
from rmas.verdict import Outcome

__all__ = [
    "FlightsReading",
    "HubSnapshot",
    "ProviderReading",
    "ReloadOutcome",
    "record_counts",
    "take_snapshot",
]


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    """What the last SIGHUP did: applied (what changed), or refused (the error)."""

    at: dt.datetime
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class CallFigures:
    """A provider's calls since start: by outcome, and their latency bins (in milliseconds, a
    count per :data:`~rmas.fanout.LATENCY_BUCKETS_MS` bin, the last one above every bound)."""

    outcomes: Mapping[Outcome, int]
    latency_bins: tuple[int, ...]
    latency_sum_ms: float


@dataclass(frozen=True, slots=True)
class ProviderReading:
    id: str
    scope: str
    required: bool
    issuing_states: tuple[str, ...]
    #: "ok", "degraded" or "down" (down also while its breaker is open or its Describe is wrong).
    health: str = "ok"
    calls: int = 0
    failures: int = 0
    recent_error_rate: float = 0.0
    recent_p50_ms: float = 0.0
    recent_p99_ms: float = 0.0
    last_error: str = ""
    #: None until the fan-out has called it.
    figures: CallFigures | None = None
    #: None when it cannot say (or was not asked: metrics do not ask).
    record_count: int | None = None
    #: What a provider reports of itself (national nodes do): "" / None when it does not.
    breaker: str = ""
    in_flight: int | None = None
    #: Record changes a national node streamed that the hub dropped (None: not a node).
    changes_dropped: int | None = None
    target: str = ""
    described_states: tuple[str, ...] = ()
    describe_problem: str = ""


@dataclass(frozen=True, slots=True)
class FlightsReading:
    """The open flights (rmas.flights), when the hub keeps them: how many, those holding
    INCOMPLETE passengers (owner, flight, departure, how many), and status changes the airlines
    have not acknowledged yet."""

    open_flights: int
    incomplete: tuple[tuple[str, str, str, int], ...]
    unacknowledged_changes: int


@dataclass(frozen=True, slots=True)
class HubSnapshot:
    version: str
    uptime_s: float
    checks: int
    in_flight: int
    providers: tuple[ProviderReading, ...] = ()
    last_reload: ReloadOutcome | None = field(default=None)
    flights: FlightsReading | None = None


async def record_counts(hub: Hub, timeout_s: float = 0.5) -> dict[str, int]:
    """The providers' record counts, for those that can say within ``timeout_s`` each."""
    counts: dict[str, int] = {}
    for p in hub.providers:
        n = await record_count(p, timeout_s=timeout_s)
        if n is not None:
            counts[p.info.id] = n
    return counts


def take_snapshot(
    hub: Hub,
    *,
    last_reload: ReloadOutcome | None = None,
    counts: Mapping[str, int] | None = None,
    flights: FlightsReading | None = None,
) -> HubSnapshot:
    """Read the hub now (no I/O: record ``counts`` are read beforehand, see
    :func:`record_counts`)."""
    stats = hub.fanout.stats
    providers = []
    for p in hub.providers:
        info = p.info
        st = stats.get(info.id)
        summary = st.summary() if st is not None else {}
        reported = _reported(p)
        health = str(summary.get("health", "ok"))
        breaker = str(reported.get("breaker", ""))
        describe_problem = str(reported.get("describe_problem", ""))
        if breaker == "open" or describe_problem:
            health = "down"
        in_flight = reported.get("in_flight")
        dropped = reported.get("changes_dropped")
        described = reported.get("described_states", ())
        providers.append(
            ProviderReading(
                id=info.id,
                scope=info.scope.value,
                required=info.required,
                issuing_states=tuple(sorted(info.issuing_states)),
                health=health,
                calls=st.calls if st is not None else 0,
                failures=st.failures if st is not None else 0,
                recent_error_rate=float(summary.get("error_rate", 0.0)),
                recent_p50_ms=float(summary.get("p50_ms", 0.0)),
                recent_p99_ms=float(summary.get("p99_ms", 0.0)),
                last_error=st.last_error if st is not None else "",
                figures=None
                if st is None
                else CallFigures(dict(st.outcomes), tuple(st.latency_bins), st.latency_sum_ms),
                record_count=None if counts is None else counts.get(info.id),
                breaker=breaker,
                in_flight=in_flight if isinstance(in_flight, int) else None,
                changes_dropped=dropped if isinstance(dropped, int) else None,
                target=str(reported.get("target", "")),
                described_states=tuple(str(s) for s in described)
                if isinstance(described, list | tuple)
                else (),
                describe_problem=describe_problem,
            )
        )
    return HubSnapshot(
        version=__version__,
        uptime_s=time.monotonic() - hub.started,
        checks=hub.checked,
        in_flight=hub.in_flight,
        providers=tuple(providers),
        last_reload=last_reload,
        flights=flights,
    )


def _reported(provider: object) -> Mapping[str, object]:
    """What a provider reports of itself (:class:`~rmas.providers.Observable`), or nothing."""
    return snapshot_of(provider) or {}
