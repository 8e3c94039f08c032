"""Results written in a batch (parts shared between results) are the messages written one by one."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time

from rmas.documents import DocumentQuery, Holder
from rmas.errors import FieldViolation
from rmas.grpckit.mapping import result_to_pb, results_to_pb
from rmas.hub import CheckResult, Hub, InvalidDocument
from rmas.security.access import View
from rmas.testing import FakeProvider
from rmas.v1 import check_pb2
from rmas.verdict import Record, RecordStatus, Verdict


async def _results() -> list[CheckResult]:
    stolen = Record(
        RecordStatus.STOLEN, reported_on=dt.date(2024, 5, 1), record_ref="R-1",
        reporting_authority="NZ Police", detail="reported", document_type="P",
    )  # fmt: skip
    nzl = FakeProvider.issuer("nzl", ["NZL"], {("NZL", "S1"): stolen})
    sltd = FakeProvider.global_("sltd", {("NZL", "L1"): RecordStatus.LOST}, required=False)
    aus = FakeProvider.issuer("aus", ["AUS"], failure="unavailable")
    hub = Hub([nzl, sltd, aus])
    holder = Holder(surname="DOE", birth_date=dt.date(1990, 1, 2))
    items = [
        DocumentQuery("NZL", "N1", ref="a"),
        DocumentQuery("NZL", "S1", ref="b", holder=holder),
        DocumentQuery("AUS", "A1", ref="c", expiry_date=dt.date(2001, 1, 1)),
        DocumentQuery("NZL", "N2", ref="d"),
        InvalidDocument("e", (FieldViolation("t.number", "required"),)),
        DocumentQuery("NZL", "L1", ref="f"),
        DocumentQuery("NZL", "S1", ref="g"),
        DocumentQuery("AUS", "A2"),
        DocumentQuery("FRA", "F1", ref="h"),
    ]
    results = await hub.check(items, time.monotonic() + 5)
    # A result sharing another's sources tuple with another verdict (not what the hub builds,
    # but the mapping must not assume it).
    results.append(dataclasses.replace(results[0], verdict=Verdict.INCOMPLETE, check_id="x"))
    return results


async def test_a_batch_is_written_as_each_result_alone() -> None:
    results = await _results()
    assert results[0].sources is results[3].sources  # the hub shares them
    for view in View:
        batch = check_pb2.CheckManifestResponse()
        results_to_pb(results, batch, view)
        alone = check_pb2.CheckManifestResponse()
        for r in results:
            result_to_pb(r, alone.results.add(), view)
        assert batch == alone
        assert batch.SerializeToString(deterministic=True) == alone.SerializeToString(
            deterministic=True
        )
    full = check_pb2.CheckManifestResponse()
    results_to_pb(results, full)
    assert full.results[-1].verdict == check_pb2.VERDICT_INCOMPLETE
    assert full.results[0].verdict == check_pb2.VERDICT_CLEAR
    assert full.results[1].sources[0].record.record_ref == "R-1"
    assert len(full.results[0].sources) == 2


async def test_an_airline_sees_no_reasons_in_a_batch() -> None:
    results = await _results()
    out = check_pb2.CheckManifestResponse()
    results_to_pb(results, out, View.DIRECTIVE)
    for r in out.results:
        assert not r.sources and not r.warnings and not r.problems
        assert r.verdict == check_pb2.VERDICT_UNSPECIFIED
        assert not r.HasField("document")
