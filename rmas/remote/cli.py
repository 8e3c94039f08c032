"""``rmas provider serve``: host a configured provider as a national node."""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Sequence
from typing import Any

from rmas.errors import ConfigError

__all__ = ["register_conformance", "register_provider"]


def register_provider(subparsers: Any) -> None:
    p = subparsers.add_parser("provider", help="run a national node (provider over gRPC)")
    sub = p.add_subparsers(dest="provider_command", metavar="COMMAND", required=True)
    serve = sub.add_parser("serve", help="serve one configured provider")
    serve.add_argument("--config", required=True,
                       help="TOML file with [[providers]] tables (and [tls] for mTLS)")  # fmt: skip
    serve.add_argument("--provider", help="which provider id (when the file lists several)")
    serve.add_argument("--listen", default="127.0.0.1:50061", help="HOST:PORT (loopback)")
    serve.add_argument("--max-batch", type=int, default=1000, help="most items per LookupBatch")
    serve.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="IDENTITY",
        help="with [tls]: a caller identity (or prefix*) to admit, e.g. "
        "rmas://hub/hub-1 (repeat; default: any identity the CA certified)",
    )
    serve.set_defaults(func=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    from rmas.config import load_config
    from rmas.logs import configure_logging
    from rmas.runtime import run_async

    cfg = load_config(args.config, node=True)
    configure_logging(cfg.hub.log_level)
    chosen = [p for p in cfg.providers if args.provider in (None, p.id)]
    if not chosen:
        raise ConfigError("--provider", f"no provider {args.provider!r} in {args.config}")
    if len(chosen) > 1:
        raise ConfigError("--provider", "the file lists several providers: name one")
    if args.allow and cfg.tls is None:
        raise ConfigError("--allow", "caller identities need [tls] in the config file")
    return int(run_async(_serve(chosen[0], args.listen, args.max_batch, cfg.tls, args.allow)))


async def _serve(
    pcfg: Any, listen: str, max_batch: int, tls: Any = None, allow: Sequence[str] = ()
) -> int:
    from rmas.plugins import build_providers
    from rmas.remote.node import ProviderNode

    (provider,) = build_providers([pcfg])
    node = ProviderNode(provider, listen, max_batch=max_batch, tls=tls, allow=tuple(allow))
    try:
        port = await node.start()
    except (RuntimeError, ConfigError):  # grpc's "Failed to bind to address"
        await provider.aclose()
        raise ConfigError(
            "--listen", f"cannot bind {listen}: the port is in use, or not an address of this host"
        ) from None
    print(f"rmas node {pcfg.id} serving on {listen.rpartition(':')[0]}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await node.stop()
    return 0


def register_conformance(subparsers: Any) -> None:
    p = subparsers.add_parser("conformance", help="check a national node against the protocol")
    p.add_argument("--target", required=True, help="node address HOST:PORT")
    p.add_argument("--state", action="append", default=[], help="issuing state to test (repeat)")
    p.add_argument("--known", action="append", default=[], metavar="STATE:NUMBER:STATUS",
                   help="a document the node holds, with its expected status (repeat)")  # fmt: skip
    p.add_argument("--known-card", action="append", default=[], metavar="ECONOMY:CARD:STATUS",
                   help="an ABTC card the node holds, with its status (repeat)")  # fmt: skip
    p.add_argument("--change-command", metavar="CMD",
                   help="a shell command that changes a record at the node (e.g. rmas store "
                   "apply ...), run while the kit watches WatchChanges")  # fmt: skip
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--json", action="store_true")
    g = p.add_argument_group("mutual TLS (a node with [tls], as every production node runs)")
    g.add_argument("--tls-cert", help="our certificate (PEM), one the node admits: rmas://hub/...")
    g.add_argument("--tls-key", help="its private key (PEM)")
    g.add_argument("--tls-ca", help="the CA that signed the node's certificate (PEM)")
    g.add_argument(
        "--server-name",
        default="",
        help="name to verify in the node's certificate when it differs from the host",
    )
    p.set_defaults(func=_cmd_conformance)


def _shell(command: str) -> Any:
    """``--change-command``: run it (its output to stderr), failing the check if it fails."""

    async def run() -> None:
        import sys

        proc = await asyncio.create_subprocess_shell(command, stdout=sys.stderr.fileno())
        if await proc.wait() != 0:
            raise RuntimeError(f"--change-command exited with {proc.returncode}")

    return run


def _cmd_conformance(args: argparse.Namespace) -> int:
    import json

    from rmas.remote.conformance import FAIL, PASS, SKIPPED, run_conformance
    from rmas.runtime import run_async

    known = []
    for k in args.known:
        parts = k.split(":")
        if len(parts) != 3:
            raise ConfigError("--known", f"expected STATE:NUMBER:STATUS, got {k!r}")
        known.append((parts[0], parts[1], parts[2].upper()))
    known_cards = []
    for k in args.known_card:
        parts = k.split(":")
        if len(parts) != 3:
            raise ConfigError("--known-card", f"expected ECONOMY:CARD:STATUS, got {k!r}")
        known_cards.append((parts[0], parts[1], parts[2].upper()))
    tls = None
    given = [x for x in (args.tls_cert, args.tls_key, args.tls_ca) if x]
    if given and len(given) != 3:
        raise ConfigError("--tls-cert", "give all three: --tls-cert, --tls-key and --tls-ca")
    if given:
        from rmas.security.tls import TlsConfig

        tls = TlsConfig.load(args.tls_cert, args.tls_key, args.tls_ca, prefix="--tls")
    results = run_async(
        run_conformance(
            args.target,
            states=args.state,
            known=known,
            known_cards=known_cards,
            call_timeout_s=args.timeout,
            tls=tls,
            server_name=args.server_name,
            make_change=_shell(args.change_command) if args.change_command else None,
        )
    )
    counts = {s: sum(r.status == s for r in results) for s in (PASS, FAIL, SKIPPED)}
    if args.json:
        print(json.dumps({"target": args.target, "passed": not counts[FAIL], **{
            s.lower(): n for s, n in counts.items()}, "checks": [r.to_json() for r in results]},
            indent=2))  # fmt: skip
    else:
        for r in results:
            print(f"{r.status:<7}  {r.name:<20} {r.detail}")
        print(f"\n{counts[PASS]} passed, {counts[FAIL]} failed, {counts[SKIPPED]} skipped")
    return 1 if counts[FAIL] else 0
