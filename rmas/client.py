"""Client-side helpers for the hub's gRPC API: building requests, reading answers as plain data.

Used by the ``rmas`` CLI, the demo and the tests; handy for any Python caller.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

from rmas.documents import DocumentType
from rmas.grpckit.enums import TYPE_TO_PB
from rmas.v1 import check_pb2, common_pb2

__all__ = [
    "EXIT_BY_DIRECTIVE",
    "EXIT_BY_VERDICT",
    "EXIT_TEMPORARY",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "add_tls_arguments",
    "check_document_request",
    "connection_hint",
    "document_type_pb",
    "field_violations",
    "hub_channel",
    "result_to_dict",
    "rpc_error_text",
    "rpc_exit_code",
]

# The proto enum's names are the type's names: no second table of codes.


def document_type_pb(code: str) -> common_pb2.DocumentType.ValueType:
    """A document code as typed by a person (``P``, ``C``, ``ID``, ``VISA``...) as the proto enum;
    raises ValueError for a code no channel defines (:meth:`DocumentType.parse`)."""
    return TYPE_TO_PB[DocumentType.parse(code)]


def document_pb(
    *,
    number: str,
    state: str,
    type_code: str = "",
    surname: str = "",
    given_names: str = "",
    birth_date: str = "",
    sex: str = "",
    nationality: str = "",
    expiry_date: str = "",
) -> common_pb2.Document:
    """A Document message; ``type_code`` is read by :meth:`DocumentType.parse` (ValueError for a
    code no channel defines)."""
    doc = common_pb2.Document(
        issuing_state=state,
        number=number,
        type=document_type_pb(type_code),
        expiry_date=expiry_date,
    )
    if surname or given_names or birth_date or sex or nationality:
        doc.holder.CopyFrom(
            common_pb2.Holder(
                surname=surname,
                given_names=given_names,
                birth_date=birth_date,
                sex=sex,
                nationality=nationality,
            )
        )
    return doc


def check_document_request(
    *,
    mrz: Sequence[str] = (),
    abtc: str = "",
    abtc_economy: str = "",
    checking_economy: str = "",
    **fields: str,
) -> check_pb2.CheckDocumentRequest:
    """A CheckDocument request from MRZ lines, or from fields (see :func:`document_pb`); with
    ``abtc``, the APEC Business Travel Card presented with it (its home economy ``abtc_economy``,
    default the passport's issuing state) checked for ``checking_economy`` (default: the hub's)."""
    if mrz:
        request = check_pb2.CheckDocumentRequest(mrz_lines=list(mrz))
    else:
        request = check_pb2.CheckDocumentRequest(document=document_pb(**fields))
    if abtc:
        request.abtc.number = abtc
        request.abtc.home_economy = abtc_economy
        request.checking_economy = checking_economy
    return request


_HOLDER_FIELDS = ("surname", "given_names", "birth_date", "sex", "nationality")


def _enum(enum_type: Any, value: int, prefix: str) -> str:
    name: str = enum_type.Name(value)
    return name.removeprefix(prefix)


def result_to_dict(r: check_pb2.CheckResult) -> dict[str, Any]:
    """A CheckResult as plain JSON-ready data: verdict, directive, check_id, sources...

    An airline's view carries no verdict (only the directive and the check id): then there is
    no ``verdict`` key at all, rather than ``UNSPECIFIED``.
    """
    out: dict[str, Any] = {}
    if r.verdict != check_pb2.VERDICT_UNSPECIFIED:
        out["verdict"] = _enum(check_pb2.Verdict, r.verdict, "VERDICT_")
    if r.directive != check_pb2.DIRECTIVE_UNSPECIFIED:
        out["directive"] = _enum(check_pb2.Directive, r.directive, "DIRECTIVE_")
    out |= {"check_id": r.check_id, "unchecked": r.unchecked, "sources": []}
    if "verdict" in out:
        out["issuer_consulted"] = r.issuer_consulted
    if r.ref:
        out["ref"] = r.ref
    for s in r.sources:
        src: dict[str, Any] = {
            "provider": s.provider_id,
            "outcome": _enum(check_pb2.Outcome, s.outcome, "OUTCOME_"),
            "status": None,
            "latency_ms": round(s.latency_ms, 3),
            "required": s.required,
            "issuer": s.issuer,
        }
        if s.HasField("record"):
            rec = s.record
            src["status"] = _enum(common_pb2.RecordStatus, rec.status, "RECORD_STATUS_")
            src["holder_match"] = _enum(common_pb2.HolderMatch, rec.holder_match, "HOLDER_MATCH_")
            for key in ("reported_on", "record_ref", "reporting_authority", "detail"):
                if getattr(rec, key):
                    src[key] = getattr(rec, key)
        for key in ("contact", "error", "queried_number"):
            if getattr(s, key):
                src[key] = getattr(s, key)
        out["sources"].append(src)
    if r.problems:
        out["problems"] = [{"field": p.field, "description": p.description} for p in r.problems]
    if r.warnings:
        out["warnings"] = list(r.warnings)
    if r.HasField("document"):
        d = r.document
        out["document"] = {
            "issuing_state": d.issuing_state,
            "number": d.number,
            "type": _enum(common_pb2.DocumentType, d.type, "DOCUMENT_TYPE_"),
        }
        if d.expiry_date:
            out["document"]["expiry_date"] = d.expiry_date
        if d.HasField("holder"):
            holder = {k: getattr(d.holder, k) for k in _HOLDER_FIELDS if getattr(d.holder, k)}
            if holder:
                out["document"]["holder"] = holder
    if r.HasField("mrz"):
        m = r.mrz
        out["mrz"] = {
            "layout": m.layout,
            "expired": m.expired,
            "check_digits": {
                c.name: _enum(check_pb2.EvidenceState, c.state, "EVIDENCE_STATE_")
                for c in m.check_digits
            },
            "suggestions": [
                {"field": x.field, "line": x.line, "column": x.column, "found": x.found,
                 "replacement": x.replacement, "document_number": x.document_number}
                for x in m.suggestions
            ],
            "problems": {f.name: f.problem for f in m.fields if f.problem},
        }  # fmt: skip
    if r.HasField("abtc"):
        out["abtc"] = abtc_to_dict(r.abtc)
    return out


def abtc_to_dict(a: check_pb2.AbtcResult) -> dict[str, Any]:
    """An ABTC verdict as plain data: status, usable, reason, pre_cleared_for_us, expiry,
    provider, outcome (and the details an officer reads)."""
    return {
        "status": _enum(common_pb2.CardStatus, a.status, "CARD_STATUS_") if a.status else None,
        "usable": a.usable,
        "reason": _enum(check_pb2.AbtcReason, a.reason, "ABTC_REASON_") if a.reason else None,
        "pre_cleared_for_us": a.pre_cleared_for_us,
        "expiry": a.expiry or None,
        "provider": a.provider or None,
        "outcome": _enum(check_pb2.Outcome, a.outcome, "OUTCOME_") if a.outcome else None,
        "passport_match": _enum(common_pb2.HolderMatch, a.passport_match, "HOLDER_MATCH_"),
        "home_economy": a.home_economy,
        "checking_economy": a.checking_economy,
        "pre_cleared": list(a.pre_cleared),
        "detail": a.detail,
    }


def field_violations(exc: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    """The google.rpc.BadRequest field violations an error carries, as (field, description)."""
    out: list[tuple[str, str]] = []
    metadata: Any = exc.trailing_metadata() or ()
    for key, value in metadata:
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                out.extend((v.field, v.description) for v in bad.field_violations)
    return out


def rpc_error_text(exc: grpc.aio.AioRpcError) -> str:
    """The error as one message: its code and details, or its code and each bad field (the
    details of INVALID_ARGUMENT repeat the fields: they are written once)."""
    code = exc.code()
    name = code.name if code else "UNKNOWN"
    violations = field_violations(exc)
    details = exc.details() or ""
    if not violations:
        return f"{name}: {details}"
    joined = "; ".join(f"{f}: {d}" for f, d in violations)
    text = name + ("" if details in ("", joined) else f": {details}")
    return text + "".join(f"\n  {f}: {d}" for f, d in violations)


#: Exit codes of ``rmas check`` (and the hub's errors in ``rmas status``); docs/operations.md.
EXIT_BY_VERDICT = {"CLEAR": 0, "ALERT": 1, "INCOMPLETE": 3, "INVALID_DATA": 4}
#: An airline's view has no verdict: its directive says the same.
EXIT_BY_DIRECTIVE = {
    "OK_TO_BOARD": 0,
    "DO_NOT_BOARD": 1,
    "CONTACT_AUTHORITY": 3,
    "INSUFFICIENT_DATA": 4,
}
EXIT_USAGE = 2  # the command line, the config, certificates, or a role that may not ask
EXIT_UNAVAILABLE = 69  # the hub cannot be reached or cannot answer (sysexits EX_UNAVAILABLE)
EXIT_TEMPORARY = 75  # try again: deadline passed, hub overloaded or rate-limited (EX_TEMPFAIL)


def rpc_exit_code(exc: grpc.aio.AioRpcError) -> int:
    """The exit code for a hub that answered with an error instead of a result."""
    code = exc.code()
    if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE):
        return EXIT_BY_VERDICT["INVALID_DATA"]
    if code in (
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
    ):
        return EXIT_TEMPORARY
    if code in (
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNIMPLEMENTED,
    ):
        return EXIT_USAGE
    return EXIT_UNAVAILABLE


def connection_hint(exc: grpc.aio.AioRpcError, args: argparse.Namespace | None) -> str:
    """What to do about an UNAVAILABLE that looks like TLS on one side only ("" otherwise)."""
    if exc.code() is not grpc.StatusCode.UNAVAILABLE:
        return ""
    details = (exc.details() or "").lower()
    if "connection refused" in details or "name resolution" in details or "dns" in details:
        return ""
    if args is None or not (getattr(args, "cert", None) or getattr(args, "certs", None)):
        return (
            "the hub closed the connection: if it runs with [tls] it needs a client certificate: "
            "pass --cert FILE --key FILE --ca FILE, or --certs DIR --as NAME (rmas certs init)"
        )
    if "ssl" in details or "handshake" in details or "certificate" in details:
        return (
            "the TLS handshake failed: check that the hub runs with [tls], that --ca holds the "
            "CA of its certificate and that yours is signed by its CA (--server-name when its "
            "certificate names another host)"
        )
    return ""


def add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    """``--cert/--key/--ca`` (or ``--certs DIR --as NAME``) for a hub that requires mTLS."""
    g = parser.add_argument_group("mutual TLS (a hub with [tls])")
    g.add_argument("--cert", help="client certificate (PEM)")
    g.add_argument("--key", help="client private key (PEM)")
    g.add_argument("--ca", help="CA that signed the hub's certificate (PEM)")
    g.add_argument(
        "--certs",
        metavar="DIR",
        help="a folder from `rmas certs init`: uses DIR/ca.pem, DIR/NAME.pem, DIR/NAME.key",
    )
    g.add_argument(
        "--as",
        dest="as_name",
        metavar="NAME",
        default="officer",
        help="with --certs: whose certificate (airline, officer, operator...)",
    )
    g.add_argument(
        "--server-name",
        default="",
        help="name to verify in the hub's certificate when it differs from the host",
    )


def hub_channel(target: str, args: argparse.Namespace | None = None) -> grpc.aio.Channel:
    """A channel to a hub: mTLS when the arguments name certificates, else plain (loopback)."""
    cert = key = ca = None
    if args is not None and getattr(args, "certs", None):
        d = Path(args.certs)
        cert, key, ca = d / f"{args.as_name}.pem", d / f"{args.as_name}.key", d / "ca.pem"
    if args is not None and getattr(args, "cert", None):
        cert, key, ca = Path(args.cert), Path(args.key or ""), Path(args.ca or "")
    if cert is None or key is None or ca is None:
        return grpc.aio.insecure_channel(target)
    from rmas.security.tls import TlsConfig

    tls = TlsConfig.load(cert, key, ca, prefix="--cert")
    options: list[tuple[str, str]] = []
    server_name = str(getattr(args, "server_name", "") or "")
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return grpc.aio.secure_channel(target, tls.channel_credentials(), options=options)
