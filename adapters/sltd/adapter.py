"""The ``sltd`` provider kind: asks an SLTD-style central store about every document.

For a batch of documents (a whole manifest at once) it sends one bulk search per ``bulk_max``
documents, collects the candidates, fetches their full records in one bulk fetch, and keeps a
hit only when the full record matches the query exactly: same number and same country. The
document type never filters: a stolen identity card is a hit for a query that calls the same
number a passport (the record's own type is reported to the officer; among several records of
that country and number, one of the query's type is shown first). A near miss (another country's
document with the same number, an OCR-near number) is not a hit. Answers are translated from the
store's vocabulary (alpha-2 countries, its own statuses) into rmas's.

Config::

    [[providers]]
    id = "SLTD"
    kind = "sltd"
    scope = "global"
    required = true
    url = "http://127.0.0.1:8080"
    token_file = "sltd-token.txt"   # or token = "..."
    pool_size = 16                  # keep-alive connections
    bulk_max = 500                  # documents per bulk search
    poll_interval = 0.5             # seconds between reads of the store's change list

Record changes (rmas.changes.ChangeFeed): the adapter polls ``GET /v1/records/changes?since=SEQ``
(the position is the store's ``seq``); a ``reload`` entry (a bulk load) or a cursor the store
calls gone (410) is :class:`~rmas.changes.ChangesLost`; a country the store should never send is
dropped.

An ``https://`` URL uses the hub's ``[tls]``: the service's certificate is verified against the
hub's CA and the hub's certificate is presented as the client certificate (``rmas sltd serve
--tls-cert/--tls-key/--tls-ca`` requires one). Plain ``http://`` is for loopback addresses only.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import ssl
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from adapters.sltd.codes import country_from_sltd, country_to_sltd, status_from_sltd
from rmas.changes import ChangesLost, DocumentChange
from rmas.confread import Key, between
from rmas.documents import DocumentQuery, DocumentType, normalise_number, number_problem
from rmas.errors import ConfigError, ProviderError, ProviderTimeout, ProviderUnavailable
from rmas.net import require_loopback_unless_tls
from rmas.providers import ProviderConfig, ProviderInfo
from rmas.verdict import NO_RECORD, Record

__all__ = ["SltdProvider"]

_NOT_SEARCHABLE = Record(NO_RECORD.status, detail="issuing state has no code in the central store")


def _http_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return url


class SltdProvider:
    def __init__(
        self,
        info: ProviderInfo,
        url: str,
        token: str,
        *,
        pool_size: int = 16,
        bulk_max: int = 500,
        ssl_context: ssl.SSLContext | None = None,
        poll_interval: float = 0.5,
    ) -> None:
        self._info = info
        self._ssl = ssl_context
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._pool_size = pool_size
        self._bulk_max = bulk_max
        self.poll_interval = poll_interval
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_config(cls, cfg: ProviderConfig) -> SltdProvider:
        key = f"providers[{cfg.index}]"
        options = cfg.read_options(
            Key("url", str, _http_url, required="required for kind 'sltd'"),
            Key("token", str, default=""),
            Key("token_file", str, default=""),
            Key("pool_size", int, between(1, 256, "must be between 1 and 256"), default=16),
            Key("bulk_max", int, between(1, 1000, "must be between 1 and 1000"), default=500),
            Key(
                "poll_interval", float, between(0.01, 60, "must be 0.01 to 60 seconds"), default=0.5
            ),
        )
        url = options["url"]
        host = (urlsplit(url).hostname or "").strip("[]")
        require_loopback_unless_tls(
            host,
            tls=url.startswith("https://"),
            key=f"{key}.url",
            message="plain http:// only to a loopback address; use https://",
        )
        ssl_context = None
        if url.startswith("https://"):
            if cfg.tls is None:
                raise ConfigError(
                    f"{key}.url", "https:// needs the hub's [tls] (client certificate)"
                )
            ssl_context = cfg.tls.client_ssl_context()
        token, token_file = options["token"], options["token_file"]
        if token_file:
            path = Path(cfg.base_dir) / token_file
            try:
                token = path.read_text().strip()
            except OSError as exc:
                raise ConfigError(f"{key}.token_file", f"cannot read: {exc.strerror}") from None
        if not token:
            raise ConfigError(f"{key}.token", "required (or token_file)")
        return cls(
            cfg.info,
            url,
            token,
            pool_size=options["pool_size"],
            bulk_max=options["bulk_max"],
            ssl_context=ssl_context,
            poll_interval=options["poll_interval"],
        )

    @property
    def info(self) -> ProviderInfo:
        return self._info

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._pool_size,
                    keepalive_timeout=30,
                    ssl=self._ssl if self._ssl is not None else True,
                ),
                headers=self._headers,
                json_serialize=json.dumps,
            )
        return self._session

    async def _post(self, path: str, body: dict[str, Any], deadline: float) -> dict[str, Any]:
        return await self._request("POST", path, body, deadline)

    async def _request(
        self, method: str, path: str, body: dict[str, Any] | None, deadline: float
    ) -> dict[str, Any]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ProviderTimeout("deadline passed")
        try:
            async with self._http().request(
                method, self.url + path, json=body, timeout=aiohttp.ClientTimeout(total=remaining)
            ) as resp:
                if resp.status == 410:
                    raise ChangesLost(f"central store: {(await resp.text())[:200]}")
                if resp.status >= 500:
                    raise ProviderUnavailable(f"central store answered HTTP {resp.status}")
                if resp.status != 200:
                    detail = (await resp.text())[:200]
                    raise ProviderError(
                        f"central store refused the request: {resp.status} {detail}"
                    )
                data = await resp.json(loads=json.loads, content_type=None)
        except TimeoutError:
            raise ProviderTimeout("central store did not answer in time") from None
        except aiohttp.ClientConnectionError as exc:
            raise ProviderUnavailable(f"central store unreachable: {type(exc).__name__}") from None
        except (aiohttp.ContentTypeError, ValueError) as exc:
            raise ProviderError(f"central store sent something not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ProviderError("central store answer is not a JSON object")
        return data

    async def lookup_many(self, queries: Sequence[DocumentQuery], deadline: float) -> list[Record]:
        out: list[Record] = [NO_RECORD] * len(queries)
        wanted: list[tuple[int, str]] = []  # (index, country)
        for i, q in enumerate(queries):
            country = country_to_sltd(q.issuing_state)
            if country is None:
                out[i] = _NOT_SEARCHABLE
            else:
                wanted.append((i, country))
        if not wanted:
            return out
        chunks = [wanted[i : i + self._bulk_max] for i in range(0, len(wanted), self._bulk_max)]
        answers = await asyncio.gather(
            *(self._search(queries, chunk, deadline) for chunk in chunks)
        )
        candidates: dict[int, list[str]] = {}
        for chunk, results in zip(chunks, answers, strict=True):
            for (i, _c), result in zip(chunk, results, strict=True):
                ids = [c["record_id"] for c in result]
                if ids:
                    candidates[i] = ids
        if not candidates:
            return out
        ids = sorted({rid for rids in candidates.values() for rid in rids})
        records = await self._fetch(ids, deadline)
        for i, country in wanted:
            q = queries[i]
            hits = [
                rec
                for rid in candidates.get(i, ())
                if (rec := records.get(rid)) is not None and _matches(rec, q.number, country)
            ]
            if hits:
                # Every hit alerts; the one of the query's own type is the one shown first.
                hits.sort(key=lambda r: DocumentType.from_code(str(r.get("type", ""))) != q.type)
                out[i] = _record(hits[0])
        return out

    async def _search(
        self,
        queries: Sequence[DocumentQuery],
        chunk: list[tuple[int, str]],
        deadline: float,
    ) -> list[list[dict[str, Any]]]:
        # No type in the search: the type never filters a hit away.
        body = {"queries": [{"number": queries[i].number, "country": c} for i, c in chunk]}
        data = await self._post("/v1/search/bulk", body, deadline)
        results = data.get("results")
        if not isinstance(results, list) or len(results) != len(chunk):
            raise ProviderError("bulk search answer has the wrong number of results")
        out = []
        for r in results:
            cands = r.get("candidates") if isinstance(r, dict) else None
            if not isinstance(cands, list) or not all(
                isinstance(c, dict) and isinstance(c.get("record_id"), str) for c in cands
            ):
                raise ProviderError("bulk search answer has a malformed candidate list")
            out.append(cands)
        return out

    async def _fetch(self, ids: list[str], deadline: float) -> dict[str, dict[str, Any]]:
        data = await self._post("/v1/records/fetch", {"record_ids": ids}, deadline)
        recs = data.get("records")
        if not isinstance(recs, list):
            raise ProviderError("bulk fetch answer has no record list")
        return {r["record_id"]: r for r in recs if isinstance(r, dict) and "record_id" in r}

    async def current_position(self) -> str:
        """ChangeFeed: the store's newest change seq."""
        data = await self._request("GET", "/v1/records/changes", None, time.monotonic() + 10)
        return str(_seq(data.get("last_seq")))

    async def watch_changes(self, since: str) -> AsyncIterator[Sequence[DocumentChange]]:
        """ChangeFeed: the store's change list after ``since``, polled (see the module)."""
        if not since.isdigit() or len(since) > 18:
            raise ChangesLost(f"not a position of the central store: {since[:40]!r}")
        position = int(since)
        while True:
            data = await self._request(
                "GET", f"/v1/records/changes?since={position}&limit={_CHANGE_PAGE}", None,
                time.monotonic() + 10,
            )  # fmt: skip
            entries = data.get("changes")
            if not isinstance(entries, list):
                raise ProviderError("central store change list is malformed")
            batch: list[DocumentChange] = []
            for entry in entries:
                if not isinstance(entry, dict):
                    raise ProviderError("central store change list is malformed")
                seq = _seq(entry.get("seq"))
                if seq <= position:
                    raise ProviderError("central store change list is out of order")
                if entry.get("kind") == "reload":
                    if batch:
                        yield batch
                    raise ChangesLost("the central store's records were reloaded in bulk")
                position = seq
                state = country_from_sltd(str(entry.get("country", "")))
                number = normalise_number(str(entry.get("number", "")))
                if state is not None and number_problem(number) is None:
                    batch.append(DocumentChange(state, number, str(seq)))
            if batch:
                yield batch
            if len(entries) < _CHANGE_PAGE:
                await asyncio.sleep(self.poll_interval)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


#: Entries read from the store's change list at once.
_CHANGE_PAGE = 500


def _seq(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProviderError("central store sent a change seq that is not a number")
    return value


def _matches(rec: dict[str, Any], number: str, country: str) -> bool:
    return rec.get("number") == number and rec.get("country") == country


def _record(rec: dict[str, Any]) -> Record:
    try:
        status = status_from_sltd(str(rec.get("status")))
    except KeyError:
        raise ProviderError(f"central store sent an unknown status {rec.get('status')!r}") from None
    date = rec.get("event_date") or ""
    try:
        reported = dt.date.fromisoformat(date) if date else None
    except ValueError:
        reported = None
    return Record(
        status=status,
        reported_on=reported,
        record_ref=str(rec.get("record_id", "")),
        reporting_authority=str(rec.get("reporting_country", "")),
        detail=str(rec.get("circumstances", ""))[:200],
        document_type=DocumentType.from_code(str(rec.get("type", ""))).letter,
    )
