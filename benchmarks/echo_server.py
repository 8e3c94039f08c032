"""The bare-stack reference: a grpc.aio unary echo server with nothing behind it.

Run as ``python -m benchmarks.echo_server PORT``; it answers every call to ``/bench.Echo/Echo`` with
a fixed reply of the size given by the request's first 4 bytes (big-endian), so the reference moves
the same bytes as the product call it is compared with.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import grpc


async def _serve(port: int) -> None:
    cache: dict[int, bytes] = {}

    async def echo(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        size = int.from_bytes(request[:4], "big") if len(request) >= 4 else len(request)
        reply = cache.get(size)
        if reply is None:
            reply = cache[size] = b"x" * size
        return reply

    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ]
    )
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(0.5)


def main() -> None:
    import uvloop

    uvloop.run(_serve(int(sys.argv[1])))


if __name__ == "__main__":
    main()
