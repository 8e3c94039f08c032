"""Delta feeds, migrations and full reloads, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from adapters.sqlstore.feeds import apply_feed
from adapters.sqlstore.importer import import_csv, store_stats
from adapters.sqlstore.migrate import HEAD, migrate_engine
from adapters.sqlstore.provider import SqlStoreProvider
from adapters.sqlstore.schema import make_engine
from rmas.documents import DocumentQuery
from rmas.errors import StoreError
from rmas.providers import ProviderInfo
from rmas.verdict import RecordStatus
from tests.adapters.sqlstore import lookups_during

INFO = ProviderInfo(id="NZL", issuing_states=frozenset({"NZL"}))
HEADER = "issuing_state,document_number,document_type,status,reported_on,record_ref\n"


def feed(tmp_path: Path, name: str, changes: list[Any]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(c if isinstance(c, str) else json.dumps(c) for c in changes) + "\n")
    return path


def up(number: str, status: str, version: int) -> dict[str, Any]:
    return {"op": "upsert", "issuing_state": "NZL", "number": number, "status": status,
            "version": version}  # fmt: skip


def wd(number: str, version: int) -> dict[str, Any]:
    return {"op": "withdraw", "issuing_state": "NZL", "number": number, "version": version}


async def statuses(url: str, *numbers: str) -> list[RecordStatus]:
    p = SqlStoreProvider(INFO, url)
    try:
        recs = await p.lookup_many([DocumentQuery("NZL", n) for n in numbers], time.monotonic() + 5)
    finally:
        await p.aclose()
    return [r.status for r in recs]


async def test_a_feed_applies_upserts_and_withdrawals(tmp_path: Path, db_url: str) -> None:
    f = feed(tmp_path, "f1.jsonl", [up("LA1", "STOLEN", 1), up("LA2", "LOST", 1), wd("LA2", 2)])
    report = await apply_feed(db_url, f)
    assert (report.applied, report.stale, report.already_applied) == (2, 1, False)
    assert await statuses(db_url, "LA1", "LA2") == [RecordStatus.STOLEN, RecordStatus.NO_RECORD]
    stats = await store_stats(db_url)
    assert stats["total"] == 1
    assert stats["last_feed"]["name"] == "f1.jsonl"


async def test_applying_a_feed_twice_changes_nothing(tmp_path: Path, db_url: str) -> None:
    f = feed(tmp_path, "f1.jsonl", [up("LA1", "STOLEN", 1)])
    await apply_feed(db_url, f)
    await apply_feed(db_url, feed(tmp_path, "f2.jsonl", [up("LA1", "REVOKED", 2)]))
    again = await apply_feed(db_url, f)
    assert again.already_applied
    assert await statuses(db_url, "LA1") == [RecordStatus.REVOKED]


async def test_stale_changes_never_overwrite_newer_ones(tmp_path: Path, db_url: str) -> None:
    await apply_feed(db_url, feed(tmp_path, "new.jsonl", [up("LA1", "STOLEN", 5), wd("LA2", 5)]))
    old = await apply_feed(
        db_url, feed(tmp_path, "old.jsonl", [up("LA1", "LOST", 3), up("LA2", "LOST", 4)])
    )
    assert (old.applied, old.stale) == (0, 2)
    # The withdrawal's tombstone keeps the older upsert of LA2 out.
    assert await statuses(db_url, "LA1", "LA2") == [RecordStatus.STOLEN, RecordStatus.NO_RECORD]


async def test_a_feed_with_a_bad_line_is_rejected_whole(tmp_path: Path, db_url: str) -> None:
    await apply_feed(db_url, feed(tmp_path, "base.jsonl", [up("LA1", "STOLEN", 1)]))
    bad = feed(tmp_path, "bad.jsonl", [up("LA1", "LOST", 2), up("LA3", "MISPLACED", 1)])
    with pytest.raises(StoreError, match="line 2: status"):
        await apply_feed(db_url, bad)
    assert await statuses(db_url, "LA1", "LA3") == [RecordStatus.STOLEN, RecordStatus.NO_RECORD]


async def test_a_feed_that_fails_midway_leaves_nothing(tmp_path: Path, db_url: str) -> None:
    await apply_feed(db_url, feed(tmp_path, "base.jsonl", [up("LA1", "STOLEN", 1)]))
    # A real database failure in the middle of the write: a trigger refusing one row.
    engine = create_async_engine(db_url)
    async with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            await conn.execute(text(
                "CREATE TRIGGER boom BEFORE INSERT ON documents WHEN NEW.number = 'BOOM' "
                "BEGIN SELECT RAISE(ABORT, 'boom'); END"))  # fmt: skip
        else:
            await conn.execute(text(
                "CREATE OR REPLACE FUNCTION boom() RETURNS trigger AS $$ BEGIN "
                "IF NEW.number = 'BOOM' THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END "
                "$$ LANGUAGE plpgsql"))  # fmt: skip
            await conn.execute(text(
                "CREATE TRIGGER boom BEFORE INSERT ON documents FOR EACH ROW "
                "EXECUTE FUNCTION boom()"))  # fmt: skip
    await engine.dispose()
    f = feed(tmp_path, "mid.jsonl", [up("LA1", "REVOKED", 2), up("BOOM", "LOST", 1),
                                     up("LA9", "LOST", 1)])  # fmt: skip
    with pytest.raises(Exception, match="boom"):
        await apply_feed(db_url, f)
    assert await statuses(db_url, "LA1", "LA9") == [RecordStatus.STOLEN, RecordStatus.NO_RECORD]
    assert (await store_stats(db_url))["last_feed"]["name"] == "base.jsonl"


async def test_an_old_schema_is_refused_until_migrated(tmp_path: Path, db_url: str) -> None:
    engine = make_engine(db_url)
    await migrate_engine(engine, "0001")
    await engine.dispose()
    p = SqlStoreProvider(INFO, db_url)
    with pytest.raises(StoreError, match="rmas store migrate --url"):
        await p.start()
    await p.aclose()
    engine = make_engine(db_url)
    before, after = await migrate_engine(engine)
    await engine.dispose()
    assert (before, after) == ("0001", HEAD)
    assert await statuses(db_url, "LA1") == [RecordStatus.NO_RECORD]


async def test_lookups_during_a_full_reload_never_miss_a_record(
    tmp_path: Path, db_url: str
) -> None:
    keep = [f"LA{i:06d}" for i in range(200)]
    first = tmp_path / "first.csv"
    first.write_text(HEADER + "".join(f"NZL,{n},P,STOLEN,,R\n" for n in keep))
    await import_csv(db_url, first)
    second = tmp_path / "second.csv"
    second.write_text(HEADER + "".join(f"NZL,{n},P,LOST,,R\n" for n in keep)
                      + "".join(f"NZL,LB{i:06d},P,LOST,,R\n" for i in range(20_000)))  # fmt: skip
    p = SqlStoreProvider(INFO, db_url)
    await p.start()  # opened first: the reload can now finish before a lazy start would
    try:
        _, lookups, missing = await lookups_during(
            p, keep, import_csv(db_url, second, replace=True)
        )
    finally:
        await p.aclose()
    assert lookups > 1
    assert missing == 0
    assert set(await statuses(db_url, *keep[:5])) == {RecordStatus.LOST}


def test_rmas_store_apply_refuses_a_feed_with_a_mistyped_field(tmp_path: Path) -> None:
    """``birth_dte`` would drop the holder's birth date without a word: the file is refused,
    naming the line, the field and the one meant, and nothing is applied."""
    import subprocess
    import sys

    url = f"sqlite+aiosqlite:///{tmp_path / 'nzl.db'}"

    def apply(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "rmas.cli", "store", "apply", "--url", url,
                               str(path)], capture_output=True, text=True, timeout=120,
                              check=False)  # fmt: skip

    good = {**up("LA1", "STOLEN", 1), "birth_date": "1980-01-01"}
    bad = {**up("LA2", "STOLEN", 1), "birth_dte": "1980-01-01"}
    out = apply(feed(tmp_path, "bad.jsonl", [good, bad]))
    assert out.returncode != 0
    assert "line 2: unknown field 'birth_dte' (did you mean \"birth_date\"?)" in out.stderr
    ok = apply(feed(tmp_path, "good.jsonl", [good]))
    assert ok.returncode == 0, ok.stderr
    out = apply(feed(tmp_path, "bad.jsonl", [good, bad]))
    assert "nothing was applied" in out.stderr


# -- through `rmas store apply`, as an economy's IT team runs it -------------------------------


def _rmas(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rmas.cli", *args],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def _refused(out: subprocess.CompletedProcess[str], *words: str) -> str:
    assert "Traceback" not in out.stderr, out.stderr
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("column", "value"),
    [("document_type", "Z"), ("sex", "Q"), ("status", "MISPLACED"), ("issuing_state", "QQQ"),
     ("birth_date", "1990-13-01"), ("number", "LA#1")],
)  # fmt: skip
def test_a_feed_refuses_what_the_csv_import_refuses_with_the_same_reason(
    tmp_path: Path, column: str, value: str
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 's.db'}"
    row = {"issuing_state": "NZL", "number": "LA1", "status": "STOLEN", "document_type": "P",
           "sex": "F", "birth_date": "1990-01-01"} | {column: value}  # fmt: skip
    csv = tmp_path / "r.csv"
    csv.write_text(
        "issuing_state,document_number,document_type,status,reported_on,record_ref,sex,birth_date\n"
        f"{row['issuing_state']},{row['number']},{row['document_type']},{row['status']},,,"
        f"{row['sex']},{row['birth_date']}\n"
    )
    imported = _rmas("store", "import", "--url", url, str(csv))
    assert imported.returncode == 1
    reason = imported.stderr.splitlines()[0].removeprefix("line 2: ")
    f = feed(tmp_path, "f.jsonl", [{"op": "upsert", "version": 1, **row}])
    line = _refused(_rmas("store", "apply", "--url", url, str(f)), "line 1", "nothing was applied")
    assert reason in line
    assert json.loads(_rmas("store", "stats", "--url", url, "--json").stdout)["total"] == 0


def test_a_feed_never_ends_in_a_traceback(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 's.db'}"
    good = up("LA1", "STOLEN", 1)
    huge = feed(tmp_path, "huge.jsonl", [good, up("LA2", "LOST", 2**70)])
    _refused(_rmas("store", "apply", "--url", url, str(huge)), "line 2", "version")
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(bytes(range(256)) * 4)
    _refused(_rmas("store", "apply", "--url", url, str(binary)), "not UTF-8")
    latin = tmp_path / "latin1.jsonl"
    latin.write_bytes(
        json.dumps(good).encode()
        + b"\n"
        + '{"op": "upsert", "surname": "M\xfcller"}'.encode("latin-1")
    )
    _refused(_rmas("store", "apply", "--url", url, str(latin)), "line 2", "not UTF-8")
    surrogate = feed(tmp_path, "surrogate.jsonl", [good, '{"op": "upsert", "issuing_state": "NZL", '
        '"number": "LA3", "status": "LOST", "version": 3, "detail": "\\ud800"}'])  # fmt: skip
    _refused(_rmas("store", "apply", "--url", url, str(surrogate)), "line 2", "detail")
    nested = feed(tmp_path, "nested.jsonl", ["[" * 100_000 + "]" * 100_000])
    _refused(_rmas("store", "apply", "--url", url, str(nested)), "line 1")
    long_int = feed(tmp_path, "long.jsonl", ['{"op": "upsert", "version": ' + "9" * 5000 + "}"])
    _refused(_rmas("store", "apply", "--url", url, str(long_int)), "line 1")
    # Nothing was applied; the good feed still applies.
    ok = _rmas("store", "apply", "--url", url, str(feed(tmp_path, "ok.jsonl", [good])))
    assert ok.returncode == 0, ok.stderr
    assert json.loads(_rmas("store", "stats", "--url", url, "--json").stdout)["total"] == 1


def test_the_documented_feed_example_applies(tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parents[3] / "docs" / "adapters.md").read_text()
    example = doc.split("```jsonl\n", 1)[1].split("```", 1)[0]
    f = tmp_path / "example.jsonl"
    f.write_text(example)
    url = f"sqlite+aiosqlite:///{tmp_path / 's.db'}"
    out = _rmas("store", "apply", "--url", url, str(f))
    assert out.returncode == 0, out.stderr
    assert "applied 3 changes" in out.stdout
    stats = json.loads(_rmas("store", "stats", "--url", url, "--json").stdout)
    assert stats["by_state"] == {"NZL": {"LOST": 1, "STOLEN": 1}}
