"""``rmas check``: one document against a running hub, answered for an officer or a script.

The text answer (an officer's terminal) shows what was checked, the verdict and directive,
whether the issuing economy was consulted, each source's status in words with who reported it
and when, and the 24/7 desk to call whenever the answer needs a call (ALERT, INCOMPLETE, a
holder mismatch). ``--json`` prints the same as data; errors are JSON then too.

The exit code says the verdict (docs/operations.md, "Exit codes"): 0 CLEAR, 1 ALERT,
3 INCOMPLETE, 4 INVALID_DATA (or the hub refused the document's fields), 2 a usage, config or
certificate mistake, 69 hub unavailable, 75 temporary (deadline passed, hub overloaded or
rate-limited: try again).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, NoReturn

from rmas.client import (
    EXIT_BY_DIRECTIVE,
    EXIT_BY_VERDICT,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    add_tls_arguments,
)
from rmas.documents import DocumentType
from rmas.errors import RmasError
from rmas.verdict import ALERTING

__all__ = ["add_check_parser", "format_result"]

_EPILOG = """exit codes:
  0   CLEAR (airline view: OK_TO_BOARD)
  1   ALERT (DO_NOT_BOARD)
  3   INCOMPLETE (CONTACT_AUTHORITY)
  4   INVALID_DATA (INSUFFICIENT_DATA), or the hub refused the document's fields
  2   usage, config or certificate mistake, or a role that may not check
  69  hub unavailable (not running, unreachable, TLS on one side only)
  75  temporary: deadline passed, hub overloaded or rate-limited; try again
"""


def add_check_parser(sub: Any) -> None:
    check = sub.add_parser(
        "check",
        help="check one document against a running hub",
        description="Check one document against a running hub.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("--hub", default="127.0.0.1:50051", help="hub address HOST:PORT")
    check.add_argument("--number", help="document number")
    check.add_argument("--state", help="issuing state (alpha-3, ICAO or alpha-2 code)")
    check.add_argument("--type", default="", help="document type: P, I, V (default: any)")
    check.add_argument("--mrz", action="append", default=[], help="an MRZ line (repeat per line)")
    check.add_argument("--surname", default="")
    check.add_argument("--given-names", default="")
    check.add_argument("--birth-date", default="", help="YYYY-MM-DD")
    check.add_argument("--sex", default="", help="M, F or X")
    check.add_argument("--nationality", default="")
    check.add_argument("--expiry-date", default="", help="YYYY-MM-DD")
    check.add_argument("--abtc", default="", metavar="CARD",
                       help="an APEC Business Travel Card presented with the passport")  # fmt: skip
    check.add_argument("--abtc-economy", default="", metavar="ECONOMY",
                       help="the card's home economy (default: the passport's state)")  # fmt: skip
    check.add_argument("--for", dest="checking_economy", default="", metavar="ECONOMY",
                       help="with --abtc: the economy the card is checked for "
                       "(default: the hub's own, [hub] economy)")  # fmt: skip
    check.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the hub")
    check.add_argument("--json", action="store_true", help="print JSON (errors too)")
    add_tls_arguments(check)
    check.set_defaults(func=cmd_check)
    plain_error = check.error

    def error(message: str) -> NoReturn:
        """argparse's own refusals (``--timeout soon``) as JSON too when --json was asked for."""
        if "--json" in sys.argv[1:]:
            print(json.dumps({"error": {"kind": "usage", "message": message}, "exit_code": 2},
                             indent=2))  # fmt: skip
            sys.exit(EXIT_USAGE)
        plain_error(message)
        raise AssertionError("argparse's error returned")  # pragma: no cover

    setattr(check, "error", error)  # noqa: B010 - an instance's own error handler


def _type_problem(code: str) -> str | None:
    """Why ``--type`` is refused, or None: a code no channel defines (:meth:`DocumentType.parse`,
    the one table) is a typing mistake (``--type Z``), not a kind of document."""
    try:
        DocumentType.parse(code)
    except ValueError as exc:
        return f"--type: {exc}"
    return None


def _fail(args: argparse.Namespace, exit_code: int, kind: str, message: str, **extra: Any) -> int:
    """Report an error once: one JSON object on stdout with --json, else lines on stderr."""
    if args.json:
        error = {"kind": kind, "message": message, **extra}
        print(json.dumps({"error": error, "exit_code": exit_code}, indent=2))
    else:
        print(f"rmas check: {message}", file=sys.stderr)
    return exit_code


def cmd_check(args: argparse.Namespace) -> int:
    if not args.mrz and not (args.number and args.state):
        return _fail(args, EXIT_USAGE, "usage", "give --number and --state, or --mrz lines")
    problem = _type_problem(args.type)
    if problem is not None:
        return _fail(args, EXIT_USAGE, "usage", problem)
    from rmas.runtime import run_async

    try:
        return int(run_async(_check(args)))
    except RmasError as exc:  # certificates that cannot be read, a key that is not theirs...
        return _fail(args, EXIT_USAGE, "config", str(exc))


async def _check(args: argparse.Namespace) -> int:
    import grpc

    from rmas.client import (
        check_document_request,
        connection_hint,
        field_violations,
        hub_channel,
        result_to_dict,
        rpc_error_text,
        rpc_exit_code,
    )
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
        abtc=args.abtc,
        abtc_economy=args.abtc_economy,
        checking_economy=args.checking_economy,
    )
    async with hub_channel(args.hub, args) as channel:
        stub = check_pb2_grpc.DocumentCheckStub(channel)
        try:
            response = await stub.CheckDocument(request, timeout=args.timeout)
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            hint = connection_hint(exc, args)
            return _fail(
                args,
                rpc_exit_code(exc),
                "rpc",
                rpc_error_text(exc) + (f"\n  {hint}" if hint and not args.json else ""),
                code=code.name if code else "UNKNOWN",
                details=exc.details() or "",
                field_violations=[{"field": f, "description": d} for f, d in field_violations(exc)],
                **({"hint": hint} if hint else {}),
            )
    result = result_to_dict(response.result)
    print(json.dumps(result, indent=2) if args.json else format_result(result))
    return exit_code(result)


def exit_code(result: dict[str, Any]) -> int:
    """0 CLEAR, 1 ALERT, 3 INCOMPLETE, 4 INVALID_DATA; by the directive in an airline's view."""
    if "verdict" in result:
        return EXIT_BY_VERDICT.get(result["verdict"], EXIT_UNAVAILABLE)
    return EXIT_BY_DIRECTIVE.get(result.get("directive", ""), EXIT_UNAVAILABLE)


# -- the officer's text ---------------------------------------------------------------------------

_STATUS_WORDS = {
    "NO_RECORD": "no record (not reported)",
    "VALID": "valid (issued, not reported)",
    "LOST": "REPORTED LOST",
    "STOLEN": "REPORTED STOLEN",
    "STOLEN_BLANK": "REPORTED STOLEN (blank document)",
    "REVOKED": "REVOKED",
    "INVALID": "INVALID (cancelled)",
    "NOT_ISSUED": "NEVER ISSUED (not in the issuer's registry)",
}
_OUTCOME_WORDS = {
    "TIMEOUT": "no answer in time",
    "UNAVAILABLE": "unavailable",
    "ERROR": "failed",
}
_ALERTING = frozenset(s.value for s in ALERTING)
_HOLDER_WORDS = {
    "surname": "surname",
    "given_names": "given names",
    "birth_date": "born",
    "sex": "sex",
    "nationality": "nationality",
}


def _checked_line(r: dict[str, Any]) -> str | None:
    doc = r.get("document")
    if not doc:
        return None
    kind = doc.get("type", "UNSPECIFIED")
    kind = "any type" if kind == "UNSPECIFIED" else kind.replace("_", " ").lower()
    text = f"{doc.get('issuing_state', '?')} {doc.get('number', '?')} ({kind})"
    if doc.get("expiry_date"):
        text += f", expires {doc['expiry_date']}"
    holder = doc.get("holder") or {}
    if holder:
        text += "; holder " + ", ".join(
            f"{_HOLDER_WORDS[k]} {holder[k]}" for k in _HOLDER_WORDS if holder.get(k)
        )
    else:
        text += "; no holder data given"
    return text


def _source_line(s: dict[str, Any]) -> str:
    role = "issuer" if s.get("issuer") else "global"
    if s["outcome"] == "ANSWERED":
        status = s.get("status") or "?"
        words = _STATUS_WORDS.get(status, status)
    else:
        words = f"{_OUTCOME_WORDS.get(s['outcome'], s['outcome'].lower())}"
        if s.get("error") and s["outcome"] != "TIMEOUT":
            words += f" ({s['error']})"
        if not s.get("required"):
            words += ", optional"
    line = f"  {s['provider']:<10} {role:<6} {words}"
    who = []
    if s.get("reporting_authority"):
        who.append(f"by {s['reporting_authority']}")
    if s.get("reported_on"):
        who.append(f"on {s['reported_on']}")
    if s.get("record_ref"):
        who.append(f"ref {s['record_ref']}")
    if who:
        line += "; reported " + " ".join(who)
    match = s.get("holder_match")
    if match == "MISMATCH":
        line += "; HOLDER DOES NOT MATCH the issuer's record"
    elif match == "MATCH":
        line += "; holder matches"
    if s.get("queried_number"):
        line += f"; about the reading {s['queried_number']}"
    if s.get("detail"):
        line += f"; {s['detail']}"
    return line + f"  [{s['latency_ms']:.1f} ms]"


def _needs_call(r: dict[str, Any], s: dict[str, Any]) -> bool:
    """Whether this source's desk is one to call about this answer."""
    if s.get("holder_match") == "MISMATCH" or s.get("status") in _ALERTING:
        return True
    return bool(
        r.get("verdict") == "INCOMPLETE" and s["outcome"] != "ANSWERED" and s.get("required")
    )


def format_result(r: dict[str, Any]) -> str:
    """A human-readable verdict, as an officer's terminal shows it (an airline's view: the
    directive and check id only)."""
    if "verdict" not in r:
        unchecked = "  (unchecked)" if r.get("unchecked") else ""
        return "\n".join([
            f"directive  {r.get('directive', '-')}{unchecked}",
            f"check id   {r['check_id']}",
            "           (this identity's role sees the directive only)",
        ])  # fmt: skip
    lines = []
    checked = _checked_line(r)
    if checked:
        lines.append(f"checked    {checked}")
    lines += [
        f"verdict    {r['verdict']}" + ("  (unchecked)" if r.get("unchecked") else ""),
        f"directive  {r['directive']}",
        f"check id   {r['check_id']}",
    ]
    if r["verdict"] != "INVALID_DATA":
        lines.append(
            "issuer     consulted: the issuing economy's own records were asked"
            if r.get("issuer_consulted")
            else "issuer     NOT consulted: no provider of the issuing economy was asked; "
            "only global stores answered"
        )
    mrz = r.get("mrz")
    if mrz:
        digits = " ".join(f"{k}={v}" for k, v in mrz["check_digits"].items() if v != "ABSENT")
        lines.append(f"mrz        {mrz['layout']}  {digits}")
        for sug in mrz["suggestions"]:
            lines.append(
                f"suggest    line {sug['line']} column {sug['column']}: {sug['found']!r} may be "
                f"{sug['replacement']!r} -> number {sug['document_number']}"
            )
    for p in r.get("problems", []):
        lines.append(f"problem    {p['field']}: {p['description']}")
    for w in r.get("warnings", []):
        lines.append(f"warning    {w}")
    if r["sources"]:
        lines.append("sources")
    lines += [_source_line(s) for s in r["sources"]]
    calls = [s for s in r["sources"] if _needs_call(r, s)]
    needs_call = r["verdict"] in ("ALERT", "INCOMPLETE") or any(
        s.get("holder_match") == "MISMATCH" for s in r["sources"]
    )
    if needs_call:
        lines.append("call (24/7)")
        for s in calls:
            contact = s.get("contact") or "no 24/7 contact configured"
            lines.append(f"  {s['provider']:<10} {contact}")
        if not calls:
            lines.append("  the issuing economy's 24/7 document desk (no source names one)")
    card = r.get("abtc")
    if card:
        lines += _card_lines(card)
    return "\n".join(lines)


def _card_lines(card: dict[str, Any]) -> list[str]:
    """The APEC Business Travel Card's verdict: it decides the lane, never the passport's."""
    verdict = "USABLE" if card["usable"] else f"NOT USABLE ({card['reason']})"
    return [
        f"abtc       {verdict} for {card['checking_economy']}",
        f"  {card['provider'] or '-':<10} {card['outcome'] or '-':<11} "
        f"{card['status'] or '-':<12} expires {card['expiry'] or '-'}  "
        f"pre-cleared: {' '.join(card['pre_cleared']) or '-'}  "
        f"passport: {card['passport_match']}",
        *([f"  {card['detail']}"] if card["detail"] else []),
    ]
