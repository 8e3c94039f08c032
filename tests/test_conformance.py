"""The in-process conformance kit (rmas.testing.check_provider) against the built-in providers,
on real stores (SQLite files, a JSONL export; the SLTD-style service over HTTP in
tests/adapters/sltd/test_sltd_kit.py), and against providers that break the contract."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path

from adapters.jsonl.provider import JsonlProvider
from adapters.sqlstore.cards import import_cards
from adapters.sqlstore.importer import import_csv
from adapters.sqlstore.provider import SqlStoreProvider
from rmas.changes import ChangeFeed
from rmas.documents import DocumentQuery
from rmas.providers import ProviderInfo, Registry
from rmas.testing import CheckResult, FakeProvider, check_provider
from rmas.verdict import NO_RECORD, Record, RecordStatus

NZL = ProviderInfo(id="NZL", issuing_states=frozenset({"NZL"}))


def outcome(results: Sequence[CheckResult]) -> dict[str, str]:
    return {r.name: r.status for r in results}


def failures(results: Sequence[CheckResult]) -> dict[str, str]:
    return {r.name: r.detail for r in results if r.status == "FAIL"}


async def test_the_sql_store_conforms_as_the_demo_builds_it(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    # The demo's AUS store: a complete registry with APEC Business Travel Cards.
    url = f"sqlite+aiosqlite:///{tmp_path / 'aus.db'}"
    await import_csv(url, fixtures_dir / "records" / "aus.csv", replace=True)
    await import_cards(url, fixtures_dir / "records" / "abtc_aus.csv", replace=True)
    aus = ProviderInfo(id="AUS", issuing_states=frozenset({"AUS"}))
    for io in ("inline", "thread"):
        p = SqlStoreProvider(aus, url, registry=Registry.COMPLETE, io=io)
        try:
            results = await check_provider(
                p,
                known=[("AUS", "PA0000002", "STOLEN"), ("AUS", "PA0000003", "STOLEN_BLANK")],
                known_cards=[("AUS", "AU0000106", "STOLEN")],
            )
        finally:
            await p.aclose()
        assert failures(results) == {}, io
        assert outcome(results) == {
            "contract": "PASS", "unknown_documents": "PASS", "known_statuses": "PASS",
            "deadline": "PASS", "large_batch": "PASS", "concurrency": "PASS",
            "abtc_cards": "PASS", "changes": "PASS" if isinstance(p, ChangeFeed) else "SKIPPED",
        }  # fmt: skip
        unknown = next(r for r in results if r.name == "unknown_documents")
        assert unknown.detail.startswith("NOT_ISSUED")  # a complete registry


async def test_the_jsonl_example_adapter_conforms(tmp_path: Path) -> None:
    export = tmp_path / "nzl.jsonl"
    export.write_text(json.dumps({"issuing_state": "NZL", "number": "LA000002", "status": "LOST"}))
    p = JsonlProvider(NZL, export)
    results = await check_provider(p, known=[("NZL", "LA000002", "LOST")])
    await p.aclose()
    assert failures(results) == {}
    assert outcome(results)["known_statuses"] == "PASS"


async def test_the_fake_provider_conforms_with_its_script_and_with_a_handler() -> None:
    scripted = FakeProvider.issuer("NZL", ["NZL"], {("NZL", "LA000002"): RecordStatus.STOLEN})
    results = await check_provider(scripted, known=[("NZL", "LA000002", "STOLEN")])
    assert failures(results) == {}

    async def handler(queries: Sequence[DocumentQuery], deadline: float) -> list[Record]:
        return [NO_RECORD for _ in queries]

    assert failures(await check_provider(FakeProvider.answering("UTO", handler))) == {}


async def test_a_provider_that_breaks_the_contract_fails_by_name() -> None:
    async def short(queries: Sequence[DocumentQuery], deadline: float) -> list[Record]:
        return [NO_RECORD for _ in queries][:-1]  # one record too few

    async def blocking(queries: Sequence[DocumentQuery], deadline: float) -> list[Record]:
        time.sleep(0.6)  # blocks the event loop: no deadline can stop it  # noqa: ASYNC251
        return [NO_RECORD for _ in queries]

    async def wrong_type(queries: Sequence[DocumentQuery], deadline: float) -> list[Record]:
        return ["NO_RECORD" for _ in queries]  # type: ignore[misc]

    got = failures(await check_provider(FakeProvider.answering("NZL", short, states=["NZL"])))
    assert set(got) == {"unknown_documents", "large_batch", "concurrency"}
    got = failures(await check_provider(FakeProvider.answering("NZL", blocking, states=["NZL"])))
    assert got["deadline"] == "a call with a 50 ms deadline did not end within 500 ms"
    got = failures(await check_provider(FakeProvider.answering("NZL", wrong_type, states=["NZL"])))
    assert got["unknown_documents"] == "lookup_many answered str, not a Record"


async def test_a_provider_whose_info_rmas_cannot_route_is_refused_before_it_is_asked() -> None:
    asked: list[int] = []

    async def handler(queries: Sequence[DocumentQuery], deadline: float) -> list[Record]:
        asked.append(len(queries))
        await asyncio.sleep(0)
        return [NO_RECORD for _ in queries]

    bad = FakeProvider(info=ProviderInfo(id="X", issuing_states=frozenset({"nz"})), handler=handler)
    results = await check_provider(bad)
    assert results[0].name == "contract" and results[0].status == "FAIL"
    assert "does not route" in results[0].detail
    assert {r.status for r in results[1:]} == {"SKIPPED"} and asked == []
    not_a_provider = await check_provider(object())  # type: ignore[arg-type]
    assert not_a_provider[0].status == "FAIL"
    assert "not a Provider" in not_a_provider[0].detail
