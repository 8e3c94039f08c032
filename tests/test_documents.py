from __future__ import annotations

import datetime as dt

import pytest

from rmas.documents import DocumentType, normalise_name, normalise_number, validate_document
from rmas.errors import ValidationError
from rmas.states import canonical_economy, is_known_state, to_alpha3


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("ab 123-456<", "AB123456"), ("L898902C3", "L898902C3"), (" p.12/34 ", "P1234"), ("", "")],
)
def test_numbers_are_normalised_as_an_mrz_writes_them(raw: str, expected: str) -> None:
    assert expected == normalise_number(raw)


def test_names_are_transliterated_as_icao_recommends() -> None:
    assert normalise_name("Müller") == "MUELLER"
    assert normalise_name("Åsa Østergård") == "AASA OESTERGAARD"
    assert normalise_name("José Muñoz") == "JOSE MUNOZ"


def test_names_lose_punctuation_and_fillers() -> None:
    assert normalise_name("O'Brien-Smith") == "OBRIEN SMITH"
    assert normalise_name("anna<maria  ") == "ANNA MARIA"


@pytest.mark.parametrize(
    ("code", "expected"),
    [("NZL", "NZL"), ("nz", "NZL"), ("D<<", "D"), ("D", "D"), ("XXA", "XXA"), ("UTO", "UTO"),
     ("GBD", "GBD"), ("RKS", "RKS"), ("ZZZ", None), ("Q", None), ("", None)],
)  # fmt: skip
def test_state_codes_accept_iso_icao_and_alpha2(code: str, expected: str | None) -> None:
    assert expected == to_alpha3(code)


def test_germany_is_one_economy_under_both_codes() -> None:
    assert canonical_economy("D") == "DEU"
    assert is_known_state("D") and is_known_state("DEU")


def test_valid_document_is_normalised() -> None:
    q = validate_document(
        issuing_state="nz",
        number="la-123 456",
        type_code="P",
        surname="o'brien",
        birth_date="1980-02-29",
        sex="f",
        ref="pax1",
    )
    assert q.key == ("NZL", "LA123456")
    assert DocumentType.PASSPORT is q.type
    assert q.holder.surname == "OBRIEN"
    assert dt.date(1980, 2, 29) == q.holder.birth_date
    assert q.holder.sex == "F"
    assert q.ref == "pax1"


def test_every_bad_field_is_named() -> None:
    with pytest.raises(ValidationError) as info:
        validate_document(
            issuing_state="ZZZ",
            number="AB#12",
            birth_date="1980-13-01",
            sex="Q",
            nationality="XY",
            expiry_date="soon",
            prefix="travellers[2].document",
        )
    fields = {v.field for v in info.value.violations}
    assert {
        "travellers[2].document.issuing_state",
        "travellers[2].document.number",
        "travellers[2].document.holder.birth_date",
        "travellers[2].document.holder.sex",
        "travellers[2].document.holder.nationality",
        "travellers[2].document.expiry_date",
    } == fields


def test_empty_and_overlong_numbers_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"document\.number: required"):
        validate_document(issuing_state="NZL", number=" <<< ")
    with pytest.raises(ValidationError, match="longer than 20"):
        validate_document(issuing_state="NZL", number="A" * 21)
