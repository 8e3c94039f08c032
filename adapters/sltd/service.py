"""The SLTD-style reference service: HTTP/JSON over aiohttp, in the style of a central store.

It stands in for an international database rmas cannot reach, so it behaves like one: issuing
countries push records and may change only their own; searches by (number, type, country) return
*candidates* with record ids, which are then fetched in full; bulk search and bulk fetch serve
manifests; errors are JSON with a code, a message and the field at fault. Its latency and failure
modes can be configured (and changed at run time by an administrator) for tests and benchmarks.

API (every call needs ``Authorization: Bearer <token>``; a token belongs to one country, or is the
administrator's):

==========================  ================================================================
``GET /healthz``            liveness (no token)
``POST /v1/search``         ``{number, type?, country?, limit?}`` -> ``{candidates: [...]}``
``POST /v1/search/bulk``    ``{queries: [{number, type?, country?}, ...]}`` -> ``{results: [...]}``
``GET /v1/records/{id}``    a full record
``POST /v1/records/fetch``  ``{record_ids: [...]}`` -> ``{records: [...]}``
``GET /v1/records``         ``?country=XX&limit=&cursor=`` -> a page of a country's records
``GET /v1/records/changes`` ``?since=SEQ&limit=`` -> the documents changed after ``since``
``POST /v1/records``        submit a record for the caller's own country
``PUT /v1/records/{id}``    change one of the caller's own records
``DELETE /v1/records/{id}`` withdraw one of the caller's own records
``PUT /v1/admin/faults``    ``{latency_ms, jitter_ms, error_rate, hang_rate}`` (admin token)
==========================  ================================================================

The change list (``GET /v1/records/changes``) is how a hub learns that a record changed: each
entry is ``{seq, kind, country, number}`` (``kind`` "change", or "reload" after a bulk load: any
record may have changed), oldest first, with ``last_seq``, the newest seq overall. Without
``since`` it gives only ``last_seq`` (where a new reader starts). A ``since`` beyond ``last_seq``
is not a cursor this store handed out: 410 ``cursor_gone``.
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web

from adapters.sltd.codes import COUNTRIES, STATUSES, TYPES
from adapters.sltd.store import SltdStore

__all__ = ["Faults", "RunningService", "ServiceConfig", "build_app", "start_service"]

log = structlog.get_logger("adapters.sltd.service")

MAX_BODY = 1024 * 1024
MAX_QUERIES = 1000
MAX_PAGE = 500
_STORE = web.AppKey("store", SltdStore)
_COUNTRY = web.RequestKey("country", str)


@dataclass(slots=True)
class Faults:
    """Simulated behaviour of a remote central store."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0  # share of requests answered 503
    hang_rate: float = 0.0  # share of requests never answered

    def update(self, data: Mapping[str, Any]) -> None:
        for key in ("latency_ms", "jitter_ms", "error_rate", "hang_rate"):
            if key in data:
                value = data[key]
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise _Error(422, "invalid_field", f"{key} must be a number >= 0", key)
                if key.endswith("rate") and value > 1:
                    raise _Error(422, "invalid_field", f"{key} must be at most 1", key)
                setattr(self, key, float(value))
        unknown = set(data) - {"latency_ms", "jitter_ms", "error_rate", "hang_rate"}
        if unknown:
            raise _Error(422, "unknown_field", f"unknown field {sorted(unknown)[0]!r}")


@dataclass(slots=True)
class ServiceConfig:
    #: token -> ISO alpha-2 country that owns it
    tokens: dict[str, str]
    admin_token: str = ""
    faults: Faults = field(default_factory=Faults)


_CONFIG = web.AppKey("config", ServiceConfig)


class _Error(Exception):
    def __init__(self, status: int, code: str, message: str, field_name: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field_name


def _json_error(e: _Error) -> web.Response:
    body: dict[str, Any] = {"error": {"code": e.code, "message": e.message}}
    if e.field:
        body["error"]["field"] = e.field
    return web.json_response(body, status=e.status)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    cfg = request.app[_CONFIG]
    try:
        if request.path != "/healthz":
            f = cfg.faults
            if f.hang_rate and random.random() < f.hang_rate:
                await asyncio.Event().wait()
            if f.latency_ms or f.jitter_ms:
                await asyncio.sleep((f.latency_ms + random.random() * f.jitter_ms) / 1000)
            if f.error_rate and random.random() < f.error_rate:
                raise _Error(503, "unavailable", "simulated outage")
            request[_COUNTRY] = _authenticate(request, cfg)
        return await handler(request)
    except _Error as e:
        return _json_error(e)
    except web.HTTPRequestEntityTooLarge:
        return _json_error(_Error(413, "too_large", f"request body over {MAX_BODY} bytes"))
    except web.HTTPException as e:
        if e.status >= 400:
            return _json_error(_Error(e.status, "http_error", e.reason))
        raise
    except Exception as exc:  # a bug: say so in JSON, log the class only
        log.error("sltd_internal_error", error=type(exc).__name__)
        return _json_error(_Error(500, "internal", "internal error"))


def _authenticate(request: web.Request, cfg: ServiceConfig) -> str:
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise _Error(401, "unauthenticated", "Authorization: Bearer <token> required")
    if cfg.admin_token and token == cfg.admin_token:
        return "*"
    country = cfg.tokens.get(token)
    if country is None:
        raise _Error(401, "unauthenticated", "unknown token")
    return country


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise _Error(413, "too_large", f"request body over {MAX_BODY} bytes")
    raw = await request.read()
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _Error(400, "bad_json", "request body is not JSON") from None
    if not isinstance(data, dict):
        raise _Error(400, "bad_json", "request body must be a JSON object")
    return data


def _str(data: Mapping[str, Any], key: str, *, required: bool = True, prefix: str = "") -> str:
    value = data.get(key)
    name = f"{prefix}{key}"
    if value is None or value == "":
        if required:
            raise _Error(422, "missing_field", f"{name} is required", name)
        return ""
    if not isinstance(value, str):
        raise _Error(422, "invalid_field", f"{name} must be a string", name)
    return value


def _query(data: Mapping[str, Any], prefix: str = "") -> tuple[str, str, str]:
    number = _str(data, "number", prefix=prefix).upper()
    if not (1 <= len(number) <= 20 and number.isalnum()):
        raise _Error(422, "invalid_field", f"{prefix}number must be 1-20 letters or digits",
                     f"{prefix}number")  # fmt: skip
    doc_type = _str(data, "type", required=False, prefix=prefix)
    if doc_type and doc_type not in TYPES:
        raise _Error(422, "invalid_field", f"{prefix}type must be one of {', '.join(TYPES)}",
                     f"{prefix}type")  # fmt: skip
    country = _str(data, "country", required=False, prefix=prefix)
    if country and country not in COUNTRIES:
        raise _Error(422, "invalid_field", f"{prefix}country must be an ISO alpha-2 code",
                     f"{prefix}country")  # fmt: skip
    unknown = set(data) - {"number", "type", "country", "limit"}
    if unknown:
        raise _Error(422, "unknown_field", f"unknown field {prefix}{sorted(unknown)[0]}")
    return number, doc_type, country


def _candidate(rec: Any, number: str, doc_type: str, country: str) -> dict[str, Any]:
    score = 1.0
    if rec.number != number:
        score -= 0.3
    if country and rec.country != country:
        score -= 0.4
    if doc_type and rec.doc_type != doc_type:
        score -= 0.2
    return {"record_id": rec.record_id, "number": rec.number, "type": rec.doc_type,
            "country": rec.country, "score": round(score, 2)}  # fmt: skip


def _limit(data: Mapping[str, Any], default: int, maximum: int) -> int:
    value = data.get("limit", default)
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise _Error(422, "invalid_field", f"limit must be 1-{maximum}", "limit")
    return value


async def search(request: web.Request) -> web.Response:
    data = await _body(request)
    number, doc_type, country = _query(data)
    limit = _limit(data, 20, 100)
    (found,) = request.app[_STORE].search([number], limit)
    return web.json_response(
        {"candidates": [_candidate(r, number, doc_type, country) for r in found]}
    )


async def search_bulk(request: web.Request) -> web.Response:
    data = await _body(request)
    queries = data.get("queries")
    if not isinstance(queries, list) or not queries:
        raise _Error(422, "invalid_field", "queries must be a non-empty list", "queries")
    if len(queries) > MAX_QUERIES:
        raise _Error(413, "too_many_queries", f"at most {MAX_QUERIES} queries per request",
                     "queries")  # fmt: skip
    parsed = []
    for i, q in enumerate(queries):
        if not isinstance(q, dict):
            raise _Error(422, "invalid_field", f"queries[{i}] must be an object", f"queries[{i}]")
        parsed.append(_query(q, f"queries[{i}]."))
    found = request.app[_STORE].search([p[0] for p in parsed], 20)
    results = [
        {"candidates": [_candidate(r, *p) for r in recs]}
        for p, recs in zip(parsed, found, strict=True)
    ]
    return web.json_response({"results": results})


async def get_record(request: web.Request) -> web.Response:
    rid = request.match_info["record_id"]
    rec = request.app[_STORE].fetch([rid]).get(rid)
    if rec is None:
        raise _Error(404, "not_found", f"no record {rid[:30]!r}")
    return web.json_response(rec.to_json())


async def fetch_records(request: web.Request) -> web.Response:
    data = await _body(request)
    ids = data.get("record_ids")
    if not isinstance(ids, list) or not all(isinstance(x, str) for x in ids):
        raise _Error(422, "invalid_field", "record_ids must be a list of strings", "record_ids")
    if len(ids) > MAX_QUERIES * 20:
        raise _Error(413, "too_many_ids", "too many record ids", "record_ids")
    found = request.app[_STORE].fetch(ids)
    return web.json_response({"records": [r.to_json() for r in found.values()]})


async def list_records(request: web.Request) -> web.Response:
    country = request.query.get("country", "")
    if country not in COUNTRIES:
        raise _Error(422, "invalid_field", "country must be an ISO alpha-2 code", "country")
    limit = _limit(dict(request.query), 100, MAX_PAGE)
    cursor = request.query.get("cursor", "")
    page = request.app[_STORE].list(country, cursor, limit)
    body: dict[str, Any] = {"records": [r.to_json() for r in page]}
    if len(page) == limit:
        body["next_cursor"] = page[-1].record_id
    return web.json_response(body)


async def list_changes(request: web.Request) -> web.Response:
    store = request.app[_STORE]
    raw = request.query.get("since")
    limit = _limit(dict(request.query), 100, MAX_PAGE)
    if raw is None:
        _none, newest = await store.changes_since(0, 1)
        return web.json_response({"changes": [], "last_seq": newest})
    if not raw.isdigit() or len(raw) > 18:
        raise _Error(422, "invalid_field", "since must be a seq this store handed out", "since")
    found, newest = await store.changes_since(int(raw), limit)
    if int(raw) > newest:
        raise _Error(410, "cursor_gone", f"since {raw} is beyond the newest change ({newest})",
                     "since")  # fmt: skip
    return web.json_response({"changes": [c.to_json() for c in found], "last_seq": newest})


def _record_fields(data: Mapping[str, Any], *, partial: bool) -> dict[str, str]:
    allowed = {"country", "type", "number", "status", "event_date", "circumstances"}
    unknown = set(data) - allowed - ({"record_id"} if not partial else set())
    if unknown:
        raise _Error(422, "unknown_field", f"unknown field {sorted(unknown)[0]!r}")
    out: dict[str, str] = {}
    for key in ("country", "type", "number", "status", "event_date", "circumstances"):
        required = not partial and key in ("country", "type", "number", "status")
        value = _str(data, key, required=required)
        if value or (partial and key in data):
            out["doc_type" if key == "type" else key] = value
    if "country" in out and out["country"] not in COUNTRIES:
        raise _Error(422, "invalid_field", "country must be an ISO alpha-2 code", "country")
    if "doc_type" in out and out["doc_type"] not in TYPES:
        raise _Error(422, "invalid_field", f"type must be one of {', '.join(TYPES)}", "type")
    if "status" in out and out["status"] not in STATUSES:
        raise _Error(422, "invalid_field", f"status must be one of {', '.join(STATUSES)}",
                     "status")  # fmt: skip
    if "number" in out:
        out["number"] = out["number"].upper()
        if not (1 <= len(out["number"]) <= 20 and out["number"].isalnum()):
            raise _Error(422, "invalid_field", "number must be 1-20 letters or digits", "number")
    if len(out.get("circumstances", "")) > 500:
        raise _Error(422, "invalid_field", "circumstances: at most 500 characters",
                     "circumstances")  # fmt: skip
    if data.get("record_id") is not None:
        out["record_id"] = _str(data, "record_id")[:24]
    return out


async def submit(request: web.Request) -> web.Response:
    data = await _body(request)
    fields = _record_fields(data, partial=False)
    caller = request[_COUNTRY]
    if caller != "*" and fields["country"] != caller:
        raise _Error(403, "forbidden", f"a {caller} token may only submit {caller} documents")
    try:
        rec = await request.app[_STORE].submit(
            fields, caller if caller != "*" else fields["country"]
        )
    except KeyError:
        raise _Error(409, "duplicate", "this document is already recorded") from None
    return web.json_response(rec.to_json(), status=201)


async def _owned(request: web.Request) -> str:
    rid = request.match_info["record_id"]
    owner = await request.app[_STORE].get_owner(rid)
    if owner is None or owner[1]:
        raise _Error(404, "not_found", f"no record {rid[:30]!r}")
    caller = request[_COUNTRY]
    if caller not in ("*", owner[0]):
        raise _Error(403, "forbidden", f"record belongs to {owner[0]}; only it may change it")
    return rid


async def update(request: web.Request) -> web.Response:
    rid = await _owned(request)
    fields = _record_fields(await _body(request), partial=True)
    if "country" in fields and request[_COUNTRY] not in ("*", fields["country"]):
        raise _Error(403, "forbidden", "a record cannot be moved to another country")
    rec = await request.app[_STORE].update(rid, fields)
    if rec is None:
        raise _Error(404, "not_found", f"no record {rid[:30]!r}")
    return web.json_response(rec.to_json())


async def withdraw(request: web.Request) -> web.Response:
    rid = await _owned(request)
    await request.app[_STORE].withdraw(rid)
    return web.json_response({"withdrawn": rid})


async def faults(request: web.Request) -> web.Response:
    if request[_COUNTRY] != "*":
        raise _Error(403, "forbidden", "administrator token required")
    cfg = request.app[_CONFIG]
    cfg.faults.update(await _body(request))
    f = cfg.faults
    return web.json_response({"latency_ms": f.latency_ms, "jitter_ms": f.jitter_ms,
                              "error_rate": f.error_rate, "hang_rate": f.hang_rate})  # fmt: skip


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def build_app(store: SltdStore, config: ServiceConfig) -> web.Application:
    app = web.Application(middlewares=[_middleware], client_max_size=MAX_BODY)
    app[_STORE] = store
    app[_CONFIG] = config
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/v1/search", search)
    app.router.add_post("/v1/search/bulk", search_bulk)
    app.router.add_post("/v1/records/fetch", fetch_records)
    app.router.add_get("/v1/records", list_records)
    app.router.add_get("/v1/records/changes", list_changes)  # before /v1/records/{record_id}
    app.router.add_post("/v1/records", submit)
    app.router.add_get("/v1/records/{record_id}", get_record)
    app.router.add_put("/v1/records/{record_id}", update)
    app.router.add_delete("/v1/records/{record_id}", withdraw)
    app.router.add_put("/v1/admin/faults", faults)
    return app


@dataclass(slots=True)
class RunningService:
    """A service started in-process (tests, the demo): ``url`` is its base URL."""

    url: str
    store: SltdStore
    config: ServiceConfig
    runner: web.AppRunner

    async def close(self) -> None:
        await self.runner.cleanup()
        await self.store.close()


async def start_service(
    db_url: str,
    config: ServiceConfig,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    ssl_context: ssl.SSLContext | None = None,
) -> RunningService:
    """Open the store and serve it on ``host:port`` (0: an ephemeral port); HTTPS with client
    certificates required when ``ssl_context`` is given (TlsConfig.server_ssl_context())."""
    store = SltdStore(db_url)
    await store.open()
    # A short shutdown timeout: a service told to hang must still stop promptly.
    runner = web.AppRunner(build_app(store, config), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    bound = int(runner.addresses[0][1])
    scheme = "https" if ssl_context is not None else "http"
    return RunningService(f"{scheme}://{host}:{bound}", store, config, runner)
