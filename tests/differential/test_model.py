"""The reference model itself, row by row against the documents' rules (no hub involved).

If a row here is wrong, the model is wrong, and the differential test would judge the hub by a
wrong rule: each row cites the rule it encodes.
"""

from __future__ import annotations

import datetime as dt

import pytest

from tests.differential.model import (
    Doc,
    HolderData,
    ProviderSpec,
    StoreRecord,
    check_digit,
    expect,
    normalise_number,
    normalise_state,
    td3_candidates,
    td3_suspect,
    type_of,
)

HOLDER = HolderData("SMITH", "ANNA", dt.date(1980, 1, 1), "F")
NZL = ProviderSpec("NZL", "issuer", frozenset({"NZL"}),
                   records={("NZL", "LA1"): [StoreRecord("STOLEN")],
                            ("NZL", "LA2"): [StoreRecord("VALID", holder=HOLDER)]})  # fmt: skip
AUS = ProviderSpec("AUS", "issuer", frozenset({"AUS"}), registry="complete",
                   records={("AUS", "PA1"): [StoreRecord("VALID", holder=HOLDER)]})  # fmt: skip
SLTD = ProviderSpec("SLTD", "global",
                    records={("NZL", "LA9"): [StoreRecord("LOST", "I")],
                             ("THA", "T1"): [StoreRecord("STOLEN", "V")]})  # fmt: skip


def verdict(doc: Doc, *provs: ProviderSpec, policy: str = "contact") -> tuple[str, str]:
    e = expect(list(provs) or [NZL, AUS, SLTD], doc, policy)
    return e.verdict, e.directive


@pytest.mark.parametrize(
    ("doc", "want"),
    [
        # Rule 1: invalid data -> INVALID_DATA / INSUFFICIENT_DATA, nobody asked.
        (Doc("QQQ", "LA1"), ("INVALID_DATA", "INSUFFICIENT_DATA")),
        (Doc("NZL", " - <"), ("INVALID_DATA", "INSUFFICIENT_DATA")),
        (Doc("NZL", "LA#1"), ("INVALID_DATA", "INSUFFICIENT_DATA")),
        # Rule 2: any alerting status, from any provider, whatever the formatting or type.
        (Doc("nzl", "la-1"), ("ALERT", "DO_NOT_BOARD")),
        (Doc("NZ", "LA 9", "P"), ("ALERT", "DO_NOT_BOARD")),  # filed as I: type never filters
        (Doc("THA", "T1", "P"), ("ALERT", "DO_NOT_BOARD")),  # uncovered issuer, global hit
        (Doc("AUS", "PA2"), ("ALERT", "DO_NOT_BOARD")),  # complete registry: NOT_ISSUED
        (Doc("AUS", "PA1", holder=HolderData("JONES")), ("ALERT", "DO_NOT_BOARD")),  # mismatch
        # Rule 3: every required provider answered -> CLEAR (holder fields absent on one side
        # are not compared; names compare upper case).
        (
            Doc("AUS", "PA1", holder=HolderData("smith", birth_date=dt.date(1980, 1, 1))),
            ("CLEAR", "OK_TO_BOARD"),
        ),
        (Doc("NZL", "LA2<<", holder=HolderData(sex="F")), ("CLEAR", "OK_TO_BOARD")),
        (Doc("THA", "T2"), ("CLEAR", "OK_TO_BOARD")),  # global alone: CLEAR, not consulted
    ],
)
def test_rows(doc: Doc, want: tuple[str, str]) -> None:
    assert verdict(doc) == want


def test_incomplete_policies_and_uncovered_documents() -> None:
    down = ProviderSpec("NZL", "issuer", frozenset({"NZL"}), behaviour="hang")
    assert verdict(Doc("NZL", "X1"), down, SLTD) == ("INCOMPLETE", "CONTACT_AUTHORITY")
    e = expect([down, SLTD], Doc("NZL", "X1"), "board")
    assert (e.verdict, e.directive, e.unchecked) == ("INCOMPLETE", "OK_TO_BOARD", True)
    # An alert wins over a missing answer.
    assert verdict(Doc("NZL", "LA9"), down, SLTD) == ("ALERT", "DO_NOT_BOARD")
    # A node describing another state, or echoing another key, is not an answer.
    for b in ("wrong_state", "wrong_key"):
        liar = ProviderSpec("NZL", "issuer", frozenset({"NZL"}), behaviour=b,
                            records={("NZL", "LA1"): [StoreRecord("VALID")]})  # fmt: skip
        assert verdict(Doc("NZL", "LA1"), liar, SLTD) == ("INCOMPLETE", "CONTACT_AUTHORITY")
    # Nobody covers it: never CLEAR.
    assert verdict(Doc("NZL", "LA1"), AUS) == ("INCOMPLETE", "CONTACT_AUTHORITY")
    optional_down = ProviderSpec("SLTD", "global", required=False, behaviour="down")
    assert verdict(Doc("THA", "T1"), optional_down) == ("INCOMPLETE", "CONTACT_AUTHORITY")
    assert verdict(Doc("NZL", "LA2"), NZL, optional_down) == ("CLEAR", "OK_TO_BOARD")
    assert expect([NZL, SLTD], Doc("THA", "T2"), "contact").issuer_consulted is False
    assert expect([NZL, SLTD], Doc("NZL", "T2"), "contact").issuer_consulted is True


def test_suspect_zones_alert_on_a_candidate_or_are_invalid() -> None:
    # ICAO's specimen: L898902C3, check digit 6, composite 0.
    line2 = "L898902C36UTO7408122F1204159ZE184226B<<<<<10"
    assert check_digit("L898902C3") == "6" and not td3_suspect(line2)
    misread = "L8989O2C36UTO7408122F1204159ZE184226B<<<<<10"  # 0 read as O
    assert td3_suspect(misread)
    assert td3_candidates(misread) == ["L898902C3"]
    # The model takes the state from the document and the candidates from the zone.
    nzl = ProviderSpec("NZL", "issuer", frozenset({"NZL"}),
                       records={("NZL", "L898902C3"): [StoreRecord("STOLEN")]})  # fmt: skip
    hit = expect([nzl], Doc("NZL", "L8989O2C3", "P", mrz_line2=misread), "contact")
    clean = ProviderSpec("NZL", "issuer", frozenset({"NZL"}))
    miss = expect([clean], Doc("NZL", "L8989O2C3", "P", mrz_line2=misread), "contact")
    assert hit.verdict == "ALERT"
    assert miss.verdict == "INVALID_DATA"


def test_normalisation_and_type_codes() -> None:
    assert normalise_number(" ab-12<3 ") == "AB123"
    assert (normalise_state(" nz "), normalise_state("NZL<"), normalise_state("QQ")) == (
        "NZL", "NZL", None,
    )  # fmt: skip
    codes = ("P<", "PT", "I", "ID", "IP", "AC", "A", "C", "V", "VS", "", "X")
    assert [type_of(c) for c in codes] == [
        "PASSPORT", "PASSPORT", *["IDENTITY_CARD"] * 6, "VISA", "VISA", "UNSPECIFIED", "OTHER",
    ]  # fmt: skip
