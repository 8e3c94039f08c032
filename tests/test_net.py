"""rmas.net: addresses and the one loopback-unless-TLS rule."""

from __future__ import annotations

import pytest

from rmas.errors import ConfigError
from rmas.net import is_loopback, parse_listen, require_loopback_unless_tls


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "localhost"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.1", "::", "example.org", ""])
def test_other_hosts(host: str) -> None:
    assert not is_loopback(host)


def test_parse_listen_ipv4_and_ipv6() -> None:
    assert parse_listen("127.0.0.1:50051") == ("127.0.0.1", 50051)
    assert parse_listen("[::1]:0") == ("::1", 0)


@pytest.mark.parametrize("value", ["50051", ":50051", "host:", "host:x", "host:65536"])
def test_parse_listen_refuses_names_the_key(value: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_listen(value, "hub.console_listen")
    assert err.value.key == "hub.console_listen"


def test_rule_without_tls_refuses_other_hosts_naming_key() -> None:
    with pytest.raises(ConfigError) as err:
        require_loopback_unless_tls("10.0.0.1", tls=False, key="--listen", message="loopback only")
    assert (err.value.key, err.value.message) == ("--listen", "loopback only")


def test_rule_allows_loopback_without_tls_and_anything_with_tls() -> None:
    require_loopback_unless_tls("127.0.0.1", tls=False, key="k", message="m")
    require_loopback_unless_tls("10.0.0.1", tls=True, key="k", message="m")
