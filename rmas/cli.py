"""The ``rmas`` command: serve a hub, check documents, and the sub-commands adapters contribute.

Adapters add their own sub-commands (``rmas store ...``, ``rmas sltd ...``, ``rmas demo``) through
the ``rmas.commands`` entry-point group: a callable ``register(subparsers)`` that adds a parser and
sets ``func`` to a handler ``(args) -> int``. rmas itself never imports ``adapters/``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import replace
from importlib.metadata import entry_points
from typing import Any

import structlog

from rmas import __version__
from rmas.check_cli import add_check_parser
from rmas.client import add_tls_arguments
from rmas.config import RmasConfig, load_config
from rmas.errors import AuditError, ConfigError, RmasError
from rmas.flights_cli import add_override_parser, is_watch, watch_main
from rmas.logs import configure_logging
from rmas.net import parse_listen
from rmas.runtime import run_async, settle_for_serving

__all__ = ["main"]

COMMANDS_GROUP = "rmas.commands"
#: Exit codes shared by every command (sysexits.h where one fits).
EXIT_USAGE = 2  # a mistake in the command line, the config or the environment
EXIT_SOFTWARE = 70  # a bug in rmas
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
    serve.add_argument(
        "--metrics-listen",
        metavar="HOST:PORT",
        help='overrides hub.metrics_listen ("" turns metrics off); with --listen, two hubs '
        "run on one host from one config file",
    )
    serve.set_defaults(func=_cmd_serve)

    add_check_parser(sub)

    status = sub.add_parser("status", help="a running hub's providers, breakers and load")
    status.add_argument("--hub", default="127.0.0.1:50051", help="hub address HOST:PORT")
    status.add_argument("--timeout", type=float, default=5.0)
    status.add_argument("--json", action="store_true")
    add_tls_arguments(status)
    status.set_defaults(func=_cmd_status)

    iapi = sub.add_parser(
        "iapi",
        help="send a PAXLST file to a hub and print its CUSRES byte for byte; "
        "`rmas iapi watch --hub HOST:PORT`: receive the airline's status changes",
    )
    iapi.add_argument("--hub", default="127.0.0.1:50051", help="hub address HOST:PORT")
    iapi.add_argument("file", help="PAXLST interchange file ('-': standard input)")
    iapi.add_argument("--pretty", action="store_true", help="one segment a line")
    iapi.add_argument("--timeout", type=float, default=10.0)
    iapi.add_argument("--json", action="store_true", help="print the per-passenger summary")
    add_tls_arguments(iapi)
    iapi.set_defaults(func=_cmd_iapi)
    add_override_parser(sub)

    for ep in entry_points(group=COMMANDS_GROUP):
        try:
            register = ep.load()
        except ImportError as exc:  # an adapter that is not installed completely
            print(f"rmas: sub-command {ep.name!r} unavailable: {exc}", file=sys.stderr)
            continue
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; everyday mistakes end in one line on stderr and exit code 2
    (docs/operations.md, "Exit codes"), never in a traceback."""
    words = list(sys.argv[1:] if argv is None else argv)
    args = None if is_watch(words) else build_parser().parse_args(words)
    try:
        code: int = watch_main(words[2:]) if args is None else args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's shutdown
    except BrokenPipeError:
        return _broken_pipe()
    except ConfigError as exc:
        print(f"rmas: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RmasError as exc:
        print(f"rmas: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        text = everyday_error(exc)
        if text is None:
            if os.environ.get("RMAS_DEBUG"):
                raise
            print(f"rmas: internal error: {type(exc).__name__}: {exc} (RMAS_DEBUG=1 shows "
                  "the traceback; please report it)", file=sys.stderr)  # fmt: skip
            return EXIT_SOFTWARE
        print(f"rmas: {text}", file=sys.stderr)
        return EXIT_USAGE
    return code


def _broken_pipe() -> int:
    """The reader of our output went away (``rmas ... | head``): say so once, and keep the
    interpreter from complaining again when it flushes stdout at exit."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    with contextlib.suppress(OSError):
        print("rmas: output closed early (broken pipe); the rest was not written", file=sys.stderr)
    return EXIT_USAGE


def everyday_error(exc: BaseException) -> str | None:
    """One line for a mistake of the environment (a missing file or folder, a port in use, a
    database that cannot be reached or a URL that is not one); None for anything else."""
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        if isinstance(exc, ConnectionRefusedError):
            return f"cannot connect: connection refused{where}; is the server running?"
        if isinstance(exc, socket.gaierror):
            return f"cannot resolve the host name: {exc.strerror or exc}"
        return f"{exc.strerror or exc}{where}"
    module = type(exc).__module__
    if module.startswith("sqlalchemy"):
        from sqlalchemy import exc as sa

        if isinstance(exc, sa.ArgumentError | sa.NoSuchModuleError):
            return f"not a usable database URL: {exc}"
        if isinstance(exc, sa.DBAPIError):
            return f"database error: {_first_line(exc.orig if exc.orig is not None else exc)}"
        return None
    if module.startswith("asyncpg"):
        return f"database error: {_first_line(exc)}"
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -- serve ---------------------------------------------------------------------------------------


def _cmd_serve(args: argparse.Namespace) -> int:
    overrides = _serve_overrides(args)
    cfg = _override(load_config(args.config), overrides)
    configure_logging(cfg.hub.log_level)
    return int(run_async(_serve(cfg, overrides)))


def _serve_overrides(args: argparse.Namespace) -> dict[str, str]:
    """The ``[hub]`` keys the command line sets (``--listen``, ``--metrics-listen``)."""
    out: dict[str, str] = {}
    if args.listen is not None:
        parse_listen(args.listen, "--listen")
        out["listen"] = args.listen
    if args.metrics_listen is not None:
        if args.metrics_listen:
            parse_listen(args.metrics_listen, "--metrics-listen")
        out["metrics_listen"] = args.metrics_listen
    return out


def _override(cfg: RmasConfig, overrides: dict[str, str]) -> RmasConfig:
    """``cfg`` with the command line's addresses in place of the file's: at start-up and at
    every reload, so that a hub started with ``--listen`` reloads a file naming another."""
    if not overrides:
        return cfg
    hub = replace(
        cfg.hub,
        listen=overrides.get("listen", cfg.hub.listen),
        metrics_listen=overrides.get("metrics_listen", cfg.hub.metrics_listen),
    )
    if hub.metrics_listen and parse_listen(hub.metrics_listen, "--metrics-listen") == parse_listen(
        hub.listen, "--listen"
    ):
        raise ConfigError("--metrics-listen", "must differ from the hub's listen address")
    return replace(cfg, hub=hub)


async def _serve(cfg: RmasConfig, overrides: dict[str, str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT, then drain; SIGHUP reloads the config file.

    The first SIGTERM drains (stop accepting, finish the checks under way within
    ``hub.drain_grace_ms``, flush the audit trail, close providers) and exits 0; a second SIGTERM,
    or the grace period's end, cuts the remaining checks off and exits 1.
    """
    from rmas.plugins import build_providers
    from rmas.server.app import HubServer

    providers = build_providers(cfg.providers)
    server = HubServer.from_config(cfg, providers)
    try:
        await server.start()
    except AuditError as exc:  # a database that cannot be reached or opened: fix [audit] url
        raise ConfigError("audit.url", str(exc)) from None
    settle_for_serving()  # the garbage collector's settings (rmas.runtime)
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
        task = loop.create_task(_reload(server, cfg.path, overrides or {}))
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


async def _reload(server: Any, path: Any, overrides: dict[str, str]) -> None:
    """SIGHUP: read the config file again and apply it; a file that is invalid, or that changes
    what only a restart changes, is refused and the running configuration stays. Either way the
    outcome is kept for ``rmas status`` (HubAdmin.Status ``last_reload_*``)."""
    try:
        cfg = _override(load_config(path), overrides)
        changes = await server.reload(cfg)
    except Exception as exc:  # RmasError, or a provider factory failing in a way of its own
        error = str(exc) if isinstance(exc, RmasError) else f"{type(exc).__name__}: {exc}"
        server.note_reload(ok=False, detail=error)
        log.error("config_reload_rejected", error=error)
        return
    detail = ", ".join(f"{k} {', '.join(v)}" for k, v in changes.items() if v)
    detail = detail or "no provider added, replaced or removed"
    server.note_reload(ok=True, detail=detail)
    print(f"rmas hub reloaded {path}: {changes}", flush=True)


# -- status --------------------------------------------------------------------------------------


def _cmd_status(args: argparse.Namespace) -> int:
    return int(run_async(_status(args)))


async def _status(args: argparse.Namespace) -> int:
    import grpc
    from google.protobuf.json_format import MessageToDict

    from rmas.client import connection_hint, hub_channel, rpc_error_text, rpc_exit_code
    from rmas.v1 import check_pb2, check_pb2_grpc

    async with hub_channel(args.hub, args) as channel:
        try:
            st = await check_pb2_grpc.HubAdminStub(channel).Status(
                check_pb2.StatusRequest(), timeout=args.timeout
            )
        except grpc.aio.AioRpcError as exc:
            hint = connection_hint(exc, args)
            print(f"rmas status: {rpc_error_text(exc)}" + (f"\n  {hint}" if hint else ""),
                  file=sys.stderr)  # fmt: skip
            return rpc_exit_code(exc)
    if args.json:
        data = MessageToDict(st, preserving_proto_field_name=True,
                             always_print_fields_with_no_presence=True)  # fmt: skip
        # Protobuf's JSON mapping writes 64-bit counters as strings; operators' tools want numbers.
        data["checks"] = int(data["checks"])
        data["open_flights"] = int(data["open_flights"])
        data["unacknowledged_changes"] = int(data["unacknowledged_changes"])
        for p in data["providers"]:
            p["calls"], p["failures"] = int(p["calls"]), int(p["failures"])
            p["record_count"] = int(p["record_count"])
        print(json.dumps(data, indent=2))
        return 0
    print(f"rmas {st.version}  up {st.uptime_s:.0f} s  {st.checks} documents checked  "
          f"{st.in_flight} in flight")  # fmt: skip
    if st.last_reload_at:
        outcome = "applied" if st.last_reload_ok else "REFUSED, the running configuration stays"
        print(f"last reload {st.last_reload_at}: {outcome}: {st.last_reload_detail}")
    else:
        print("last reload: none since start")
    if st.open_flights or st.incomplete_flights or st.unacknowledged_changes:
        print(f"open flights {st.open_flights}  status changes not acknowledged "
              f"{st.unacknowledged_changes}")  # fmt: skip
        for f in st.incomplete_flights:
            print(f"  INCOMPLETE: flight {f.flight} {f.departure} of {f.owner}: {f.incomplete} "
                  "passengers checked again until their providers answer")  # fmt: skip
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
        data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
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
                    "unchecked": p.unchecked,
                }
                for p in resp.passengers
            ],
        }
        print(json.dumps(summary, indent=2))
    elif args.pretty:
        from rmas.iapi.syntax import segment_texts

        sys.stdout.buffer.write(b"".join(t + b"\n" for t in segment_texts(resp.cusres)))
    else:
        sys.stdout.buffer.write(resp.cusres)  # byte for byte, as the hub wrote it
    sys.stdout.flush()
    return 1 if resp.errors else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
