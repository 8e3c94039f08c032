"""Shared fixtures: gRPC stubs against hubs served for real on ephemeral loopback ports."""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from rmas.security.certs import Issued, init_dir, issue, make_ca
from rmas.security.tls import TlsConfig

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


#: The demo's economies: their fixture file's registry kind.
REGISTRIES = {"NZL": "alerts", "AUS": "complete", "PHL": "alerts"}

EconomyStores = Callable[..., Awaitable[list[Any]]]


@pytest.fixture
def economy_stores(tmp_path: Path) -> EconomyStores:
    """Builds the SQL stores of the demo's economies from fixtures/records (real SQLite files):
    ``await economy_stores("NZL", "AUS", contact=True)``, one SqlStoreProvider per economy, with
    the registry kind of its file (AUS: complete) and, with ``contact``, a 24/7 desk."""
    from adapters.sqlstore.importer import import_csv
    from adapters.sqlstore.provider import SqlStoreProvider
    from rmas.providers import ProviderInfo, Registry

    async def build(*states: str, contact: bool = False) -> list[Any]:
        out: list[Any] = []
        for state in states:
            url = f"sqlite+aiosqlite:///{tmp_path / state}.db"
            await import_csv(url, FIXTURES / "records" / f"{state.lower()}.csv")
            desk = f"{state} 24/7 desk" if contact else ""
            info = ProviderInfo(id=state, issuing_states=frozenset({state}), contact=desk)
            out.append(SqlStoreProvider(info, url, registry=Registry(REGISTRIES[state])))
        return out

    return build


@pytest.fixture
def rmas_cmd() -> list[str]:
    """The installed ``rmas`` command, run with this interpreter (no PATH assumptions)."""
    return [sys.executable, "-m", "rmas.cli"]


POSTGRES_SKIP = (
    "RMAS_TEST_POSTGRES_URL is not set (README, 'Tests': how to run them; .ci/run sets it to a "
    "throw-away database)"
)


@pytest.fixture
def postgres_url() -> str:
    url = os.environ.get("RMAS_TEST_POSTGRES_URL", "")
    if not url:
        pytest.skip(POSTGRES_SKIP)
    return url


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``postgres`` every test that needs PostgreSQL (``pytest -m postgres`` runs them,
    ``-m 'not postgres'`` leaves them out): those using the ``postgres_url`` fixture, and the
    ``postgres`` variants of tests parametrized over both engines."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and "postgres" in callspec.params.values()
        if on_postgres or "postgres_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """A run without PostgreSQL says so, and why, in its summary (even with -q)."""
    skipped = [
        r
        for r in terminalreporter.stats.get("skipped", [])
        if "postgres" in getattr(r, "keywords", {})
    ]
    if skipped and not os.environ.get("RMAS_TEST_POSTGRES_URL"):
        terminalreporter.write_line(f"{len(skipped)} PostgreSQL tests skipped: {POSTGRES_SKIP}")


@dataclass(frozen=True)
class Pki:
    """A throw-away CA and the parties of the tests: ``tls(name)`` is that party's TlsConfig,
    ``creds(name)`` its gRPC channel credentials (trusting the CA)."""

    dir: Path

    def tls(self, name: str) -> TlsConfig:
        d = self.dir
        return TlsConfig.load(d / f"{name}.pem", d / f"{name}.key", d / "ca.pem")

    def creds(self, name: str, ca: str = "ca") -> grpc.ChannelCredentials:
        d = self.dir
        return grpc.ssl_channel_credentials(
            (d / f"{ca}.pem").read_bytes(),
            (d / f"{name}.key").read_bytes(),
            (d / f"{name}.pem").read_bytes(),
        )


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Hub, node, airline, officer, operator from one CA (``rmas certs init``), and the misfits:
    ``stranger`` (same CA, named by no [[callers]] table), ``expired``, ``foreign`` (another CA),
    ``anonymous`` (same CA, no rmas:// identity)."""
    d = tmp_path_factory.mktemp("pki")
    init_dir(d)
    ca = Issued((d / "ca.pem").read_bytes(), (d / "ca.key").read_bytes())
    issue(ca, name="ZZ", uri="rmas://airline/ZZ").write(d / "stranger.pem", d / "stranger.key")
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    expired = issue(
        ca, name="QF", uri="rmas://airline/QF", not_before=past, not_after=past + dt.timedelta(1)
    )
    expired.write(d / "expired.pem", d / "expired.key")
    other = make_ca("another CA")
    issue(other, name="QF", uri="rmas://airline/QF").write(d / "foreign.pem", d / "foreign.key")
    _anonymous(ca).write(d / "anonymous.pem", d / "anonymous.key")
    return Pki(d)


def _anonymous(ca: Issued) -> Issued:
    """A client certificate from the CA whose only name is a DNS name (no rmas:// identity)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "anonymous")]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("anonymous.test")]), False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), key_pem)
