"""The hub end to end: real gRPC on loopback, real SQLite store files behind the providers."""

from __future__ import annotations

import random
import time
from pathlib import Path

import grpc
import pytest

from adapters.sqlstore.importer import import_csv
from adapters.sqlstore.provider import SqlStoreProvider
from rmas.client import check_document_request, document_pb, field_violations, result_to_dict
from rmas.providers import ProviderInfo, Registry, Scope
from rmas.testing import FakeProvider, running_hub
from rmas.v1 import check_pb2, check_pb2_grpc

HEADER = "issuing_state,document_number,document_type,status,reported_on,record_ref"
NZL_CSV = f"""{HEADER}
NZL,LA000001,P,LOST,2024-01-02,NZ-1
NZL,LA000002,P,STOLEN,2024-01-03,NZ-2
NZL,LA000003,P,STOLEN_BLANK,,NZ-3
NZL,LA000004,P,REVOKED,,NZ-4
NZL,LA000005,P,INVALID,,NZ-5
NZL,LA000006,P,VALID,,NZ-6
"""
AUS_CSV = f"{HEADER},surname,given_names,birth_date,sex,expiry_date\n" + "".join(
    f"AUS,PA{k:07d},P,VALID,,AU-{k},SMITH,ANNA,1980-01-01,F,2030-01-01\n" for k in range(1, 301)
)
# The global (SLTD-style) list knows a stolen NZ passport the issuer has no record of.
GLOBAL_CSV = f"{HEADER}\nNZL,LA777777,P,STOLEN,2023-05-06,G-1\nPHL,P1234567A,P,LOST,,G-2\n"


async def store(tmp_path: Path, name: str, text: str) -> str:
    (tmp_path / f"{name}.csv").write_text(text)
    url = f"sqlite+aiosqlite:///{tmp_path / name}.db"
    report = await import_csv(url, tmp_path / f"{name}.csv")
    assert report.rejected == ()
    return url


@pytest.fixture
async def providers(tmp_path: Path) -> dict[str, SqlStoreProvider]:
    nzl = SqlStoreProvider(
        ProviderInfo(id="NZL", issuing_states=frozenset({"NZL"}), contact="NZ desk"),
        await store(tmp_path, "nzl", NZL_CSV),
    )
    aus = SqlStoreProvider(
        ProviderInfo(id="AUS", issuing_states=frozenset({"AUS"}), contact="AU desk"),
        await store(tmp_path, "aus", AUS_CSV),
        registry=Registry.COMPLETE,
    )
    sltd = SqlStoreProvider(
        ProviderInfo(id="GLOBAL", scope=Scope.GLOBAL, required=True),
        await store(tmp_path, "global", GLOBAL_CSV),
    )
    return {"NZL": nzl, "AUS": aus, "GLOBAL": sltd}


async def check(target: str, number: str, state: str, **holder: str) -> dict[str, object]:
    async with grpc.aio.insecure_channel(target) as ch:
        resp = await check_pb2_grpc.DocumentCheckStub(ch).CheckDocument(
            check_document_request(number=number, state=state, **holder), timeout=5
        )
    return result_to_dict(resp.result)


def statuses(r: dict[str, object]) -> dict[str, object]:
    return {s["provider"]: s["status"] for s in r["sources"]}  # type: ignore[attr-defined, index]


async def test_clear_and_every_alerting_status(providers: dict[str, SqlStoreProvider]) -> None:
    async with running_hub(list(providers.values())) as hub:
        clear = await check(hub.target, "LA000006", "NZL")
        unknown = await check(hub.target, "LA123456", "NZL")
        alerts = {n: await check(hub.target, f"LA00000{n}", "NZL") for n in range(1, 6)}
    assert (clear["verdict"], clear["directive"]) == ("CLEAR", "OK_TO_BOARD")
    assert statuses(clear) == {"NZL": "VALID", "GLOBAL": "NO_RECORD"}
    assert (unknown["verdict"], statuses(unknown)) == (
        "CLEAR", {"NZL": "NO_RECORD", "GLOBAL": "NO_RECORD"},
    )  # fmt: skip
    expected = {1: "LOST", 2: "STOLEN", 3: "STOLEN_BLANK", 4: "REVOKED", 5: "INVALID"}
    for n, status in expected.items():
        r = alerts[n]
        assert (r["verdict"], r["directive"]) == ("ALERT", "DO_NOT_BOARD"), status
        assert statuses(r)["NZL"] == status
    lost = alerts[1]["sources"][0]  # type: ignore[index]
    assert (lost["reported_on"], lost["record_ref"], lost["contact"]) == (
        "2024-01-02", "NZ-1", "NZ desk",
    )  # fmt: skip


async def test_complete_registry_catches_never_issued_numbers_and_holder_mismatch(
    providers: dict[str, SqlStoreProvider],
) -> None:
    async with running_hub(list(providers.values())) as hub:
        issued = await check(hub.target, "PA0000007", "AUS", surname="Smith", given_names="Anna")
        never = await check(hub.target, "PA9999999", "AUS")
        impostor = await check(hub.target, "PA0000007", "AUS", surname="JONES")
    assert issued["verdict"] == "CLEAR"
    assert issued["sources"][0]["holder_match"] == "MATCH"  # type: ignore[index]
    assert (never["verdict"], statuses(never)["AUS"]) == ("ALERT", "NOT_ISSUED")
    assert impostor["verdict"] == "ALERT"
    assert impostor["sources"][0]["holder_match"] == "MISMATCH"  # type: ignore[index]


async def test_a_global_alert_counts_when_the_issuer_knows_nothing(
    providers: dict[str, SqlStoreProvider],
) -> None:
    async with running_hub(list(providers.values())) as hub:
        r = await check(hub.target, "LA777777", "NZL")
        uncovered = await check(hub.target, "P1234567A", "PHL")
    assert (r["verdict"], statuses(r)) == ("ALERT", {"NZL": "NO_RECORD", "GLOBAL": "STOLEN"})
    # PHL has no issuer provider here: the global list alone still alerts.
    assert (uncovered["verdict"], statuses(uncovered)) == ("ALERT", {"GLOBAL": "LOST"})


async def test_a_hanging_or_raising_provider_gives_incomplete_by_the_deadline(
    providers: dict[str, SqlStoreProvider],
) -> None:
    hang = FakeProvider.global_("HANG", failure="hang")
    boom = FakeProvider.global_("BOOM", failure="error")
    async with running_hub([*providers.values(), hang, boom], deadline_ms=300) as hub:
        start = time.monotonic()
        r = await check(hub.target, "LA000006", "NZL")
        elapsed = time.monotonic() - start
        alert = await check(hub.target, "LA000002", "NZL")
    assert elapsed < 1.0
    assert (r["verdict"], r["directive"]) == ("INCOMPLETE", "CONTACT_AUTHORITY")
    outcomes = {s["provider"]: s["outcome"] for s in r["sources"]}  # type: ignore[attr-defined]
    assert outcomes == {"NZL": "ANSWERED", "GLOBAL": "ANSWERED", "HANG": "TIMEOUT", "BOOM": "ERROR"}
    # An alert still wins over missing answers.
    assert alert["verdict"] == "ALERT"


async def test_a_manifest_of_500_is_one_batch_call_per_provider(
    providers: dict[str, SqlStoreProvider],
) -> None:
    rnd = random.Random(5)
    phl = FakeProvider.issuer("PHL", ["PHL"])
    travellers = []
    expected = []
    for i in range(500):
        kind = rnd.choice(["nzl_alert", "nzl_clear", "aus_ok", "aus_never", "phl", "usa", "bad"])
        doc = {
            "nzl_alert": ("LA000002", "NZL", "ALERT"),
            "nzl_clear": (f"LA{500000 + i}", "NZL", "CLEAR"),
            "aus_ok": (f"PA{1 + i % 300:07d}", "AUS", "CLEAR"),
            "aus_never": (f"PA{9000000 + i}", "AUS", "ALERT"),
            "phl": (f"P{i:07d}A", "PHL", "CLEAR"),
            "usa": (f"{i:09d}", "USA", "CLEAR"),  # only the global provider covers it
            "bad": ("", "NZL", "INVALID_DATA"),
        }[kind]
        travellers.append(
            check_pb2.Traveller(ref=f"pax{i}", document=document_pb(number=doc[0], state=doc[1]))
        )
        expected.append(doc[2])
    async with (
        running_hub([*providers.values(), phl]) as hub,
        grpc.aio.insecure_channel(hub.target) as ch,
    ):
        resp = await check_pb2_grpc.DocumentCheckStub(ch).CheckManifest(
            check_pb2.CheckManifestRequest(travellers=travellers), timeout=10
        )
    results = [result_to_dict(r) for r in resp.results]
    assert [r["ref"] for r in results] == [f"pax{i}" for i in range(500)]
    assert [r["verdict"] for r in results] == expected
    assert providers["NZL"].calls == 1
    assert providers["AUS"].calls == 1
    assert providers["GLOBAL"].calls == 1
    assert len(phl.calls) == 1


async def test_bad_input_is_invalid_argument_and_the_hub_keeps_serving(
    providers: dict[str, SqlStoreProvider],
) -> None:
    async with running_hub(list(providers.values())) as hub:
        async with grpc.aio.insecure_channel(hub.target) as ch:
            stub = check_pb2_grpc.DocumentCheckStub(ch)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.CheckDocument(
                    check_document_request(number="LA 0000<06", state="NZ-L", sex="Q")
                )
        after = await check(hub.target, "LA 0000<06", "nz")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {f for f, _ in field_violations(info.value)} == {
        "document.issuing_state", "document.holder.sex",
    }  # fmt: skip
    assert after["verdict"] == "CLEAR"
