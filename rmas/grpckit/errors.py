"""Rich gRPC errors: INVALID_ARGUMENT with google.rpc.BadRequest field violations, and
RESOURCE_EXHAUSTED with google.rpc.RetryInfo (when to try again)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from rmas.errors import FieldViolation

__all__ = [
    "MAX_DETAIL_BYTES",
    "abort_exhausted",
    "abort_invalid",
    "bad_request_status",
    "violations_text",
]

#: An error travels in trailing metadata, which peers cap (gRPC's default: 8 KiB for all of it):
#: the BadRequest detail is cut at this size (base64 makes it a third larger) and the message
#: at MAX_MESSAGE_CHARS, whatever the size of the input that caused them.
MAX_DETAIL_BYTES = 3000
MAX_MESSAGE_CHARS = 1000
_MAX_FIELD = 120
_MAX_DESCRIPTION = 300


def bad_request_status(violations: Sequence[FieldViolation], message: str) -> grpc.Status:
    detail = error_details_pb2.BadRequest()
    for i, v in enumerate(violations):
        if detail.ByteSize() > MAX_DETAIL_BYTES:
            detail.field_violations.add(
                field="", description=f"and {len(violations) - i} more problems not listed"
            )
            break
        detail.field_violations.add(
            field=v.field[:_MAX_FIELD], description=v.description[:_MAX_DESCRIPTION]
        )
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 1] + "…"
    packed = any_pb2.Any()
    packed.Pack(detail)
    status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=message, details=[packed])
    result: grpc.Status = rpc_status.to_status(status)
    return result


def violations_text(violations: Sequence[FieldViolation]) -> str:
    """The status message of an INVALID_ARGUMENT: every field and what is wrong with it."""
    return "; ".join(f"{v.field}: {v.description}" for v in violations)


async def abort_invalid(
    context: grpc.aio.ServicerContext[object, object],
    violations: Sequence[FieldViolation],
    message: str = "",
) -> NoReturn:
    """End the call with INVALID_ARGUMENT naming every bad field."""
    text = message or violations_text(violations)
    # grpc-stubs lags grpc.aio here: abort_with_status exists on the aio context since 1.38.
    await context.abort_with_status(bad_request_status(violations, text))  # type: ignore[attr-defined]
    raise AssertionError("abort_with_status returned")  # pragma: no cover


async def abort_exhausted(
    context: grpc.aio.ServicerContext[object, object], message: str, retry_after_s: float = 0.0
) -> NoReturn:
    """End the call with RESOURCE_EXHAUSTED; ``retry_after_s`` > 0 adds a RetryInfo detail."""
    details = []
    if retry_after_s > 0:
        info = error_details_pb2.RetryInfo()
        info.retry_delay.FromNanoseconds(int(retry_after_s * 1e9))
        packed = any_pb2.Any()
        packed.Pack(info)
        details.append(packed)
    status = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message=message, details=details)
    await context.abort_with_status(rpc_status.to_status(status))  # type: ignore[attr-defined]
    raise AssertionError("abort_with_status returned")  # pragma: no cover
