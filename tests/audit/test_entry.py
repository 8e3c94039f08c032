"""Audit entries from check results, and the keyed hash that names a document (pure)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hmac
import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rmas.audit import AuditEntry, Caller, Channel, DocumentKeyer, entries_for
from rmas.audit.entry import encode_entries, utc_timestamp
from rmas.audit.format import FORMAT, decode, encode
from rmas.errors import ConfigError, FieldViolation
from rmas.hub import CheckResult
from rmas.verdict import Directive, Outcome, RecordStatus, Verdict
from tests.audit import CALLER, KEY, KEYER, NOW, answer, result


def test_an_entry_says_who_asked_when_how_about_which_document_and_what_came_of_it() -> None:
    r = result(
        "la 123-4567",
        "NZL",
        Verdict.ALERT,
        Directive.DO_NOT_BOARD,
        (answer("NZL", RecordStatus.STOLEN), answer("SLTD", None, Outcome.TIMEOUT)),
    )
    (e,) = entries_for(
        [r], CALLER, Channel.MANIFEST, KEYER, hub="hub-akl-1", reference="QF1-2026-11-22", now=NOW
    )
    expected = AuditEntry(
        time="2026-11-22T10:04:05.123456+00:00",
        hub="hub-akl-1",
        caller="rmas://airline/QF",
        role="airline",
        channel="manifest",
        check_id=r.check_id,
        issuing_state="NZL",
        document_key=hmac.digest(KEY, b"NZL:LA1234567", "sha256").hex(),
        sources='[["NZL","ANSWERED","STOLEN",""],["SLTD","TIMEOUT","",""]]',
        verdict="ALERT",
        directive="DO_NOT_BOARD",
        reference="QF1-2026-11-22",
    )
    assert expected == e
    assert type(e.verdict) is str and type(e.channel) is str


def test_one_entry_per_result_in_order_all_stamped_with_the_same_time() -> None:
    results = [result(f"A{i}") for i in range(5)]
    out = entries_for(results, CALLER, Channel.DOCUMENT, KEYER)
    assert [r.check_id for r in results] == [e.check_id for e in out]
    assert len({e.time for e in out}) == 1
    assert [KEYER.key_of("NZL", f"A{i}") for i in range(5)] == [e.document_key for e in out]


def test_invalid_data_has_no_state_no_key_and_no_sources() -> None:
    r = CheckResult(
        "c0ffee", "3", Verdict.INVALID_DATA, Directive.INSUFFICIENT_DATA,
        problems=(FieldViolation("document.number", "required"),),
    )  # fmt: skip
    (e,) = entries_for([r], Caller("insecure:127.0.0.1", "officer"), Channel.PAXLST, KEYER)
    assert (e.issuing_state, e.document_key, e.sources) == ("", "", "[]")
    assert (e.verdict, e.directive, e.channel) == ("INVALID_DATA", "INSUFFICIENT_DATA", "paxlst")


def test_answers_about_ocr_candidates_are_marked() -> None:
    r = result(
        "L898902C3",
        "UTO",
        Verdict.ALERT,
        Directive.DO_NOT_BOARD,
        (
            answer("UTO", RecordStatus.NO_RECORD),
            answer("UTO", RecordStatus.STOLEN, queried_number="L898902G3"),
        ),
    )
    (e,) = entries_for([r], CALLER, Channel.DOCUMENT, KEYER)
    assert (json.loads(e.sources)) == [
        ["UTO", "ANSWERED", "NO_RECORD", ""],
        ["UTO", "ANSWERED", "STOLEN", "candidate"],
    ]
    # The key names the number as read; the candidate's number appears nowhere.
    assert KEYER.key_of("UTO", "L898902C3") == e.document_key
    assert "L898902G3" not in repr(e)


def test_germany_is_one_document_however_its_state_is_written() -> None:
    icao, alpha3, alpha2 = (result("C01X00T47", s) for s in ("D", "DEU", "DE"))
    e = entries_for([icao, alpha3, alpha2], CALLER, Channel.DOCUMENT, KEYER)
    assert [x.issuing_state for x in e] == ["D", "DEU", "DEU"]
    assert len({x.document_key for x in e}) == 1
    assert KEYER.key_of("DEU", "C01X00T47") == e[0].document_key


@given(number=st.from_regex(r"[A-Z0-9]{1,20}", fullmatch=True))
def test_the_keyed_hash_never_holds_the_number(number: str) -> None:
    (e,) = entries_for([result(number)], CALLER, Channel.DOCUMENT, KEYER)
    assert len(e.document_key) == 64
    text = "\x00".join(
        getattr(e, f) for f in ("caller", "issuing_state", "document_key", "sources", "reference")
    )
    if len(number) >= 4:  # shorter strings of hex-like characters occur in any hex by chance
        assert number not in text.upper()
    assert e.document_key != number


@pytest.mark.parametrize("length", [16, 32, 63, 64, 65, 200])
def test_key_of_is_hmac_sha256_for_every_key_length(length: int) -> None:
    key = os.urandom(length)
    keyer = DocumentKeyer(key)
    for message in ("NZL:LA1234567", "DEU:C01X00T47", "UTO:" + "9" * 20):
        state, number = message.split(":")
        assert hmac.digest(key, message.encode(), "sha256").hex() == keyer.key_of(state, number)


def test_different_keys_give_unrelated_hashes() -> None:
    other = DocumentKeyer(bytes(range(1, 33)))
    assert KEYER.key_of("NZL", "LA1234567") != other.key_of("NZL", "LA1234567")


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="16 bytes or more") as info:
        DocumentKeyer(b"too short")
    assert info.value.key == "audit.key"


def test_the_key_never_shows_in_repr() -> None:
    assert KEY.hex() not in repr(KEYER) and "secret" in repr(KEYER)


def test_key_files_hold_hex_text_or_raw_bytes(tmp_path: Path) -> None:
    raw = bytes(range(200, 232))
    (tmp_path / "raw.key").write_bytes(raw)
    (tmp_path / "hex.key").write_text(f"  {raw.hex().upper()}\n")
    expected = hmac.digest(raw, b"NZL:X1", "sha256").hex()
    for name in ("raw.key", "hex.key"):
        assert expected == DocumentKeyer.from_file(tmp_path / name).key_of("NZL", "X1")


def test_unreadable_or_short_key_files_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.key"
    with pytest.raises(ConfigError, match=r"cannot read .*nope\.key") as info:
        DocumentKeyer.from_file(missing)
    assert info.value.key == "audit.key_file"
    (tmp_path / "short.key").write_text("abcdef0123\n")
    with pytest.raises(ConfigError, match=r"short\.key holds a 5-byte key"):
        DocumentKeyer.from_file(tmp_path / "short.key")


def test_separators_nul_and_unencodable_text_from_callers_are_made_storable() -> None:
    caller = Caller("rmas://airline/Q\x00F\x1e\x1f\ud800\tZürich", "airline")
    (e,) = entries_for(
        [result()], caller, Channel.DOCUMENT, KEYER, hub="h\x1fub", reference="r\x00f\x1e"
    )
    assert e.caller == "rmas://airline/Q\ufffdF\ufffd\ufffd?\tZürich"  # "?": the surrogate
    assert (e.hub, e.reference) == ("h\ufffdub", "r\ufffdf\ufffd")


def test_encode_entries_gives_the_bytes_of_entries_for() -> None:
    results = [result(f"A{i}") for i in range(3)]
    caller = Caller("rmas://airline/Zürich\x1e", "airline")
    args = (results, caller, Channel.PAXLST, KEYER)
    made = entries_for(*args, hub="hub-1", reference="R\x1f", now=NOW)
    body = encode_entries(*args, hub="hub-1", reference="R\x1f", now=NOW)
    assert decode(FORMAT, body) == made
    assert body == encode([dataclasses.astuple(e) for e in made])


def test_timestamps_are_utc_with_microseconds() -> None:
    naive = dt.datetime(2026, 1, 2, 3, 4, 5)
    assert utc_timestamp(naive) == "2026-01-02T03:04:05.000000+00:00"
    plus_twelve = dt.datetime(2026, 1, 2, 15, 4, 5, 7, tzinfo=dt.timezone(dt.timedelta(hours=12)))
    assert utc_timestamp(plus_twelve) == "2026-01-02T03:04:05.000007+00:00"
    now = dt.datetime.fromisoformat(utc_timestamp())
    assert abs(now - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=5)
