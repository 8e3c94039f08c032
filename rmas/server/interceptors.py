"""The shape every rmas server interceptor shares: wrap a method's handler once, reuse it.

grpc.aio server interceptors see only the method name and metadata, not the call (its TLS peer,
its outcome), so rmas's interceptors wrap the method's handler and do their work inside the call,
where the servicer context exists. Building a wrapped handler per call would cost on every RPC;
:class:`HandlerInterceptor` builds one per method and hands it out again while the server keeps
returning the same handler for that method.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc

__all__ = ["Ctx", "Handler", "HandlerInterceptor"]

Ctx = grpc.aio.ServicerContext[Any, Any]

if TYPE_CHECKING:  # grpc-stubs makes it generic; at run time it is a plain class
    Handler = grpc.RpcMethodHandler[Any, Any]
else:
    Handler = grpc.RpcMethodHandler


class HandlerInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Subclasses say how to wrap a handler (:meth:`wrap`), and may note calls to methods the
    server does not have (:meth:`unhandled`)."""

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
