"""Network addresses and the one rule about plain connections.

The rule: **a listener or a peer without TLS must be on a loopback address** (development mode
stays on this machine). Every listener (hub gRPC, metrics, console, national node, SLTD-style
service) and every plain peer (remote node, ``http://`` SLTD-style URL) is checked by
:func:`require_loopback_unless_tls`; the message names the caller's key.
"""

from __future__ import annotations

import ipaddress

from rmas.errors import ConfigError

__all__ = ["is_loopback", "parse_listen", "require_loopback_unless_tls"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or address, IPv6 without brackets) is this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_listen(value: str, key: str = "hub.listen") -> tuple[str, int]:
    """Split ``host:port`` (``[::1]:50051`` for IPv6); raise ConfigError when malformed."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(key, f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def require_loopback_unless_tls(host: str, *, tls: bool, key: str, message: str) -> None:
    """Without TLS (``tls`` false), ``host`` must be a loopback address: raise
    ConfigError(``key``, ``message``) otherwise."""
    if not tls and not is_loopback(host):
        raise ConfigError(key, message)
