"""The ``rmas`` command: serve a hub, check documents, and the sub-commands adapters contribute.

Adapters add their own sub-commands (``rmas store ...``, ``rmas sltd ...``, ``rmas demo``) through
the ``rmas.commands`` entry-point group: a callable ``register(subparsers)`` that adds a parser and
sets ``func`` to a handler ``(args) -> int``. rmas itself never imports ``adapters/``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import signal
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import Any

import structlog

from rmas import __version__
from rmas.client import add_tls_arguments
from rmas.config import load_config, parse_listen
from rmas.documents import DocumentType
from rmas.errors import ConfigError, RmasError
from rmas.logs import configure_logging

__all__ = ["main"]

COMMANDS_GROUP = "rmas.commands"
log = structlog.get_logger("rmas.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rmas",
        description="Document-check gateway for the Regional Movement Alert System pattern.",
    )
    parser.add_argument("--version", action="version", version=f"rmas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser("serve", help="run a hub from a config file")
    serve.add_argument("--config", required=True, help="TOML config file")
    serve.add_argument("--listen", help="HOST:PORT, overrides hub.listen")
    serve.set_defaults(func=_cmd_serve)

    check = sub.add_parser("check", help="check one document against a running hub")
    check.add_argument("--hub", default="127.0.0.1:50051", help="hub address HOST:PORT")
    check.add_argument("--number", help="document number")
    check.add_argument("--state", help="issuing state (alpha-3, ICAO or alpha-2 code)")
    check.add_argument(
        "--type",
        default="",
        type=_document_type,
        help="document type: P, I, A, C, V (or an ICAO two-letter code; default: any)",
    )
    check.add_argument("--mrz", action="append", default=[], help="an MRZ line (repeat per line)")
    check.add_argument("--surname", default="")
    check.add_argument("--given-names", default="")
    check.add_argument("--birth-date", default="", help="YYYY-MM-DD")
    check.add_argument("--sex", default="", help="M, F or X")
    check.add_argument("--nationality", default="")
    check.add_argument("--expiry-date", default="", help="YYYY-MM-DD")
    check.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the hub")
    check.add_argument("--json", action="store_true", help="print JSON")
    add_tls_arguments(check)
    check.set_defaults(func=_cmd_check)

    status = sub.add_parser("status", help="a running hub's providers, breakers and load")
    status.add_argument("--hub", default="127.0.0.1:50051", help="hub address HOST:PORT")
    status.add_argument("--timeout", type=float, default=5.0)
    status.add_argument("--json", action="store_true")
    add_tls_arguments(status)
    status.set_defaults(func=_cmd_status)

    iapi = sub.add_parser("iapi", help="send a PAXLST file to a hub and print the CUSRES")
    iapi.add_argument("--hub", default="127.0.0.1:50051", help="hub address HOST:PORT")
    iapi.add_argument("file", help="PAXLST interchange file")
    iapi.add_argument("--timeout", type=float, default=10.0)
    iapi.add_argument("--json", action="store_true", help="print the per-passenger summary")
    add_tls_arguments(iapi)
    iapi.set_defaults(func=_cmd_iapi)

    for ep in entry_points(group=COMMANDS_GROUP):
        try:
            register = ep.load()
        except ImportError as exc:  # an adapter that is not installed completely
            print(f"rmas: sub-command {ep.name!r} unavailable: {exc}", file=sys.stderr)
            continue
        register(sub)
    return parser


def _document_type(code: str) -> str:
    """argparse check of ``--type``: a code no channel defines is refused (exit 2)."""
    try:
        DocumentType.parse(code)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"rmas: configuration error: {exc}", file=sys.stderr)
        return 2
    except RmasError as exc:
        print(f"rmas: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


def run_async(coro: Any) -> Any:
    """Run a coroutine on uvloop when available (about 15% faster for gRPC), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


# -- serve ---------------------------------------------------------------------------------------


def _cmd_serve(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    if args.listen:
        parse_listen(args.listen, "--listen")
        from dataclasses import replace

        cfg = replace(cfg, hub=replace(cfg.hub, listen=args.listen))
    configure_logging(cfg.hub.log_level)
    return int(run_async(_serve(cfg)))


async def _serve(cfg: Any) -> int:
    """Serve until SIGTERM/SIGINT, then drain; SIGHUP reloads the config file.

    The first SIGTERM drains (stop accepting, finish the checks under way within
    ``hub.drain_grace_ms``, flush the audit trail, close providers) and exits 0; a second SIGTERM,
    or the grace period's end, cuts the remaining checks off and exits 1.
    """
    from rmas.providers import build_providers
    from rmas.server.app import HubServer

    providers = build_providers(cfg.providers)
    server = HubServer.from_config(cfg, providers)
    await server.start()
    # Everything allocated so far lives as long as the process: move it out of the collector's
    # way, so that full collections scan only what requests allocate (measured: the p99 of a
    # 480-passenger PAXLST fell from 99 to 73 ms; docs/benchmarks.md).
    gc.freeze()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    background: set[asyncio.Task[None]] = set()

    def on_stop() -> None:
        if stop.is_set():
            log.warning("forced_stop", reason="second signal during drain")
            task = loop.create_task(server.force_stop())
            background.add(task)
            task.add_done_callback(background.discard)
        stop.set()

    def on_hup() -> None:
        task = loop.create_task(_reload(server, cfg.path))
        background.add(task)
        task.add_done_callback(background.discard)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_stop)
    if cfg.path is not None:
        loop.add_signal_handler(signal.SIGHUP, on_hup)
    host, _ = parse_listen(cfg.hub.listen)
    print(f"rmas hub serving on {host}:{server.port} (Ctrl-C to stop)", flush=True)
    await stop.wait()
    grace = server.config.drain_grace_ms / 1000.0
    log.info("draining", grace_s=grace, in_flight=server.hub.in_flight)
    drained = await server.stop(grace=grace)
    return 0 if drained else 1


async def _reload(server: Any, path: Any) -> None:
    """SIGHUP: read the config file again and apply it; a file that is invalid, or that changes
    what only a restart changes, is refused and the running configuration stays."""
    try:
        cfg = load_config(path)
        changes = await server.reload(cfg)
    except RmasError as exc:
        log.error("config_reload_rejected", error=str(exc))
        return
    except Exception as exc:  # a provider factory failing in a way of its own
        log.error("config_reload_rejected", error=f"{type(exc).__name__}: {exc}")
        return
    print(f"rmas hub reloaded {path}: {changes}", flush=True)


# -- check ---------------------------------------------------------------------------------------


def _cmd_check(args: argparse.Namespace) -> int:
    if not args.mrz and not (args.number and args.state):
        print("rmas check: give --number and --state, or --mrz lines", file=sys.stderr)
        return 2
    return int(run_async(_check(args)))


async def _check(args: argparse.Namespace) -> int:
    import grpc

    from rmas.client import check_document_request, hub_channel, result_to_dict, rpc_error_text
    from rmas.v1 import check_pb2_grpc

    request = check_document_request(
        number=args.number or "",
        state=args.state or "",
        type_code=args.type,
        mrz=args.mrz,
        surname=args.surname,
        given_names=args.given_names,
        birth_date=args.birth_date,
        sex=args.sex,
        nationality=args.nationality,
        expiry_date=args.expiry_date,
    )
    async with hub_channel(args.hub, args) as channel:
        stub = check_pb2_grpc.DocumentCheckStub(channel)
        try:
            response = await stub.CheckDocument(request, timeout=args.timeout)
        except grpc.aio.AioRpcError as exc:
            print(f"rmas check: {rpc_error_text(exc)}", file=sys.stderr)
            return 1
    result = result_to_dict(response.result)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_result(result))
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    return int(run_async(_status(args)))


async def _status(args: argparse.Namespace) -> int:
    import grpc
    from google.protobuf.json_format import MessageToDict

    from rmas.client import hub_channel, rpc_error_text
    from rmas.v1 import check_pb2, check_pb2_grpc

    async with hub_channel(args.hub, args) as channel:
        try:
            st = await check_pb2_grpc.HubAdminStub(channel).Status(
                check_pb2.StatusRequest(), timeout=args.timeout
            )
        except grpc.aio.AioRpcError as exc:
            print(f"rmas status: {rpc_error_text(exc)}", file=sys.stderr)
            return 1
    if args.json:
        data = MessageToDict(st, preserving_proto_field_name=True,
                             always_print_fields_with_no_presence=True)  # fmt: skip
        # Protobuf's JSON mapping writes 64-bit counters as strings; operators' tools want numbers.
        data["checks"] = int(data["checks"])
        for p in data["providers"]:
            p["calls"], p["failures"] = int(p["calls"]), int(p["failures"])
            p["record_count"] = int(p["record_count"])
        print(json.dumps(data, indent=2))
        return 0
    print(f"rmas {st.version}  up {st.uptime_s:.0f} s  {st.checks} documents checked  "
          f"{st.in_flight} in flight")  # fmt: skip
    print(f"{'provider':<10} {'scope':<7} {'health':<9} {'breaker':<10} {'calls':>7} "
          f"{'errors':>7} {'p50 ms':>8} {'p99 ms':>8} {'records':>10}  covers")  # fmt: skip
    for p in st.providers:
        covers = ",".join(p.issuing_states) or "all"
        print(f"{p.provider_id:<10} {p.scope:<7} {p.health:<9} {p.breaker or '-':<10} "
              f"{p.calls:>7} {p.recent_error_rate:>6.0%} {p.recent_p50_ms:>8.1f} "
              f"{p.recent_p99_ms:>8.1f} {p.record_count or '-':>10}  {covers}"
              + (f"  NOT ASKED: {p.describe_problem}" if p.describe_problem else "")
              + (f"  last error: {p.last_error}" if p.last_error else ""))  # fmt: skip
    return 0


def _cmd_iapi(args: argparse.Namespace) -> int:
    from pathlib import Path

    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        print(f"rmas iapi: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    return int(run_async(_iapi(args, data)))


async def _iapi(args: argparse.Namespace, data: bytes) -> int:
    import grpc

    from rmas.client import hub_channel, rpc_error_text
    from rmas.v1 import check_pb2, check_pb2_grpc

    async with hub_channel(args.hub, args) as channel:
        try:
            resp = await check_pb2_grpc.DocumentCheckStub(channel).CheckPaxlst(
                check_pb2.CheckPaxlstRequest(message=data), timeout=args.timeout
            )
        except grpc.aio.AioRpcError as exc:
            print(f"rmas iapi: {rpc_error_text(exc)}", file=sys.stderr)
            return 1
    if args.json:
        summary = {
            "transaction_ref": resp.transaction_ref,
            "duplicate": resp.duplicate,
            "errors": list(resp.errors),
            "passengers": [
                {
                    "position": p.position,
                    "booking_ref": p.booking_ref,
                    "passenger_ref": p.passenger_ref,
                    "crew": p.crew,
                    "directive": check_pb2.Directive.Name(p.directive).removeprefix("DIRECTIVE_"),
                    "check_ids": list(p.check_ids),
                }
                for p in resp.passengers
            ],
        }
        print(json.dumps(summary, indent=2))
    else:
        sys.stdout.write(resp.cusres.decode("latin-1").replace("'", "'\n"))
    return 1 if resp.errors else 0


def format_result(r: dict[str, Any]) -> str:
    """A human-readable verdict, as an officer's terminal shows it."""
    lines = [
        f"verdict    {r['verdict']}" + ("  (unchecked)" if r.get("unchecked") else ""),
        f"directive  {r['directive']}",
        f"check id   {r['check_id']}",
    ]
    doc = r.get("document")
    if doc:
        lines.append(f"document   {doc.get('issuing_state', '')} {doc.get('type', '')}")
    mrz = r.get("mrz")
    if mrz:
        digits = " ".join(f"{k}={v}" for k, v in mrz["check_digits"].items() if v != "ABSENT")
        lines.append(f"mrz        {mrz['layout']}  {digits}")
        for s in mrz["suggestions"]:
            lines.append(
                f"suggest    line {s['line']} column {s['column']}: {s['found']!r} may be "
                f"{s['replacement']!r} -> number {s['document_number']}"
            )
    for p in r.get("problems", []):
        lines.append(f"problem    {p['field']}: {p['description']}")
    for w in r.get("warnings", []):
        lines.append(f"warning    {w}")
    if r["sources"]:
        lines.append("sources")
    for s in r["sources"]:
        role = "issuer" if s.get("issuer") else "global"
        status = s.get("status") or "-"
        line = (
            f"  {s['provider']:<10} {role:<6} {s['outcome']:<11} {status:<12}"
            f" {s['latency_ms']:7.1f} ms"
        )
        extra = [
            s[k]
            for k in ("holder_match", "reported_on", "record_ref", "reporting_authority")
            if s.get(k) and s.get(k) != "NOT_CHECKED"
        ]
        if extra:
            line += "  " + " ".join(extra)
        if s.get("queried_number"):
            line += f"  [as {s['queried_number']}]"
        if s.get("error"):
            line += f"  ({s['error']})"
        lines.append(line)
        if s.get("contact") and s.get("status") not in (None, "", "NO_RECORD", "VALID"):
            lines.append(f"  {'':<10} contact: {s['contact']}")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
