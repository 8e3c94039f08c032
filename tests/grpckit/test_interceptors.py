"""``wrap_behavior`` under both of the hub's interceptors, for every kind of method.

A real grpc.aio server on a loopback port serves a small service with one method of each kind
(a unary answer; a server stream written by an async generator and by a coroutine writing to the
context; a client stream; a bidirectional stream), behind the metrics interceptor and the access
interceptor, in the hub's order. Each method answers with the caller the access interceptor
admitted (the context variable its ``before`` step set), and the metrics interceptor's counts
are read after the calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest

from rmas.client import field_violations
from rmas.grpckit.auth import AccessInterceptor, current_caller
from rmas.security.access import AccessPolicy, CallerRule, Role
from rmas.server.rpc_metrics import MetricsInterceptor

SERVICE = "rmas.test.Kinds"


def _decode(data: bytes) -> str:
    return data.decode("utf-8")  # strict: invalid UTF-8 raises, as protobuf's decoder does


def _encode(text: str | bytes) -> bytes:
    # grpc.aio's server encodes a str answer itself before its serializer sees it.
    return text if isinstance(text, bytes) else text.encode("utf-8")


def _who() -> str:
    return current_caller().caller.identity


async def unary(request: str, context: Any) -> str:
    return f"{request}:{_who()}"


async def generated(request: str, context: Any) -> AsyncIterator[str]:
    for i in range(3):
        yield f"{request}{i}:{_who()}"


async def written(request: str, context: Any) -> None:
    for i in range(2):
        await context.write(f"{request}{i}:{_who()}")


async def gathered(requests: AsyncIterator[str], context: Any) -> str:
    return "+".join([r async for r in requests]) + f":{_who()}"


async def chat(requests: AsyncIterator[str], context: Any) -> AsyncIterator[str]:
    async for r in requests:
        yield f"{r.upper()}:{_who()}"


def _handlers() -> grpc.GenericRpcHandler:
    kw: dict[str, Any] = {"request_deserializer": _decode, "response_serializer": _encode}
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary, **kw),
            "Generated": grpc.unary_stream_rpc_method_handler(generated, **kw),
            "Written": grpc.unary_stream_rpc_method_handler(written, **kw),
            "Gathered": grpc.stream_unary_rpc_method_handler(gathered, **kw),
            "Chat": grpc.stream_stream_rpc_method_handler(chat, **kw),
        },
    )


@asynccontextmanager
async def serving(
    policy: AccessPolicy | None,
) -> AsyncIterator[tuple[grpc.aio.Channel, MetricsInterceptor]]:
    metrics = MetricsInterceptor()
    server = grpc.aio.server(interceptors=[metrics, AccessInterceptor(policy)])
    server.add_generic_rpc_handlers((_handlers(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel, metrics
    finally:
        await server.stop(0)


def _method(channel: grpc.aio.Channel, kind: str, name: str) -> Any:
    make = getattr(channel, kind)
    return make(f"/{SERVICE}/{name}", request_serializer=_encode, response_deserializer=_decode)


def _codes(metrics: MetricsInterceptor) -> dict[str, dict[str, int]]:
    return {
        st.method: {code.name: n for code, n in st.codes.items()} for st in metrics.methods.values()
    }


def _requests(*items: str) -> Iterator[str]:
    yield from items


async def test_every_kind_of_method_runs_behind_both_interceptors() -> None:
    async with serving(None) as (channel, metrics):
        one = await _method(channel, "unary_unary", "Unary")("a", timeout=5)
        gen = [r async for r in _method(channel, "unary_stream", "Generated")("b", timeout=5)]
        wrote = [r async for r in _method(channel, "unary_stream", "Written")("c", timeout=5)]
        summed = await _method(channel, "stream_unary", "Gathered")(_requests("x", "y"), timeout=5)
        chat = _method(channel, "stream_stream", "Chat")(_requests("p", "q"), timeout=5)
        chatted = [r async for r in chat]
    who = "insecure:ipv4:127.0.0.1"  # development mode: the peer's address without its port
    assert one == f"a:{who}"
    assert gen == [f"b{i}:{who}" for i in range(3)]
    assert wrote == [f"c{i}:{who}" for i in range(2)]
    assert summed == f"x+y:{who}"
    assert chatted == [f"P:{who}", f"Q:{who}"]
    assert _codes(metrics) == {
        name: {"OK": 1} for name in ("Unary", "Generated", "Written", "Gathered", "Chat")
    }


@pytest.mark.parametrize(("kind", "name"), [("unary_unary", "Unary"),
                                            ("unary_stream", "Generated"),
                                            ("unary_stream", "Written")])  # fmt: skip
async def test_an_undecodable_request_is_invalid_argument_naming_the_request(
    kind: str, name: str
) -> None:
    async with serving(None) as (channel, metrics):
        raw = getattr(channel, kind)(f"/{SERVICE}/{name}")  # bytes in, bytes out
        call = raw(b"\xff\xfe", timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await (_collect(call) if kind == "unary_stream" else call)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    [(field, description)] = field_violations(caught.value)
    assert field == "request"
    assert description.startswith("cannot be decoded: ")
    assert _codes(metrics) == {name: {"INVALID_ARGUMENT": 1}}


async def test_a_refused_call_of_any_kind_never_runs_and_is_counted() -> None:
    # A policy without TLS: no certificate identity, so every call is UNAUTHENTICATED.
    policy = AccessPolicy([CallerRule("rmas://officer/*", Role.OFFICER)])
    async with serving(policy) as (channel, metrics):
        calls = {
            "Unary": lambda: _method(channel, "unary_unary", "Unary")("a", timeout=5),
            "Generated": lambda: _collect(_method(channel, "unary_stream", "Generated")("b")),
            "Written": lambda: _collect(_method(channel, "unary_stream", "Written")("c")),
            "Gathered": lambda: _method(channel, "stream_unary", "Gathered")(_requests("x")),
            "Chat": lambda: _collect(_method(channel, "stream_stream", "Chat")(_requests("p"))),
        }
        for name, call in calls.items():
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call()
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, name
    assert _codes(metrics) == {name: {"UNAUTHENTICATED": 1} for name in calls}


async def _collect(call: Any) -> list[str]:
    return [r async for r in call]


async def test_a_unary_answer_returned_encoded_is_sent_as_it_is() -> None:
    # The method's serializer takes only str (as a protobuf one takes only its message): an
    # answer the behaviour encoded itself (the manifest's) must reach the caller untouched.
    async def answer(request: str, context: Any) -> str | bytes:
        return f"{request}:{_who()}".encode() if request == "enc" else f"{request}:{_who()}"

    def strict(text: str) -> bytes:
        return text.encode("utf-8")  # bytes have no .encode: raises

    handlers = grpc.method_handlers_generic_handler(
        SERVICE,
        {"Unary": grpc.unary_unary_rpc_method_handler(answer, _decode, strict)},  # type: ignore[arg-type]
    )
    metrics = MetricsInterceptor()
    server = grpc.aio.server(interceptors=[metrics, AccessInterceptor(None)])
    server.add_generic_rpc_handlers((handlers,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = _method(channel, "unary_unary", "Unary")
            encoded, plain = await call("enc", timeout=5), await call("msg", timeout=5)
    finally:
        await server.stop(0)
    who = "insecure:ipv4:127.0.0.1"
    assert (encoded, plain) == (f"enc:{who}", f"msg:{who}")
    assert _codes(metrics) == {"Unary": {"OK": 2}}
