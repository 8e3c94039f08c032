"""``rmas iapi watch`` (an airline's subscription to its status changes) and ``rmas override``
(a government officer's override of a DO_NOT_BOARD). Both speak to a hub's ``DocumentCheck``
with the same TLS and identity options as the other client commands.

``rmas iapi watch`` prints each status change as it arrives — its CUSRES (``BGM+132``), one
interchange a line, or with ``--json`` one JSON object a line (``change_id``, ``flight``,
``departure``, ``passenger_ref``, ``booking_ref``, ``directive``, ``check_ids``, ``unchecked``,
``overridden``, ``attempt``) — and acknowledges it once printed (``--no-ack``: never). A lost
connection is retried with backoff; unacknowledged changes come again on the new stream.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

from rmas.client import add_tls_arguments
from rmas.runtime import run_async

__all__ = ["add_override_parser", "is_watch", "watch_main"]


def is_watch(argv: Sequence[str]) -> bool:
    """Whether the command line is ``rmas iapi watch ...`` (``rmas iapi FILE`` sends a file: a
    file named ``watch`` is sent as ``./watch``)."""
    return len(argv) >= 2 and argv[0] == "iapi" and argv[1] == "watch"


def _watch_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rmas iapi watch",
        description="subscribe to this airline's status changes, print and acknowledge each",
    )
    p.add_argument("--hub", default="127.0.0.1:50051", help="hub address HOST:PORT")
    p.add_argument("--json", action="store_true", help="one JSON object per change")
    p.add_argument("--no-ack", action="store_true", help="print without acknowledging")
    p.add_argument("--count", type=int, default=0, help="stop after N changes (0: never)")
    add_tls_arguments(p)
    return p


def watch_main(argv: Sequence[str]) -> int:
    args = _watch_parser().parse_args(list(argv))
    return int(run_async(_watch(args)))


def _change_dict(ch: Any) -> dict[str, Any]:
    from rmas.v1 import check_pb2

    return {
        "change_id": ch.change_id,
        "flight": ch.flight,
        "departure": ch.departure,
        "passenger_ref": ch.passenger_ref,
        "booking_ref": ch.booking_ref,
        "directive": check_pb2.Directive.Name(ch.directive).removeprefix("DIRECTIVE_"),
        "check_ids": list(ch.check_ids),
        "unchecked": ch.unchecked,
        "overridden": ch.overridden,
        "attempt": ch.attempt,
    }


async def _watch(args: argparse.Namespace) -> int:
    import grpc

    from rmas.client import hub_channel, rpc_error_text, rpc_exit_code
    from rmas.v1 import check_pb2, check_pb2_grpc

    seen = 0
    delay = 0.5
    while True:
        async with hub_channel(args.hub, args) as channel:
            stub = check_pb2_grpc.DocumentCheckStub(channel)
            try:
                async for ch in stub.WatchStatusChanges(check_pb2.WatchStatusChangesRequest()):
                    delay = 0.5
                    if args.json:
                        print(json.dumps(_change_dict(ch)), flush=True)
                    else:
                        sys.stdout.buffer.write(ch.cusres.replace(b"\n", b"") + b"\n")
                        sys.stdout.flush()
                    if not args.no_ack:
                        await stub.AckStatusChange(
                            check_pb2.AckStatusChangeRequest(change_id=ch.change_id), timeout=10
                        )
                    seen += 1
                    if args.count and seen >= args.count:
                        return 0
            except grpc.aio.AioRpcError as exc:
                if exc.code() is not grpc.StatusCode.UNAVAILABLE:
                    print(f"rmas iapi watch: {rpc_error_text(exc)}", file=sys.stderr)
                    return rpc_exit_code(exc)
                print(f"rmas iapi watch: {rpc_error_text(exc)}; retrying", file=sys.stderr)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 30.0)


def add_override_parser(sub: Any) -> None:
    p = sub.add_parser(
        "override",
        help="a government officer overrides a DO_NOT_BOARD for one passenger on one flight",
    )
    p.add_argument("--hub", default="127.0.0.1:50051", help="hub address HOST:PORT")
    p.add_argument("--check-id", required=True, help="a check id of the passenger's answer")
    p.add_argument("--reason", required=True, help="why (recorded in the audit trail)")
    p.add_argument("--expires", default="", help="ISO 8601 (default: the flight's end)")
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--json", action="store_true")
    add_tls_arguments(p)
    p.set_defaults(func=_cmd_override)


def _cmd_override(args: argparse.Namespace) -> int:
    return int(run_async(_override(args)))


async def _override(args: argparse.Namespace) -> int:
    import grpc

    from rmas.client import hub_channel, rpc_error_text, rpc_exit_code
    from rmas.v1 import check_pb2, check_pb2_grpc

    req = check_pb2.OverrideDirectiveRequest(
        check_id=args.check_id, reason=args.reason, expires=args.expires
    )
    async with hub_channel(args.hub, args) as channel:
        try:
            r = await check_pb2_grpc.DocumentCheckStub(channel).OverrideDirective(
                req, timeout=args.timeout
            )
        except grpc.aio.AioRpcError as exc:
            print(f"rmas override: {rpc_error_text(exc)}", file=sys.stderr)
            return rpc_exit_code(exc)
    original = check_pb2.Directive.Name(r.original).removeprefix("DIRECTIVE_")
    now = check_pb2.Directive.Name(r.directive).removeprefix("DIRECTIVE_")
    summary = {
        "change_id": r.change_id,
        "flight": r.flight,
        "passenger_ref": r.passenger_ref,
        "booking_ref": r.booking_ref,
        "original": original,
        "directive": now,
        "expires": r.expires,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        who = r.passenger_ref or r.booking_ref
        print(
            f"overridden: flight {r.flight or '-'} passenger {who}: {original} -> {now} "
            f"until {r.expires}; status change {r.change_id or '-'}"
        )
    return 0
