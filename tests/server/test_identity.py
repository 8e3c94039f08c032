"""Certificate identities with control, blank or unprintable characters are refused, through a
real TLS hub: gRPC's own ``peer_uri`` stops at a NUL, so ``rmas://officer/X\\x00y`` used to be
admitted as ``rmas://officer/X``."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from rmas.client import document_pb
from rmas.config import parse_config
from rmas.errors import ConfigError
from rmas.security import certs
from rmas.security.access import CallerRule, Role
from rmas.security.certs import Issued, identity_of, identity_problem, issue
from rmas.testing import FakeProvider, HubHandle, running_hub
from rmas.v1 import check_pb2, check_pb2_grpc
from rmas.verdict import RecordStatus
from tests.conftest import Pki

CALLERS = (CallerRule("rmas://officer/*", Role.OFFICER),)


@pytest.fixture
async def hub(pki: Pki) -> AsyncIterator[HubHandle]:
    nzl = FakeProvider.issuer("NZL", ["NZL"], {("NZL", "LA000002"): RecordStatus.STOLEN})
    async with running_hub([nzl], tls=pki.tls("hub"), callers=CALLERS) as h:
        yield h


def _certificate(pki: Pki, uri: str, monkeypatch: pytest.MonkeyPatch) -> Issued:
    """A client certificate from the hub's own CA naming ``uri``, whatever it holds (the issuing
    helper refuses such names: a hostile CA, or a careless one, would not)."""
    monkeypatch.setattr(certs, "_IDENTITY", re.compile(r"rmas://.+", re.DOTALL))
    ca = Issued((pki.dir / "ca.pem").read_bytes(), (pki.dir / "ca.key").read_bytes())
    return issue(ca, name="X", uri=uri)


async def _check_as(hub: HubHandle, pki: Pki, who: Issued) -> check_pb2.CheckDocumentResponse:
    creds = grpc.ssl_channel_credentials((pki.dir / "ca.pem").read_bytes(), who.key_pem,
                                         who.cert_pem)  # fmt: skip
    async with grpc.aio.secure_channel(hub.target, creds) as ch:
        request = check_pb2.CheckDocumentRequest(
            document=document_pb(number="LA000002", state="NZL")
        )
        response: check_pb2.CheckDocumentResponse = await check_pb2_grpc.DocumentCheckStub(
            ch
        ).CheckDocument(request, timeout=10)
        return response


async def test_a_plain_officer_certificate_is_admitted(
    hub: HubHandle, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: a certificate made the same way, with a clean name, gets its answer."""
    response = await _check_as(hub, pki, _certificate(pki, "rmas://officer/X", monkeypatch))
    assert response.result.verdict == check_pb2.VERDICT_ALERT


@pytest.mark.parametrize(
    "uri",
    [
        "rmas://officer/X\x00y",
        "rmas://officer/X\x00",
        "rmas://officer/X\ty",
        "rmas://officer/X y",
        "rmas://officer/X\ny",
        "rmas://officer/X\x1b[0m",
        "rmas://officer/X\x7f",
        "rmas://officer/" + "X" * 300,
    ],
    ids=["nul-inside", "nul-at-end", "tab", "space", "newline", "escape", "delete", "too-long"],
)
async def test_an_identity_with_control_or_blank_characters_is_unauthenticated(
    hub: HubHandle, pki: Pki, monkeypatch: pytest.MonkeyPatch, uri: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _check_as(hub, pki, _certificate(pki, uri, monkeypatch))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "identity is refused" in (err.value.details() or "")


@pytest.mark.parametrize("ch", ["\u200b", "\u202e", "\u00a0", "\u2028", "\x85"])
def test_unprintable_and_blank_unicode_characters_are_problems(ch: str) -> None:
    assert identity_problem(f"rmas://officer/X{ch}y") is not None
    assert identity_problem("rmas://officer/AKL-T1") is None


def test_identity_of_refuses_a_certificate_whose_identity_holds_a_nul(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = _certificate(pki, "rmas://officer/X\x00y", monkeypatch)
    assert identity_of(bad.cert_pem) is None
    good = _certificate(pki, "rmas://officer/X", monkeypatch)
    assert identity_of(good.cert_pem) == "rmas://officer/X"


def test_a_caller_rule_with_a_control_character_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config('[[callers]]\nidentity = "rmas://officer/X\\u0000y"\nrole = "officer"\n')
    assert err.value.key == "callers[0].identity"
    assert "U+0000" in err.value.message
