"""A card check is audited like a document: the card by a keyed hash (in its own domain), its
verdict beside the passport's; never the card number in clear."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import grpc

from rmas.abtc import CardAnswer, CardQuery, CardRecord, CardStatus, judge_card
from rmas.audit import Channel, entries_for
from rmas.audit.cli import check_json
from rmas.audit.entry import DocumentKeyer
from rmas.audit.reader import find_check
from rmas.audit.sink import AuditSink
from rmas.audit.trail import AuditTrail
from rmas.client import check_document_request, result_to_dict
from rmas.providers import ProviderInfo
from rmas.testing import FakeProvider, running_hub
from rmas.v1 import check_pb2_grpc
from rmas.verdict import Outcome
from tests.audit import CALLER, KEYER, result


def stored_bytes(folder: Path) -> bytes:
    """Everything the trail wrote (its database file and any journal beside it)."""
    return b"".join(p.read_bytes() for p in folder.iterdir() if p.name.startswith("audit"))


CARD = CardQuery("AUS", "AU0000101", "NZL", "LA1234567", "NZL")


def test_the_card_is_one_more_source_item_named_by_a_keyed_hash() -> None:
    stolen = CardAnswer("AUS", Outcome.ANSWERED, required=True, issuer=True,
                        record=CardRecord(CardStatus.STOLEN))  # fmt: skip
    r = dataclasses.replace(result(), abtc=judge_card(CARD, [stolen]))
    (entry,) = entries_for([r], CALLER, Channel.DOCUMENT, KEYER)
    items = json.loads(entry.sources)
    digest = KEYER.key_of("ABTC:AUS", "AU0000101")
    assert items[-1] == ["abtc:AUS", "ANSWERED", "STOLEN", f"card:{digest} STOLEN for NZL"]
    # The passport's own entry is unchanged by its card.
    (plain,) = entries_for([result()], CALLER, Channel.DOCUMENT, KEYER)
    assert json.loads(plain.sources) == items[:-1]
    assert (entry.verdict, entry.directive) == (plain.verdict, plain.directive)
    # Another domain than documents: a card never shares a hash with a passport number.
    assert digest != KEYER.key_of("AUS", "AU0000101")
    assert "AU0000101" not in entry.sources


async def test_a_card_check_through_the_hub_leaves_no_card_number_in_the_trail(
    tmp_path: Path,
) -> None:
    class Cards(FakeProvider):
        async def lookup_cards(self, queries: object, deadline: float) -> list[CardRecord]:
            return [CardRecord(CardStatus.VALID, pre_cleared=frozenset({"NZL"}))]

    info = ProviderInfo(id="AUS", issuing_states=frozenset({"AUS"}), abtc=True)
    db = tmp_path / "audit.db"
    keyer = DocumentKeyer(os.urandom(32))
    trail = AuditTrail(AuditSink(f"sqlite+aiosqlite:///{db}"), keyer)
    async with (
        running_hub([Cards(info=info)], audit=trail, economy="NZL") as hub,
        grpc.aio.insecure_channel(hub.target) as ch,
    ):
        resp = await check_pb2_grpc.DocumentCheckStub(ch).CheckDocument(
            check_document_request(number="PA0000101", state="AUS", abtc="AU0000101"), timeout=5
        )
    assert result_to_dict(resp.result)["abtc"]["usable"] is True
    # Found again by its check id: the card's keyed hash and verdict, beside the providers.
    (found,) = [check_json(row) for row in await find_check(trail.sink.url, resp.result.check_id)]
    assert found["abtc"] == {"provider": "AUS", "outcome": "ANSWERED", "status": "VALID",
                             "card_key": keyer.key_of("ABTC:AUS", "AU0000101"),
                             "verdict": "USABLE", "checking_economy": "NZL"}  # fmt: skip
    assert [p["provider"] for p in found["providers"]] == ["AUS"]
    stored = stored_bytes(tmp_path)
    assert stored  # the trail was written
    assert b"AU0000101" not in stored and b"PA0000101" not in stored
