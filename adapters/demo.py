"""`rmas demo`: demo stores from fixtures/, an SLTD-style service, a hub on loopback, and checks.

It builds three economies' SQL stores (New Zealand and the Philippines keep alert lists; Australia
keeps its complete registry of issued passports, so a number it never issued is caught), starts the
SLTD-style central store with its seed data, starts a hub in front of them, runs a handful of
checks that show CLEAR, ALERT and INCOMPLETE, and then keeps the hub up for you to try your own
(unless ``--exit``). Every check is written to an audit trail in the demo folder. The hub's own
economy is New Zealand: Australia and New Zealand also keep their APEC Business Travel Cards
(fixtures/records/abtc_*.csv), and the demo checks passports presented with cards at an NZ lane.

With ``--tls`` it first creates a development CA and certificates (``rmas certs init``) in
``<dir>/certs``, serves the hub with mutual TLS, runs the sample checks as an officer post and
sends the PAXLST as an airline: each sees its own view.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import fcntl
import importlib
import json
import os
import re
import signal
import sys
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

#: Economies whose stores also hold their APEC Business Travel Cards (fixtures/records/abtc_*.csv).
ABTC_ECONOMIES = ("AUS", "NZL")

ECONOMIES = (
    # id, csv, registry, 24/7 contact (fictional numbers)
    ("NZL", "nzl.csv", "alerts", "NZ Customs 24/7 document desk +64 4 000 0000"),
    ("AUS", "aus.csv", "complete", "ABF Border Operations Centre +61 2 0000 0000"),
    ("PHL", "phl.csv", "alerts", "PH Bureau of Immigration 24/7 +63 2 0000 0000"),
)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("demo", help="run a demo hub with fixture data")
    p.add_argument("--dir", default="var/demo", help="where the demo stores go (default var/demo)")
    p.add_argument("--listen", default="127.0.0.1:50051", help="hub address (loopback)")
    p.add_argument("--console", default="127.0.0.1:8080",
                   help="web console address (loopback; docs/console.md); '' for none")  # fmt: skip
    p.add_argument("--exit", action="store_true", help="stop after the sample checks")
    p.add_argument("--tls", action="store_true",
                   help="mutual TLS with development certificates made in DIR/certs")  # fmt: skip
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from rmas.fileperm import private_dir
    from rmas.logs import configure_logging
    from rmas.runtime import run_async

    configure_logging("error")  # the demo prints what matters; outages are shown as verdicts
    workdir = Path(args.dir)
    private_dir(workdir)  # stores and an audit trail: 0700 for the folders made here
    with _only_demo(workdir) as other:
        if other is not None:
            print(
                f"rmas demo: another demo is running in {workdir} ({other}); stop it with "
                "Ctrl-C, or run this one with another --dir and --listen",
                file=sys.stderr,
            )
            return 2
        tries = json.loads((FIXTURES / "records" / "try.json").read_text())
        demo = _demo(workdir, args.listen, args.exit, tries, args.tls, console=args.console)
        return int(run_async(demo))


@contextlib.contextmanager
def _only_demo(workdir: Path) -> Iterator[str | None]:
    """Hold ``workdir/demo.lock`` while the demo runs (rebuilding the stores and the audit trail
    under a running demo would break it); yields who holds it when another demo does, else None.
    The lock goes with the process, however it ends."""
    with (workdir / "demo.lock").open("a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            yield f.read().strip() or "pid unknown"
            return
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}")
        f.flush()
        yield None


def _security(workdir: Path, tls: bool) -> tuple[Any, Any, Any]:
    """(hub TLS, access policy, audit trail) for the demo: certificates made on first use."""
    from rmas.audit.trail import AuditTrail
    from rmas.security.access import AccessPolicy, CallerRule, Role
    from rmas.security.certs import init_dir
    from rmas.security.tls import TlsConfig

    key = workdir / "audit.key"
    if not key.exists():
        key.write_text(os.urandom(32).hex() + "\n")
        key.chmod(0o600)
    audit = AuditTrail.from_config(
        f"sqlite+aiosqlite:///{workdir / 'audit.db'}", str(key), required=True,
        synchronous="FULL",
    )  # fmt: skip
    if not tls:
        return None, None, audit
    certs = workdir / "certs"
    if not (certs / "ca.pem").exists():
        init_dir(certs)
        print(f"  development CA and certificates -> {certs} (development only)")
    hub_tls = TlsConfig.load(certs / "hub.pem", certs / "hub.key", certs / "ca.pem")
    policy = AccessPolicy([
        CallerRule("rmas://airline/*", Role.AIRLINE),
        CallerRule("rmas://officer/*", Role.OFFICER),
        CallerRule("rmas://operator/*", Role.OPERATOR),
    ])  # fmt: skip
    return hub_tls, policy, audit


def _channel(target: str, workdir: Path, tls: bool, who: str) -> Any:
    import grpc

    if not tls:
        return grpc.aio.insecure_channel(target)
    d = workdir / "certs"
    creds = grpc.ssl_channel_credentials(
        (d / "ca.pem").read_bytes(),
        (d / f"{who}.key").read_bytes(),
        (d / f"{who}.pem").read_bytes(),
    )
    return grpc.aio.secure_channel(target, creds)


async def _demo(
    workdir: Path,
    listen: str,
    exit_after: bool,
    tries: list[dict[str, Any]],
    tls: bool = False,
    *,
    console: str = "",
) -> int:
    from adapters.sqlstore.cards import import_cards
    from adapters.sqlstore.importer import import_csv
    from rmas.config import HubConfig
    from rmas.flights.config import FlightsConfig
    from rmas.plugins import build_providers
    from rmas.providers import ProviderConfig, Scope
    from rmas.server.app import HubServer

    configs: list[ProviderConfig] = []
    print("Building demo stores from fixtures/records ...")
    for i, (state, csv_name, registry, contact) in enumerate(ECONOMIES):
        db = workdir / f"{state.lower()}.db"
        for stale in (db, db.with_name(f"{db.name}-wal"), db.with_name(f"{db.name}-shm")):
            stale.unlink(missing_ok=True)  # a fresh store each run: feeds apply again
        url = f"sqlite+aiosqlite:///{db}"
        report = await import_csv(url, FIXTURES / "records" / csv_name, replace=True)
        print(f"  {state}: {report.loaded} records ({registry} registry) -> {db}")
        cards = state in ABTC_ECONOMIES
        if cards:
            path = FIXTURES / "records" / f"abtc_{state.lower()}.csv"
            loaded = (await import_cards(url, path, replace=True)).loaded
            print(f"  {state}: {loaded} APEC Business Travel Cards -> {db}")
        configs.append(
            ProviderConfig(
                id=state,
                kind="sql",
                issuing_states=frozenset({state}),
                scope=Scope.ISSUER,
                required=True,
                contact=contact,
                max_batch=0,
                timeout_s=0.0,
                options={"url": url, "registry": registry},
                index=i,
                abtc=cards,
            )
        )
    # The US node is "down" in the demo, to show what an outage looks like: INCOMPLETE.
    configs.append(
        ProviderConfig(
            id="USA",
            kind="fake",
            issuing_states=frozenset({"USA"}),
            scope=Scope.ISSUER,
            required=True,
            contact="US 24/7 desk (demo)",
            max_batch=0,
            timeout_s=0.0,
            options={"failure": "unavailable"},
            index=len(configs),
        )
    )
    print("  USA: node simulated as down (answers UNAVAILABLE)")
    async with AsyncExitStack() as stack:
        sltd_cfg = await _start_sltd(stack, workdir, len(configs))
        if sltd_cfg is not None:
            configs.append(sltd_cfg)
        hub_cfg = HubConfig(
            listen=listen,
            deadline_ms=1500,
            log_level="warning",
            console_listen=console,
            economy="NZL",
        )
        hub_tls, policy, audit = _security(workdir, tls)
        # Open flights kept (the flight as a conversation): a fresh flight store each run.
        (workdir / "flights.db").unlink(missing_ok=True)
        flights = FlightsConfig(
            url=f"sqlite+aiosqlite:///{workdir / 'flights.db'}",
            key_file=workdir / "audit.key",
            resend_initial_s=10.0,
        )
        server = HubServer(
            hub_cfg,
            build_providers(configs),
            tls=hub_tls,
            policy=policy,
            audit=audit,
            flights=flights,
        )
        port = await server.start()
        stack.push_async_callback(server.stop, 1.0)
        target = f"{listen.rpartition(':')[0]}:{port}"
        mode = "mutual TLS" if tls else "plain loopback (development mode)"
        names = ", ".join(c.id for c in configs)
        print(f"\nHub serving on {target} ({mode}) with providers: {names}")
        print(f"Audit trail: {workdir / 'audit.db'}")
        if server.console is not None:
            web = f"{server.console.scheme}://{listen.rpartition(':')[0]}:{server.console.port}/"
            who = (
                f"with the client certificate {workdir / 'certs'}/officer.pem (or operator.pem)"
                if tls
                else "as officer and operator (development mode)"
            )
            print(f"Console: {web} {who}")
        print()
        async with _channel(target, workdir, tls, "officer") as officer:
            ok = await _sample_checks(officer, tries)
            ok = await _sample_cards(officer) and ok
        async with _channel(target, workdir, tls, "airline") as airline:
            await _sample_paxlst(airline)
        flags = f" --certs {workdir / 'certs'} --as officer" if tls else ""
        airline = f" --certs {workdir / 'certs'} --as airline" if tls else ""
        print(
            _HOW_TO.format(
                target=target,
                flags=flags,
                airline=airline,
                audit=workdir / "audit.db",
                key=workdir / "audit.key",
                nzl=workdir / "nzl.db",
            )
        )
        if exit_after:
            return 0 if ok else 1
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print("Hub running; Ctrl-C to stop.", flush=True)
        await stop.wait()
    return 0


async def _start_sltd(stack: AsyncExitStack, workdir: Path, index: int) -> Any:
    """The SLTD-style central store, in-process on an ephemeral port, seeded from fixtures."""
    try:
        sltd_cli: Any = importlib.import_module("adapters.sltd.cli")
    except ImportError:
        return None
    return await sltd_cli.start_demo_service(stack, workdir, FIXTURES / "sltd", index)


async def _sample_checks(channel: Any, tries: list[dict[str, Any]]) -> bool:
    from rmas.client import check_document_request, result_to_dict
    from rmas.v1 import check_pb2_grpc

    ok = True
    print(f"{'document':<34} {'verdict':<12} {'directive':<18} sources")
    stub = check_pb2_grpc.DocumentCheckStub(channel)
    for t in tries:
        holder = t.get("holder") or {}
        req = check_document_request(
            number=t["number"],
            state=t["issuing_state"],
            type_code=t.get("type", ""),
            surname=holder.get("surname", ""),
            given_names=holder.get("given_names", ""),
            birth_date=holder.get("birth_date", ""),
            sex=holder.get("sex", ""),
        )
        r = result_to_dict((await stub.CheckDocument(req, timeout=5)).result)
        sources = ", ".join(
            f"{s['provider']}:{s['status'] or s['outcome']}"
            + ("/HOLDER_MISMATCH" if s.get("holder_match") == "MISMATCH" else "")
            for s in r["sources"]
        )
        mark = "" if r["verdict"] == t.get("expect_verdict", r["verdict"]) else "  (unexpected!)"
        ok = ok and not mark
        label = f"{t['issuing_state']} {t['number']}"
        print(f"{label:<34} {r['verdict']:<12} {r['directive']:<18} {sources or '-'}{mark}")
        print(f"  {t['label']}")
    return ok


async def _sample_cards(channel: Any) -> bool:
    """Passports presented with APEC Business Travel Cards at a New Zealand lane (the hub's
    economy): the passport's verdict, and the card's."""
    from rmas.client import check_document_request, result_to_dict
    from rmas.v1 import check_pb2_grpc

    tries = json.loads((FIXTURES / "records" / "abtc_try.json").read_text())
    stub = check_pb2_grpc.DocumentCheckStub(channel)
    ok = True
    print("\nPassports with APEC Business Travel Cards, at a New Zealand lane (hub economy NZL):")
    print(f"{'card':<10} {'passport':<15} {'verdict':<8} {'card verdict':<36} for")
    for t in tries:
        req = check_document_request(number=t["number"], state=t["issuing_state"],
                                     abtc=t["abtc"], checking_economy=t["for"])  # fmt: skip
        r = result_to_dict((await stub.CheckDocument(req, timeout=5)).result)
        a = r["abtc"]
        card = "USABLE" if a["usable"] else f"NOT USABLE: {a['reason']}"
        mark = "" if (a["reason"] or "") == t["expect_reason"] else "  (unexpected!)"
        ok = ok and not mark
        label = f"{t['issuing_state']} {t['number']}"
        print(f"{t['abtc']:<10} {label:<15} {r['verdict']:<8} {card:<36} "
              f"{a['checking_economy']}{mark}")  # fmt: skip
        print(f"  {t['label']}")
    return ok


async def _sample_paxlst(channel: Any) -> None:
    """An airline's PAXLST for four passengers, and the CUSRES the hub answers with."""
    from rmas.v1 import check_pb2, check_pb2_grpc

    data = _departing_tomorrow((FIXTURES / "paxlst" / "four_passengers.edi").read_bytes())
    resp = await check_pb2_grpc.DocumentCheckStub(channel).CheckPaxlst(
        check_pb2.CheckPaxlstRequest(message=data), timeout=5
    )
    from rmas.iapi.cusres import read_cusres

    print("\nAn airline's PAXLST (fixtures/paxlst/four_passengers.edi), answered with a CUSRES:")
    for _avf, abo, erc, text in read_cusres(resp.cusres).passengers:
        print(f"  passenger {abo}: ERC+{erc}  {text}")


def _departing_tomorrow(paxlst: bytes) -> bytes:
    """The fixture's flight moved to tomorrow (same times), so the hub keeps it open while the
    demo runs (a departed flight is purged ``[flights] purge_after_h`` after departure)."""
    day = (dt.date.today() + dt.timedelta(days=1)).strftime("%y%m%d").encode()
    return re.sub(rb"DTM\+(189|232):\d{6}", rb"DTM+\1:" + day, paxlst)


_HOW_TO = """
Try your own (in another terminal):
  .venv/bin/rmas check --hub {target}{flags} --state NZL --number LA000001
  .venv/bin/rmas check --hub {target}{flags} --state AUS --number PA0000001 --json
  .venv/bin/rmas check --hub {target}{flags} --state AUS --number PA0000001 --surname SMITH
  .venv/bin/rmas check --hub {target}{flags} --state AUS --number PA0000101 --abtc AU0000101
  .venv/bin/rmas iapi --hub {target}{airline} fixtures/paxlst/release_obrien.edi
The flight stays open (docs/airline.md): subscribe as the airline, then report passenger P3's
passport (NZL LA900001, OK TO BOARD above) stolen in New Zealand's store from another terminal;
the airline receives a status change (CUSRES BGM+132, 1Z) within a second or so:
  .venv/bin/rmas iapi watch --hub {target}{airline} --json
  .venv/bin/rmas store apply --url sqlite+aiosqlite:///{nzl} fixtures/flights/demo_stolen.jsonl
Documents to try are listed in fixtures/records/README.md. Every check is in the audit trail:
  .venv/bin/rmas audit verify --url sqlite+aiosqlite:///{audit}
  .venv/bin/rmas audit find --url sqlite+aiosqlite:///{audit} --key-file {key} \\
      --state NZL --number LA000002"""


if __name__ == "__main__":  # pragma: no cover
    from rmas.cli import main

    sys.exit(main(["demo", *sys.argv[1:]]))
