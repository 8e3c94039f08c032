"""The ``rmas.v1.DocumentCheck`` servicer: translate, ask the hub, translate back."""

from __future__ import annotations

import grpc

from rmas.documents import DocumentQuery
from rmas.errors import FieldViolation, ValidationError
from rmas.hub import Hub, InvalidDocument, Item, ScannedDocument, new_check_id
from rmas.iapi.channel import IapiChannel
from rmas.server.errors import abort_invalid
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

__all__ = ["DocumentCheckService"]

Ctx = grpc.aio.ServicerContext[object, object]


class DocumentCheckService(check_pb2_grpc.DocumentCheckServicer):
    def __init__(self, hub: Hub, iapi: IapiChannel, *, max_manifest: int) -> None:
        self._hub = hub
        self._iapi = iapi
        self._max_manifest = max_manifest

    async def CheckDocument(
        self, request: check_pb2.CheckDocumentRequest, context: Ctx
    ) -> check_pb2.CheckDocumentResponse:
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
        deadline = self._hub.deadline(context.time_remaining())
        (result,) = await self._hub.check([item], deadline)
        response = check_pb2.CheckDocumentResponse()
        result_to_pb(result, response.result)
        return response

    async def CheckManifest(
        self, request: check_pb2.CheckManifestRequest, context: Ctx
    ) -> check_pb2.CheckManifestResponse:
        n = len(request.travellers)
        if n > self._max_manifest:
            await abort_invalid(
                context,
                [FieldViolation("travellers", f"{n} travellers; at most {self._max_manifest}")],
            )
        items: list[Item] = []
        for i, t in enumerate(request.travellers):
            prefix = f"travellers[{i}]"
            if t.mrz_lines:
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
        response = check_pb2.CheckManifestResponse(manifest_id=new_check_id())
        results_to_pb(results, response)
        return response

    async def CheckPaxlst(
        self, request: check_pb2.CheckPaxlstRequest, context: Ctx
    ) -> check_pb2.CheckPaxlstResponse:
        if not request.message:
            await abort_invalid(context, [FieldViolation("message", "required")])
        deadline = self._hub.deadline(context.time_remaining())
        answer = await self._iapi.answer(request.message, deadline)
        return paxlst_answer_to_pb(answer)
