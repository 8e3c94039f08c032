from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmas.documents import (
    DocumentQuery,
    DocumentType,
    Holder,
    normalise_name,
    normalise_number,
    valid_plain,
    validate_document,
)
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


def test_non_ascii_letters_never_turn_into_another_number() -> None:
    from rmas.documents import normalise_number, number_problem

    for raw in ("aß12", "ﬁ123", "ＡＢ１２", "ı123"):
        assert number_problem(normalise_number(raw)) is not None, raw
    assert normalise_number("ab 12-3.4/5<") == "AB12345"


def test_holders_match_on_every_field_both_sides_give() -> None:
    import datetime as dt

    from rmas.documents import Holder, match_holder
    from rmas.verdict import HolderMatch

    asked = Holder(surname="SMITH", birth_date=dt.date(1980, 1, 1))
    assert match_holder(asked, Holder(surname="SMITH")) is HolderMatch.MATCH
    assert match_holder(asked, Holder(surname="SMYTH")) is HolderMatch.MISMATCH
    assert match_holder(asked, Holder(birth_date=dt.date(1980, 1, 2))) is HolderMatch.MISMATCH
    assert match_holder(asked, Holder(given_names="ANNA")) is HolderMatch.NOT_CHECKED
    assert match_holder(Holder(), Holder(surname="SMITH")) is HolderMatch.NOT_CHECKED
    assert match_holder(Holder(sex="F"), Holder(sex="M")) is HolderMatch.MISMATCH


def test_an_untyped_query_is_the_same_query_without_its_type() -> None:
    # untyped() builds the query field by field (dataclasses.replace is slower): every field but
    # the type must come through, including any field added later.
    full = DocumentQuery(
        issuing_state="NZL",
        number="LA123456",
        type=DocumentType.PASSPORT,
        holder=Holder("SMITH", "JANE", dt.date(1990, 2, 3), "F", "NZL"),
        expiry_date=dt.date(2031, 4, 5),
        ref="row 7",
    )
    assert [f.name for f in dataclasses.fields(DocumentQuery)] == [
        "issuing_state", "number", "type", "holder", "expiry_date", "ref",
    ]  # fmt: skip
    assert full.untyped() == dataclasses.replace(full, type=DocumentType.UNSPECIFIED)
    assert full.untyped().type is DocumentType.UNSPECIFIED


def test_dates_a_channel_has_read_are_taken_as_they_are() -> None:
    # A channel that parsed a date hands it over typed; the query is the one ISO text gives.
    as_text = validate_document(
        issuing_state="NZL", number="LA1", surname="X", birth_date="1980-01-02",
        expiry_date="2031-04-05",
    )  # fmt: skip
    typed = validate_document(
        issuing_state="NZL", number="LA1", surname="X", birth_date=dt.date(1980, 1, 2),
        expiry_date=dt.date(2031, 4, 5),
    )  # fmt: skip
    assert typed == as_text
    assert typed.holder.birth_date == dt.date(1980, 1, 2)
    assert (
        validate_document(issuing_state="NZL", number="LA1", expiry_date=None).expiry_date is None
    )


_RAW_STATES = st.sampled_from(
    ["NZL", "nzl", " AUS", "D", "D<<", "DE", "XXX", "", "Z", "UTO", "ÅUS"]
)
_RAW_NUMBERS = st.one_of(
    st.sampled_from(["N1234567", "ab 123-456<", "", "ß12", "X" * 21, "12345678901234567890"]),
    st.text(alphabet="AZaz09 -<ﬁß", max_size=24),
)


@settings(max_examples=400, deadline=None)
@given(_RAW_STATES, _RAW_NUMBERS, st.text(max_size=4))
def test_the_plain_fast_path_agrees_with_validate_document(
    state: str, number: str, ref: str
) -> None:
    """valid_plain (a manifest line with a state and a number) gives validate_document's query,
    or None exactly where validate_document refuses."""
    fast = valid_plain(state, number, ref)
    try:
        slow = validate_document(issuing_state=state, number=number, ref=ref)
    except ValidationError:
        assert fast is None
        return
    assert fast == slow


def _reference_name(raw: str) -> str:
    """normalise_name as written before its fast path (the rule in its long form)."""
    import re
    import unicodedata

    s = raw.upper()
    if not s.isascii():
        s = s.translate(str.maketrans({"Ä": "AE", "Ö": "OE", "Ü": "UE", "ß": "SS", "Ø": "OE",
                                       "Å": "AA", "Æ": "AE", "ẞ": "SS"}))  # fmt: skip
        s = "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))
    s = s.replace("<", " ").replace("-", " ").replace("'", "")
    s = re.sub(r"[^A-Z ]+", "", s)
    return re.sub(r"\s+", " ", s).strip()


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="ABCXYZabcxyz -<'.éÄöß\t", max_size=20))
def test_normalised_names_agree_with_the_long_form_of_the_rule(raw: str) -> None:
    assert normalise_name(raw) == _reference_name(raw)
