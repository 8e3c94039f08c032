"""The parts of the flight conversation on their own: the BGM functions of real senders'
messages, the BGM+132 and BGM+312 messages, sealed queries, and the [flights] table."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from rmas.config import parse_config
from rmas.documents import validate_document
from rmas.errors import ConfigError
from rmas.flights.model import FlightEvent, event_of
from rmas.flights.sealing import FlightKeys
from rmas.iapi.cusres import read_acknowledgment, read_cusres
from rmas.iapi.paxlst import read_paxlst
from rmas.iapi.syntax import EdifactError
from tests.flights.kit import read_status_change

FIX = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.mark.parametrize(
    ("name", "function", "event"),
    [
        ("paxlst_change_cp.edi", "CP", FlightEvent.CHANGE),
        ("paxlst_offload_xr.edi", "XR", FlightEvent.OFFLOAD),
        ("paxlst_party_reduced_rp.edi", "RP", FlightEvent.OFFLOAD),
        ("paxlst_close_clob.edi", "CLOB", FlightEvent.CLOSE),
        ("paxlst_close_clnb.edi", "CLNB", FlightEvent.CLOSE),
        ("paxlst_cancel_xf.edi", "XF", FlightEvent.CANCEL),
    ],
)
def test_the_bgm_function_of_a_message_says_what_it_does(
    name: str, function: str, event: FlightEvent
) -> None:
    manifest = read_paxlst((FIX / "flights" / name).read_bytes())
    assert manifest.parts[0].function == function
    assert event_of(manifest.parts[0].function) is event


def test_a_new_list_is_an_answer_and_an_unknown_function_too() -> None:
    manifest = read_paxlst((FIX / "paxlst" / "iapi_correlated.edi").read_bytes())
    assert manifest.parts[0].function == ""
    assert event_of("") is FlightEvent.ANSWER
    assert event_of("ZZ") is FlightEvent.ANSWER


def test_the_status_change_reads_back_with_rmas_and_with_pydifact() -> None:
    data = (FIX / "flights" / "cusres_status_change_132.edi").read_bytes()
    mine = read_cusres(data)
    assert mine.control_ref == "3C66FDAA3C292B"
    assert mine.transaction_ref == "3C66FDAA3C292B"
    assert mine.flight == "NZ103"
    assert mine.passengers == (("K7QF2A", "1001", "1Z", "NO BOARD"),)
    assert mine.application_ref == "IAPI"
    theirs = read_status_change(data)
    assert (theirs["BGM"], theirs["ERC"], theirs["RFF+ABO"]) == ("132", "1Z", "1001")


def test_an_acknowledgment_names_its_status_changes() -> None:
    ack = (FIX / "flights" / "cusres_ack_312.edi").read_bytes()
    assert read_acknowledgment(ack) == ["3C66FDAA3C292B"]
    assert read_acknowledgment((FIX / "paxlst" / "iapi_correlated.edi").read_bytes()) is None
    answer = (FIX / "cusres" / "iapi_correlated.edi").read_bytes()  # a BGM+962: not an ack
    with pytest.raises(EdifactError, match="BGM\\+312"):
        read_acknowledgment(answer)
    no_tn = ack.replace(b"RFF+TN:3C66FDAA3C292B'", b"").replace(b"UNT+4", b"UNT+3")
    with pytest.raises(EdifactError, match="RFF\\+TN"):
        read_acknowledgment(no_tn)


def _query() -> object:
    return validate_document(
        issuing_state="NZL", number="LA910001", type_code="P", surname="WIREMU",
        given_names="ARA", birth_date="1988-10-12", sex="M", expiry_date="2031-05-05", ref="1001",
    )  # fmt: skip


def test_a_sealed_query_opens_only_with_its_key_and_for_its_document() -> None:
    keys = FlightKeys(os.urandom(32))
    query = _query()
    key = keys.key_of(query)  # type: ignore[arg-type]
    assert key == keys.keyer.key_of("NZL", "LA910001")  # the audit trail's document key
    sealed = keys.seal(query, key)  # type: ignore[arg-type]
    for clear in (b"LA910001", b"WIREMU", b"ARA", b"1988"):
        assert clear not in sealed
    back = keys.unseal(sealed, key)
    assert back == query
    assert back.holder.birth_date == dt.date(1988, 10, 12)
    with pytest.raises(InvalidTag):
        keys.unseal(sealed, keys.keyer.key_of("NZL", "LA000002"))  # moved to another row
    with pytest.raises(InvalidTag):
        FlightKeys(os.urandom(32)).unseal(sealed, key)  # another hub's key


def test_the_flights_table(tmp_path: Path) -> None:
    (tmp_path / "audit.key").write_text(os.urandom(32).hex())
    base = """[[providers]]
id = "NZL"
kind = "fake"
issuing_states = ["NZL"]
"""
    audit = '[audit]\nurl = "sqlite+aiosqlite:///audit.db"\nkey_file = "audit.key"\n'
    cfg = parse_config(base + audit + "[flights]\n", base_dir=tmp_path)
    assert cfg.flights is not None
    assert cfg.flights.url == f"sqlite+aiosqlite:///{tmp_path / 'flights.db'}"
    assert cfg.flights.key_file == tmp_path / "audit.key"  # the audit trail's key material
    assert parse_config(base, base_dir=tmp_path).flights is None
    with pytest.raises(ConfigError, match=r"flights\.key_file"):
        parse_config(base + "[flights]\n", base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"flights\.purge_afterh"):
        parse_config(base + audit + "[flights]\npurge_afterh = 3\n", base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"flights\.url"):
        parse_config(base + audit + '[flights]\nurl = "mysql://x"\n', base_dir=tmp_path)
    own = parse_config(
        base + '[flights]\npath = "f.db"\nkey_file = "audit.key"\npurge_after_h = 6\n',
        base_dir=tmp_path,
    )
    assert own.flights is not None
    assert own.flights.purge_after_h == 6.0
    assert own.flights.url.endswith("/f.db")
