"""``rmas sltd serve`` and ``rmas sltd import``; and the demo's in-process service."""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import signal
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from adapters.sltd.codes import COUNTRIES, STATUSES, TYPES
from adapters.sltd.service import Faults, ServiceConfig, start_service
from adapters.sltd.store import SltdStore
from rmas.confkeys import suggestion
from rmas.providers import ProviderConfig, Scope

__all__ = ["load_tokens", "read_seed", "register", "start_demo_service"]


def register(subparsers: Any) -> None:
    sltd = subparsers.add_parser("sltd", help="the SLTD-style central store service")
    sub = sltd.add_subparsers(dest="sltd_command", metavar="COMMAND", required=True)

    serve = sub.add_parser("serve", help="serve the central store over HTTP/JSON")
    serve.add_argument("--url", required=True, help="database, e.g. sqlite+aiosqlite:///sltd.db")
    serve.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT (default loopback)")
    serve.add_argument("--tokens", required=True, help='JSON file {"tokens": {TOKEN: "NZ"}, ...}')
    serve.add_argument("--admin-token", default="", help="token allowed to set faults")
    serve.add_argument("--latency-ms", type=float, default=0.0)
    serve.add_argument("--jitter-ms", type=float, default=0.0)
    serve.add_argument("--error-rate", type=float, default=0.0)
    serve.add_argument("--hang-rate", type=float, default=0.0)
    serve.add_argument("--tls-cert", help="server certificate (PEM): serve HTTPS, require client "
                       "certificates from --tls-ca")  # fmt: skip
    serve.add_argument("--tls-key", help="server private key (PEM)")
    serve.add_argument("--tls-ca", help="CA that client certificates must chain to (PEM)")
    serve.set_defaults(func=_cmd_serve)

    imp = sub.add_parser("import", help="load records from CSV")
    imp.add_argument("--url", required=True)
    imp.add_argument("file", type=Path)
    imp.set_defaults(func=_cmd_import)


def load_tokens(path: Path) -> tuple[dict[str, str], str]:
    """(token -> country, admin token) from a JSON file; raises ValueError when malformed."""
    data = json.loads(path.read_text())
    if isinstance(data, dict):  # a mistyped "admin" would silently leave faults unprotected
        unknown = sorted(k for k in data if k not in ("tokens", "admin") and not k.startswith("_"))
        if unknown:
            hint = suggestion(unknown[0], ("tokens", "admin"))
            raise ValueError(f"unknown key {unknown[0]!r}{hint} (keys starting with _ are notes)")
    tokens = data.get("tokens") if isinstance(data, dict) else None
    if not isinstance(tokens, dict) or not all(
        isinstance(k, str) and v in COUNTRIES for k, v in tokens.items()
    ):
        raise ValueError('expected {"tokens": {"<token>": "<ISO alpha-2>"}, "admin": "<token>"}')
    admin = data.get("admin", "")
    return dict(tokens), admin if isinstance(admin, str) else ""


def read_seed(path: Path) -> tuple[list[dict[str, str]], list[tuple[int, str]]]:
    """Seed rows (header: country,type,number,status,event_date,circumstances,reporting_country)
    and the rejected ones as (line, reason)."""
    rows: list[dict[str, str]] = []
    bad: list[tuple[int, str]] = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        for rec in reader:
            line = reader.line_num
            r = {k: (v or "").strip() for k, v in rec.items() if k}
            reason = ""
            if r.get("country") not in COUNTRIES:
                reason = f"country {r.get('country')!r} is not ISO alpha-2"
            elif r.get("type") not in TYPES:
                reason = f"type {r.get('type')!r} is not one of {', '.join(TYPES)}"
            elif r.get("status") not in STATUSES:
                reason = f"status {r.get('status')!r} is not one of {', '.join(STATUSES)}"
            elif not (r.get("number", "").isalnum() and len(r.get("number", "")) <= 20):
                reason = "number must be 1-20 letters or digits"
            if reason:
                bad.append((line, reason))
                continue
            rows.append({
                "country": r["country"], "doc_type": r["type"], "number": r["number"].upper(),
                "status": r["status"], "event_date": r.get("event_date", ""),
                "circumstances": r.get("circumstances", ""),
                "reporting_country": r.get("reporting_country") or r["country"],
            })  # fmt: skip
    return rows, bad


def _cmd_import(args: argparse.Namespace) -> int:
    from rmas.runtime import run_async

    rows, bad = read_seed(args.file)

    async def load() -> int:
        store = SltdStore(args.url)
        await store.open()
        try:
            return await store.bulk_load(rows)
        finally:
            await store.close()

    n = run_async(load())
    print(f"loaded {n} records")
    for line, reason in bad:
        print(f"line {line}: {reason}", file=sys.stderr)
    return 1 if bad else 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from rmas.errors import ConfigError
    from rmas.logs import configure_logging
    from rmas.net import parse_listen, require_loopback_unless_tls
    from rmas.runtime import run_async

    configure_logging("info")
    host, port = parse_listen(args.listen, "--listen")
    ssl_context = None
    if args.tls_cert or args.tls_key or args.tls_ca:
        from rmas.security.tls import TlsConfig

        ssl_context = TlsConfig.load(
            args.tls_cert or "", args.tls_key or "", args.tls_ca or "", prefix="--tls"
        ).server_ssl_context()
    try:
        require_loopback_unless_tls(
            host,
            tls=ssl_context is not None,
            key="--listen",
            message="without --tls-cert the service binds to loopback only",
        )
    except ConfigError as exc:
        print(f"rmas sltd serve: {exc.message}", file=sys.stderr)
        return 2
    try:
        tokens, admin = load_tokens(Path(args.tokens))
    except (OSError, ValueError) as exc:
        print(f"rmas sltd serve: --tokens: {exc}", file=sys.stderr)
        return 2
    faults = Faults(args.latency_ms, args.jitter_ms, args.error_rate, args.hang_rate)
    config = ServiceConfig(tokens, args.admin_token or admin, faults)

    async def serve() -> int:
        svc = await start_service(args.url, config, host, port, ssl_context=ssl_context)
        print(f"sltd serving on {svc.url} (Ctrl-C to stop)", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await svc.close()
        return 0

    return int(run_async(serve()))


async def start_demo_service(
    stack: AsyncExitStack, workdir: Path, fixtures: Path, index: int
) -> ProviderConfig:
    """The demo's central store: seeded from fixtures/sltd, served in-process on loopback."""
    rows, _bad = read_seed(fixtures / "records.csv")
    tokens, admin = load_tokens(fixtures / "tokens.json")
    db = f"sqlite+aiosqlite:///{workdir / 'sltd.db'}"
    seed = SltdStore(db)
    await seed.open()
    await seed.bulk_load(rows)
    await seed.close()
    svc = await start_service(db, ServiceConfig(tokens, admin))
    stack.push_async_callback(svc.close)
    reader = next(t for t, c in tokens.items() if c == "NZ")
    print(f"  SLTD: {len(rows)} records, central store service at {svc.url}")
    return ProviderConfig(
        id="SLTD", kind="sltd", issuing_states=frozenset(), scope=Scope.GLOBAL, required=True,
        contact="Interpol NCB 24/7 (demo)", max_batch=0, timeout_s=0.0,
        options={"url": svc.url, "token": reader}, index=index,
    )  # fmt: skip
