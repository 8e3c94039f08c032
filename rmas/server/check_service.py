"""The ``rmas.v1.DocumentCheck`` servicer: translate, ask the hub, audit, translate back.

Every RPC takes the same steps: the caller admitted by :mod:`rmas.server.auth` is charged the
number of documents (per-identity rate limits: RESOURCE_EXHAUSTED), the hub checks them, the
audit trail writes one entry per document and returns once they are durable (no answer leaves
unrecorded: UNAVAILABLE when a required trail cannot be written), the metrics count them (when
on: :mod:`rmas.server.metrics`), and the results are written in the caller's view
(:func:`rmas.server.mapping.result_to_pb`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, TypeVar

import grpc

from rmas.audit.entry import Channel
from rmas.audit.trail import AuditTrail
from rmas.documents import DocumentQuery
from rmas.errors import AuditError, FieldViolation, Overloaded, ValidationError
from rmas.hub import (
    MAX_REF_LENGTH,
    CheckResult,
    Hub,
    InvalidDocument,
    Item,
    ScannedDocument,
    new_check_id,
)
from rmas.iapi.channel import IapiAnswer, IapiChannel
from rmas.security.access import AccessPolicy, RateLimited, View
from rmas.server.auth import Admitted, current_caller
from rmas.server.errors import abort_exhausted, abort_invalid
from rmas.server.mapping import (
    document_from_pb,
    paxlst_answer_to_pb,
    query_from_document,
    result_to_pb,
    results_to_pb,
    scanned_from_lines,
    scanned_or_invalid,
)
from rmas.v1 import check_pb2, check_pb2_grpc

if TYPE_CHECKING:
    from rmas.server.metrics import HubMetrics

__all__ = ["DocumentCheckService", "Unrecorded"]

T = TypeVar("T")

Ctx = grpc.aio.ServicerContext[object, object]


class Unrecorded(AuditError):
    """A required audit trail could not write a check's entries: no answer may leave. The
    message quotes the ``first`` (up to three) of the ``count`` check ids."""

    def __init__(self, first: Sequence[CheckResult], count: int) -> None:
        super().__init__(
            "the audit trail cannot be written; no answer is given unrecorded "
            f"(check ids {', '.join(r.check_id for r in first[:3])}"
            f"{'…' if count > 3 else ''})"
        )


class DocumentCheckService(check_pb2_grpc.DocumentCheckServicer):
    def __init__(
        self,
        hub: Hub,
        iapi: IapiChannel,
        *,
        max_manifest: int,
        policy: AccessPolicy | None = None,
        audit: AuditTrail | None = None,
        metrics: HubMetrics | None = None,
        max_in_flight: int = 20_000,
        max_message_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self._hub = hub
        self._iapi = iapi
        self._max_manifest = max_manifest
        self._policy = policy
        self._audit = audit
        self._metrics = metrics
        self._max_in_flight = max_in_flight
        #: gRPC message limit: a manifest or PAXLST whose answer could exceed it is refused.
        self._max_message_bytes = max_message_bytes
        #: RPCs being answered; ``idle`` is set when there are none (for draining).
        self.active = 0
        #: RPCs cancelled before they were answered (by a drain's end, or by their caller).
        self.cancelled = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def reconfigure(
        self, *, max_manifest: int, max_in_flight: int, policy: AccessPolicy | None
    ) -> None:
        """New limits from a configuration reload; calls under way keep what they admitted."""
        self._max_manifest = max_manifest
        self._max_in_flight = max_in_flight
        self._policy = policy

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        """Count a check being answered (``active``, ``idle``, ``cancelled``: what a drain waits
        for)."""
        self.active += 1
        self.idle.clear()
        try:
            yield
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.active -= 1
            if not self.active:
                self.idle.set()

    def _charge(self, who: Admitted, documents: int) -> None:
        """Raise Overloaded when the hub has too many documents in flight, RateLimited when the
        caller's bucket cannot pay for ``documents``."""
        in_flight = self._hub.in_flight
        if in_flight and in_flight + documents > self._max_in_flight:
            raise Overloaded(
                f"hub overloaded: {in_flight} documents in flight (at most "
                f"{self._max_in_flight}); retry shortly or at another hub"
            )
        if self._policy is not None and who.rule is not None:
            self._policy.admit(who.caller.identity, who.rule, documents)

    async def _admit(self, who: Admitted, documents: int, context: Ctx) -> None:
        try:
            self._charge(who, documents)
        except (RateLimited, Overloaded) as exc:
            await abort_exhausted(context, str(exc), exc.retry_after_s)

    async def _record(
        self,
        who: Admitted,
        channel: Channel,
        results: Sequence[CheckResult],
        context: Ctx,
        reference: str = "",
    ) -> None:
        await self._recorded(
            self._submit(who, channel, results, reference), context, results[:3], len(results)
        )

    def _submit(
        self, who: Admitted, channel: Channel, results: Sequence[CheckResult], reference: str = ""
    ) -> Awaitable[None] | None:
        """Queue the audit entries now (see AuditTrail.submit); await with _recorded."""
        if self._audit is None:
            return None
        return self._audit.submit(results, who.caller, channel, reference)

    async def _recorded(
        self,
        pending: Awaitable[None] | None,
        context: Ctx,
        first: Sequence[CheckResult],
        count: int,
    ) -> None:
        """Wait until the entries are durable; UNAVAILABLE (no answer) when they cannot be,
        quoting the ``first`` (up to three) of the ``count`` check ids."""
        if pending is None:
            return
        try:
            await pending
        except AuditError:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(Unrecorded(first, count)))

    async def check_document(
        self,
        who: Admitted,
        item: Item,
        remaining_s: float | None,
        answer: Callable[[CheckResult], T],
        *,
        slow_answer: bool = False,
    ) -> T:
        """CheckDocument's steps once the document is read, for every edge that checks one
        (this servicer, and the web console in :mod:`rmas.console`): charge the caller one
        document, check it, queue its audit entry, build the answer with ``answer`` while the
        entry is committed, and return that answer once the entry is durable.

        Raises RateLimited or Overloaded (nothing was checked), Unrecorded when a required audit
        trail could not write the entry (the answer must not leave). Callers other than the
        RPCs below run it inside :meth:`serving`, so that a drain waits for it.

        ``slow_answer``: yield to the event loop once before building the answer, so that the
        audit trail's writer task starts the commit first and the two run at the same time (an
        HTML page takes longer to build than the commit takes to start; a protobuf does not).
        """
        self._charge(who, 1)
        results = await self._hub.check([item], self._hub.deadline(remaining_s))
        pending = self._submit(who, Channel.DOCUMENT, results)
        if slow_answer and pending is not None:
            await asyncio.sleep(0)
        try:  # the answer is built while the audit commit runs; it leaves after it
            out = answer(results[0])
        finally:
            if pending is not None:
                try:
                    await pending
                except AuditError as exc:
                    raise Unrecorded(results, len(results)) from exc
        if self._metrics is not None:
            self._metrics.observe(Channel.DOCUMENT, results)
        return out

    async def _CheckDocument(
        self, request: check_pb2.CheckDocumentRequest, context: Ctx
    ) -> check_pb2.CheckDocumentResponse:
        who = current_caller()
        item: DocumentQuery | ScannedDocument
        if request.mrz_lines and request.HasField("document"):
            await abort_invalid(
                context, [FieldViolation("mrz_lines", "give either document or mrz_lines")]
            )
        try:
            if request.mrz_lines:
                item = scanned_from_lines(request.mrz_lines, prefix="mrz_lines")
            elif request.HasField("document"):
                item = query_from_document(request.document)
            else:
                raise ValidationError([FieldViolation("document", "required (or mrz_lines)")])
        except ValidationError as exc:
            await abort_invalid(context, exc.violations)

        def respond(result: CheckResult) -> check_pb2.CheckDocumentResponse:
            response = check_pb2.CheckDocumentResponse()
            result_to_pb(result, response.result, who.view)
            return response

        try:
            return await self.check_document(who, item, context.time_remaining(), respond)
        except (RateLimited, Overloaded) as exc:
            await abort_exhausted(context, str(exc), exc.retry_after_s)
        except Unrecorded as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        raise AssertionError("unreachable: context.abort raises")  # pragma: no cover

    async def _CheckManifest(
        self, request: check_pb2.CheckManifestRequest, context: Ctx
    ) -> check_pb2.CheckManifestResponse:
        who = current_caller()
        n = len(request.travellers)
        if n > self._max_manifest:
            await abort_invalid(
                context,
                [FieldViolation("travellers", f"{n} travellers; at most {self._max_manifest}")],
            )
        size = _answer_size(request, who.view is View.FULL, len(self._hub.providers))
        if size > self._max_message_bytes:
            # Refused before anything is checked, charged or audited: an answer the hub could
            # not send would leave checks recorded that nobody received.
            await abort_invalid(
                context,
                [FieldViolation("travellers", f"the answer for {n} travellers would exceed the "
                                f"hub's message limit ({self._max_message_bytes} bytes): send "
                                "the manifest in smaller parts")],
            )  # fmt: skip
        await self._admit(who, n, context)
        items: list[Item] = []
        for i, t in enumerate(request.travellers):
            prefix = f"travellers[{i}]"
            if len(t.ref) > MAX_REF_LENGTH:
                items.append(InvalidDocument(t.ref[:MAX_REF_LENGTH], (FieldViolation(
                    f"{prefix}.ref", f"longer than {MAX_REF_LENGTH} characters"),)))  # fmt: skip
            elif t.mrz_lines:
                items.append(
                    scanned_or_invalid(t.mrz_lines, ref=t.ref, prefix=f"{prefix}.mrz_lines")
                )
            elif not t.HasField("document"):
                items.append(
                    InvalidDocument(t.ref, (FieldViolation(f"{prefix}.document", "required"),))
                )
            else:
                items.append(document_from_pb(t.document, ref=t.ref, prefix=f"{prefix}.document"))
        deadline = self._hub.deadline(context.time_remaining())
        results = await self._hub.check(items, deadline)
        del items
        manifest_id = new_check_id()
        n = len(results)
        pending = self._submit(who, Channel.MANIFEST, results, manifest_id)
        first = results[:3]
        try:  # the answer is built while the audit commit runs; it leaves after it
            response = check_pb2.CheckManifestResponse(manifest_id=manifest_id)
            results_to_pb(results, response, who.view)
            tally = None if self._metrics is None else self._metrics.tally(results)
            # Let the results go now, not once the commit is in: held by every manifest waiting
            # for a commit, a manifest's results and their answers are thousands of objects the
            # collector scans again and again (docs/benchmarks.md, "mTLS and audit").
            del results
        finally:
            await self._recorded(pending, context, first, n)
        if self._metrics is not None and tally is not None:
            self._metrics.observe_tally(Channel.MANIFEST, tally, n)
        return response

    async def _CheckPaxlst(
        self, request: check_pb2.CheckPaxlstRequest, context: Ctx
    ) -> check_pb2.CheckPaxlstResponse:
        who = current_caller()
        if not request.message:
            await abort_invalid(context, [FieldViolation("message", "required")])
        deadline = self._hub.deadline(context.time_remaining())

        async def record(answer: IapiAnswer) -> None:
            # Every checked answer is audited, resends included; the reference ties the entries
            # to the airline's RFF+TN and to this answer.
            results = [r for p in answer.passengers for r in p.results]
            reference = f"{answer.answer_id} TN {answer.transaction_ref}" + (
                " RESEND" if answer.resend else ""
            )
            await self._record(who, Channel.PAXLST, results, context, reference)
            if self._metrics is not None:
                self._metrics.observe(Channel.PAXLST, results)

        try:
            answer = await self._iapi.answer(
                request.message,
                deadline,
                caller=who.caller.identity,
                senders=who.rule.senders if who.rule is not None else (),
                admit=lambda n: self._charge(who, n),
                record=record,
                max_answer_bytes=self._max_message_bytes,
                full_results=who.view is View.FULL,
            )
        except (RateLimited, Overloaded) as exc:
            await abort_exhausted(context, str(exc), exc.retry_after_s)
        return paxlst_answer_to_pb(answer, who.view)

    # The RPCs: each counted while it is answered, so a drain knows when the last one is out.

    async def CheckDocument(
        self, request: check_pb2.CheckDocumentRequest, context: Ctx
    ) -> check_pb2.CheckDocumentResponse:
        with self.serving():
            return await self._CheckDocument(request, context)

    async def CheckManifest(
        self, request: check_pb2.CheckManifestRequest, context: Ctx
    ) -> check_pb2.CheckManifestResponse:
        with self.serving():
            return await self._CheckManifest(request, context)

    async def CheckPaxlst(
        self, request: check_pb2.CheckPaxlstRequest, context: Ctx
    ) -> check_pb2.CheckPaxlstResponse:
        with self.serving():
            return await self._CheckPaxlst(request, context)


# Upper bounds of what one result adds to an answer beyond what its request carried (the
# document it echoes is in the request's own size): an officer's result with its warnings, and
# per provider a source answer with its record, contact and error texts (each bounded); an
# MRZ's evidence. An airline's result is a check id and a directive.
_FULL_RESULT_BYTES = 1200
_SOURCE_BYTES = 800
_MRZ_EVIDENCE_BYTES = 3000
_DIRECTIVE_RESULT_BYTES = 64


def _answer_size(request: check_pb2.CheckManifestRequest, full: bool, providers: int) -> int:
    """A bound on the size of a manifest's answer, known before anything is checked."""
    n = len(request.travellers)
    if not full:
        return n * _DIRECTIVE_RESULT_BYTES + n * MAX_REF_LENGTH
    scanned = sum(1 for t in request.travellers if t.mrz_lines)
    return (
        request.ByteSize()
        + n * (_FULL_RESULT_BYTES + _SOURCE_BYTES * providers)
        + scanned * _MRZ_EVIDENCE_BYTES
    )
