"""Development certificates: what they hold, and real mutual-TLS handshakes over grpc.aio with them.

The handshake tests pin what the hub's mTLS builds on: which certificates grpc accepts and refuses,
and where a client's ``rmas://`` identity appears in ``context.auth_context()``.
"""

from __future__ import annotations

import stat
import subprocess
import tomllib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from rmas.errors import ConfigError
from rmas.security.certs import (
    Issued,
    config_snippet,
    identity_of,
    init_dir,
    issue,
    make_ca,
)

PARTIES = {  # file stem -> (identity, common name, server)
    "hub": ("rmas://hub/hub-1", "hub-1", True),
    "node": ("rmas://node/NZL", "NZL", True),
    "airline": ("rmas://airline/QF", "QF", False),
    "officer": ("rmas://officer/AKL-T1", "AKL-T1", False),
    "operator": ("rmas://operator/ops", "ops", False),
}
FILES = sorted(f"{s}.{e}" for s in ["ca", *PARTIES] for e in ("pem", "key"))


@dataclass(frozen=True)
class Dev:
    """A directory written by init_dir, loaded."""

    directory: Path
    paths: dict[str, Path]

    def issued(self, stem: str) -> Issued:
        return Issued(
            self.paths[f"{stem}.pem"].read_bytes(), self.paths[f"{stem}.key"].read_bytes()
        )

    def cert(self, stem: str) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.paths[f"{stem}.pem"].read_bytes())


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Dev:
    directory = tmp_path_factory.mktemp("certs") / "dev"
    return Dev(directory, init_dir(directory))


def expired_issue(ca: Issued, *, name: str, uri: str, server: bool = False) -> Issued:
    """A certificate that was valid from ten days ago until yesterday."""
    now = datetime.now(UTC)
    start, end = now - timedelta(days=10), now - timedelta(days=1)
    return issue(ca, name=name, uri=uri, server=server, not_before=start, not_after=end)


def _eku(cert: x509.Certificate) -> set[x509.ObjectIdentifier]:
    return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def _san(cert: x509.Certificate) -> x509.SubjectAlternativeName:
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


# -- what the files hold -------------------------------------------------------------------------


def test_init_writes_every_file_and_returns_their_paths(dev: Dev) -> None:
    assert sorted(dev.paths) == FILES
    assert sorted(p.name for p in dev.directory.iterdir()) == FILES
    for name, path in dev.paths.items():
        assert path == dev.directory / name


def test_the_ca_can_sign_certificates_and_nothing_else(dev: Dev) -> None:
    ca = dev.cert("ca")
    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca is True and bc.value.path_length == 0
    ku = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert not ku.value.digital_signature
    ca.verify_directly_issued_by(ca)  # self-signed
    assert identity_of(dev.paths["ca.pem"].read_bytes()) is None  # the CA is nobody


@pytest.mark.parametrize("stem", list(PARTIES))
def test_each_party_certificate_chains_to_the_ca_and_names_its_identity(
    dev: Dev, stem: str
) -> None:
    uri, common_name, server = PARTIES[stem]
    cert = dev.cert(stem)
    cert.verify_directly_issued_by(dev.cert("ca"))
    assert cert.issuer == dev.cert("ca").subject
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == common_name
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]

    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca is False
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_cert_sign

    expected_eku = {ExtendedKeyUsageOID.CLIENT_AUTH}
    if server:
        expected_eku.add(ExtendedKeyUsageOID.SERVER_AUTH)
    assert _eku(cert) == expected_eku

    san = _san(cert)
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [uri]
    if server:
        assert san.get_values_for_type(x509.DNSName) == ["localhost"]
        assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    else:  # a client-only certificate names no host
        assert san.get_values_for_type(x509.DNSName) == []
        assert san.get_values_for_type(x509.IPAddress) == []
    assert identity_of(dev.paths[f"{stem}.pem"].read_bytes()) == uri


def test_keys_are_unencrypted_pkcs8_and_match_their_certificates(dev: Dev) -> None:
    for stem in ["ca", *PARTIES]:
        pem = dev.paths[f"{stem}.key"].read_bytes()
        assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, not "EC PRIVATE KEY"
        key = serialization.load_pem_private_key(pem, password=None)
        assert key.public_key() == dev.cert(stem).public_key()


def test_key_files_are_0600_and_certificates_0644(dev: Dev) -> None:
    for name, path in dev.paths.items():
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o600 if name.endswith(".key") else 0o644), (name, oct(mode))


def test_write_tightens_an_existing_key_file(tmp_path: Path) -> None:
    key, cert = tmp_path / "x.key", tmp_path / "x.pem"
    key.write_bytes(b"old")
    key.chmod(0o644)
    ca = make_ca()
    ca.write(cert, key)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_bytes() == ca.key_pem


def test_init_refuses_to_overwrite_without_force_and_writes_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "c"
    directory.mkdir()
    (directory / "airline.key").write_bytes(b"someone's key")
    with pytest.raises(ConfigError) as err:
        init_dir(directory)
    assert "airline.key" in err.value.message and "--force" in err.value.message
    assert sorted(p.name for p in directory.iterdir()) == ["airline.key"]  # nothing else written
    assert (directory / "airline.key").read_bytes() == b"someone's key"

    first = init_dir(directory, force=True)
    assert sorted(first) == FILES
    old_ca = first["ca.pem"].read_bytes()
    with pytest.raises(ConfigError):
        init_dir(directory)
    assert first["ca.pem"].read_bytes() == old_ca
    init_dir(directory, force=True)
    assert first["ca.pem"].read_bytes() != old_ca  # a new CA


def test_init_names_become_identities(tmp_path: Path) -> None:
    paths = init_dir(tmp_path, hub="hub-2", node="AUS", airline="NZ", officer="SYD.T1",
                     operator="night_ops")  # fmt: skip
    ids = {s: identity_of(paths[f"{s}.pem"].read_bytes()) for s in PARTIES}
    assert ids == {
        "hub": "rmas://hub/hub-2",
        "node": "rmas://node/AUS",
        "airline": "rmas://airline/NZ",
        "officer": "rmas://officer/SYD.T1",
        "operator": "rmas://operator/night_ops",
    }


@pytest.mark.parametrize("bad", ["", "Q F", "QF/x", "é", "a:b"])
def test_init_rejects_a_name_that_cannot_be_in_a_uri(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError) as err:
        init_dir(tmp_path / "c", airline=bad)
    assert err.value.key == "airline"
    assert not (tmp_path / "c").exists()


def test_issue_rejects_a_malformed_identity_or_a_useless_certificate() -> None:
    ca = make_ca()
    for uri in ["https://example/QF", "rmas://airline", "rmas://airline/QF/x", "rmas://a b/QF"]:
        with pytest.raises(ValueError, match="rmas://<kind>/<name>"):
            issue(ca, name="QF", uri=uri)
    with pytest.raises(ValueError, match="server, a client"):
        issue(ca, name="QF", uri="rmas://airline/QF", server=False, client=False)


def test_validity_days_and_an_expired_certificate() -> None:
    now = datetime.now(UTC)
    ca = make_ca(days=10)
    ca_cert = ca.cert
    assert ca_cert.not_valid_before_utc <= now  # back-dated a little for clock skew
    assert now - ca_cert.not_valid_before_utc < timedelta(minutes=10)
    assert ca_cert.not_valid_after_utc - ca_cert.not_valid_before_utc == timedelta(days=10)

    leaf = issue(ca, name="QF", uri="rmas://airline/QF", days=30).cert
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(days=30)

    expired = expired_issue(ca, name="QF", uri="rmas://airline/QF").cert
    assert expired.not_valid_after_utc < now
    expired.verify_directly_issued_by(ca_cert)  # well-formed, just out of date

    with pytest.raises(ValueError, match="not after"):
        issue(ca, name="QF", uri="rmas://airline/QF", not_before=now, not_after=now)


def test_identity_of_refuses_to_choose_between_several_rmas_uris() -> None:
    ca = make_ca()
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    two = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "two")]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([
                x509.UniformResourceIdentifier("spiffe://example/x"),
                x509.UniformResourceIdentifier("rmas://airline/QF"),
                x509.UniformResourceIdentifier("rmas://operator/ops"),
            ]),
            critical=False,
        )
        .sign(serialization.load_pem_private_key(ca.key_pem, None), hashes.SHA256())  # type: ignore[arg-type]
    )  # fmt: skip
    assert identity_of(two.public_bytes(serialization.Encoding.PEM)) is None


def test_config_snippet_is_toml_naming_the_files_and_a_role_per_caller(dev: Dev) -> None:
    snippet = config_snippet(dev.directory, dev.paths)
    cfg = tomllib.loads(snippet)
    assert cfg["tls"] == {
        "cert": str(dev.paths["hub.pem"].resolve()),
        "key": str(dev.paths["hub.key"].resolve()),
        "ca": str(dev.paths["ca.pem"].resolve()),
    }
    assert cfg["callers"] == [
        {"identity": "rmas://node/NZL", "role": "node"},
        {"identity": "rmas://airline/QF", "role": "airline"},
        {"identity": "rmas://officer/AKL-T1", "role": "officer"},
        {"identity": "rmas://operator/ops", "role": "operator"},
    ]
    assert "development only" in snippet


def test_config_snippet_escapes_awkward_paths(tmp_path: Path) -> None:
    directory = tmp_path / 'we"ird\\dir'
    paths = init_dir(directory)
    cfg = tomllib.loads(config_snippet(directory, paths))
    assert cfg["tls"]["ca"] == str(paths["ca.pem"].resolve())


# -- real mutual-TLS handshakes over grpc.aio ----------------------------------------------------

METHOD = "/rmas.test.Echo/Echo"


@dataclass
class Seen:
    """What the handler saw of each call that reached it."""

    auth: list[dict[str, list[bytes]]] = field(default_factory=list)
    identities: list[object] = field(default_factory=list)
    identity_key: list[str | None] = field(default_factory=list)


@asynccontextmanager
async def serving(server_cert: Issued, ca_pem: bytes) -> AsyncIterator[tuple[int, Seen]]:
    """A grpc.aio server on 127.0.0.1:0 that demands a client certificate from ``ca_pem``."""
    seen = Seen()

    async def echo(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        seen.auth.append({k: list(v) for k, v in context.auth_context().items()})
        seen.identities.append(context.peer_identities())
        seen.identity_key.append(context.peer_identity_key())
        return b"echo:" + request

    handler = grpc.method_handlers_generic_handler(
        "rmas.test.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    creds = grpc.ssl_server_credentials(
        [(server_cert.key_pem, server_cert.cert_pem)],
        root_certificates=ca_pem,
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", creds)
    await server.start()
    try:
        yield port, seen
    finally:
        await server.stop(0)


async def call(target: str, ca_pem: bytes, client: Issued | None) -> bytes:
    if client is None:
        creds = grpc.ssl_channel_credentials(ca_pem)
    else:
        creds = grpc.ssl_channel_credentials(ca_pem, client.key_pem, client.cert_pem)
    async with grpc.aio.secure_channel(target, creds) as channel:
        echo = channel.unary_unary(METHOD, None, None)  # bytes in, bytes out
        reply: bytes = await echo(b"hi", timeout=10)
        return reply


async def test_an_airline_certificate_is_accepted_and_its_uri_reaches_the_handler(dev: Dev) -> None:
    ca = dev.paths["ca.pem"].read_bytes()
    async with serving(dev.issued("hub"), ca) as (port, seen):
        assert await call(f"localhost:{port}", ca, dev.issued("airline")) == b"echo:hi"
    (auth,) = seen.auth
    # The identity: "peer_uri" holds the URI SANs, and only those.
    assert auth["peer_uri"] == [b"rmas://airline/QF"]
    # grpc's peer identity is the SAN list (every type, in certificate order) when there are SANs.
    assert auth["x509_subject_alternative_name"] == [b"rmas://airline/QF"]
    assert seen.identity_key == ["x509_subject_alternative_name"]
    assert seen.identities == [[b"rmas://airline/QF"]]
    assert auth["x509_common_name"] == [b"QF"]
    assert auth["x509_subject"] == [b"CN=QF,O=rmas development"]
    assert auth["transport_security_type"] == [b"ssl"]
    assert auth["security_level"] == [b"TSI_PRIVACY_AND_INTEGRITY"]
    assert auth["ssl_requested_server_name"] == [b"localhost"]  # SNI, when dialled by name
    (pem,) = auth["x509_pem_cert"]
    assert identity_of(pem) == "rmas://airline/QF"
    assert "peer_dns" not in auth and "peer_ip" not in auth  # a client-only cert names no host


async def test_a_server_and_client_certificate_mixes_hosts_into_the_san_list(dev: Dev) -> None:
    """Why the hub must read ``peer_uri`` (or parse the PEM), never the SAN list's first entry."""
    ca = dev.paths["ca.pem"].read_bytes()
    async with serving(dev.issued("hub"), ca) as (port, seen):
        assert await call(f"127.0.0.1:{port}", ca, dev.issued("node")) == b"echo:hi"
    (auth,) = seen.auth
    assert auth["peer_uri"] == [b"rmas://node/NZL"]
    assert auth["x509_subject_alternative_name"] == [
        b"rmas://node/NZL", b"localhost", b"127.0.0.1", b"::1",
    ]  # fmt: skip
    assert auth["peer_dns"] == [b"localhost"]
    assert auth["peer_ip"] == [b"127.0.0.1", b"::1"]  # the certificate's IP SANs, not the socket's
    assert "ssl_requested_server_name" not in auth  # no SNI when dialled by IP address


def _other_ca_airline() -> Issued:
    return issue(make_ca("some other CA"), name="QF", uri="rmas://airline/QF")


def _expired_airline(dev: Dev) -> Issued:
    return expired_issue(dev.issued("ca"), name="QF", uri="rmas://airline/QF")


def _server_only_airline(dev: Dev) -> Issued:
    return issue(dev.issued("ca"), name="QF", uri="rmas://airline/QF", server=True, client=False)


@pytest.mark.parametrize(
    "client",
    [
        pytest.param(lambda dev: None, id="no-certificate"),
        pytest.param(lambda dev: _other_ca_airline(), id="another-ca"),
        pytest.param(_expired_airline, id="expired"),
        pytest.param(_server_only_airline, id="no-clientAuth-eku"),
    ],
)
async def test_the_server_refuses_clients_without_a_good_certificate(
    dev: Dev, client: Callable[[Dev], Issued | None]
) -> None:
    ca = dev.paths["ca.pem"].read_bytes()
    async with serving(dev.issued("hub"), ca) as (port, seen):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(f"localhost:{port}", ca, client(dev))
        # and a good client still gets through the same server afterwards
        assert await call(f"localhost:{port}", ca, dev.issued("officer")) == b"echo:hi"
    # The handshake fails, so the RPC never starts: the client sees UNAVAILABLE (TLS 1.3 client
    # certificates are checked after the client's side finished: "Socket closed").
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert [a["peer_uri"] for a in seen.auth] == [[b"rmas://officer/AKL-T1"]]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_client_verifies_the_hub_by_ip_address_or_host_name(dev: Dev, host: str) -> None:
    ca = dev.paths["ca.pem"].read_bytes()
    async with serving(dev.issued("hub"), ca) as (port, _):
        assert await call(f"{host}:{port}", ca, dev.issued("airline")) == b"echo:hi"


async def test_a_hub_certificate_without_the_ip_san_fails_when_dialled_by_ip(dev: Dev) -> None:
    ca_issued = dev.issued("ca")
    no_ip = issue(ca_issued, name="hub-1", uri="rmas://hub/hub-1", server=True, ips=())
    async with serving(no_ip, ca_issued.cert_pem) as (port, seen):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(f"127.0.0.1:{port}", ca_issued.cert_pem, dev.issued("airline"))
        assert await call(f"localhost:{port}", ca_issued.cert_pem, dev.issued("airline"))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "Hostname Verification Check failed" in (err.value.details() or "")
    assert len(seen.auth) == 1


@pytest.mark.parametrize("problem", ["expired", "another-ca", "client-only"])
async def test_a_client_refuses_a_bad_hub_certificate(dev: Dev, problem: str) -> None:
    ca_issued = dev.issued("ca")
    if problem == "expired":
        hub = expired_issue(ca_issued, name="hub-1", uri="rmas://hub/hub-1", server=True)
    elif problem == "another-ca":
        hub = issue(make_ca("some other CA"), name="hub-1", uri="rmas://hub/hub-1", server=True)
    else:  # clientAuth only: not a server certificate
        hub = issue(ca_issued, name="hub-1", uri="rmas://hub/hub-1", server=False)
    async with serving(hub, ca_issued.cert_pem) as (port, seen):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(f"localhost:{port}", ca_issued.cert_pem, dev.issued("airline"))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert seen.auth == []


# -- the command line, as a user runs it ---------------------------------------------------------


def run(rmas_cmd: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*rmas_cmd, "certs", *args], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip


def test_cli_init_show_and_refusal(rmas_cmd: list[str], tmp_path: Path) -> None:
    directory = tmp_path / "c"
    out = run(rmas_cmd, "init", str(directory))
    assert out.returncode == 0, out.stdout + out.stderr
    assert sorted(p.name for p in directory.iterdir()) == FILES
    assert "development only" in out.stdout and "PKI" in out.stdout
    for name in FILES:
        assert str(directory / name) in out.stdout
    snippet = out.stdout[out.stdout.index("[tls]") :]
    cfg = tomllib.loads(snippet)
    assert cfg["tls"]["cert"] == str((directory / "hub.pem").resolve())
    assert {c["identity"]: c["role"] for c in cfg["callers"]} == {
        "rmas://node/NZL": "node",
        "rmas://airline/QF": "airline",
        "rmas://officer/AKL-T1": "officer",
        "rmas://operator/ops": "operator",
    }

    ca_before = (directory / "ca.pem").read_bytes()
    again = run(rmas_cmd, "init", str(directory))
    assert again.returncode != 0
    assert "refusing to overwrite" in again.stderr and "--force" in again.stderr
    assert (directory / "ca.pem").read_bytes() == ca_before

    forced = run(rmas_cmd, "init", str(directory), "--force", "--airline", "NZ", "--days", "30")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "rmas://airline/NZ" in forced.stdout
    airline = x509.load_pem_x509_certificate((directory / "airline.pem").read_bytes())
    assert airline.not_valid_after_utc - airline.not_valid_before_utc == timedelta(days=30)

    shown = run(rmas_cmd, "show", str(directory / "airline.pem"))
    assert shown.returncode == 0, shown.stdout + shown.stderr
    fingerprint = airline.fingerprint(hashes.SHA256()).hex(":").upper()
    for text in ["CN=NZ,O=rmas development", "rmas://airline/NZ", "CN=rmas development CA",
                 "clientAuth", fingerprint, "valid now"]:  # fmt: skip
        assert text in shown.stdout, (text, shown.stdout)
    assert "serverAuth" not in shown.stdout and "EXPIRED" not in shown.stdout

    hub = run(rmas_cmd, "show", str(directory / "hub.pem"))
    assert "serverAuth, clientAuth" in hub.stdout and "IP:127.0.0.1" in hub.stdout


def test_cli_show_marks_an_expired_certificate(rmas_cmd: list[str], tmp_path: Path) -> None:
    expired = expired_issue(make_ca(), name="QF", uri="rmas://airline/QF")
    expired.write(tmp_path / "old.pem", tmp_path / "old.key")
    out = run(rmas_cmd, "show", str(tmp_path / "old.pem"))
    assert out.returncode == 0, out.stderr
    assert "EXPIRED" in out.stdout and "rmas://airline/QF" in out.stdout


def test_cli_errors_are_precise(rmas_cmd: list[str], tmp_path: Path) -> None:
    missing = run(rmas_cmd, "show", str(tmp_path / "nope.pem"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr

    issue(make_ca(), name="QF", uri="rmas://airline/QF").write(
        tmp_path / "a.pem", tmp_path / "a.key"
    )
    key = run(rmas_cmd, "show", str(tmp_path / "a.key"))
    assert key.returncode == 2 and "private key" in key.stderr

    bad_name = run(rmas_cmd, "init", str(tmp_path / "c"), "--airline", "Q F")
    assert bad_name.returncode == 2 and "--airline" in bad_name.stderr
    bad_days = run(rmas_cmd, "init", str(tmp_path / "c"), "--days", "0")
    assert bad_days.returncode == 2 and "--days" in bad_days.stderr
    assert not (tmp_path / "c").exists()
