from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from rmas.iapi.paxlst import read_paxlst
from rmas.iapi.syntax import EdifactError

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
        "TAYLOR", "ANNA", "F", dt.date(1980, 1, 1), "NZL",
    )  # fmt: skip
    assert (t.booking_ref, t.passenger_ref, t.seat) == ("ABC123", "P1", "12A")
    (d,) = t.documents
    assert (d.type_code, d.number, d.expiry_date, d.issuing_state) == (
        "P", "LA000002", dt.date(2030, 1, 1), "NZL",
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


def test_each_leg_keeps_its_own_places_and_times() -> None:
    m = read_paxlst((PAX / "iapi_progressive.edi").read_bytes())
    (part,) = m.parts
    assert [(leg.number, leg.places, [t[1] for t in leg.times]) for leg in part.legs] == [
        ("NZ145", [("92", "AKL"), ("92", "BNE")], ["2611241400", "2611241545"]),
        ("NZ145", [("125", "BNE"), ("87", "SYD")], ["2611241700", "2611241820"]),
    ]
    assert (m.flight.departure_time, m.flight.arrival_time) == (
        "2026-11-24T14:00", "2026-11-24T18:20",
    )  # fmt: skip


def test_references_are_kept_for_the_answer() -> None:
    m = read_paxlst((PAX / "iapi_correlated.edi").read_bytes())
    (part,) = m.parts
    assert m.interchange.application_ref == "IAPI"
    assert (part.transaction_ref, part.message.ref, part.message.common_access_ref) == (
        "7100201", "NZ103P1", "NZ103261124",
    )  # fmt: skip
    assert (part.message.sequence, part.message.sequence_marker) == ("01", "F")
    assert not part.multipart


def test_a_part_of_a_split_flight_counts_the_flight_total() -> None:
    m = read_paxlst((PAX / "iapi_part_01.edi").read_bytes())
    (part,) = m.parts
    assert part.multipart and part.declared == 5 and len(part.travellers) == 2
    # A single message must still count its own travellers.
    single = (PAX / "iapi_part_01.edi").read_bytes().replace(b"+01:C'", b"+01:F'")
    with pytest.raises(EdifactError, match="CNT"):
        read_paxlst(single)


def test_a_bad_document_is_its_own_problem_and_codes_pass_through() -> None:
    m = read_paxlst((PAX / "iapi_empty_loc91_stolen.edi").read_bytes())
    t = m.travellers[0]
    assert t.problems == []
    card, passport = t.documents
    assert card.type_code == "I" and card.problems and not passport.problems
    visa = read_paxlst((PAX / "iapi_visa_no_issuer.edi").read_bytes()).travellers[0].documents[1]
    assert (visa.type_code, visa.issuer_given, visa.problems) == ("V", False, [])
    coded = (PAX / "iapi_correlated.edi").read_bytes().replace(b"DOC+P:", b"DOC+VS:")
    assert {d.type_code for t in read_paxlst(coded).travellers for d in t.documents} == {"VS"}


def test_a_carrier_trailer_after_unz_is_ignored() -> None:
    m = read_paxlst((PAX / "iapi_trailer_after_unz.edi").read_bytes())
    assert len(m.travellers) == 1
