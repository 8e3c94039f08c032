"""``rmas audit``: verify the chain, find the checks of a document, print the head, make a key.

Exit codes: 0 success (``verify``: the chain is intact; ``find``: checks were found), 1 the
answer is no (``verify``: the chain is broken; ``find``: no check of that document), 2 the
question could not be answered (unreachable database, missing key file, bad arguments).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from rmas.errors import FieldViolation, RmasError, ValidationError

__all__ = ["check_json", "register"]

_URL_HELP = "audit database: sqlite+aiosqlite:///FILE or postgresql+asyncpg://USER@HOST/DB"

_VERIFY_HELP = """\
Recompute every block's hash and check every link and that no sequence number is missing.
Edited entries are named (in blocks of rmas-audit-entries/2, the group of at most 64 entries an
edit is in), deleted ones detected; a deleted *tail* (the latest entries) is not,
because what remains is a valid chain: keep an anchor (`rmas audit head` prints SEQ:HASH)
outside the database and pass it as --expect-head. Exit 0 intact, 1 broken, 2 cannot read the
database."""


_MIGRATE_HELP = """\
Convert an audit trail written by an earlier rmas (SQLite with a row per entry, SQLite blocks,
PostgreSQL rows) to the current layout (blocks, written in rmas-audit-entries/2; see
docs/architecture.md), in one transaction, keeping every entry. The old chain is checked as it
is read (nothing is converted unless it is intact) and the new one verified after. Its hashes
are new: record the new head as your anchor. Stop the hubs that write to it first; a hub
refuses to append to an earlier layout. Exit 0 converted, 2 not converted (the reason
printed)."""


def register(subparsers: Any) -> None:
    audit = subparsers.add_parser(
        "audit",
        help="verify and search the hub's audit trail",
        description="Verify and search the hub's tamper-evident audit trail.",
    )
    sub = audit.add_subparsers(dest="audit_command", metavar="COMMAND", required=True)

    ver = sub.add_parser(
        "verify",
        help="check that no entry was edited or deleted",
        description=_VERIFY_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ver.add_argument("--url", required=True, help=_URL_HELP)
    ver.add_argument("--expect-head", metavar="SEQ:HASH",
                     help="an anchor kept from `rmas audit head`: the entry SEQ must still exist "
                          "with this hash (detects a deleted or rewritten tail)")  # fmt: skip
    ver.add_argument("--json", action="store_true", help="print the report as JSON")
    ver.set_defaults(func=_cmd_verify)

    fnd = sub.add_parser(
        "find",
        help="list the checks of one document (or one check id)",
        description="List the checks of a document, found by recomputing its keyed hash from "
        "the number and issuing state (normalised as the hub does), or the check with an id. "
        "The number is never printed. Exit 0 found, 1 none, 2 error.",
    )
    fnd.add_argument("--url", required=True, help=_URL_HELP)
    fnd.add_argument("--number", help="document number (spaces, dashes, '<' ignored)")
    fnd.add_argument("--state", help="issuing state: alpha-3, ICAO (D) or alpha-2 code")
    fnd.add_argument("--key-file", help="the hub's audit key file ([audit] key_file)")
    fnd.add_argument("--check-id", help="find the check with this id instead")
    fnd.add_argument("--abtc", metavar="CARD",
                     help="find the checks an APEC Business Travel Card was presented at instead "
                     "(with --abtc-economy and --key-file)")  # fmt: skip
    fnd.add_argument("--abtc-economy", metavar="ECONOMY", help="the card's home economy")
    fnd.add_argument("--json", action="store_true", help="print JSON")
    fnd.set_defaults(func=_cmd_find)

    hd = sub.add_parser(
        "head",
        help="print SEQ:HASH of the last entry (an anchor to keep for verify --expect-head)",
    )
    hd.add_argument("--url", required=True, help=_URL_HELP)
    hd.add_argument("--json", action="store_true", help="print JSON")
    hd.set_defaults(func=_cmd_head)

    mg = sub.add_parser(
        "migrate",
        help="convert a trail written by an earlier rmas (SQLite or PostgreSQL) to blocks",
        description=_MIGRATE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mg.add_argument("--url", required=True, help=_URL_HELP)
    mg.add_argument("--hub-id", default="",
                    help="hub id to record in the converted entries (default: none)")  # fmt: skip
    mg.set_defaults(func=_cmd_migrate)

    kg = sub.add_parser("keygen", help="write a new random audit key file (32 bytes, hex)")
    kg.add_argument("file", type=Path, help="where to write it (must not exist)")
    kg.set_defaults(func=_cmd_keygen)


def _fail(command: str, message: object) -> int:
    print(f"rmas audit {command}: {message}", file=sys.stderr)
    return 2


def _cmd_verify(args: argparse.Namespace) -> int:
    from rmas.audit.chain import parse_anchor
    from rmas.audit.reader import verify
    from rmas.runtime import run_async

    anchor = None
    if args.expect_head:
        try:
            anchor = parse_anchor(args.expect_head)
        except ValueError as exc:
            return _fail("verify", f"--expect-head: {exc}")
    try:
        report = run_async(verify(args.url, expect_head=anchor))
    except RmasError as exc:
        return _fail("verify", exc)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
        return 0 if report.ok else 1
    seq, digest = report.head
    formats = ", ".join(f"{name} {n}" for name, n in report.formats)
    if report.ok:
        print(f"audit trail intact: {report.count} entries, head {seq}:{digest}")
        if formats:
            print(f"entries by block format: {formats}")
        if anchor is None:
            print("(a deleted tail is detected only against an anchor: --expect-head SEQ:HASH)")
        else:
            print(f"anchor {anchor[0]}:{anchor[1]} holds")
        return 0
    print(f"audit trail BROKEN: {report.problem_count} problem(s) in {report.count} entries")
    for problem in report.problems:
        print(f"  {problem}")
    if report.problem_count > len(report.problems):
        print(f"  ... and {report.problem_count - len(report.problems)} more")
    print(f"head {seq}:{digest}")
    if formats:
        print(f"entries by block format: {formats}")
    return 1


def _document_key(args: argparse.Namespace) -> tuple[str, str]:
    """(issuing economy, keyed hash) of the document the arguments name, as the hub keys it."""
    from rmas.audit.entry import DocumentKeyer
    from rmas.documents import validate_document

    try:
        query = validate_document(issuing_state=args.state, number=args.number, prefix="")
    except ValidationError as exc:
        options = {".issuing_state": "--state", ".number": "--number"}
        raise ValidationError(
            [FieldViolation(options.get(v.field, v.field), v.description) for v in exc.violations]
        ) from None
    keyer = DocumentKeyer.from_file(args.key_file)
    economy, number = query.key
    return economy, keyer.key_of(economy, number)


def _card_key(args: argparse.Namespace) -> tuple[str, str]:
    """(home economy, keyed hash) of the card the arguments name, as the hub's entries key it
    (rmas.audit.entry: the keyer's hash under the card's own domain, ``ABTC:<economy>``)."""
    from rmas.abtc import validate_card
    from rmas.audit.entry import DocumentKeyer

    try:
        card = validate_card(home_economy=args.abtc_economy or "", number=args.abtc,
                             checking_economy=args.abtc_economy or "", prefix="")  # fmt: skip
    except ValidationError as exc:
        options = {".home_economy": "--abtc-economy", ".number": "--abtc"}
        raise ValidationError(
            [FieldViolation(options.get(v.field, v.field), v.description) for v in exc.violations]
        ) from None
    keyer = DocumentKeyer.from_file(args.key_file)
    return card.home_economy, keyer.key_of(f"ABTC:{card.home_economy}", card.number)


def _cmd_find(args: argparse.Namespace) -> int:
    from rmas.audit.reader import find, find_card, find_check
    from rmas.runtime import run_async

    if args.abtc:
        if args.number or args.state or args.check_id:
            return _fail("find", "give --abtc, --number and --state, or --check-id: one of them")
        if not (args.abtc_economy and args.key_file):
            return _fail("find", "give --abtc with --abtc-economy and --key-file")
        try:
            economy, key = _card_key(args)
            rows = run_async(find_card(args.url, key))
        except RmasError as exc:
            return _fail("find", exc)
        cards = [check_json(r) for r in rows]
        if args.json:
            print(json.dumps({"home_economy": economy, "card_key": key, "checks": cards},
                             indent=2))  # fmt: skip
            return 0 if cards else 1
        if not cards:
            print(f"no check with this {economy} card in the audit trail")
            return 1
        print(f"{len(cards)} check(s) with this {economy} card:")
        for c in cards:
            card = c.get("abtc", {})
            print(f"{c['time']}  hub {c['hub'] or '-'}  {c['caller']} ({c['role']})  check "
                  f"{c['check_id']}  card {card.get('verdict', '?')} for "
                  f"{card.get('checking_economy', '?')}  document {c['verdict']}")  # fmt: skip
        return 0
    if args.check_id:
        if args.number or args.state:
            return _fail("find", "give --check-id, or --number and --state, not both")
        state, key = "", ""
    elif not (args.number and args.state and args.key_file):
        return _fail("find", "give --number, --state and --key-file (or --check-id)")
    try:
        if not args.check_id:
            state, key = _document_key(args)
            rows = run_async(find(args.url, key))
        else:
            rows = run_async(find_check(args.url, args.check_id))
    except RmasError as exc:
        return _fail("find", exc)
    checks = [check_json(r) for r in rows]
    if args.json:
        out: dict[str, Any] = {"checks": checks}
        if not args.check_id:
            out = {"issuing_state": state, "document_key": key, **out}
        print(json.dumps(out, indent=2))
        return 0 if checks else 1
    what = f"check {args.check_id}" if args.check_id else f"this {state} document"
    if not checks:
        print(f"no check of {what} in the audit trail")
        return 1
    print(f"{len(checks)} check(s) of {what}:")
    for c in checks:
        providers = ", ".join(
            f"{p['provider']}={p['outcome']}"
            + (f"/{p['status']}" if p["status"] else "")
            + (" (OCR candidate)" if p["candidate"] else "")
            for p in c["providers"]
        )
        print(
            f"{c['time']}  hub {c['hub'] or '-'}  {c['channel']:<8} {c['caller']} ({c['role']})"
            f"  check {c['check_id']}"
            f"  {c['verdict']} {c['directive']}"
            + (f"  ref {c['reference']}" if c["reference"] else "")
            + f"  providers: {providers or 'none'}"
            + (f"  abtc: {c['abtc']['verdict']} for {c['abtc']['checking_economy']}"
               if "abtc" in c else "")
        )  # fmt: skip
    return 0


def check_json(row: dict[str, Any]) -> dict[str, Any]:
    """A stored entry (a row of :func:`rmas.audit.sink.find`) as `find --json` prints it."""
    try:
        sources = json.loads(row["sources"])
    except ValueError:
        sources = []
    items = [s for s in sources if isinstance(s, list) and len(s) == 4]
    out: dict[str, Any] = {
        "seq": row["seq"],
        "time": row["time"],
        "hub": row["hub"],
        "caller": row["caller"],
        "role": row["role"],
        "channel": row["channel"],
        "check_id": row["check_id"],
        "issuing_state": row["issuing_state"],
        "reference": row["reference"],
        "verdict": row["verdict"],
        "directive": row["directive"],
        "providers": [
            {"provider": s[0], "outcome": s[1], "status": s[2], "candidate": bool(s[3])}
            for s in items
            if not str(s[0]).startswith("abtc:")
        ],
    }
    # The APEC Business Travel Card presented with the document (rmas.audit.entry._card_item):
    # its keyed hash, never its number.
    for s in items:
        if str(s[0]).startswith("abtc:"):
            key, _, rest = str(s[3]).removeprefix("card:").partition(" ")
            verdict, _, economy = rest.partition(" for ")
            out["abtc"] = {"provider": str(s[0]).removeprefix("abtc:"), "outcome": s[1],
                           "status": s[2], "card_key": key, "verdict": verdict,
                           "checking_economy": economy}  # fmt: skip
    return out


def _cmd_head(args: argparse.Namespace) -> int:
    from rmas.audit.reader import head
    from rmas.runtime import run_async

    try:
        seq, digest = run_async(head(args.url))
    except RmasError as exc:
        return _fail("head", exc)
    if args.json:
        print(json.dumps({"seq": seq, "hash": digest}))
    else:
        print(f"{seq}:{digest}")
    return 0


def _cmd_migrate(args: argparse.Namespace) -> int:
    from rmas.audit.migrate import migrate
    from rmas.runtime import run_async

    try:
        done = run_async(migrate(args.url, hub=args.hub_id))
    except RmasError as exc:
        return _fail("migrate", exc)
    old_seq, old_hash = done.old_head
    seq, digest = done.after.head
    print(f"converted {done.entries} entries ({done.layout}); the new chain verifies")
    print(f"old head {old_seq}:{old_hash}")
    print(f"new head {seq}:{digest}  (keep this one as your anchor)")
    return 0


def _cmd_keygen(args: argparse.Namespace) -> int:
    path: Path = args.file
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        return _fail("keygen", f"cannot create {path}: {exc.strerror}")
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(secrets.token_hex(32) + "\n")
    print(f"wrote a new audit key to {path} (keep it secret, and keep it: "
          "without it no document can be found in the trail)")  # fmt: skip
    return 0
