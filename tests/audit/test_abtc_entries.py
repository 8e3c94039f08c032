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


async def test_rmas_audit_find_finds_the_checks_of_a_card(tmp_path: Path) -> None:
    """`rmas audit find --abtc` recomputes the card's keyed hash: the checks it was presented at
    are found, another card's are not, and the number is never printed."""
    import asyncio
    import sys

    class Cards(FakeProvider):
        async def lookup_cards(self, queries: object, deadline: float) -> list[CardRecord]:
            return [CardRecord(CardStatus.VALID, pre_cleared=frozenset({"NZL"}))] * len(
                queries  # type: ignore[arg-type]
            )

    info = ProviderInfo(id="AUS", issuing_states=frozenset({"AUS"}), abtc=True)
    db = tmp_path / "audit.db"
    key = tmp_path / "audit.key"
    key.write_text(os.urandom(32).hex())
    trail = AuditTrail(AuditSink(f"sqlite+aiosqlite:///{db}"), DocumentKeyer.from_file(key))
    async with (
        running_hub([Cards(info=info)], audit=trail, economy="NZL") as hub,
        grpc.aio.insecure_channel(hub.target) as ch,
    ):
        stub = check_pb2_grpc.DocumentCheckStub(ch)
        ids = []
        for passport, card in (("PA1", "AU0000101"), ("PA2", "AU0000101"), ("PA3", "AU0000999")):
            resp = await stub.CheckDocument(
                check_document_request(number=passport, state="AUS", abtc=card), timeout=5
            )
            ids.append(resp.result.check_id)

    async def find(*args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rmas.cli", "audit", "find", "--url",
            f"sqlite+aiosqlite:///{db}", "--key-file", str(key), *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate()
        assert b"Traceback" not in err
        return proc.returncode or 0, out.decode()

    code, out = await find("--abtc", "au 0000-101", "--abtc-economy", "AUS", "--json")
    assert code == 0
    found = json.loads(out)
    assert [c["check_id"] for c in found["checks"]] == ids[:2]
    assert {c["abtc"]["verdict"] for c in found["checks"]} == {"USABLE"}
    code, text = await find("--abtc", "AU0000101", "--abtc-economy", "AUS")
    assert code == 0 and "2 check(s) with this AUS card" in text
    assert "AU0000101" not in out + text
    code, _ = await find("--abtc", "AU0000102", "--abtc-economy", "AUS")
    assert code == 1
    code, _ = await find("--abtc", "AU0000101", "--abtc-economy", "NZL")  # another card
    assert code == 1
