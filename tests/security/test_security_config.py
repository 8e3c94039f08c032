"""[tls], [[callers]], [limits] and [audit]: what parses, and errors that name the key at fault."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rmas.audit.sink import LINGER_S
from rmas.config import RmasConfig, load_config
from rmas.errors import ConfigError
from rmas.plugins import build_providers
from rmas.security.access import AccessPolicy, CallerRule, RateLimited, Role, TokenBucket
from tests.conftest import Pki

SECURE = """
[hub]
listen = "0.0.0.0:50051"

[tls]
cert = "certs/hub.pem"
key = "certs/hub.key"
ca = "certs/ca.pem"

[[callers]]
identity = "rmas://airline/*"
role = "airline"
documents_per_s = 50
burst = 500

[[callers]]
identity = "rmas://officer/AKL-T1"
role = "officer"

[limits]
documents_per_s = 20

[audit]
url = "sqlite+aiosqlite:///var/audit.db"
key_file = "audit.key"

[[providers]]
id = "NZL"
kind = "grpc"
target = "nzl.example:50061"
issuing_states = ["NZL"]
"""


@pytest.fixture
def folder(tmp_path: Path, pki: Pki) -> Path:
    shutil.copytree(pki.dir, tmp_path / "certs")
    return tmp_path


def load_config_text(folder: Path, text: str) -> RmasConfig:
    (folder / "hub.toml").write_text(text)
    return load_config(folder / "hub.toml")


def error_key(folder: Path, text: str) -> tuple[str, str]:
    with pytest.raises(ConfigError) as err:
        load_config_text(folder, text)
    return err.value.key, err.value.message


def test_a_secure_config_parses_with_paths_from_the_config_folder(folder: Path) -> None:
    (folder / "hub.toml").write_text(SECURE)
    cfg = load_config(folder / "hub.toml")
    assert cfg.tls is not None and cfg.tls.identity == "rmas://hub/hub-1"
    assert cfg.tls.cert_path == folder / "certs" / "hub.pem"
    assert cfg.callers == (
        CallerRule("rmas://airline/*", Role.AIRLINE, 50.0, 500),
        CallerRule("rmas://officer/AKL-T1", Role.OFFICER),
    )
    assert cfg.limits.documents_per_s == 20.0
    assert cfg.audit is not None and cfg.audit.required and cfg.audit.synchronous == "FULL"
    assert cfg.audit.linger_ms == LINGER_S * 1000 == 8.0
    no_linger = load_config_text(
        folder, SECURE.replace('key_file = "audit.key"', 'key_file = "audit.key"\nlinger_ms = 0')
    )
    assert no_linger.audit is not None and no_linger.audit.linger_ms == 0.0
    assert cfg.audit.hub_id == ""  # the host name, chosen when the trail starts
    named = load_config_text(
        folder, SECURE.replace('key_file = "audit.key"', 'key_file = "audit.key"\nhub_id = "akl-1"')
    )
    assert named.audit is not None and named.audit.hub_id == "akl-1"
    assert cfg.audit.url == f"sqlite+aiosqlite:///{folder / 'var' / 'audit.db'}"
    assert cfg.audit.key_file == folder / "audit.key"
    # The hub's TLS also serves its links to providers; with it a node may be anywhere.
    assert cfg.providers[0].tls is cfg.tls


@pytest.mark.parametrize(
    ("change", "key", "says"),
    [
        (('cert = "certs/hub.pem"', 'cert = "certs/missing.pem"'), "tls.cert", "cannot read"),
        (('key = "certs/hub.key"', 'key = "certs/airline.key"'), "tls.key", "is not the key of"),
        (('"certs/hub.pem"\nkey = "certs/hub.key"',
          '"certs/expired.pem"\nkey = "certs/expired.key"'), "tls.cert", "expired on"),
        (('ca = "certs/ca.pem"', 'ca = "certs/hub.key"'), "tls.ca", "no PEM certificate"),
        (('role = "airline"', 'role = "pilot"'), "callers[0].role", "must be one of"),
        (('identity = "rmas://airline/*"', 'identity = "rmas://*/QF"'), "callers[0].identity",
         "prefix ending in *"),
        (("documents_per_s = 20", "documents_per_s = -1"), "limits.documents_per_s", "0"),
        (('url = "sqlite+aiosqlite:///var/audit.db"', 'url = "mysql://x"'), "audit.url", "must be"),
        (('key_file = "audit.key"', 'key_file = ""'), "audit.key_file", "required"),
        (('key_file = "audit.key"', 'key_file = "audit.key"\nlinger_ms = 80'), "audit.linger_ms",
         "from 0 to 50"),
        (('key_file = "audit.key"', 'key_file = "audit.key"\nhub_id = "a\\u001fb"'),
         "audit.hub_id", "printable"),
        (('key_file = "audit.key"', 'key_file = "audit.key"\nhub_id = 7'), "audit.hub_id", ""),
    ],
)  # fmt: skip
def test_security_errors_name_the_key_at_fault(
    folder: Path, change: tuple[str, str], key: str, says: str
) -> None:
    text = SECURE.replace(*change)
    assert text != SECURE
    got_key, message = error_key(folder, text)
    assert (got_key, says in message) == (key, True), message


def test_tls_without_callers_is_refused_and_without_tls_nodes_must_be_on_loopback(
    folder: Path,
) -> None:
    head, tail = SECURE.split("[[callers]]", 1)[0], SECURE.split("[limits]", 1)[1]
    assert error_key(folder, head + "[limits]" + tail)[0] == "callers"
    plain = SECURE.split("[tls]", 1)[0] + "[[providers]]" + SECURE.split("[[providers]]", 1)[1]
    key, message = error_key(folder, plain)
    assert key == "hub.listen" and "loopback" in message
    on_loopback = plain.replace("0.0.0.0:50051", "127.0.0.1:50051")
    with pytest.raises(ConfigError) as err:
        build_providers(load_config_text(folder, on_loopback).providers)
    assert err.value.key == "providers[0].target" and "loopback" in err.value.message


def test_a_prefix_rule_matches_the_longest_prefix_and_exact_rules_win() -> None:
    policy = AccessPolicy([
        CallerRule("rmas://airline/*", Role.AIRLINE),
        CallerRule("rmas://airline/QF*", Role.OFFICER),
        CallerRule("rmas://airline/QF", Role.OPERATOR),
    ])  # fmt: skip
    assert policy.resolve("rmas://airline/QF").role is Role.OPERATOR  # type: ignore[union-attr]
    assert policy.resolve("rmas://airline/QFX").role is Role.OFFICER  # type: ignore[union-attr]
    assert policy.resolve("rmas://airline/NZ").role is Role.AIRLINE  # type: ignore[union-attr]
    assert policy.resolve("rmas://officer/x") is None


def test_a_token_bucket_refills_at_its_rate_and_never_beyond_its_size() -> None:
    b = TokenBucket(rate=10.0, burst=20.0)
    assert b.take(20, now=0.0) == 0.0
    assert b.take(5, now=0.0) == pytest.approx(0.5)
    assert b.take(5, now=0.5) == 0.0
    assert b.take(21, now=100.0) == float("inf")
    assert b.take(20, now=100.0) == 0.0  # refilled to 20, not to 1000


def test_rate_limits_are_per_identity_with_the_limits_default() -> None:
    now = [0.0]
    policy = AccessPolicy([CallerRule("rmas://airline/*", Role.AIRLINE)],
                          documents_per_s=2, burst=2, clock=lambda: now[0])  # fmt: skip
    rule = policy.resolve("rmas://airline/QF")
    assert rule is not None
    policy.admit("rmas://airline/QF", rule, 2)
    with pytest.raises(RateLimited) as err:
        policy.admit("rmas://airline/QF", rule, 1)
    assert err.value.retry_after_s == pytest.approx(0.5)
    policy.admit("rmas://airline/NZ", rule, 2)  # its own bucket
    now[0] = 0.5
    policy.admit("rmas://airline/QF", rule, 1)


def test_a_reloaded_policy_continues_the_buckets_instead_of_refilling_them() -> None:
    now = [0.0]
    airlines = [CallerRule("rmas://airline/*", Role.AIRLINE)]
    old = AccessPolicy(airlines, documents_per_s=2, burst=10, clock=lambda: now[0])
    rule = old.resolve("rmas://airline/QF")
    assert rule is not None
    old.admit("rmas://airline/QF", rule, 10)  # empty
    now[0] = 1.0  # 2 tokens back
    new = AccessPolicy(airlines, documents_per_s=4, burst=6, clock=lambda: now[0])
    new.carry_over(old)
    rule = new.resolve("rmas://airline/QF")
    assert rule is not None
    new.admit("rmas://airline/QF", rule, 2)
    with pytest.raises(RateLimited) as err:  # not a fresh burst of 6
        new.admit("rmas://airline/QF", rule, 1)
    assert err.value.retry_after_s == pytest.approx(0.25)  # the new rate
    new.admit("rmas://airline/NZ", rule, 6)  # no bucket before: a full one
    # A level above the new burst is capped by it.
    fuller = AccessPolicy(airlines, documents_per_s=1, burst=3, clock=lambda: now[0])
    now[0] = 100.0
    fuller.carry_over(new)
    fuller.admit("rmas://airline/QF", rule, 3)  # the 6 it had are 3 under the new burst
    with pytest.raises(RateLimited):
        fuller.admit("rmas://airline/QF", rule, 1)
