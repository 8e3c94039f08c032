"""Who is at the browser, and what the console lets them do.

Under ``[tls]`` the console's HTTPS listener requires a client certificate from the hub's CA
(the TLS handshake verifies it); its ``rmas://`` identity is mapped to a role by the hub's
``[[callers]]`` tables, exactly as for gRPC (:class:`~rmas.security.access.AccessPolicy`), and
:data:`~rmas.security.access.CONSOLE_PERMISSIONS` says what the role may do. Without TLS
(development mode, loopback only) the person at the browser is the local user, who is both
officer and operator: ``insecure:<address>``, as gRPC names its callers in that mode.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from rmas.audit.entry import Caller
from rmas.grpckit.auth import Admitted
from rmas.security.access import CONSOLE_PERMISSIONS, AccessPolicy, CallerRule, Role, view_of
from rmas.security.certs import identity_of

__all__ = ["Refused", "Visitor", "visitor_of"]

_LOCAL_USER = frozenset({Role.OFFICER, Role.OPERATOR})


@dataclass(frozen=True, slots=True)
class Visitor:
    """The person at the browser: an identity and the roles it holds here."""

    identity: str
    roles: frozenset[Role]
    #: The ``[[callers]]`` rule that admitted it (None in development mode).
    rule: CallerRule | None = None

    def may(self, action: str) -> bool:
        return bool(self.roles & CONSOLE_PERMISSIONS.get(action, frozenset()))

    def as_officer(self) -> Admitted:
        """This visitor as the caller of a check (rate limits and audit entries, like gRPC)."""
        role = Role.OFFICER
        return Admitted(Caller(self.identity, role.value), view_of(role), self.rule)


@dataclass(frozen=True, slots=True)
class Refused:
    """Why a browser gets no console: what the page says (HTTP 403)."""

    message: str


def visitor_of(
    peer_der: bytes | None, peer_host: str, policy: AccessPolicy | None
) -> Visitor | Refused:
    """The visitor presenting ``peer_der`` (the verified client certificate, DER) from
    ``peer_host``; ``policy`` None is development mode (no TLS)."""
    if policy is None:
        return Visitor(f"insecure:{peer_host}", _LOCAL_USER)
    identity = identity_of(ssl.DER_cert_to_PEM_cert(peer_der).encode()) if peer_der else None
    if identity is None:
        return Refused("the client certificate carries no single rmas:// identity")
    rule = policy.resolve(identity)
    if rule is None:
        return Refused(f"{identity} is not a known caller of this hub")
    visitor = Visitor(identity, frozenset({rule.role}), rule)
    if not any(visitor.may(action) for action in CONSOLE_PERMISSIONS):
        return Refused(f"{identity} ({rule.role}) has no console on this hub")
    return visitor
