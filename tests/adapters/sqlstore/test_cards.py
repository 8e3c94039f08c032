"""ABTC cards in the SQL store, on SQLite and PostgreSQL: the CSV import (per-line errors, atomic
replace), delta feeds with ``"kind": "abtc"``, batched lookups, and ``rmas store import --abtc``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adapters.sqlstore.cards import import_cards
from adapters.sqlstore.feeds import apply_feed
from adapters.sqlstore.importer import import_csv, store_stats
from adapters.sqlstore.provider import SqlStoreProvider
from rmas.abtc import CardQuery, CardStatus
from rmas.documents import DocumentQuery
from rmas.errors import StoreError
from rmas.providers import ProviderInfo, Registry

HEADER = "home_economy,card_number,passport_number,status,expiry_date,pre_cleared"
GOOD = f"""{HEADER}
AUS,AU0000001,PA0000101,VALID,2029-01-31,NZL JPN
AUS,au 000-0002,pa0000102,STOLEN,2029-01-31,nzl
"""
INFO = ProviderInfo(id="AUS", issuing_states=frozenset({"AUS"}), abtc=True)


def q(number: str, home: str = "AUS") -> CardQuery:
    return CardQuery(home, number, "NZL")


async def lookup(url: str, *numbers: str) -> list[tuple[CardStatus, str, frozenset[str]]]:
    p = SqlStoreProvider(INFO, url, registry=Registry.COMPLETE)
    try:
        recs = await p.lookup_cards([q(n) for n in numbers], time.monotonic() + 5)
    finally:
        await p.aclose()
    return [(r.status, r.passport_number, r.pre_cleared) for r in recs]


async def test_import_normalises_and_lookups_answer_a_complete_registry(
    db_url: str, tmp_path: Path
) -> None:
    f = tmp_path / "cards.csv"
    f.write_text(GOOD)
    report = await import_cards(db_url, f)
    assert (report.loaded, report.inserted, report.rejected) == (2, 2, ())
    assert await lookup(db_url, "AU0000001", "AU0000002", "AU9999999") == [
        (CardStatus.VALID, "PA0000101", frozenset({"NZL", "JPN"})),
        (CardStatus.STOLEN, "PA0000102", frozenset({"NZL"})),
        (CardStatus.NOT_ISSUED, "", frozenset()),  # never issued: the counterfeit case
    ]


async def test_bad_rows_are_reported_by_line_and_the_good_ones_load(
    db_url: str, tmp_path: Path
) -> None:
    f = tmp_path / "cards.csv"
    f.write_text(
        f"{HEADER},record_ref\n"
        "AUS,AU0000001,PA0000101,VALID,2029-01-31,NZL,R1\n"
        "QQQ,AU0000002,PA0000102,VALID,2029-01-31,NZL,R2\n"
        "AUS,AU00!0003,PA0000103,VALID,2029-01-31,NZL,R3\n"
        "AUS,AU0000004,PA0000104,REVOKED,2029-01-31,NZL,R4\n"
        "AUS,AU0000005,PA0000105,VALID,31/01/2029,NZL,R5\n"
        "AUS,AU0000006,PA0000106,VALID,2029-01-31,NZL XQZ,R6\n"
        "AUS,AU0000007,PA0000107,VALID\n"
        "AUS,AU0000008,PA00001080000000000000,VALID,2029-01-31,NZL,R8\n"
        "AUS,AU0000001,PA0000101,CANCELLED,2029-01-31,NZL,R9\n"
    )
    report = await import_cards(db_url, f)
    assert report.rejected == (
        (3, "home_economy: unknown economy code 'QQQ'"),
        (4, "card_number: only letters A-Z and digits 0-9 allowed (after normalising)"),
        (5, "status: 'REVOKED' is not one of CANCELLED, EXPIRED, LOST, STOLEN, VALID"),
        (6, "expiry_date: not an ISO date (YYYY-MM-DD): '31/01/2029'"),
        (7, "pre_cleared: unknown economy code 'XQZ'"),
        (8, "4 fields; header has 7"),
        (9, "passport_number: longer than 20 characters (after normalising)"),
    )
    # The later row for a card wins.
    assert (report.loaded, report.duplicates) == (1, 1)
    assert [s for s, *_ in await lookup(db_url, "AU0000001")] == [CardStatus.CANCELLED]


async def test_a_header_without_the_card_columns_is_refused_before_the_store_is_touched(
    tmp_path: Path,
) -> None:
    f = tmp_path / "cards.csv"
    f.write_text("issuing_state,document_number\nAUS,PA1\n")
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    with pytest.raises(StoreError, match="header lacks column"):
        await import_cards(url, f)
    assert not (tmp_path / "store.db").exists()


async def test_replace_is_atomic_and_leaves_documents_alone(db_url: str, tmp_path: Path) -> None:
    docs = tmp_path / "docs.csv"
    docs.write_text("issuing_state,document_number,document_type,status,reported_on,record_ref\n"
                    "AUS,PA0000101,P,STOLEN,,R\n")  # fmt: skip
    await import_csv(db_url, docs)
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text(GOOD)
    second.write_text(f"{HEADER}\nAUS,AU0000003,PA0000103,VALID,2029-01-31,NZL\n")
    await import_cards(db_url, first)
    report = await import_cards(db_url, second, replace=True)
    assert report.inserted == 1
    stats = await store_stats(db_url)
    assert (stats["total"], stats["abtc_cards"]) == (1, {"AUS": {"VALID": 1}})
    statuses = [s for s, *_ in await lookup(db_url, "AU0000001", "AU0000003")]
    assert statuses == [CardStatus.NOT_ISSUED, CardStatus.VALID]
    # A file that cannot be read stops the import: the cards stay as they were.
    broken = tmp_path / "broken.csv"
    broken.write_bytes(HEADER.encode() + b"\nAUS,AU0000009,\xff\xfe,VALID,2029-01-31,NZL\n")
    with pytest.raises(StoreError, match="not UTF-8"):
        await import_cards(db_url, broken, replace=True)
    assert [s for s, *_ in await lookup(db_url, "AU0000003")] == [CardStatus.VALID]
    p = SqlStoreProvider(INFO, db_url)
    try:
        (doc,) = await p.lookup_many([DocumentQuery("AUS", "PA0000101")], time.monotonic() + 5)
    finally:
        await p.aclose()
    assert doc.status.value == "STOLEN"


async def test_card_feeds_apply_in_order_once_with_tombstones(db_url: str, tmp_path: Path) -> None:
    f = tmp_path / "cards.csv"
    f.write_text(GOOD)
    await import_cards(db_url, f)
    feed = tmp_path / "feed-1.jsonl"
    lines = [
        {"kind": "abtc", "op": "upsert", "home_economy": "AUS", "card_number": "AU0000001",
         "passport_number": "PA0000101", "status": "LOST", "expiry_date": "2029-01-31",
         "pre_cleared": ["NZL"], "version": 2},
        {"kind": "abtc", "op": "withdraw", "home_economy": "AUS", "card_number": "AU0000002",
         "version": 2},
        {"kind": "abtc", "op": "upsert", "home_economy": "AUS", "card_number": "AU0000003",
         "status": "VALID", "pre_cleared": "NZL SGP", "version": 1},
        {"op": "upsert", "issuing_state": "AUS", "number": "PA0000101", "status": "LOST",
         "version": 1},
    ]  # fmt: skip
    feed.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    report = await apply_feed(db_url, feed)
    assert (report.applied, report.stale) == (4, 0)
    assert await lookup(db_url, "AU0000001", "AU0000002", "AU0000003") == [
        (CardStatus.LOST, "PA0000101", frozenset({"NZL"})),
        (CardStatus.NOT_ISSUED, "", frozenset()),
        (CardStatus.VALID, "", frozenset({"NZL", "SGP"})),
    ]
    # Twice: nothing changes. A stale change (older version) is skipped.
    assert (await apply_feed(db_url, feed)).already_applied
    stale = tmp_path / "feed-0.jsonl"
    stale.write_text(json.dumps({**lines[0], "status": "VALID", "version": 1}) + "\n")
    assert ((r := await apply_feed(db_url, stale)).applied, r.stale) == (0, 1)
    assert [s for s, *_ in await lookup(db_url, "AU0000001")] == [CardStatus.LOST]


async def test_a_bad_card_line_rejects_the_whole_feed(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    f = tmp_path / "cards.csv"
    f.write_text(GOOD)
    await import_cards(url, f)
    feed = tmp_path / "feed.jsonl"
    feed.write_text(
        json.dumps({"kind": "abtc", "op": "upsert", "home_economy": "AUS",
                    "card_number": "AU0000001", "status": "STOLEN", "version": 5}) + "\n"
        + json.dumps({"kind": "abtc", "op": "upsert", "home_economy": "AUS",
                      "card_number": "AU0000002", "status": "VALID", "pre_cleared": ["ZZZ"],
                      "version": 5}) + "\n"
    )  # fmt: skip
    with pytest.raises(StoreError, match=r"line 2: pre_cleared: unknown economy code 'ZZZ'"):
        await apply_feed(url, feed)
    assert [s for s, *_ in await lookup(url, "AU0000001")] == [CardStatus.VALID]
    feed.write_text(json.dumps({"kind": "visa", "op": "upsert"}) + "\n")
    with pytest.raises(StoreError, match="line 1: kind must be"):
        await apply_feed(url, feed)
    feed.write_text(json.dumps({"kind": "abtc", "op": "upsert", "home_economy": "AUS",
                                "card_number": "AU0000001", "status": "LOST",
                                "pre_clearde": ["NZL"], "version": 6}) + "\n")  # fmt: skip
    with pytest.raises(StoreError, match="line 1: unknown field 'pre_clearde'"):
        await apply_feed(url, feed)
    # "kind": "document" is the default, and may be said.
    doc = {"kind": "document", "op": "upsert", "issuing_state": "AUS", "number": "PA0000101",
           "status": "LOST", "version": 1}  # fmt: skip
    feed.write_text(json.dumps(doc) + "\n")
    assert (await apply_feed(url, feed)).applied == 1


async def test_lookups_are_batched(tmp_path: Path) -> None:
    f = tmp_path / "cards.csv"
    f.write_text(HEADER + "\n" + "".join(
        f"AUS,AU{k:07d},PA{k:07d},VALID,2029-01-31,NZL\n" for k in range(1, 1201)))  # fmt: skip
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    await import_cards(url, f)
    p = SqlStoreProvider(INFO, url, io="thread")
    try:
        numbers = [f"AU{k:07d}" for k in range(1, 1201)] + ["AU9999999"]
        recs = await p.lookup_cards([q(n) for n in numbers], time.monotonic() + 5)
    finally:
        await p.aclose()
    assert [r.passport_number for r in recs[:-1]] == [f"PA{k:07d}" for k in range(1, 1201)]
    assert recs[-1].status is CardStatus.NOT_ISSUED


def test_the_cli_imports_cards_and_reports_bad_lines(tmp_path: Path) -> None:
    f = tmp_path / "cards.csv"
    f.write_text(GOOD + "AUS,AU0000003,PA0000103,VALID,2029-01-31,NOPE\n")
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    out = subprocess.run(
        [sys.executable, "-m", "rmas.cli", "store", "import", "--abtc", "--url", url, str(f)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    assert "loaded 2 cards (2 new, 0 updated)" in out.stdout
    assert "line 4: pre_cleared: unknown economy code 'NOPE'" in out.stderr
    assert "rejected 1 rows" in out.stderr
