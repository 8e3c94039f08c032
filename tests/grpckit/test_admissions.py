"""The access interceptor remembers admissions by method and certificate: on any sequence of
calls and reloads it decides as the interceptor that worked every call out (a copy below)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rmas.audit.entry import Caller
from rmas.grpckit import auth
from rmas.grpckit.auth import AccessInterceptor, Admitted
from rmas.grpckit.interceptors import Refused
from rmas.security.access import PERMISSIONS, AccessPolicy, CallerRule, Role, view_of
from tests.conftest import Pki


def reference_admit(policy: AccessPolicy, method: str, context: Any) -> Admitted | Refused:
    """AccessInterceptor.admit before issue 20's session 8 (TLS on), worked out every call."""
    identity, why = auth._identify(context)
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


@dataclass
class Context:
    """What admit reads of a call: the verified peer's certificates."""

    pems: list[bytes]

    def auth_context(self) -> dict[str, list[bytes]]:
        return {"x509_pem_cert": self.pems}


PARTIES = ("officer", "airline", "operator", "node", "stranger", "anonymous")
METHODS = (*sorted(PERMISSIONS), "/rmas.v1.Unknown/Call")
#: Policies a reload may switch between (the same identity gets another role, or none).
POLICIES: tuple[list[CallerRule], ...] = (
    [CallerRule("rmas://officer/*", Role.OFFICER), CallerRule("rmas://airline/*", Role.AIRLINE)],
    [CallerRule("rmas://officer/*", Role.AIRLINE), CallerRule("rmas://operator/*", Role.OPERATOR)],
    [CallerRule("rmas://*", Role.NODE)],
    [],
)


def outcome(got: Admitted | Refused) -> Any:
    if isinstance(got, Refused):
        return ("refused", got.code, got.message)
    return ("admitted", got)


@pytest.fixture(scope="module")
def pems(pki: Pki) -> dict[str, bytes]:
    return {p: (pki.dir / f"{p}.pem").read_bytes() for p in PARTIES}


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("call"), st.sampled_from(PARTIES), st.sampled_from(METHODS)),
            st.tuples(st.just("reload"), st.integers(0, len(POLICIES) - 1), st.just("")),
            st.tuples(st.just("no certificate"), st.just(""), st.sampled_from(METHODS)),
            st.tuples(st.just("two certificates"), st.sampled_from(PARTIES), st.just(METHODS[0])),
        ),
        max_size=40,
    )
)
def test_remembered_admissions_decide_as_working_each_call_out(
    pems: dict[str, bytes], steps: list[tuple[str, Any, str]]
) -> None:
    policy = AccessPolicy(POLICIES[0])
    interceptor = AccessInterceptor(policy)
    for what, arg, method in steps:
        if what == "reload":
            policy = AccessPolicy(POLICIES[arg])
            interceptor.policy = policy
            continue
        if what == "call":
            context = Context([pems[arg]])
        elif what == "no certificate":
            context = Context([])
        else:
            context = Context([pems[arg], pems["officer"]])
        got = interceptor.admit(method, context)  # type: ignore[arg-type]
        assert outcome(got) == outcome(reference_admit(policy, method, context))


def test_an_admission_is_remembered_and_forgotten_at_a_reload(pems: dict[str, bytes]) -> None:
    interceptor = AccessInterceptor(AccessPolicy(POLICIES[0]))
    method = "/rmas.v1.DocumentCheck/CheckDocument"
    first = interceptor.admit(method, Context([pems["officer"]]))  # type: ignore[arg-type]
    again = interceptor.admit(method, Context([pems["officer"]]))  # type: ignore[arg-type]
    assert isinstance(first, Admitted) and again is first
    interceptor.policy = AccessPolicy(POLICIES[3])  # nobody
    assert isinstance(interceptor.admit(method, Context([pems["officer"]])), Refused)  # type: ignore[arg-type]
