"""Who may call what, and how much of a verdict each caller sees: the one place that decides.

A caller is named by the ``rmas://`` URI in its client certificate (:mod:`rmas.security.certs`).
The hub's configuration maps identities to roles with ``[[callers]]`` tables (an exact identity,
or a prefix ending in ``*`` such as ``rmas://airline/*``; the exact or longest match wins). The
certificate's naming convention grants nothing by itself.

=========  ========================================================  ===========================
role       may call                                                   sees of a verdict
=========  ========================================================  ===========================
airline    CheckDocument, CheckManifest, CheckPaxlst                  directive and check id only
officer    CheckDocument, CheckManifest, CheckPaxlst                  everything
operator   HubAdmin.Status                                            (no document checks)
node       the provider protocol, on a national node's listener       (no document checks)
=========  ========================================================  ===========================

On a national node (``rmas provider serve``), the callers it admits (``--allow``, by default any
``rmas://`` identity certified by its CA: in practice the hubs) take the ``node`` role, which may
call ``DocumentStatusProvider``; on a hub, the ``node`` role may only check health.

Every authenticated caller may use gRPC health checking and server reflection. A method not in
the table is refused (PERMISSION_DENIED): new RPCs are closed until someone opens them here.

The web console (:mod:`rmas.console`) maps a browser's client certificate to a role through the
same ``[[callers]]`` tables; :data:`CONSOLE_PERMISSIONS` says what each role may do there: an
officer checks documents and finds checks (and sees everything of them), an operator sees the
hub's status; an airline or a node gets no console.

Rate limits are per identity, counted in documents (a 400-document manifest takes 400), as a
token bucket: ``documents_per_s`` refills it, ``burst`` is its size.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rmas.errors import RmasError

__all__ = [
    "CONSOLE_PERMISSIONS",
    "PERMISSIONS",
    "AccessPolicy",
    "CallerRule",
    "RateLimited",
    "Role",
    "TokenBucket",
    "View",
    "node_policy",
    "view_of",
]


class Role(enum.StrEnum):
    AIRLINE = "airline"
    OFFICER = "officer"
    OPERATOR = "operator"
    NODE = "node"


class View(enum.Enum):
    """How much of a check result leaves the hub."""

    #: Directive, check id and the caller's own reference: what an airline may learn.
    DIRECTIVE = "directive"
    #: Every provider's answer, reporting authority, report date, record reference, contact.
    FULL = "full"


_CHECKERS = frozenset({Role.AIRLINE, Role.OFFICER})
_EVERYONE = frozenset(Role)

#: gRPC method -> roles that may call it. Anything absent is refused.
PERMISSIONS: dict[str, frozenset[Role]] = {
    "/rmas.v1.DocumentCheck/CheckDocument": _CHECKERS,
    "/rmas.v1.DocumentCheck/CheckManifest": _CHECKERS,
    "/rmas.v1.DocumentCheck/CheckPaxlst": _CHECKERS,
    # Each caller watches and acknowledges its own flights' status changes only.
    "/rmas.v1.DocumentCheck/WatchStatusChanges": _CHECKERS,
    "/rmas.v1.DocumentCheck/AckStatusChange": _CHECKERS,
    # A government officer's override: never an airline.
    "/rmas.v1.DocumentCheck/OverrideDirective": frozenset({Role.OFFICER}),
    "/rmas.v1.HubAdmin/Status": frozenset({Role.OPERATOR}),
    "/rmas.v1.DocumentStatusProvider/Describe": frozenset({Role.NODE}),
    "/rmas.v1.DocumentStatusProvider/LookupBatch": frozenset({Role.NODE}),
    "/rmas.v1.DocumentStatusProvider/LookupCards": frozenset({Role.NODE}),
    "/rmas.v1.DocumentStatusProvider/WatchChanges": frozenset({Role.NODE}),
    "/grpc.health.v1.Health/Check": _EVERYONE,
    "/grpc.health.v1.Health/Watch": _EVERYONE,
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": _EVERYONE,
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": _EVERYONE,
}

#: Web console action -> roles that may take it. Anything absent is refused.
CONSOLE_PERMISSIONS: dict[str, frozenset[Role]] = {
    "check": frozenset({Role.OFFICER}),  # check a document, find a check by its id
    "status": frozenset({Role.OPERATOR}),  # the hub's providers and audit trail
}

_VIEWS = {Role.AIRLINE: View.DIRECTIVE, Role.OFFICER: View.FULL}


def view_of(role: str) -> View:
    """The view of a role; anything but an officer gets the directive view (need to know)."""
    try:
        return _VIEWS.get(Role(role), View.DIRECTIVE)
    except ValueError:
        return View.DIRECTIVE


class RateLimited(RmasError):
    """A caller asked for more documents than its rate allows; ``retry_after_s`` says when."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(slots=True)
class TokenBucket:
    """``rate`` tokens a second up to ``burst``; taking more than is there takes nothing."""

    rate: float
    burst: float
    tokens: float = -1.0
    stamp: float = 0.0

    def take(self, n: int, now: float) -> float:
        """Take ``n`` tokens; returns 0 on success, else the seconds until ``n`` are there
        (``math.inf`` when ``n`` exceeds the bucket's size)."""
        if self.tokens < 0:
            self.tokens, self.stamp = self.burst, now
        else:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
        if n <= self.tokens:
            self.tokens -= n
            return 0.0
        if n > self.burst:
            return math.inf
        return (n - self.tokens) / self.rate


@dataclass(frozen=True, slots=True)
class CallerRule:
    """One ``[[callers]]`` table."""

    #: An exact identity (``rmas://airline/QF``) or a prefix ending in ``*``.
    identity: str
    role: Role
    #: Documents a second this identity may check (0: the ``[limits]`` default).
    documents_per_s: float = 0.0
    #: Bucket size: documents it may check at once (0: the ``[limits]`` default).
    burst: int = 0
    #: UNB/UNG sender ids this airline's PAXLSTs may carry (empty: not checked).
    senders: tuple[str, ...] = ()

    @property
    def is_prefix(self) -> bool:
        return self.identity.endswith("*")


class AccessPolicy:
    """Identity -> role, and per-identity rate limits. Shared by every call of a hub."""

    def __init__(
        self,
        rules: Iterable[CallerRule],
        *,
        documents_per_s: float = 0.0,
        burst: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rules = tuple(rules)
        self._exact = {r.identity: r for r in self.rules if not r.is_prefix}
        self._prefixes = sorted(
            (r for r in self.rules if r.is_prefix), key=lambda r: len(r.identity), reverse=True
        )
        self.documents_per_s = documents_per_s
        self.burst = burst
        self._buckets: dict[str, TokenBucket] = {}
        self._clock = clock
        # Token levels taken over from the policy this one replaced (carry_over), by identity.
        self._carried: dict[str, float] = {}
        self._carried_at = 0.0

    def carry_over(self, old: AccessPolicy) -> None:
        """Continue ``old``'s rate limits (a configuration reload): each identity starts with
        what its bucket held, not with a full one, capped by its new burst. Otherwise every
        reload would hand every caller a fresh burst."""
        now = self._clock()
        self._carried_at = now
        self._carried = {}
        for identity, bucket in old._buckets.items():
            if bucket.tokens < 0:
                continue
            level = min(bucket.burst, bucket.tokens + (now - bucket.stamp) * bucket.rate)
            self._carried[identity] = max(0.0, level)

    def resolve(self, identity: str) -> CallerRule | None:
        """The rule for an identity: exact match first, then the longest matching prefix."""
        rule = self._exact.get(identity)
        if rule is not None:
            return rule
        for r in self._prefixes:
            if identity.startswith(r.identity[:-1]):
                return r
        return None

    def admit(self, identity: str, rule: CallerRule, documents: int) -> None:
        """Charge ``documents`` to the identity's bucket; raise RateLimited when it is empty."""
        rate = rule.documents_per_s or self.documents_per_s
        if rate <= 0 or documents <= 0:
            return
        bucket = self._buckets.get(identity)
        if bucket is None:
            burst = rule.burst or self.burst or max(1, math.ceil(rate))
            bucket = self._buckets[identity] = TokenBucket(rate, float(burst))
            level = self._carried.pop(identity, None)
            if level is not None:  # refilled at the new rate since the reload
                bucket.tokens, bucket.stamp = min(level, float(burst)), self._carried_at
        wait = bucket.take(documents, self._clock())
        if wait == 0.0:
            return
        if math.isinf(wait):
            raise RateLimited(
                f"{documents} documents in one call exceed the {bucket.burst:.0f} this caller "
                f"may check at once; split the request",
                retry_after_s=0.0,
            )
        raise RateLimited(
            f"rate limit: this caller may check {rate:g} documents/s "
            f"(bursts of {bucket.burst:.0f}); retry in {wait:.2f} s",
            retry_after_s=wait,
        )


def node_policy(allowed: Iterable[str] = ()) -> AccessPolicy:
    """A national node's callers: the identities (or ``*`` prefixes) given, else any
    ``rmas://`` identity its CA certified; all with the ``node`` role."""
    return AccessPolicy(CallerRule(i, Role.NODE) for i in (tuple(allowed) or ("rmas://*",)))
