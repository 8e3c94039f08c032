from __future__ import annotations

from pathlib import Path

import pytest

from rmas.iapi.cusres import PassengerAnswer, read_cusres, write_error_cusres
from rmas.iapi.paxlst import read_paxlst
from rmas.iapi.syntax import parse_interchange
from rmas.iapiconfig import CusresCodes
from rmas.verdict import Directive

FIX = Path(__file__).resolve().parents[2] / "fixtures"


def golden_cases() -> list[str]:
    return sorted(p.name for p in (FIX / "cusres").glob("*.edi"))


@pytest.mark.parametrize("name", golden_cases())
def test_the_writer_reproduces_the_golden_cusres(name: str) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen", FIX / "cusres" / "generate.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.answer(name, gen.CASES[name]) == (FIX / "cusres" / name).read_text()


@pytest.mark.parametrize("name", golden_cases())
def test_our_cusres_reads_back_with_every_directive_and_correct_counts(name: str) -> None:
    text = (FIX / "cusres" / name).read_text()
    parse_interchange(text)  # counts and references check
    back = read_cusres(text)
    request = read_paxlst((FIX / "paxlst" / name).read_bytes())
    assert [(p[0], p[1]) for p in back.passengers] == [
        (t.booking_ref, t.passenger_ref) for t in request.travellers
    ]
    # The request's own RFF+TN when it sent one, else the hub's; the request's flight.
    assert back.transaction_ref == (request.parts[0].transaction_ref or "TN0001")
    assert back.flight == request.flight.number
    assert back.control_ref == request.interchange.control_ref
    assert [m.ref for m in back.messages] == [p.message.ref for p in request.parts]
    assert back.errors == ()
    codes = CusresCodes()
    known = {codes.for_directive(d)[0] for d in Directive}
    assert {p[2] for p in back.passengers} <= known


def test_cusres_swaps_the_envelope_and_keeps_groups() -> None:
    text = (FIX / "cusres" / "groups_d02b.edi").read_text()
    ic = parse_interchange(text)
    assert (ic.sender, ic.recipient) == ("RMASHUB", "AIRNZ")
    assert [g.function for g in ic.groups] == ["CUSRES"]
    assert ic.messages[0].type == "CUSRES"


def test_a_message_level_error_is_erp_1_even_without_an_envelope() -> None:
    text = write_error_cusres(
        None,
        error=CusresCodes().syntax_error,
        detail="segment 3 (UNH): bad",
        transaction_ref="T1",
        control_ref="C1",
        stamp=("261123", "1000"),
    )
    back = read_cusres(text)
    assert back.passengers == ()
    assert back.errors == (("1", "MESSAGE REJECTED: SEGMENT 3 (UNH): BAD"),)


def test_configured_codes_are_used() -> None:
    codes = CusresCodes(contact_authority=("8Z", "CALL US"))
    assert codes.for_directive(Directive.CONTACT_AUTHORITY) == ("8Z", "CALL US")
    assert PassengerAnswer("A", "B", Directive.OK_TO_BOARD).directive is Directive.OK_TO_BOARD
