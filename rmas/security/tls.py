"""TLS material for every rmas link: loaded once, checked at start-up, turned into credentials.

The same :class:`TlsConfig` serves the hub's listener, national node listeners, the hub's gRPC
channels to nodes and its HTTPS sessions to the SLTD-style service: one certificate and key that
name this party (``rmas://<kind>/<name>``, see :mod:`rmas.security.certs`), and the CA bundle it
trusts for its peers. Servers always require a client certificate from that CA; there is no
"TLS without client authentication" mode. Without TLS, rmas binds to loopback only
(development mode) and says so at start-up.
"""

from __future__ import annotations

import datetime as dt
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from rmas.errors import ConfigError
from rmas.security.certs import identity_of

if TYPE_CHECKING:
    import grpc

__all__ = ["TlsConfig"]

#: A certificate closer than this to its end is reported at start-up.
EXPIRY_WARNING = dt.timedelta(days=30)


def _read(path: Path, key: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(key, f"cannot read {path}: {exc.strerror}") from None


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """This party's certificate and key, and the CA bundle its peers must chain to."""

    cert_path: Path
    key_path: Path
    ca_path: Path
    cert_pem: bytes = field(repr=False)
    key_pem: bytes = field(repr=False)
    ca_pem: bytes = field(repr=False)
    #: The ``rmas://`` identity in our own certificate (None when it carries none).
    identity: str | None
    not_after: dt.datetime

    @classmethod
    def load(
        cls,
        cert: str | Path,
        key: str | Path,
        ca: str | Path,
        *,
        base_dir: str | Path = ".",
        prefix: str = "tls",
    ) -> TlsConfig:
        """Read and check the three files; ConfigError names ``<prefix>.cert`` etc. at fault.

        Refused: unreadable files, a certificate that is not PEM, a key that does not belong to
        the certificate, an expired certificate, a CA bundle with no certificate.
        """
        base = Path(base_dir)
        paths = {name: base / Path(p) for name, p in (("cert", cert), ("key", key), ("ca", ca))}
        raw = {name: _read(p, f"{prefix}.{name}") for name, p in paths.items()}
        try:
            certificate = x509.load_pem_x509_certificate(raw["cert"])
        except ValueError:
            raise ConfigError(
                f"{prefix}.cert", f"{paths['cert']} is not a PEM certificate"
            ) from None
        try:
            cas = x509.load_pem_x509_certificates(raw["ca"])
        except ValueError:
            raise ConfigError(f"{prefix}.ca", f"{paths['ca']} holds no PEM certificate") from None
        try:
            private = serialization.load_pem_private_key(raw["key"], password=None)
        except (ValueError, TypeError):
            raise ConfigError(
                f"{prefix}.key", f"{paths['key']} is not an unencrypted PEM private key"
            ) from None
        pub = serialization.PublicFormat.SubjectPublicKeyInfo
        enc = serialization.Encoding.DER
        if private.public_key().public_bytes(enc, pub) != certificate.public_key().public_bytes(
            enc, pub
        ):
            raise ConfigError(f"{prefix}.key", f"{paths['key']} is not the key of {paths['cert']}")
        now = dt.datetime.now(dt.UTC)
        not_after = certificate.not_valid_after_utc
        if not_after <= now:
            raise ConfigError(
                f"{prefix}.cert", f"{paths['cert']} expired on {not_after.isoformat()}"
            )
        if not cas:
            raise ConfigError(f"{prefix}.ca", f"{paths['ca']} holds no certificate")
        return cls(
            cert_path=paths["cert"],
            key_path=paths["key"],
            ca_path=paths["ca"],
            cert_pem=raw["cert"],
            key_pem=raw["key"],
            ca_pem=raw["ca"],
            identity=identity_of(raw["cert"]),
            not_after=not_after,
        )

    def expires_soon(self, now: dt.datetime | None = None) -> bool:
        return self.not_after - (now or dt.datetime.now(dt.UTC)) < EXPIRY_WARNING

    def server_credentials(self) -> grpc.ServerCredentials:
        """gRPC server credentials that require a client certificate from our CA."""
        import grpc  # only where gRPC is served: loading the config imports no gRPC

        return grpc.ssl_server_credentials(
            [(self.key_pem, self.cert_pem)],
            root_certificates=self.ca_pem,
            require_client_auth=True,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """gRPC channel credentials: verify the server against our CA, present our certificate."""
        import grpc

        return grpc.ssl_channel_credentials(
            root_certificates=self.ca_pem,
            private_key=self.key_pem,
            certificate_chain=self.cert_pem,
        )

    def client_ssl_context(self) -> ssl.SSLContext:
        """For HTTPS clients (the SLTD adapter): verify the server, present our certificate."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=self.ca_pem.decode())
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert_path, self.key_path)
        return ctx

    def server_ssl_context(self) -> ssl.SSLContext:
        """For HTTPS servers (the SLTD-style service): require a client certificate from our CA."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cadata=self.ca_pem.decode())
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_cert_chain(self.cert_path, self.key_path)
        return ctx
