"""Who the browser is: a verified certificate's rmas:// identity, mapped by [[callers]]."""

from __future__ import annotations

import ssl

import pytest

from rmas.console.identity import Refused, Visitor, visitor_of
from rmas.security.access import AccessPolicy, CallerRule, Role
from rmas.security.certs import issue, make_ca

POLICY = AccessPolicy(
    [
        CallerRule("rmas://officer/*", Role.OFFICER),
        CallerRule("rmas://operator/ops", Role.OPERATOR),
        CallerRule("rmas://airline/*", Role.AIRLINE),
    ]
)


@pytest.fixture(scope="module")
def der() -> dict[str, bytes]:
    ca = make_ca()
    out = {}
    for uri in ("rmas://officer/AKL-T1", "rmas://operator/ops", "rmas://airline/QF",
                "rmas://officer-desk/x"):  # fmt: skip
        pem = issue(ca, name="p", uri=uri).cert_pem.decode()
        out[uri] = ssl.PEM_cert_to_DER_cert(pem)
    return out


def test_development_mode_makes_the_local_user_officer_and_operator() -> None:
    who = visitor_of(None, "127.0.0.1", None)
    assert isinstance(who, Visitor)
    assert who.identity == "insecure:127.0.0.1"
    assert who.may("check") and who.may("status")
    assert who.as_officer().caller.role == "officer"


def test_roles_come_from_the_callers_tables(der: dict[str, bytes]) -> None:
    officer = visitor_of(der["rmas://officer/AKL-T1"], "10.0.0.9", POLICY)
    assert isinstance(officer, Visitor)
    assert officer.may("check") and not officer.may("status")
    assert officer.as_officer().caller.identity == "rmas://officer/AKL-T1"
    operator = visitor_of(der["rmas://operator/ops"], "10.0.0.9", POLICY)
    assert isinstance(operator, Visitor)
    assert operator.may("status") and not operator.may("check")
    assert not operator.may("anything else")


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("rmas://airline/QF", "rmas://airline/QF (airline) has no console on this hub"),
        ("rmas://officer-desk/x", "rmas://officer-desk/x is not a known caller of this hub"),
        (None, "the client certificate carries no single rmas:// identity"),
    ],
)
def test_others_are_refused_with_the_reason(
    der: dict[str, bytes], uri: str | None, why: str
) -> None:
    assert visitor_of(der[uri] if uri else None, "10.0.0.9", POLICY) == Refused(why)
