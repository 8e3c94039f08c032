"""The console's pages: check a document, find a check, the hub at a glance.

A check goes through the edge's one check pipeline (:class:`rmas.server.pipeline.CheckPipeline`,
the servicer's own): the same rate limits, the same hub, the same audit entry (channel
``document``, the visitor as caller), the same metrics as a gRPC CheckDocument; the answer page
is rendered while the audit entry is committed and sent once it is durable. The status page
shows what ``rmas status`` shows (the same :class:`~rmas.server.snapshot.HubSnapshot`, from
:meth:`HubAdminService.snapshot`), refreshed by server-sent events.

Forms are POSTed and answered in place (the URL stays ``/check``), every page is ``no-store``:
a document number, a name or a zone never reaches a URL, the browser's history or cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

import jinja2
import markupsafe
import structlog
from aiohttp import web

from rmas.abtc import CardQuery, validate_card
from rmas.audit.entry import Channel
from rmas.console import trail
from rmas.console.identity import Visitor
from rmas.documents import DocumentQuery, DocumentType, validate_document
from rmas.errors import AuditError, FieldViolation, Overloaded, ValidationError
from rmas.grpckit.mapping import scanned_from_lines
from rmas.hub import CheckResult, ScannedDocument
from rmas.mrz import DigitState, Field, MrzReading
from rmas.security.access import RateLimited
from rmas.server.pipeline import CheckOutcome, CheckRequest, Unrecorded
from rmas.server.snapshot import HubSnapshot
from rmas.verdict import Verdict

__all__ = ["VISITOR", "Pages", "answer_context", "cells"]

log = structlog.get_logger("rmas.console")

#: Where the middleware leaves the visitor in a request.
VISITOR = web.RequestKey("visitor", Visitor)

#: A check id as the hub makes them (rmas.hub.new_check_id): 32 lower-case hex digits.
_CHECK_ID = re.compile(r"[0-9a-f]{32}")

#: Holder and document fields of the "by fields" form, as validate_document names them.
_FIELDS = ("issuing_state", "number", "type_code", "surname", "given_names", "birth_date", "sex",
           "nationality", "expiry_date")  # fmt: skip

#: The document types an officer can pick (the values DocumentType.from_code reads).
#: The card fields of both forms: its number, home economy and the economy checking it.
_CARD_FIELDS = ("abtc", "abtc_economy", "abtc_for")
DOCUMENT_TYPES = [(t.value, t.name.replace("_", " ").lower()) for t in DocumentType]

_COLOURS = {
    Verdict.CLEAR: "clear",
    Verdict.ALERT: "alert",
    Verdict.INCOMPLETE: "incomplete",
    Verdict.INVALID_DATA: "invalid",
}


def answer_context(result: CheckResult) -> dict[str, Any]:
    """What the answer template shows of a result (everything: only officers see it)."""
    reading: MrzReading | None = result.mrz
    refuted: set[str] = set()
    fields = list(reading.fields.values()) if reading is not None else []
    if reading is not None:
        # The fields a refuted digit covers, less those their own digit verifies (a refuted
        # composite does not make a verified birth date suspect).
        verified = {d.name for d in reading.check_digits if d.state is DigitState.VERIFIED}
        for digit in reading.check_digits:
            if digit.state is DigitState.REFUTED:
                refuted.update(f for f in digit.covers or (digit.name,) if f not in verified)
    return {
        "r": result,
        "colour": _COLOURS.get(result.verdict, "invalid"),
        # Being added to rmas.hub.CheckResult (issue 15); until then the issuer is assumed asked.
        "issuer_consulted": result.issuer_consulted,
        "reading": reading,
        "zone": _zone(reading, fields, refuted) if reading is not None else "",
        "digit_rows": [
            (d.state.value.lower(), d.name,
             (d.name, ", ".join(d.covers), d.found, d.expected, d.state.value))
            for d in (reading.check_digits if reading is not None else ())
        ],
        "field_rows": [
            ("refuted" if f.name in refuted else "",
             (f.name, f.line, f"{f.start + 1}–{f.end}", f.raw, f.value, f.problem or ""))
            for f in fields
        ],
    }  # fmt: skip


def _zone(reading: MrzReading, fields: Sequence[Field], refuted: set[str]) -> markupsafe.Markup:
    """The zone's lines, escaped, the fields a refuted digit covers in ``<span class=refuted>``
    (built here rather than in the template: a page is rendered for every check)."""
    spans: dict[int, list[tuple[int, int, str]]] = {}
    for f in fields:
        css = "refuted" if f.name in refuted else ("problem" if f.problem else "")
        if css:
            spans.setdefault(f.line, []).append((f.start, f.end, css))
    out = []
    for i, text in enumerate(reading.lines, start=1):
        at = 0
        for first, end, css in sorted(spans.get(i, ())):
            start = max(first, at)
            if end <= start:
                continue
            out.append(escape(text[at:start]))
            out.append(f'<span class="{css}">{escape(text[start:end])}</span>')
            at = end
        out.append(escape(text[at:]) + "\n")
    return markupsafe.Markup("".join(out))


def cells(row: Sequence[object]) -> markupsafe.Markup:
    """A table row's cells, each escaped (one template expression for a whole row)."""
    return markupsafe.Markup("".join(f"<td>{escape(str(c))}</td>" for c in row))


def _status_context(status: HubSnapshot) -> dict[str, Any]:
    providers = []
    for p in status.providers:
        providers.append({
            "id": p.id, "scope": p.scope, "required": p.required,
            "issuing_states": list(p.issuing_states), "health": p.health or "ok",
            "breaker": p.breaker or "-", "target": p.target, "calls": p.calls,
            "failures": p.failures, "error_rate": p.recent_error_rate,
            "p50_ms": p.recent_p50_ms, "p99_ms": p.recent_p99_ms,
            "described_states": list(p.described_states), "last_error": p.last_error,
            "record_count": p.record_count or None,
        })  # fmt: skip
    return {
        "version": status.version,
        "uptime_s": status.uptime_s,
        "checks": status.checks,
        "in_flight": status.in_flight,
        "providers": providers,
    }


class Pages:
    """The request handlers of one console, over the hub server it belongs to."""

    def __init__(self, server: Any, *, refresh_s: float = 1.0) -> None:
        self.server = server
        self.refresh_s = refresh_s
        self.env: jinja2.Environment | None = None
        #: Set when the console stops: live status streams end.
        self.closing = asyncio.Event()
        #: The last full verification of the audit chain run from the console (None: none yet).
        self.verification: trail.Verification | None = None
        self._verifying = asyncio.Lock()
        self._next_forms: markupsafe.Markup | None = None

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/", self.home)
        router.add_get("/check", self.check_form)
        router.add_post("/check", self.check)
        router.add_get("/find", self.find_form)
        router.add_post("/find", self.find)
        router.add_get("/checks/{check_id}", self.find_by_link)
        router.add_get("/status", self.status)
        router.add_get("/status/events", self.status_events)
        router.add_post("/status/verify", self.verify)

    # Rendering

    def render(self, template: str, request: web.Request | None, status: int = 200,
               **context: Any) -> web.Response:  # fmt: skip
        return web.Response(
            text=self.render_text(template, request, **context),
            status=status,
            content_type="text/html",
        )

    def render_text(self, template: str, request: web.Request | None, **context: Any) -> str:
        assert self.env is not None
        visitor = request.get(VISITOR) if request is not None else None
        return self.env.get_template(template).render(
            visitor=visitor,
            may_check=visitor is not None and visitor.may("check"),
            may_status=visitor is not None and visitor.may("status"),
            **context,
        )

    def refusal(self, message: str) -> web.Response:
        return self.render("refused.html", None, status=403, message=message)

    def failure(self) -> web.Response:
        message = "the console failed to answer; the hub's log says why"
        return self.render("refused.html", None, status=500, message=message)

    @staticmethod
    def _require(request: web.Request, action: str) -> Visitor:
        visitor = request[VISITOR]
        if not visitor.may(action):
            raise web.HTTPForbidden(text=f"{visitor.identity} may not use this page")
        return visitor

    # Officer: check a document

    async def home(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPSeeOther("/check" if request[VISITOR].may("check") else "/status")

    async def check_form(self, request: web.Request) -> web.StreamResponse:
        self._require(request, "check")
        return self.render("check.html", request, **self._form_context({}, "mrz"))

    def _form_context(
        self,
        form: Mapping[str, str],
        mode: str,
        problems: list[FieldViolation] | None = None,
    ) -> dict[str, Any]:
        errors: dict[str, list[str]] = {}
        for v in problems or ():
            errors.setdefault(v.field.rpartition(".")[2], []).append(v.description)
        return {
            "form": {k: form.get(k, "") for k in (*_FIELDS, *_CARD_FIELDS, "mrz")},
            "mode": mode,
            "errors": errors,
            "types": DOCUMENT_TYPES,
        }

    async def check(self, request: web.Request) -> web.StreamResponse:
        visitor = self._require(request, "check")
        posted = await request.post()
        form = {k: v for k, v in posted.items() if isinstance(v, str)}
        mode = "mrz" if form.get("mode") == "mrz" else "fields"
        try:
            item = self._item(form, mode)
            card = self._card(form, item)
        except ValidationError as exc:
            return self.render("check.html", request, status=422,
                               **self._form_context(form, mode, exc.violations))  # fmt: skip
        service = self.server.service

        def page(outcome: CheckOutcome) -> str:
            return self.answer_page(outcome.results[0], request)

        try:
            with service.serving():
                html = await service.pipeline.run(
                    CheckRequest(visitor.as_officer(), Channel.DOCUMENT, (item,), card=card),
                    page,
                    slow_answer=True,
                )
        except (RateLimited, Overloaded) as exc:
            return self.render("refused.html", request, status=429, message=str(exc))
        except Unrecorded as exc:
            return self.render("refused.html", request, status=503, message=str(exc))
        return web.Response(text=html, content_type="text/html")

    def answer_page(self, result: CheckResult, request: web.Request | None) -> str:
        """The answer page of a check, with empty forms for the next document."""
        if self._next_forms is None:  # the same every time: rendered once
            forms = self.render_text("forms.html", None, **self._form_context({}, "mrz"))
            self._next_forms = markupsafe.Markup(forms)
        return self.render_text(
            "answer.html", request, **answer_context(result), next_forms=self._next_forms
        )

    @staticmethod
    def _item(form: Mapping[str, str], mode: str) -> DocumentQuery | ScannedDocument:
        if mode == "mrz":
            text = form.get("mrz", "")
            if not text.strip():
                raise ValidationError([FieldViolation("mrz", "required: type or scan the zone")])
            return scanned_from_lines([text], prefix="mrz")
        return validate_document(**{k: form.get(k, "") for k in _FIELDS}, prefix="document")

    def _card(
        self, form: Mapping[str, str], item: DocumentQuery | ScannedDocument
    ) -> CardQuery | None:
        """The APEC Business Travel Card presented with the document, if its number was given:
        checked for the economy the form names, else the hub's own (``[hub] economy``); its home
        economy defaults to the passport's issuing state."""
        number = form.get("abtc", "")
        if not number.strip():
            return None
        query = item.query if isinstance(item, ScannedDocument) else item
        return validate_card(
            home_economy=form.get("abtc_economy", ""),
            number=number,
            checking_economy=form.get("abtc_for", "") or self.server.hub.policy.economy,
            passport_number=query.number,
            passport_state=query.issuing_state,
            checking_field="abtc_for",
        )

    # Officer: find a check

    async def find_form(self, request: web.Request) -> web.StreamResponse:
        self._require(request, "check")
        return self.render("find.html", request, check_id="", entries=None, error="")

    async def find(self, request: web.Request) -> web.StreamResponse:
        self._require(request, "check")
        posted = await request.post()
        value = posted.get("check_id", "")
        return await self._find(request, value.strip().lower() if isinstance(value, str) else "")

    async def find_by_link(self, request: web.Request) -> web.StreamResponse:
        self._require(request, "check")
        return await self._find(request, request.match_info["check_id"].lower())

    async def _find(self, request: web.Request, check_id: str) -> web.StreamResponse:
        audit = self.server.audit
        entries: list[dict[str, Any]] | None = None
        error = ""
        if not _CHECK_ID.fullmatch(check_id):
            error = "a check id is 32 hexadecimal digits"
            check_id = ""
        elif audit is None:
            error = "this hub keeps no audit trail ([audit] is not configured)"
        else:
            try:
                entries = await trail.find_check(audit.sink.url, check_id)
            except AuditError as exc:
                error = str(exc)
        status = 422 if error and not check_id else (503 if error else 200)
        return self.render("find.html", request, status=status, check_id=check_id,
                           entries=entries, error=error)  # fmt: skip

    # Operator: the hub at a glance

    async def status(self, request: web.Request) -> web.StreamResponse:
        self._require(request, "status")
        live = await self._live(request)
        return self.render("status.html", request, live=live, refresh_ms=int(self.refresh_s * 1000))

    async def _live(self, request: web.Request) -> str:
        """The live part of the status page (providers, audit trail), rendered."""
        status = await self.server.admin.snapshot()
        audit = self.server.audit
        head: tuple[int, str] | None = None
        head_error = ""
        if audit is not None:
            try:
                head = await trail.head(audit.sink.url)
            except AuditError as exc:
                head_error = str(exc)
        return self.render_text(
            "live.html", request, **_status_context(status), audit=audit, head=head,
            head_error=head_error, verification=self.verification, now=time.time(),
        )  # fmt: skip

    async def status_events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: the live part of the page, every ``refresh_s`` seconds."""
        self._require(request, "status")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        response.headers.update({"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        await response.prepare(request)
        with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
            while not self.closing.is_set():
                html = await self._live(request)
                await response.write(f"data: {json.dumps({'html': html})}\n\n".encode())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.closing.wait(), self.refresh_s)
        return response

    async def verify(self, request: web.Request) -> web.StreamResponse:
        self._require(request, "status")
        audit = self.server.audit
        if audit is not None and not self._verifying.locked():
            async with self._verifying:
                try:
                    self.verification = await trail.verify(audit.sink.url)
                except AuditError as exc:
                    log.warning("console_verify_failed", error=str(exc))
        raise web.HTTPSeeOther("/status")
