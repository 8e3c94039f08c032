"""The ``rmas.v1.DocumentCheck`` servicer: each RPC only translates its wire format in and out.

A request is read into a :class:`~rmas.server.pipeline.CheckRequest` (bad input:
INVALID_ARGUMENT naming every field, before anything is charged, checked or audited), the
:class:`~rmas.server.pipeline.CheckPipeline` takes the steps every check takes (admit, check,
audit, answer, durable, count), and the outcome is written back in the caller's view
(:func:`rmas.grpckit.mapping.result_to_pb`). The pipeline's refusals become statuses here:
RESOURCE_EXHAUSTED (rate limits, overload) and UNAVAILABLE (a required audit trail that cannot be
written).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, NoReturn

import grpc

from rmas.abtc import CardQuery
from rmas.audit.entry import Channel
from rmas.audit.trail import AuditTrail
from rmas.documents import DocumentQuery
from rmas.errors import FieldViolation, Overloaded, ValidationError
from rmas.grpckit.auth import current_caller
from rmas.grpckit.errors import abort_exhausted, abort_invalid
from rmas.grpckit.mapping import (
    card_query_from_pb,
    document_from_pb,
    paxlst_answer_to_pb,
    plain_from_pb,
    query_from_document,
    result_to_pb,
    results_to_pb,
    scanned_from_lines,
    scanned_or_invalid,
)
from rmas.hub import (
    MAX_REF_LENGTH,
    TURN,
    Hub,
    InvalidDocument,
    Item,
    ScannedDocument,
    in_turns,
    new_check_id,
)
from rmas.iapi.channel import IapiAnswer, IapiChannel
from rmas.security.access import AccessPolicy, RateLimited, View
from rmas.server.coalesce import AnswerCoalescer
from rmas.server.pipeline import CheckOutcome, CheckPipeline, CheckRequest, Unrecorded
from rmas.v1 import check_pb2, check_pb2_grpc

if TYPE_CHECKING:
    from rmas.server.metrics import HubMetrics

__all__ = ["DocumentCheckService"]

Ctx = grpc.aio.ServicerContext[object, object]


async def _refused(context: Ctx, exc: RateLimited | Overloaded | Unrecorded) -> NoReturn:
    """End the call with the status a pipeline refusal calls for."""
    if isinstance(exc, Unrecorded):
        await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
    else:
        await abort_exhausted(context, str(exc), exc.retry_after_s)
    raise AssertionError("unreachable: context.abort raises")  # pragma: no cover


class _Serving:
    """One check being answered (:meth:`DocumentCheckService.serving`): counted in ``active``
    while it runs, in ``cancelled`` when it ends cancelled; ``idle`` is set when none is left. A
    class rather than a generator-based context manager: 0.6 against 2.2 µs a call."""

    __slots__ = ("_service",)

    def __init__(self, service: DocumentCheckService) -> None:
        self._service = service

    def __enter__(self) -> None:
        service = self._service
        service.active += 1
        service.idle.clear()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        service = self._service
        if kind is not None and issubclass(kind, asyncio.CancelledError):
            service.cancelled += 1
        service.active -= 1
        if not service.active:
            service.idle.set()


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
        coalesce_s: float = 0.0,
    ) -> None:
        self._hub = hub
        self._iapi = iapi
        self._max_manifest = max_manifest
        #: The steps around the hub (also the web console's).
        self.pipeline = CheckPipeline(
            hub, policy=policy, audit=audit, metrics=metrics, max_in_flight=max_in_flight
        )
        #: gRPC message limit: a manifest or PAXLST whose answer could exceed it is refused.
        self._max_message_bytes = max_message_bytes
        #: RPCs being answered; ``idle`` is set when there are none (for draining).
        self.active = 0
        #: RPCs cancelled before they were answered (by a drain's end, or by their caller).
        self.cancelled = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self._serving = _Serving(self)
        #: Single-check answers sent together while the loop is saturated (``[hub] coalesce_ms``).
        self.coalescer = AnswerCoalescer(coalesce_s)

    def reconfigure(
        self,
        *,
        max_manifest: int,
        max_in_flight: int,
        policy: AccessPolicy | None,
        coalesce_s: float | None = None,
    ) -> None:
        """New limits from a configuration reload; calls under way keep what they admitted."""
        self._max_manifest = max_manifest
        self.pipeline.reconfigure(max_in_flight=max_in_flight, policy=policy)
        if coalesce_s is not None:
            self.coalescer.reconfigure(coalesce_s)

    def serving(self) -> _Serving:
        """Count a check being answered, as a ``with`` block (``active``, ``idle``,
        ``cancelled``: what a drain waits for)."""
        return self._serving

    # The RPCs: each counted while it is answered, so a drain knows when the last one is out.

    async def CheckDocument(
        self, request: check_pb2.CheckDocumentRequest, context: Ctx
    ) -> check_pb2.CheckDocumentResponse:
        with self.serving():
            who = current_caller()
            try:
                item, card = self._document_in(request)
            except ValidationError as exc:
                await abort_invalid(context, exc.violations)
            remaining = context.time_remaining()
            try:
                out = await self.pipeline.run(
                    CheckRequest(who, Channel.DOCUMENT, (item,), remaining, card), _document_out
                )
            except (RateLimited, Overloaded, Unrecorded) as exc:
                await _refused(context, exc)
            held = self.coalescer.hold(context.time_remaining())
            if held is not None:
                await held
            return out

    def _document_in(
        self, request: check_pb2.CheckDocumentRequest
    ) -> tuple[Item, CardQuery | None]:
        """The document (or MRZ) and the card of a CheckDocument request; raise ValidationError
        naming the fields at fault."""
        item: DocumentQuery | ScannedDocument
        if request.mrz_lines and request.HasField("document"):
            raise ValidationError(
                [FieldViolation("mrz_lines", "give either document or mrz_lines")]
            )
        if request.mrz_lines:
            item = scanned_from_lines(request.mrz_lines, prefix="mrz_lines")
        elif request.HasField("document"):
            item = query_from_document(request.document)
        else:
            raise ValidationError([FieldViolation("document", "required (or mrz_lines)")])
        if request.HasField("abtc"):
            passport = item.query if isinstance(item, ScannedDocument) else item
            card = card_query_from_pb(
                request.abtc, request.checking_economy, passport, self._hub.policy.economy
            )
            return item, card
        if request.checking_economy:
            raise ValidationError([FieldViolation("checking_economy", "only with an abtc card")])
        return item, None

    async def CheckManifest(  # type: ignore[override]  # the answer leaves encoded
        self, request: check_pb2.CheckManifestRequest, context: Ctx
    ) -> bytes:
        with self.serving():
            who = current_caller()
            n = len(request.travellers)
            if n > self._max_manifest:
                await abort_invalid(
                    context,
                    [FieldViolation("travellers", f"{n} travellers; at most {self._max_manifest}")],
                )
            size = _answer_size(request, who.view is View.FULL, len(self._hub.providers),
                                self._max_message_bytes)  # fmt: skip
            if size > self._max_message_bytes:
                # Refused before anything is checked, charged or audited: an answer the hub
                # could not send would leave checks recorded that nobody received.
                await abort_invalid(
                    context,
                    [FieldViolation("travellers", f"the answer for {n} travellers would exceed "
                                    f"the hub's message limit ({self._max_message_bytes} bytes): "
                                    "send the manifest in smaller parts")],
                )  # fmt: skip
            turn = TURN if self._hub.gives_turns() else 0
            try:
                return await self.pipeline.run(
                    CheckRequest(
                        who,
                        Channel.MANIFEST,
                        await _travellers_in(request, turn),
                        context.time_remaining(),
                        reference=new_check_id(),
                    ),
                    functools.partial(_manifest_out, turn=turn),
                )
            except (RateLimited, Overloaded, Unrecorded) as exc:
                await _refused(context, exc)

    async def CheckPaxlst(
        self, request: check_pb2.CheckPaxlstRequest, context: Ctx
    ) -> check_pb2.CheckPaxlstResponse:
        with self.serving():
            who = current_caller()
            if not request.message:
                await abort_invalid(context, [FieldViolation("message", "required")])
            deadline = self._hub.deadline(context.time_remaining())
            pipeline = self.pipeline

            async def record(answer: IapiAnswer) -> None:
                # Every checked answer is audited, resends included; the reference ties the
                # entries to the airline's RFF+TN and to this answer.
                results = [r for p in answer.passengers for r in p.results]
                reference = f"{answer.answer_id} TN {answer.transaction_ref}" + (
                    " RESEND" if answer.resend else ""
                )
                await pipeline.record(who, Channel.PAXLST, results, reference)

            try:
                answer = await self._iapi.answer(
                    request.message,
                    deadline,
                    caller=who.caller.identity,
                    senders=who.rule.senders if who.rule is not None else (),
                    admit=lambda n: pipeline.charge(who, n),
                    record=record,
                    max_answer_bytes=self._max_message_bytes,
                    full_results=who.view is View.FULL,
                )
            except (RateLimited, Overloaded, Unrecorded) as exc:
                await _refused(context, exc)
            return paxlst_answer_to_pb(answer, who.view)


def _document_out(outcome: CheckOutcome) -> check_pb2.CheckDocumentResponse:
    response = check_pb2.CheckDocumentResponse()
    result_to_pb(outcome.results[0], response.result, outcome.view)
    return response


async def _manifest_out(outcome: CheckOutcome, turn: int = 0) -> bytes:
    """The manifest's answer, encoded; its id is the reference its audit entries carry.
    Written ``turn`` results at a time (:data:`~rmas.hub.TURN` while single checks are coming;
    0: all at once), giving the loop a turn in between.

    Encoded here, just after it is built, not by gRPC once the call returns: with an audit
    trail the answer waits for the commit first, while other calls run, and upb then walked a
    cold message of hundreds of results (docs/benchmarks.md, session 11). The hub's
    interceptors send ``bytes`` as they are (rmas.grpckit.interceptors).
    """
    response = check_pb2.CheckManifestResponse(manifest_id=outcome.reference)
    results, view = outcome.results, outcome.view
    async for part in in_turns(len(results), turn):
        results_to_pb(results[part], response, view)
    return response.SerializeToString()


async def _travellers_in(request: check_pb2.CheckManifestRequest, turn: int = 0) -> list[Item]:
    """A manifest's documents, in order; a bad one becomes an InvalidDocument (answered
    INVALID_DATA with the rest) naming ``travellers[i].<field>``. Read ``turn`` at a time
    (0: all at once), giving the loop a turn in between."""
    travellers = request.travellers
    items: list[Item] = []
    n = len(travellers)
    async for part in in_turns(n, turn):
        # All of them: the message's own list (a slice of it costs 0.1-0.2 µs a traveller).
        whole = part.start == 0 and part.stop >= n
        _read_travellers(travellers if whole else travellers[part], part.start, items)
    return items


def _read_travellers(
    travellers: Sequence[check_pb2.Traveller], start: int, items: list[Item]
) -> None:
    """Append to ``items`` the documents of ``travellers`` (from position ``start``)."""
    append = items.append
    for i, t in enumerate(travellers, start):
        ref = t.ref
        if len(ref) <= MAX_REF_LENGTH and not t.mrz_lines:
            # The usual line first: a state and a number, both valid (an absent document has
            # neither, so it falls through to be named below).
            q = plain_from_pb(t.document, ref)
            if q is not None:
                append(q)
                continue
        if len(ref) > MAX_REF_LENGTH:
            items.append(InvalidDocument(ref[:MAX_REF_LENGTH], (FieldViolation(
                f"travellers[{i}].ref", f"longer than {MAX_REF_LENGTH} characters"),)))  # fmt: skip
        elif t.mrz_lines:
            items.append(
                scanned_or_invalid(t.mrz_lines, ref=ref, prefix=f"travellers[{i}].mrz_lines")
            )
        elif not t.HasField("document"):
            items.append(
                InvalidDocument(ref, (FieldViolation(f"travellers[{i}].document", "required"),))
            )
        else:
            items.append(document_from_pb(t.document, ref=ref, prefix=f"travellers[{i}].document"))


# Upper bounds of what one result adds to an answer beyond what its request carried (the
# document it echoes is in the request's own size): an officer's result with its warnings, and
# per provider a source answer with its record, contact and error texts (each bounded); an
# MRZ's evidence. An airline's result is a check id and a directive.
_FULL_RESULT_BYTES = 1200
_SOURCE_BYTES = 800
_MRZ_EVIDENCE_BYTES = 3000
_DIRECTIVE_RESULT_BYTES = 64


def _answer_size(
    request: check_pb2.CheckManifestRequest, full: bool, providers: int, limit: int
) -> int:
    """A bound on the size of a manifest's answer, known before anything is checked. The
    scanned travellers are counted only when the bound with every traveller scanned is over
    ``limit`` (counting them cost 0.2 µs a traveller)."""
    n = len(request.travellers)
    if not full:
        return n * _DIRECTIVE_RESULT_BYTES + n * MAX_REF_LENGTH
    size = request.ByteSize() + n * (_FULL_RESULT_BYTES + _SOURCE_BYTES * providers)
    if size + n * _MRZ_EVIDENCE_BYTES <= limit:
        return size + n * _MRZ_EVIDENCE_BYTES
    return size + sum(1 for t in request.travellers if t.mrz_lines) * _MRZ_EVIDENCE_BYTES
