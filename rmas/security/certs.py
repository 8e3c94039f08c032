"""Development certificates: a throw-away CA and one certificate per party, for mutual TLS.

This is what ``rmas certs init`` writes so that a hub, a national node and their callers can run
mutual TLS on a laptop or in CI. It is **for development only**: a production deployment uses the
agencies' own PKI, and nothing in rmas depends on certificates having been made here.

Identity convention
-------------------
A party's identity is the one URI subject alternative name (SAN) in its certificate::

    rmas://<kind>/<name>

    rmas://hub/hub-1        a hub
    rmas://node/NZL         a national node
    rmas://airline/QF       an airline (API/iAPI sender)
    rmas://officer/AKL-T1   an officer post (border terminal)
    rmas://operator/ops     an operator (administration)

``kind`` and ``name`` are letters, digits, ``.``, ``_`` and ``-``. The hub's configuration, not the
certificate, maps identities to roles (``[[callers]] identity = "..." role = "..."``): the kind in
the URI is a naming convention for humans, never a grant. The subject common name repeats the name
for humans too; nothing reads it.

What is issued
--------------
* The CA: basicConstraints CA=true (path length 0), keyUsage keyCertSign and cRLSign.
* Each party: an EC P-256 key (fast handshakes), basicConstraints CA=false, keyUsage
  digitalSignature, extendedKeyUsage clientAuth (client) and/or serverAuth (server), and SANs: the
  identity URI, plus DNS names and IP addresses only when it serves (so a hub reached as
  ``127.0.0.1`` or ``localhost`` verifies).
* Validity starts five minutes in the past (clock skew between containers) unless told otherwise;
  ``not_after`` in the past makes an expired certificate, for tests.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from rmas.errors import ConfigError
from rmas.fileperm import private_dir

__all__ = [
    "IDENTITY_SCHEME",
    "Issued",
    "check_name",
    "config_snippet",
    "identities",
    "identity_of",
    "identity_problem",
    "init_dir",
    "issue",
    "make_ca",
]

IDENTITY_SCHEME = "rmas://"
ORGANIZATION = "rmas development"
CLOCK_SKEW = timedelta(minutes=5)

_NAME = re.compile(r"[A-Za-z0-9._-]+")
_IDENTITY = re.compile(r"rmas://([A-Za-z0-9._-]+)/([A-Za-z0-9._-]+)")

# Files init_dir writes, in order: (stem, kind, server, caller role in the hub's config or None).
_PARTIES: tuple[tuple[str, str, bool, str | None], ...] = (
    ("hub", "hub", True, None),
    ("node", "node", True, "node"),
    ("airline", "airline", False, "airline"),
    ("officer", "officer", False, "officer"),
    ("operator", "operator", False, "operator"),
)


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate and its private key, both PEM (the key PKCS#8, unencrypted)."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    def write(self, cert_path: Path, key_path: Path) -> None:
        """Write the key (mode 0600, never readable by others, even briefly) and the cert (0644)."""
        _write_file(key_path, self.key_pem, 0o600)
        _write_file(cert_path, self.cert_pem, 0o644)


def _write_file(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # an existing file keeps its old mode through O_CREAT; umask too
        os.write(fd, data)
    finally:
        os.close(fd)


def check_name(value: str, key: str) -> str:
    """Return ``value`` if it may be the name in ``rmas://<kind>/<name>``, else ConfigError."""
    if not _NAME.fullmatch(value):
        raise ConfigError(
            key, f"{value!r} is not a valid name: use letters, digits, '.', '_' and '-'"
        )
    return value


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _validity(
    days: int, not_before: datetime | None, not_after: datetime | None
) -> tuple[datetime, datetime]:
    start = not_before if not_before is not None else datetime.now(UTC) - CLOCK_SKEW
    if not_after is None:
        if days <= 0:
            raise ValueError(f"days must be positive, got {days}")
        not_after = start + timedelta(days=days)
    if not_after <= start:
        raise ValueError(f"not_after {not_after} is not after not_before {start}")
    return start, not_after


def make_ca(
    common_name: str = "rmas development CA",
    *,
    days: int = 3650,
    not_before: datetime | None = None,
) -> Issued:
    """A self-signed development CA (EC P-256), able to sign party certificates only."""
    key = _new_key()
    start, end = _validity(days, not_before, None)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def issue(
    ca: Issued,
    *,
    name: str,
    uri: str,
    server: bool = False,
    client: bool = True,
    dns: Sequence[str] = ("localhost",),
    ips: Sequence[str] = ("127.0.0.1", "::1"),
    days: int = 825,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> Issued:
    """A party certificate signed by ``ca``: identity ``uri``, common name ``name``.

    ``dns`` and ``ips`` become SANs only when ``server``. ``not_before``/``not_after`` override
    the validity (``not_after`` wins over ``days``); a past ``not_after`` makes an expired one.
    """
    if not _IDENTITY.fullmatch(uri):
        raise ValueError(f"identity {uri!r} is not rmas://<kind>/<name>")
    if not (server or client):
        raise ValueError("a certificate must be for a server, a client, or both")
    ca_cert = ca.cert
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key is not an EC key (not made by make_ca)")
    key = _new_key()
    start, end = _validity(days, not_before, not_after)

    sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri)]
    if server:
        sans += [x509.DNSName(d) for d in dns]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    )
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                    x509.NameAttribute(NameOID.COMMON_NAME, name),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        # RFC 5280: SANs are critical when the subject is empty; ours never is.
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def identities(cert: x509.Certificate) -> list[str]:
    """Every ``rmas://`` URI SAN in ``cert`` (the convention is exactly one)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [
        u for u in san.get_values_for_type(x509.UniformResourceIdentifier)
        if u.startswith(IDENTITY_SCHEME)
    ]  # fmt: skip


#: Longest identity accepted (a certificate's URI SAN may be far longer).
MAX_IDENTITY = 256


def identity_problem(identity: str) -> str | None:
    """Why ``identity`` cannot name anyone, or None when it can.

    Refused: control characters (NUL included: C code reading the name would stop there, so
    ``rmas://officer/X\x00y`` would pass as ``rmas://officer/X``), other characters that do not
    print, blanks of any kind, and names longer than :data:`MAX_IDENTITY`.
    """
    if len(identity) > MAX_IDENTITY:
        return f"is longer than {MAX_IDENTITY} characters"
    for ch in identity:
        if not ch.isprintable() or ch.isspace():
            return f"holds U+{ord(ch):04X} (a control, blank or unprintable character)"
    return None


def identity_of(cert_pem: bytes) -> str | None:
    """The certificate's ``rmas://`` URI SAN; None when it has none, several (never guess), or
    one that :func:`identity_problem` refuses."""
    found = identities(x509.load_pem_x509_certificate(cert_pem))
    if len(found) != 1 or identity_problem(found[0]) is not None:
        return None
    return found[0]


def init_dir(
    directory: Path,
    *,
    hub: str = "hub-1",
    node: str = "NZL",
    airline: str = "QF",
    officer: str = "AKL-T1",
    operator: str = "ops",
    days: int = 825,
    force: bool = False,
) -> dict[str, Path]:
    """Write a development CA and one certificate per party into ``directory``.

    Files: ``ca.pem``/``ca.key``, ``hub`` and ``node`` (server and client), ``airline``,
    ``officer`` and ``operator`` (client only), each ``.pem`` and ``.key``. Refuses, before
    writing anything, to overwrite any of them unless ``force``. Returns file name -> path of
    every file written (``{"ca.pem": ..., "ca.key": ..., "hub.pem": ..., ...}``).
    """
    names = {"hub": hub, "node": node, "airline": airline, "officer": officer,
             "operator": operator}  # fmt: skip
    for kind, value in names.items():
        check_name(value, kind)
    if days <= 0:
        raise ConfigError("days", f"must be a positive number of days, got {days}")
    stems = ["ca", *(stem for stem, *_ in _PARTIES)]
    paths = {f"{s}.{ext}": directory / f"{s}.{ext}" for s in stems for ext in ("pem", "key")}
    if directory.exists() and not directory.is_dir():
        raise ConfigError(str(directory), "exists and is not a directory")
    existing = [p for p in paths.values() if p.exists() or p.is_symlink()]
    if existing and not force:
        listed = ", ".join(p.name for p in existing)
        raise ConfigError(
            str(directory), f"already holds {listed}: refusing to overwrite them without --force"
        )
    private_dir(directory)  # it holds private keys: 0700 for the folders made here

    ca = make_ca()
    ca.write(paths["ca.pem"], paths["ca.key"])
    for stem, kind, server, _role in _PARTIES:
        name = names[kind]
        leaf = issue(ca, name=name, uri=f"{IDENTITY_SCHEME}{kind}/{name}", server=server,
                     client=True, days=days)  # fmt: skip
        leaf.write(paths[f"{stem}.pem"], paths[f"{stem}.key"])
    return paths


def _toml_str(value: str) -> str:
    # A JSON string is a valid TOML basic string (same escapes, \uXXXX for control characters).
    return json.dumps(value, ensure_ascii=False)


def config_snippet(directory: Path, paths: dict[str, Path]) -> str:
    """The TOML to paste into the hub's configuration for the files :func:`init_dir` wrote.

    ``[tls]`` names the hub's certificate, key and the CA; one ``[[callers]]`` table per calling
    party maps its identity (read from its certificate) to a role. A file missing from ``paths``
    is looked for in ``directory``. Paths are absolute, so the snippet works from anywhere.
    """

    def path(fname: str) -> Path:
        return paths.get(fname, directory / fname).resolve()

    lines = [
        "# Development certificates from `rmas certs init`: for development only.",
        "[tls]",
        f"cert = {_toml_str(str(path('hub.pem')))}",
        f"key = {_toml_str(str(path('hub.key')))}",
        f"ca = {_toml_str(str(path('ca.pem')))}",
    ]
    for stem, _kind, _server, role in _PARTIES:
        if role is None:
            continue
        identity = identity_of(path(f"{stem}.pem").read_bytes())
        if identity is None:
            raise ConfigError(str(path(f"{stem}.pem")), "has no single rmas:// identity URI")
        lines += ["", "[[callers]]", f"identity = {_toml_str(identity)}",
                  f"role = {_toml_str(role)}"]  # fmt: skip
    return "\n".join(lines) + "\n"
