"""The SLTD-style service and its adapter, over real HTTP on loopback with real SQLite files."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

from adapters.sltd.adapter import SltdProvider
from adapters.sltd.cli import read_seed
from adapters.sltd.service import Faults, RunningService, ServiceConfig, start_service
from adapters.sltd.store import _search_sql
from adapters.sqlstore.importer import import_csv
from adapters.sqlstore.provider import SqlStoreProvider
from rmas.client import check_document_request, result_to_dict
from rmas.documents import DocumentQuery, DocumentType
from rmas.errors import ConfigError, ProviderTimeout, ProviderUnavailable
from rmas.providers import ProviderInfo, Scope
from rmas.testing import running_hub
from rmas.v1 import check_pb2, check_pb2_grpc, common_pb2
from rmas.verdict import RecordStatus
from tests.adapters.sltd import ADMIN, SEED, TOKENS


def provider(url: str, *, required: bool = True, token: str = "nz-token") -> SltdProvider:
    info = ProviderInfo(id="SLTD", scope=Scope.GLOBAL, required=required)
    return SltdProvider(info, url, token)


async def call(
    svc: RunningService,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = "nz-token",
    raw: bytes | None = None,
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as s:
        kwargs: dict[str, Any] = {"headers": headers}
        if raw is not None:
            kwargs["data"] = raw
        elif body is not None:
            kwargs["json"] = body
        async with s.request(method, svc.url + path, **kwargs) as resp:
            return resp.status, await resp.json()


def q(state: str, number: str, t: DocumentType = DocumentType.PASSPORT) -> DocumentQuery:
    return DocumentQuery(state, number, t)


async def test_the_adapter_translates_and_verifies_hits(service: RunningService) -> None:
    p = provider(service.url)
    try:
        recs = await p.lookup_many(
            [q("NZL", "LS900001"), q("PHL", "PX000001", DocumentType.UNSPECIFIED),
             q("NZL", "LA900001"), q("NZL", "LA900002"), q("UTO", "L898902C3")],
            time.monotonic() + 5,
        )  # fmt: skip
    finally:
        await p.aclose()
    stolen, blank, near_country, near_ocr, unsearchable = recs
    assert stolen.status is RecordStatus.STOLEN
    assert (stolen.reporting_authority, str(stolen.reported_on), stolen.detail) == (
        "NZ", "2025-03-01", "stolen abroad",
    )  # fmt: skip
    assert stolen.record_ref
    assert blank.status is RecordStatus.STOLEN_BLANK
    # Same number, other country (AU): a candidate, not a hit.
    assert near_country.status is RecordStatus.NO_RECORD
    # LA9OO002 (letters O) is an OCR-near candidate of LA900002: not a hit either.
    assert near_ocr.status is RecordStatus.NO_RECORD
    assert unsearchable.status is RecordStatus.NO_RECORD
    assert "no code" in unsearchable.detail


async def test_the_search_returns_near_misses_as_candidates(service: RunningService) -> None:
    status, body = await call(service, "POST", "/v1/search", {"number": "LA900002"})
    assert status == 200
    assert [c["number"] for c in body["candidates"]] == ["LA9OO002"]
    assert body["candidates"][0]["score"] < 1


async def test_stolen_in_sltd_but_unknown_to_its_issuer_alerts_through_the_hub(
    service: RunningService, tmp_path: Path
) -> None:
    (tmp_path / "nzl.csv").write_text(
        "issuing_state,document_number,document_type,status,reported_on,record_ref\n"
        "NZL,LA000001,P,LOST,,R1\n"
    )
    url = f"sqlite+aiosqlite:///{tmp_path / 'nzl.db'}"
    await import_csv(url, tmp_path / "nzl.csv")
    nzl = SqlStoreProvider(ProviderInfo(id="NZL", issuing_states=frozenset({"NZL"})), url)
    async with (
        running_hub([nzl, provider(service.url)]) as hub,
        grpc.aio.insecure_channel(hub.target) as ch,
    ):
        resp = await check_pb2_grpc.DocumentCheckStub(ch).CheckDocument(
            check_document_request(number="LS900001", state="NZL", type_code="P")
        )
    r = result_to_dict(resp.result)
    assert r["verdict"] == "ALERT"
    assert {s["provider"]: s["status"] for s in r["sources"]} == {
        "NZL": "NO_RECORD", "SLTD": "STOLEN",
    }  # fmt: skip


async def test_a_country_cannot_alter_another_countrys_record(service: RunningService) -> None:
    status, created = await call(service, "POST", "/v1/records",
                                 {"country": "AU", "type": "PASSPORT", "number": "PA1",
                                  "status": "LOST"}, token="au-token")  # fmt: skip
    assert status == 201
    rid = created["record_id"]
    for method, body in (("PUT", {"status": "STOLEN"}), ("DELETE", None)):
        status, err = await call(service, method, f"/v1/records/{rid}", body, token="nz-token")
        assert status == 403
        assert err["error"]["code"] == "forbidden"
    status, again = await call(service, "GET", f"/v1/records/{rid}", token="au-token")
    assert (status, again["status"]) == (200, "LOST")
    status, err = await call(service, "POST", "/v1/records",
                             {"country": "AU", "type": "PASSPORT", "number": "PA2",
                              "status": "LOST"}, token="nz-token")  # fmt: skip
    assert (status, err["error"]["code"]) == (403, "forbidden")
    # The owner may change and withdraw it; withdrawn records are no longer found.
    status, changed = await call(service, "PUT", f"/v1/records/{rid}", {"status": "STOLEN"},
                                 token="au-token")  # fmt: skip
    assert (status, changed["status"]) == (200, "STOLEN")
    assert (await call(service, "DELETE", f"/v1/records/{rid}", token="au-token"))[0] == 200
    status, body = await call(service, "POST", "/v1/search", {"number": "PA1"})
    assert body["candidates"] == []


@pytest.mark.parametrize(
    ("method", "path", "body", "raw", "token", "status", "code"),
    [
        ("POST", "/v1/search", None, b"{not json", "nz-token", 400, "bad_json"),
        ("POST", "/v1/search", {}, None, "nz-token", 422, "missing_field"),
        ("POST", "/v1/search", {"number": 7}, None, "nz-token", 422, "invalid_field"),
        ("POST", "/v1/search", {"number": "A1", "country": "NZL"}, None, "nz-token", 422,
         "invalid_field"),
        ("POST", "/v1/search", {"number": "A1", "colour": "x"}, None, "nz-token", 422,
         "unknown_field"),
        ("POST", "/v1/search/bulk", {"queries": [{"number": "A"}] * 1001}, None, "nz-token",
         413, "too_many_queries"),
        ("POST", "/v1/search/bulk", None, b"[" + b"1," * 600_000 + b"1]", "nz-token", 413,
         "too_large"),
        ("GET", "/v1/records/NOPE", None, None, "nz-token", 404, "not_found"),
        ("POST", "/v1/search", {"number": "A1"}, None, None, 401, "unauthenticated"),
        ("POST", "/v1/search", {"number": "A1"}, None, "forged", 401, "unauthenticated"),
        ("PUT", "/v1/admin/faults", {"latency_ms": 5}, None, "nz-token", 403, "forbidden"),
        ("POST", "/v1/records", {"country": "NZ", "type": "BOOK", "number": "A1",
                                 "status": "LOST"}, None, "nz-token", 422, "invalid_field"),
        ("GET", "/v1/nowhere", None, None, "nz-token", 404, "http_error"),
    ],
)  # fmt: skip
async def test_bad_requests_get_4xx_with_a_json_reason(
    service: RunningService, method: str, path: str, body: Any, raw: bytes | None,
    token: str | None, status: int, code: str,
) -> None:  # fmt: skip
    got, data = await call(service, method, path, body, token=token, raw=raw)
    assert (got, data["error"]["code"]) == (status, code)
    assert data["error"]["message"]


async def test_records_are_paginated(service: RunningService) -> None:
    for i in range(5):
        await call(service, "POST", "/v1/records", {"country": "NZ", "type": "PASSPORT",
                   "number": f"LP{i}", "status": "LOST"})  # fmt: skip
    seen: list[str] = []
    cursor = ""
    for _ in range(10):
        _, page = await call(service, "GET", f"/v1/records?country=NZ&limit=2&cursor={cursor}")
        seen += [r["record_id"] for r in page["records"]]
        cursor = page.get("next_cursor", "")
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 7  # 5 submitted + 2 seeded NZ records


async def test_a_down_service_is_unavailable_and_a_slow_one_times_out(
    service: RunningService,
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    down = provider(dead)
    with pytest.raises(ProviderUnavailable):
        await down.lookup_many([q("NZL", "A1")], time.monotonic() + 2)
    await down.aclose()
    status, _ = await call(service, "PUT", "/v1/admin/faults", {"latency_ms": 2000},
                           token=ADMIN)  # fmt: skip
    assert status == 200
    slow = provider(service.url)
    start = time.monotonic()
    with pytest.raises(ProviderTimeout):
        await slow.lookup_many([q("NZL", "A1")], start + 0.3)
    assert time.monotonic() - start < 1.0
    service.config.faults = Faults(error_rate=1.0)
    with pytest.raises(ProviderUnavailable, match="503"):
        await slow.lookup_many([q("NZL", "A1")], time.monotonic() + 2)
    await slow.aclose()


async def test_a_required_central_store_that_is_down_makes_checks_incomplete(
    service: RunningService,
) -> None:
    service.config.faults.hang_rate = 1.0
    nzl_like = provider(service.url)
    async with (
        running_hub([nzl_like], deadline_ms=300) as hub,
        grpc.aio.insecure_channel(hub.target) as ch,
    ):
        resp = await check_pb2_grpc.DocumentCheckStub(ch).CheckDocument(
            check_document_request(number="LS900001", state="NZL")
        )
    r = result_to_dict(resp.result)
    assert (r["verdict"], r["sources"][0]["outcome"]) == ("INCOMPLETE", "TIMEOUT")


async def test_the_bulk_search_uses_the_number_key_index(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'plan.db'}"
    svc = await start_service(url, ServiceConfig({}))
    rows = [{"country": "NZ", "doc_type": "PASSPORT", "number": f"N{k:07d}", "status": "LOST",
             "reporting_country": "NZ"} for k in range(20_000)]  # fmt: skip
    await svc.store.bulk_load(rows)
    await svc.close()
    db = sqlite3.connect(tmp_path / "plan.db")
    params: list[object] = []
    for i in range(50):
        params += [i, f"N{i:07d}"]
    plan = db.execute("EXPLAIN QUERY PLAN " + _search_sql(50), params).fetchall()
    details = " | ".join(row[-1] for row in plan)
    assert "SEARCH r USING INDEX ix_sltd_number_key" in details, details
    assert "AUTOMATIC" not in details, details


def test_seed_csv_rejects_bad_rows_by_line(tmp_path: Path, fixtures_dir: Path) -> None:
    rows, bad = read_seed(fixtures_dir / "sltd" / "records.csv")
    assert len(rows) >= 300
    assert bad == []
    csv = tmp_path / "seed.csv"
    csv.write_text(
        "country,type,number,status,event_date,circumstances,reporting_country\n"
        "NZ,PASSPORT,A1,STOLEN,,,NZ\nNZL,PASSPORT,A2,STOLEN,,,NZ\nNZ,BOOK,A3,LOST,,,NZ\n"
        "NZ,PASSPORT,A4,MISLAID,,,NZ\n"
    )
    rows, bad = read_seed(csv)
    assert [r["number"] for r in rows] == ["A1"]
    assert [line for line, _ in bad] == [3, 4, 5]


def test_sltd_serve_runs_as_its_own_process(tmp_path: Path, fixtures_dir: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = f"sqlite+aiosqlite:///{tmp_path / 'svc.db'}"
    imp = subprocess.run(
        [sys.executable, "-m", "adapters.sltd", "import", "--url", db,
         str(fixtures_dir / "sltd" / "records.csv")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert imp.returncode == 0, imp.stderr
    proc = subprocess.Popen(
        [sys.executable, "-m", "adapters.sltd", "serve", "--url", db, "--listen",
         f"127.0.0.1:{port}", "--tokens", str(fixtures_dir / "sltd" / "tokens.json")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    body = json.loads(r.read())
                    break
            except OSError:
                time.sleep(0.1)
        assert body == {"status": "ok"}
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0


# --- HTTPS with client certificates (the hub's [tls]) ------------------------------------------


async def test_the_adapter_reaches_the_service_over_https_with_the_hubs_client_certificate(
    tmp_path: Path, pki: Any
) -> None:
    from rmas.providers import ProviderConfig

    url = f"sqlite+aiosqlite:///{tmp_path / 'sltd.db'}"
    ctx = pki.tls("node").server_ssl_context()  # the service's own certificate (server EKU)
    svc = await start_service(url, ServiceConfig(dict(TOKENS), ADMIN), ssl_context=ctx)
    await svc.store.bulk_load(SEED)
    assert svc.url.startswith("https://127.0.0.1:")
    cfg = ProviderConfig(
        id="SLTD", kind="sltd", issuing_states=frozenset(), scope=Scope.GLOBAL, required=True,
        contact="", max_batch=0, timeout_s=0.0, options={"url": svc.url, "token": "nz-token"},
        tls=pki.tls("hub"),
    )  # fmt: skip
    p = SltdProvider.from_config(cfg)
    stolen = DocumentQuery(issuing_state="NZL", number="LS900001", type=DocumentType.PASSPORT)
    try:
        (record,) = await p.lookup_many([stolen], time.monotonic() + 5)
        assert record.status is RecordStatus.STOLEN
        # A client without a certificate is refused during the handshake.
        import ssl

        bare = ssl.create_default_context(cadata=(pki.dir / "ca.pem").read_text())
        async with aiohttp.ClientSession() as s:
            with pytest.raises(aiohttp.ClientError):
                await s.post(f"{svc.url}/v1/search", json={}, ssl=bare)
    finally:
        await p.aclose()
        await svc.close()
    # And https:// without the hub's [tls] is a configuration error, not a silent plain link.
    with pytest.raises(ConfigError, match="https:// needs the hub's \\[tls\\]"):
        SltdProvider.from_config(replace(cfg, tls=None))


@pytest.mark.parametrize("asked_as", ["P", "I", "C", "V", ""])
async def test_a_document_type_never_hides_a_hit_through_the_hub(
    service: RunningService, asked_as: str
) -> None:
    # Filed as an identity card; asked about as a passport, a card, a visa or with no type: the
    # same country and number is a hit every time, and the officer sees the type it is filed as.
    await service.store.bulk_load(
        [{"country": "NZ", "doc_type": "ID_CARD", "number": "IC700001", "status": "STOLEN",
          "event_date": "2025-05-05", "circumstances": "", "reporting_country": "NZ"}]
    )  # fmt: skip
    async with (
        running_hub([provider(service.url)]) as hub,
        grpc.aio.insecure_channel(hub.target) as ch,
    ):
        resp = await check_pb2_grpc.DocumentCheckStub(ch).CheckDocument(
            check_document_request(number="ic 700-001", state="NZL", type_code=asked_as)
        )
    assert resp.result.verdict == check_pb2.VERDICT_ALERT
    (source,) = resp.result.sources
    assert source.record.status == common_pb2.RECORD_STATUS_STOLEN
    assert source.record.document_type == "I"


async def test_among_records_of_one_number_the_querys_type_is_shown_first(
    service: RunningService,
) -> None:
    await service.store.bulk_load(
        [{"country": "NZ", "doc_type": t, "number": "DUP00001", "status": s, "event_date": "",
          "circumstances": "", "reporting_country": "NZ"}
         for t, s in (("ID_CARD", "LOST"), ("PASSPORT", "STOLEN"))]
    )  # fmt: skip
    p = provider(service.url)
    try:
        card, passport = await p.lookup_many(
            [q("NZL", "DUP00001", DocumentType.IDENTITY_CARD), q("NZL", "DUP00001")],
            time.monotonic() + 5,
        )
    finally:
        await p.aclose()
    assert (card.status, card.document_type) == (RecordStatus.LOST, "I")
    assert (passport.status, passport.document_type) == (RecordStatus.STOLEN, "P")
