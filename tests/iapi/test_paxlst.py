from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rmas.iapi.paxlst import read_paxlst

PAX = Path(__file__).resolve().parents[2] / "fixtures" / "paxlst"
EXPECTED = json.loads((PAX / "expected.json").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED["good"]))
def test_golden_manifests_read_as_expected(name: str) -> None:
    exp: dict[str, Any] = EXPECTED["good"][name]
    m = read_paxlst((PAX / name).read_bytes())
    assert len(m.travellers) == exp["travellers"]
    if "documents" in exp:
        assert sum(len(t.documents) for t in m.travellers) == exp["documents"]
    if "groups" in exp:
        assert len(m.interchange.groups) == exp["groups"]
    if "surnames" in exp:
        assert [t.surname for t in m.travellers] == exp["surnames"]
    if "crew" in exp:
        assert all(t.crew for t in m.travellers) is exp["crew"]
    if "message_type" in exp:
        assert m.message_type == exp["message_type"]
    if "warning_contains" in exp:
        assert any(exp["warning_contains"] in w for w in m.warnings)


def test_every_field_of_a_passenger_is_read() -> None:
    m = read_paxlst((PAX / "four_passengers.edi").read_bytes())
    f = m.flight
    assert (f.carrier, f.number, f.departure_airport, f.arrival_airport) == (
        "NZ", "NZ1", "AKL", "SYD",
    )  # fmt: skip
    assert (f.departure_time, f.arrival_time) == ("2026-11-23T10:30", "2026-11-23T13:00")
    assert m.reporting_party == "AIR NEW ZEALAND DCS"
    t = m.travellers[0]
    assert (t.surname, t.given_names, t.sex, t.birth_date, t.nationality) == (
        "TAYLOR", "ANNA", "F", "1980-01-01", "NZL",
    )  # fmt: skip
    assert (t.booking_ref, t.passenger_ref, t.seat) == ("ABC123", "P1", "12A")
    (d,) = t.documents
    assert (d.type_code, d.number, d.expiry_date, d.issuing_state) == (
        "P", "LA000002", "2030-01-01", "NZL",
    )  # fmt: skip


def test_a_malformed_traveller_is_kept_with_its_problems() -> None:
    m = read_paxlst((PAX / "four_passengers.edi").read_bytes())
    bad = m.travellers[3]
    assert [p.field for p in bad.problems] == ["travellers[3].birth_date"]
    assert "segment" in bad.problems[0].description
    assert all(not t.problems for t in m.travellers[:3])


def test_a_traveller_may_carry_several_documents() -> None:
    (t,) = read_paxlst((PAX / "multi_document.edi").read_bytes()).travellers
    assert [(d.type_code, d.number, d.issuing_state) for d in t.documents] == [
        ("P", "P0000001A", "PHL"), ("V", "V12345678", "AUS"),
    ]  # fmt: skip


def test_the_same_manifest_reads_the_same_whatever_the_separators() -> None:
    a = read_paxlst((PAX / "four_passengers.edi").read_bytes())
    b = read_paxlst((PAX / "custom_una.edi").read_bytes())
    c = read_paxlst((PAX / "crlf_and_carrier_junk.edi").read_bytes())
    assert [t.documents for t in a.travellers] == [t.documents for t in b.travellers]
    assert [t.documents for t in a.travellers] == [t.documents for t in c.travellers]


def test_two_letter_country_codes_are_normalised() -> None:
    text = (PAX / "four_passengers.edi").read_text().replace("LOC+91+NZL", "LOC+91+NZ")
    m = read_paxlst(text)
    assert m.travellers[0].documents[0].issuing_state == "NZL"
