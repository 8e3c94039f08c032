"""One typed reading of a hub (``HubSnapshot``): what ``rmas status``, the console and the
metrics render. A real hub with scripted providers; its checks, then the snapshot."""

from __future__ import annotations

import datetime as dt
import time

from rmas.documents import validate_document
from rmas.hub import Hub
from rmas.server.admin_service import HubAdminService, snapshot_to_pb
from rmas.server.snapshot import ReloadOutcome, take_snapshot
from rmas.testing import FakeProvider
from rmas.verdict import Outcome, RecordStatus


async def test_a_snapshot_reads_the_hubs_counters_and_each_providers_figures() -> None:
    nzl = FakeProvider.issuer("NZL", ["NZL"], {("NZL", "LA000001"): RecordStatus.STOLEN})
    sltd = FakeProvider.global_("SLTD", failure="unavailable")
    hub = Hub([nzl, sltd])
    query = validate_document(issuing_state="NZL", number="LA000001", prefix="document")
    await hub.check([query, query], time.monotonic() + 1.0)
    snap = take_snapshot(hub)
    assert snap.checks == hub.checked
    assert snap.in_flight == 0
    by_id = {p.id: p for p in snap.providers}
    assert list(by_id) == ["NZL", "SLTD"]
    n, s = by_id["NZL"], by_id["SLTD"]
    assert (n.scope, n.required, n.issuing_states) == ("issuer", True, ("NZL",))
    assert (n.calls, n.failures, n.health) == (1, 0, "ok")
    assert n.figures is not None and n.figures.outcomes == {Outcome.ANSWERED: 1}
    assert sum(n.figures.latency_bins) == 1
    assert (s.calls, s.failures, s.health) == (1, 1, "down")
    assert s.figures is not None and s.figures.outcomes == {Outcome.UNAVAILABLE: 1}
    # Metrics do not ask for record counts; a provider that reports nothing of itself:
    assert (n.record_count, n.breaker, n.in_flight, n.target) == (None, "", None, "")


async def test_status_is_the_snapshot_written_as_a_status_response() -> None:
    hub = Hub([FakeProvider.issuer("NZL", ["NZL"])])
    outcome = ReloadOutcome(
        at=dt.datetime(2026, 1, 2, 3, 4, 5), ok=False, detail="providers[0].kind: no such kind"
    )
    admin = HubAdminService(hub, reload_outcome=lambda: outcome)
    snap = await admin.snapshot()
    assert snap.last_reload == outcome
    st = snapshot_to_pb(snap)
    assert (st.checks, st.in_flight, st.version) == (snap.checks, snap.in_flight, snap.version)
    assert (st.last_reload_ok, st.last_reload_detail) == (False, outcome.detail)
    assert st.last_reload_at == "2026-01-02T03:04:05.000"
    [p] = st.providers
    assert (p.provider_id, p.scope, p.health, list(p.issuing_states)) == ("NZL", "issuer", "ok",
                                                                          ["NZL"])  # fmt: skip
