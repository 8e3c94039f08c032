"""The bare-stack reference: a grpc.aio echo server with nothing behind it.

``python -m benchmarks.echo_server PORT PAD_SINGLE PAD_ITEM [HOLD_MS]`` serves the hub's own method
names, so the reference moves the same messages as the product:

- ``CheckDocument`` echoes the request's document in a response padded to ``PAD_SINGLE`` bytes
  of warnings (the size of a real answer);
- ``CheckManifest`` echoes each traveller as one result (ref + document), each padded with
  ``PAD_ITEM`` bytes: the per-item work any unary echo of a list does, and nothing more.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import grpc

from rmas.server.coalesce import AnswerCoalescer
from rmas.v1 import check_pb2, check_pb2_grpc


class Echo(check_pb2_grpc.DocumentCheckServicer):
    def __init__(self, pad_single: int, pad_item: int, hold_s: float = 0.0) -> None:
        self.pad_single = "x" * pad_single
        self.pad_item = "x" * pad_item
        self.coalescer = AnswerCoalescer(hold_s) if hold_s else None

    async def CheckDocument(
        self, request: check_pb2.CheckDocumentRequest, context: grpc.aio.ServicerContext
    ) -> check_pb2.CheckDocumentResponse:
        out = check_pb2.CheckDocumentResponse()
        out.result.document.CopyFrom(request.document)
        out.result.warnings.append(self.pad_single)
        if self.coalescer is not None:
            held = self.coalescer.hold(context.time_remaining())
            if held is not None:
                await held
        return out

    async def CheckManifest(
        self, request: check_pb2.CheckManifestRequest, context: object
    ) -> check_pb2.CheckManifestResponse:
        out = check_pb2.CheckManifestResponse()
        add = out.results.add
        pad = self.pad_item
        for t in request.travellers:
            r = add()
            r.ref = t.ref
            r.document.CopyFrom(t.document)
            r.warnings.append(pad)
        return out


async def _serve(port: int, pad_single: int, pad_item: int, hold_s: float = 0.0) -> None:
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ]
    )
    check_pb2_grpc.add_DocumentCheckServicer_to_server(Echo(pad_single, pad_item, hold_s), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(0.5)


def main() -> None:
    import uvloop

    hold_s = float(sys.argv[4]) / 1000.0 if len(sys.argv) > 4 else 0.0
    uvloop.run(_serve(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), hold_s))


if __name__ == "__main__":
    main()
