"""``rmas certs``: write development certificates for mutual TLS, and show what a certificate holds.

``rmas certs init DIR`` writes a throw-away CA and one certificate per party (hub, national node,
airline, officer post, operator) and prints the ``[tls]`` and ``[[callers]]`` configuration to
paste into the hub's file. ``rmas certs show FILE`` prints a certificate's subject, identity URI,
issuer, validity, extended key usages and SHA-256 fingerprint. Development only: a production
deployment uses the agencies' own PKI (see :mod:`rmas.security.certs`).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from rmas.errors import ConfigError
from rmas.security.certs import check_name, config_snippet, identities, init_dir

__all__ = ["describe", "register"]

_PARTY_OPTIONS = (
    ("hub", "hub-1", "the hub"),
    ("node", "NZL", "the national node"),
    ("airline", "QF", "the airline"),
    ("officer", "AKL-T1", "the officer post"),
    ("operator", "ops", "the operator"),
)
_EKU_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
}
_DEVELOPMENT_ONLY = (
    "These certificates are for development only: a production deployment uses the agencies' "
    "own PKI."
)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("certs", help="development certificates for mutual TLS")
    sub = p.add_subparsers(dest="certs_command", metavar="COMMAND", required=True)

    init = sub.add_parser("init", help="write a development CA and one certificate per party")
    init.add_argument("directory", metavar="DIR", help="directory to write into (created)")
    init.add_argument("--force", action="store_true", help="replace files already there")
    init.add_argument("--days", type=int, default=825, help="validity of the party certificates")
    for kind, default, who in _PARTY_OPTIONS:
        help_text = f"name of {who}: rmas://{kind}/NAME (default {default})"
        init.add_argument(f"--{kind}", default=default, metavar="NAME", help=help_text)
    init.set_defaults(func=_cmd_init)

    show = sub.add_parser("show", help="print what a PEM certificate holds")
    show.add_argument("file", metavar="FILE", help="PEM certificate file")
    show.set_defaults(func=_cmd_show)


def _cmd_init(args: argparse.Namespace) -> int:
    for kind, _default, _who in _PARTY_OPTIONS:
        check_name(getattr(args, kind), f"--{kind}")
    if args.days <= 0:
        raise ConfigError("--days", f"must be a positive number of days, got {args.days}")
    directory = Path(args.directory)
    paths = init_dir(
        directory,
        hub=args.hub,
        node=args.node,
        airline=args.airline,
        officer=args.officer,
        operator=args.operator,
        days=args.days,
        force=args.force,
    )
    print(f"rmas certs: wrote {len(paths)} files to {directory}:")
    width = max(len(str(p)) for p in paths.values())
    for fname, path in paths.items():
        if fname.endswith(".key"):
            note = "private key (mode 0600)"
            if fname == "ca.key":
                note += ": whoever holds it can mint any identity"
        else:
            ids = identities(x509.load_pem_x509_certificate(path.read_bytes()))
            note = ", ".join(ids) if ids else "certificate authority"
        print(f"  {path!s:<{width}}  {note}")
    print()
    print(_DEVELOPMENT_ONLY)
    print("\nFor the hub's configuration file:\n")
    print(config_snippet(directory, paths), end="")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        print(f"rmas certs show: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        what = "a private key" if b"PRIVATE KEY-----" in data else "no PEM certificate"
        print(f"rmas certs show: {args.file} holds {what}", file=sys.stderr)
        return 2
    print("\n\n".join(describe(c) for c in certs))
    return 0


def describe(cert: x509.Certificate, now: datetime | None = None) -> str:
    """A certificate as ``rmas certs show`` prints it, one ``label  value`` line per fact."""
    now = now or datetime.now(UTC)
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    state = "EXPIRED" if now > end else "NOT YET VALID" if now < start else "valid now"
    ids = identities(cert)
    if not ids:
        identity = "(none)"
    elif len(ids) == 1:
        identity = ids[0]
    else:
        identity = "AMBIGUOUS: " + ", ".join(ids)
    try:
        ekus = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        usage = ", ".join(_EKU_NAMES.get(o, o.dotted_string) for o in ekus)
    except x509.ExtensionNotFound:
        usage = "(no extendedKeyUsage)"
    try:
        ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        ca = False
    fingerprint = cert.fingerprint(hashes.SHA256()).hex(":").upper()
    rows = [
        ("subject", cert.subject.rfc4514_string()),
        ("identity", identity),
        ("issuer", cert.issuer.rfc4514_string()),
        ("valid", f"{start:%Y-%m-%d %H:%M:%S} UTC to {end:%Y-%m-%d %H:%M:%S} UTC  {state}"),
        ("usage", usage),
        ("sans", _sans(cert)),
        ("ca", "yes" if ca else "no"),
        ("sha256", fingerprint),
    ]
    return "\n".join(f"{label:<9} {value}" for label, value in rows)


def _sans(cert: x509.Certificate) -> str:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "(none)"
    out: list[str] = []
    for g in san:
        if isinstance(g, x509.UniformResourceIdentifier):
            out.append(f"URI:{g.value}")
        elif isinstance(g, x509.DNSName):
            out.append(f"DNS:{g.value}")
        elif isinstance(g, x509.IPAddress):
            out.append(f"IP:{g.value}")
        else:
            out.append(str(g))
    return ", ".join(out)
