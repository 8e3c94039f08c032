from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from adapters.sqlstore import cli
from adapters.sqlstore.importer import import_csv, store_stats
from adapters.sqlstore.schema import documents
from rmas.errors import StoreError

HEADER = "issuing_state,document_number,document_type,status,reported_on,record_ref"
HOLDER = ",surname,given_names,birth_date,sex,expiry_date"


def url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"


async def rows(url: str) -> list[tuple[str, ...]]:
    """The store's rows, read through SQLAlchemy so that both engines answer alike."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(
                select(documents.c.issuing_state, documents.c.number, documents.c.status,
                       documents.c.reported_on, documents.c.surname).order_by(documents.c.number)
            )  # fmt: skip
            return [
                (a, b, c, d.isoformat() if d is not None else None, e) for a, b, c, d, e in result
            ]
    finally:
        await engine.dispose()


async def test_good_rows_load_and_bad_rows_are_reported_with_their_line(
    tmp_path: Path, db_url: str
) -> None:
    csv = tmp_path / "in.csv"
    csv.write_text(
        "\n".join([
            HEADER,
            "NZL,la 000001,P,STOLEN,2024-05-01,R1",
            "QQQ,LA000002,P,LOST,,R2",
            "NZL,LA000003,P,MISPLACED,,R3",
            "NZL,LA000004,P,LOST,01/05/2024,R4",
            "NZL,,P,LOST,,R5",
            "nz,LA000006,P,revoked,,R6",
            "NZL,LA000007,P,LOST,,R7,extra",
        ])
        + "\n"
    )  # fmt: skip
    report = await import_csv(db_url, csv)
    assert report.loaded == 2
    assert [line for line, _ in report.rejected] == [3, 4, 5, 6, 8]
    reasons = dict(report.rejected)
    assert "issuing_state" in reasons[3]
    assert "status" in reasons[4]
    assert "reported_on" in reasons[5]
    assert "document_number" in reasons[6]
    assert "fields" in reasons[8]
    assert await rows(db_url) == [
        ("NZL", "LA000001", "STOLEN", "2024-05-01", ""),
        ("NZL", "LA000006", "REVOKED", None, ""),
    ]


async def test_holder_columns_are_normalised_and_germany_is_stored_as_deu(
    tmp_path: Path, db_url: str
) -> None:
    csv = tmp_path / "in.csv"
    csv.write_text(
        HEADER + HOLDER + "\n"
        "D,C01X00T47,P,VALID,,R1,Müller-O'Neil,anna maria,1974-08-12,F,2030-01-01\n"
    )
    report = await import_csv(db_url, csv)
    assert report.rejected == ()
    assert await rows(db_url) == [("DEU", "C01X00T47", "VALID", None, "MUELLER ONEIL")]


async def test_a_later_row_wins_and_reimport_updates(tmp_path: Path, db_url: str) -> None:
    csv = tmp_path / "in.csv"
    csv.write_text(f"{HEADER}\nNZL,LA1,P,LOST,,R1\nNZL,LA1,P,STOLEN,,R1\nNZL,LA2,P,LOST,,R2\n")
    first = await import_csv(db_url, csv)
    assert (first.loaded, first.inserted, first.updated, first.duplicates) == (2, 2, 0, 1)
    csv.write_text(f"{HEADER}\nNZL,LA2,P,REVOKED,,R2\nNZL,LA3,P,LOST,,R3\n")
    second = await import_csv(db_url, csv)
    assert (second.loaded, second.inserted, second.updated) == (2, 1, 1)
    assert [(r[1], r[2]) for r in await rows(db_url)] == [
        ("LA1", "STOLEN"),
        ("LA2", "REVOKED"),
        ("LA3", "LOST"),
    ]
    replaced = await import_csv(db_url, csv, replace=True)
    assert replaced.inserted == 2
    assert [r[1] for r in await rows(db_url)] == ["LA2", "LA3"]


async def test_a_header_without_required_columns_is_refused(tmp_path: Path) -> None:
    csv = tmp_path / "in.csv"
    csv.write_text("issuing_state,document_number\nNZL,LA1\n")
    with pytest.raises(StoreError, match="record_ref"):
        await import_csv(url(tmp_path), csv)


async def test_stats_count_by_state_and_status(
    tmp_path: Path, fixtures_dir: Path, db_url: str
) -> None:
    await import_csv(db_url, fixtures_dir / "records" / "nzl.csv")
    stats = await store_stats(db_url)
    assert stats["total"] == 300
    assert set(stats["by_state"]["NZL"]) == {
        "VALID", "LOST", "STOLEN", "STOLEN_BLANK", "REVOKED", "INVALID",
    }  # fmt: skip


@pytest.mark.parametrize("name", ["nzl.csv", "aus.csv", "phl.csv", "usa.csv"])
async def test_every_demo_fixture_loads_cleanly(
    tmp_path: Path, fixtures_dir: Path, name: str
) -> None:
    report = await import_csv(url(tmp_path), fixtures_dir / "records" / name)
    assert report.rejected == ()
    assert report.loaded >= 200


def test_the_cli_exits_1_and_names_lines_when_rows_are_rejected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "in.csv"
    csv.write_text(f"{HEADER}\nNZL,LA1,P,LOST,,R1\nNZL,LA2,P,GONE,,R2\n")
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["store", "import", "--url", url(tmp_path), str(csv)])
    assert args.func(args) == 1
    out = capsys.readouterr()
    assert "loaded 1 records" in out.out
    assert "line 3: status" in out.err
    args = parser.parse_args(["store", "stats", "--url", url(tmp_path)])
    assert args.func(args) == 0
    assert "NZL: LOST 1" in capsys.readouterr().out
