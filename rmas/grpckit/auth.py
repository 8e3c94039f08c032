"""Authentication and authorisation for every RPC a hub serves, in one interceptor.

The caller's identity is the ``rmas://`` URI SAN of the client certificate that gRPC's TLS
handshake already verified against the hub's CA, read from the certificate itself (gRPC's
``peer_uri`` property stops at a NUL byte) and refused when it holds control, blank or
unprintable characters (:func:`~rmas.security.certs.identity_problem`).
:class:`~rmas.security.access.AccessPolicy` maps it to a role, and
:data:`~rmas.security.access.PERMISSIONS` says which methods the role may call. Refusals:
UNAUTHENTICATED (no single acceptable certificate identity), PERMISSION_DENIED (an identity no
``[[callers]]`` table names, or a method the role may not call). Servicers read the admitted
caller with :func:`current_caller`.

The check runs inside the call, where the servicer context (and its ``auth_context()``) exists:
see :mod:`rmas.grpckit.interceptors`. Hub servers and national nodes use it alike.

Without TLS (development mode, loopback only) there are no identities: every caller is
``insecure:<peer>`` with the officer role and every method open.
"""

from __future__ import annotations

import contextvars
import functools
from dataclasses import dataclass
from typing import Any

import grpc
from cryptography import x509

from rmas.audit.entry import Caller
from rmas.errors import FieldViolation
from rmas.grpckit.interceptors import (
    Ctx,
    Handler,
    HandlerInterceptor,
    Refused,
    Undecodable,
    wrap_behavior,
)
from rmas.security.access import PERMISSIONS, AccessPolicy, CallerRule, Role, View, view_of
from rmas.security.certs import identities, identity_problem

__all__ = ["AccessInterceptor", "Admitted", "current_caller", "peer_identity"]


#: gRPC's property for the verified peer's certificate (PEM). Its ``peer_uri`` property is not
#: used: it is a C string, cut at the first NUL.
_PEER_CERT = "x509_pem_cert"
_NO_IDENTITY = "the client certificate carries no single rmas:// identity"


@dataclass(frozen=True, slots=True)
class Admitted:
    """The caller of the current RPC, as the interceptor admitted it."""

    caller: Caller
    view: View
    #: The ``[[callers]]`` rule that admitted it (None in development mode).
    rule: CallerRule | None = None


_current: contextvars.ContextVar[Admitted] = contextvars.ContextVar("rmas_caller")


def current_caller() -> Admitted:
    """The admitted caller of the RPC being served (set by :class:`AccessInterceptor`)."""
    return _current.get()


def peer_identity(context: Ctx) -> str | None:
    """The ``rmas://`` identity in the verified client certificate; None when it has none,
    several (an ambiguous certificate names nobody), or one holding control, blank or
    unprintable characters."""
    identity, _why = _identify(context)
    return identity


def _peer_pem(context: Ctx) -> bytes | None:
    """The verified client certificate (PEM); None unless there is exactly one."""
    pems = list(context.auth_context().get(_PEER_CERT, ()))
    return pems[0] if len(pems) == 1 else None


def _identify(context: Ctx) -> tuple[str | None, str]:
    """(identity, "") or (None, why not)."""
    pem = _peer_pem(context)
    return (None, _NO_IDENTITY) if pem is None else _identity_in(pem)


@functools.lru_cache(maxsize=4096)
def _identity_in(pem: bytes) -> tuple[str | None, str]:
    """A certificate's identity, parsed once per certificate (callers reconnect with the same)."""
    try:
        found = identities(x509.load_pem_x509_certificate(pem))
    except ValueError:
        return None, "the client certificate cannot be read"
    if len(found) != 1:
        return None, _NO_IDENTITY
    problem = identity_problem(found[0])
    if problem is not None:
        return None, f"the client certificate's rmas:// identity is refused: it {problem}"
    return found[0], ""


#: Admissions remembered by an interceptor, (method, certificate) -> Admitted, before it
#: starts again (callers reconnect with the same few certificates).
_ADMITTED_MAX = 4096


def _decide(
    policy: AccessPolicy, method: str, identity: str | None, why: str
) -> Admitted | Refused:
    """Whether the certificate's identity (or why it has none) may call ``method``."""
    if identity is None:
        return Refused(grpc.StatusCode.UNAUTHENTICATED, why)
    rule = policy.resolve(identity)
    if rule is None:
        return Refused(
            grpc.StatusCode.PERMISSION_DENIED, f"{identity} is not a known caller of this hub"
        )
    if rule.role not in PERMISSIONS.get(method, ()):
        return Refused(
            grpc.StatusCode.PERMISSION_DENIED, f"{identity} ({rule.role}) may not call {method}"
        )
    return Admitted(Caller(identity, rule.role.value), view_of(rule.role), rule)


class AccessInterceptor(HandlerInterceptor):
    """Admits or refuses every call; ``policy`` None is development mode (no TLS).

    An admission depends on the method, the client certificate (verified by the handshake) and
    the policy alone, so it is remembered by method and certificate bytes until the policy is
    replaced (a reload): a call then costs the certificate's read and one lookup, not its
    parse, the policy's rules and two new objects. Refusals are worked out every time.
    """

    def __init__(self, policy: AccessPolicy | None) -> None:
        super().__init__()
        self._admitted: dict[tuple[str, bytes], Admitted] = {}
        self.policy = policy

    @property
    def policy(self) -> AccessPolicy | None:
        return self._policy

    @policy.setter
    def policy(self, policy: AccessPolicy | None) -> None:
        self._policy = policy
        self._admitted = {}

    def admit(self, method: str, context: Ctx) -> Admitted | Refused:
        """The admitted caller, or why it is refused (the status it ends with, the text the
        caller reads)."""
        policy = self._policy
        if policy is None:
            # The peer's address without its ephemeral port: one client, one identity.
            host = context.peer().rpartition(":")[0]
            return Admitted(Caller(f"insecure:{host}", Role.OFFICER.value), View.FULL)
        pem = _peer_pem(context)
        if pem is None:
            return Refused(grpc.StatusCode.UNAUTHENTICATED, _NO_IDENTITY)
        admitted = self._admitted
        key = (method, pem)
        who = admitted.get(key)
        if who is not None:
            return who
        decided = _decide(policy, method, *_identity_in(pem))
        if isinstance(decided, Admitted):
            if len(admitted) >= _ADMITTED_MAX:
                admitted.clear()
            admitted[key] = decided
        return decided

    def wrap(self, method: str, handler: Handler) -> Handler:
        admit = self.admit
        set_current = _current.set

        def before(request: Any, context: Ctx) -> None:
            who = admit(method, context)
            if isinstance(who, Refused):
                raise who
            if isinstance(request, Undecodable):
                raise Refused.invalid(
                    [FieldViolation("request", f"cannot be decoded: {request.reason}")]
                )
            set_current(who)

        return wrap_behavior(handler, before, safe_requests=True)
