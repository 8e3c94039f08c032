"""The shape every rmas server interceptor shares: wrap a method's handler once, reuse it.

grpc.aio server interceptors see only the method name and metadata, not the call (its TLS peer,
its outcome), so rmas's interceptors wrap the method's handler and do their work inside the call,
where the servicer context exists. Building a wrapped handler per call would cost on every RPC;
:class:`HandlerInterceptor` builds one per method and hands it out again while the server keeps
returning the same handler for that method.

:func:`wrap_behavior` is the one place a handler's behaviour is wrapped, for every kind of
method (unary or streaming requests, unary or streaming answers; a streaming answer written by an
async generator or by a coroutine that writes to the context). An interceptor says what to do
before the behaviour (``before``: a plain function, no extra ``await`` per call; it raises
:class:`Refused` to end the call) and after it (``after``, given the behaviour's exception).
A wrapped unary answer may also be returned already encoded, as ``bytes`` (:func:`_encoded_or`).
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from rmas.errors import FieldViolation
from rmas.grpckit.errors import bad_request_status, violations_text

__all__ = [
    "Ctx",
    "Handler",
    "HandlerInterceptor",
    "Refused",
    "Undecodable",
    "wrap_behavior",
]

Ctx = grpc.aio.ServicerContext[Any, Any]

if TYPE_CHECKING:  # grpc-stubs makes it generic; at run time it is a plain class
    Handler = grpc.RpcMethodHandler[Any, Any]
else:
    Handler = grpc.RpcMethodHandler

S = TypeVar("S")

Deserializer = Callable[[bytes], Any]
Serializer = Callable[[Any], bytes]


class Refused(Exception):
    """Raised by a ``before`` hook: the call ends with ``code`` (or a rich ``status``) and its
    behaviour never runs."""

    def __init__(
        self, code: grpc.StatusCode, message: str, status: grpc.Status | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    @classmethod
    def invalid(cls, violations: Sequence[FieldViolation]) -> Refused:
        """INVALID_ARGUMENT naming every bad field (google.rpc.BadRequest)."""
        text = violations_text(violations)
        return cls(grpc.StatusCode.INVALID_ARGUMENT, text, bad_request_status(violations, text))

    async def end(self, context: Ctx) -> None:
        if self.status is not None:
            # grpc-stubs lags grpc.aio: abort_with_status exists on the aio context since 1.38.
            await context.abort_with_status(self.status)  # type: ignore[attr-defined]
        await context.abort(self.code, self.message)


@dataclass(frozen=True, slots=True)
class Undecodable:
    """A request whose bytes are not the method's message (or hold invalid UTF-8): what a
    ``safe_requests`` handler hands its ``before`` hook instead of raising in gRPC's decoder."""

    reason: str


def _safe(deserializer: Deserializer | None) -> Deserializer | None:
    """Decode a request without raising: gRPC would answer UNKNOWN and log a traceback for every
    undecodable request; the ``before`` hook answers INVALID_ARGUMENT instead."""
    if deserializer is None:
        return None

    def decode(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # protobuf's DecodeError, or whatever a serializer raises
            return Undecodable(str(exc)[:200] or type(exc).__name__)

    return decode


_MAKERS = {
    "unary_unary": grpc.unary_unary_rpc_method_handler,
    "unary_stream": grpc.unary_stream_rpc_method_handler,
    "stream_unary": grpc.stream_unary_rpc_method_handler,
    "stream_stream": grpc.stream_stream_rpc_method_handler,
}


def wrap_behavior(
    handler: Handler,
    before: Callable[[Any, Ctx], S],
    after: Callable[[Ctx, S, BaseException | None], None] | None = None,
    *,
    safe_requests: bool = False,
) -> Handler:
    """A handler like ``handler`` whose behaviour runs ``before(request, context)`` first (its
    result is handed to ``after``), then the behaviour, then ``after(context, state, error)``
    (``error`` None when the behaviour returned or its stream ended, the exception otherwise:
    aborts too; it is raised again).

    For a streaming request ``request`` is the request iterator. ``safe_requests``: a unary
    request that cannot be decoded reaches ``before`` as an :class:`Undecodable`, not as an
    UNKNOWN status from gRPC's decoder.
    """
    h: Any = handler
    kind = next(k for k in _MAKERS if getattr(h, k) is not None)
    inner = getattr(h, kind)
    wrapped: Callable[..., Any]
    if inspect.isasyncgenfunction(inner):

        async def generator(request: Any, context: Ctx) -> AsyncIterator[Any]:
            try:
                state = before(request, context)
            except Refused as refused:
                await refused.end(context)
                return
            if after is None:
                async for item in inner(request, context):
                    yield item
                return
            try:
                async for item in inner(request, context):
                    yield item
            except BaseException as exc:  # aborts and a caller leaving (GeneratorExit) too
                after(context, state, exc)
                raise
            after(context, state, None)

        wrapped = generator
    else:

        async def call(request: Any, context: Ctx) -> Any:
            try:
                state = before(request, context)
            except Refused as refused:
                await refused.end(context)
                raise AssertionError("abort returned") from None  # pragma: no cover
            if after is None:
                return await inner(request, context)
            try:
                response = await inner(request, context)
            except BaseException as exc:  # aborts too: note, then let gRPC answer as before
                after(context, state, exc)
                raise
            after(context, state, None)
            return response

        wrapped = call
    deserializer = h.request_deserializer
    if safe_requests and kind.startswith("unary_"):
        deserializer = _safe(deserializer)
    serializer = h.response_serializer
    if kind.endswith("_unary"):
        serializer = _encoded_or(serializer)
    made: Handler = _MAKERS[kind](wrapped, deserializer, serializer)
    return made


def _encoded_or(serializer: Serializer | None) -> Serializer | None:
    """A unary answer's serializer that sends an answer the behaviour returned already encoded
    (``bytes``) as it is: a large answer encoded while its objects are still in the CPU's caches,
    rather than by gRPC after it waited for the audit commit (the manifest's, rmas.server)."""
    if serializer is None or serializer in _ENCODED_OR:
        return serializer  # none, or already one (a handler wrapped by a second interceptor)
    encode = serializer

    def serialize(answer: Any) -> bytes:
        return answer if answer.__class__ is bytes else encode(answer)

    _ENCODED_OR.add(serialize)
    return serialize


#: The serializers :func:`_encoded_or` made: a handler wrapped again keeps its one.
_ENCODED_OR: weakref.WeakSet[Serializer] = weakref.WeakSet()


class HandlerInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Subclasses say how to wrap a handler (:meth:`wrap`, usually with :func:`wrap_behavior`),
    and may note calls to methods the server does not have (:meth:`unhandled`)."""

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(handler_call_details)
        if handler is None:
            self.unhandled()
            return handler
        method: str = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self.wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def wrap(self, method: str, handler: Handler) -> Handler:
        raise NotImplementedError

    def unhandled(self) -> None:
        """A call to a method this server does not serve (gRPC answers UNIMPLEMENTED)."""
