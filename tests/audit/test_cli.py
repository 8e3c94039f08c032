"""`rmas audit` as an operator runs it: real processes against real audit databases."""

# ruff: noqa: F811  (the fixtures are imported from tests.audit, which holds them)

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from rmas.audit import AuditSink, Caller, Channel, DocumentKeyer, entries_for, head
from tests.audit import (  # noqa: F401  (fixtures)
    KEY,
    db_url,
    delete_entries,
    edit_entry,
    entries,
    pg_databases,
    result,
)

ROOT = Path(__file__).resolve().parents[2]
NUMBER = "LA1234567"


def rmas(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rmas.cli", "audit", *map(str, args)],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
    )  # fmt: skip


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "audit.key"
    path.write_text(KEY.hex() + "\n")
    return path


async def _trail(url: str) -> list[str]:
    """Six entries; checks 2 and 5 are of NZL document LA1234567. Returns their check ids."""
    officer = Caller("rmas://officer/AKL-1", "officer")
    keyer = DocumentKeyer(KEY)
    sink = AuditSink(url)
    await sink.start()
    await sink.record(entries(1))
    ours = entries_for([result(NUMBER)], officer, Channel.DOCUMENT, keyer, hub="hub-akl-1")
    await sink.record(ours)
    await sink.record(entries(2))
    again = entries_for(
        [result(NUMBER)], officer, Channel.MANIFEST, keyer, hub="hub-syd-2", reference="NZ1"
    )
    await sink.record(again)
    await sink.record(entries(1))
    await sink.aclose()
    return [ours[0].check_id, again[0].check_id]


async def test_verify_an_intact_then_a_broken_trail(db_url: str) -> None:
    await _trail(db_url)
    _seq, digest = await head(db_url)
    ok = rmas("verify", "--url", db_url)
    assert ok.returncode == 0, ok.stderr
    assert f"audit trail intact: 6 entries, head 6:{digest}" in ok.stdout
    assert "--expect-head" in ok.stdout  # says what a chain alone cannot detect
    assert "entries by block format: rmas-audit-entries/2 6" in ok.stdout
    data = json.loads(rmas("verify", "--url", db_url, "--json").stdout)
    assert (True, 6, {"seq": 6, "hash": digest}) == (data["ok"], data["count"], data["head"])
    assert data["formats"] == {"rmas-audit-entries/2": 6}

    await edit_entry(db_url, 4, directive="OK_TO_BOARD")
    await edit_entry(db_url, 4, verdict="ALERT")
    broken = rmas("verify", "--url", db_url)
    assert broken.returncode == 1
    assert "BROKEN" in broken.stdout and "entries 3-4 edited: hash mismatch" in broken.stdout
    data = json.loads(rmas("verify", "--url", db_url, "--json").stdout)
    assert (data["ok"], data["problems"]) == (
        False,
        ["entries 3-4 edited: hash mismatch (block 3-4)"],  # the group of one call's entries
    )


async def test_a_deleted_tail_fails_verify_against_the_anchor_from_head(db_url: str) -> None:
    await _trail(db_url)
    printed = rmas("head", "--url", db_url)
    assert printed.returncode == 0
    anchor = printed.stdout.strip()
    seq, digest = await head(db_url)
    assert f"{seq}:{digest}" == anchor
    assert rmas("verify", "--url", db_url, "--expect-head", anchor).returncode == 0
    await delete_entries(db_url, 6, 6)
    assert rmas("verify", "--url", db_url).returncode == 0  # undetectable without the anchor
    out = rmas("verify", "--url", db_url, "--expect-head", anchor)
    assert out.returncode == 1
    assert "entry 6 missing" in out.stdout and "tail deleted" in out.stdout
    bad = rmas("verify", "--url", db_url, "--expect-head", "6:nothex")
    assert bad.returncode == 2 and "--expect-head" in bad.stderr


async def test_find_the_checks_of_a_document_by_number_and_state(
    db_url: str, key_file: Path
) -> None:
    first, second = await _trail(db_url)
    # As an operator types it: alpha-2 state, separators in the number.
    out = rmas("find", "--url", db_url, "--number", "la 123-4567", "--state", "nz",
               "--key-file", key_file)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert NUMBER not in out.stdout + out.stderr
    assert "2 check(s) of this NZL document" in out.stdout
    lines = out.stdout.splitlines()[1:]
    assert first in lines[0] and second in lines[1]
    assert "rmas://officer/AKL-1 (officer)" in lines[0] and "document" in lines[0]
    assert "hub hub-akl-1" in lines[0] and "hub hub-syd-2" in lines[1]
    assert "manifest" in lines[1] and "ref NZ1" in lines[1]
    assert "CLEAR OK_TO_BOARD" in lines[0]
    assert "providers: NZL=ANSWERED/VALID, SLTD=ANSWERED/NO_RECORD" in lines[0]

    data = json.loads(rmas("find", "--url", db_url, "--number", NUMBER, "--state", "NZL",
                           "--key-file", key_file, "--json").stdout)  # fmt: skip
    assert NUMBER not in json.dumps(data)
    assert [first, second] == [c["check_id"] for c in data["checks"]]
    assert [c["hub"] for c in data["checks"]] == ["hub-akl-1", "hub-syd-2"]
    assert (data["checks"][0]["providers"][0]) == {
        "provider": "NZL",
        "outcome": "ANSWERED",
        "status": "VALID",
        "candidate": False,
    }

    by_id = rmas("find", "--url", db_url, "--check-id", second)
    assert by_id.returncode == 0 and second in by_id.stdout

    none = rmas("find", "--url", db_url, "--number", "LA7654321", "--state", "NZL",
                "--key-file", key_file)  # fmt: skip
    assert none.returncode == 1 and "no check of this NZL document" in none.stdout


def test_find_explains_what_is_wrong(tmp_path: Path, key_file: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    missing_key = rmas("find", "--url", url, "--number", NUMBER, "--state", "NZL",
                       "--key-file", tmp_path / "nope.key")  # fmt: skip
    assert missing_key.returncode == 2
    assert "nope.key" in missing_key.stderr and "cannot read" in missing_key.stderr
    bad_state = rmas("find", "--url", url, "--number", NUMBER, "--state", "XX",
                     "--key-file", key_file)  # fmt: skip
    assert bad_state.returncode == 2 and "--state: unknown state code" in bad_state.stderr
    no_db = rmas("find", "--url", url, "--number", NUMBER, "--state", "NZL",
                 "--key-file", key_file)  # fmt: skip
    assert no_db.returncode == 2 and "does not exist" in no_db.stderr
    assert NUMBER not in no_db.stderr + bad_state.stderr + missing_key.stderr
    incomplete = rmas("find", "--url", url, "--number", NUMBER)
    assert incomplete.returncode == 2 and "--key-file" in incomplete.stderr


def test_an_unreachable_database_is_named(tmp_path: Path) -> None:
    out = rmas("verify", "--url", "postgresql+asyncpg://rmas:pw@127.0.0.1:1/audit")
    assert out.returncode == 2
    assert "127.0.0.1:1/audit unreachable" in out.stderr and "pw" not in out.stderr
    wrong = rmas("head", "--url", "mysql://db/audit")
    assert wrong.returncode == 2 and "sqlite+aiosqlite:///FILE" in wrong.stderr


async def test_keygen_writes_a_private_key_that_find_accepts(tmp_path: Path) -> None:
    path = tmp_path / "new.key"
    out = rmas("keygen", path)
    assert out.returncode == 0, out.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_text().strip()) == 64
    keyer = DocumentKeyer.from_file(path)
    url = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    sink = AuditSink(url)
    await sink.start()
    await sink.record(entries_for([result(NUMBER)], Caller("insecure:127.0.0.1", "officer"),
                                  Channel.DOCUMENT, keyer))  # fmt: skip
    await sink.aclose()
    found = rmas("find", "--url", url, "--number", NUMBER, "--state", "NZL", "--key-file", path)
    assert found.returncode == 0 and "1 check(s)" in found.stdout
    again = rmas("keygen", path)
    assert again.returncode == 2 and "cannot create" in again.stderr


def test_migrate_converts_an_earlier_trail_once(tmp_path: Path) -> None:
    fixtures = ROOT / "fixtures" / "audit"
    shutil.copy(fixtures / "v1.db", tmp_path / "audit.db")
    old_head = json.loads((fixtures / "expected.json").read_text())["v1.db"]["head"]
    url = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    refused = rmas("verify", "--url", url)
    assert refused.returncode == 2 and "rmas audit migrate" in refused.stderr
    out = rmas("migrate", "--url", url, "--hub-id", "hub-old")
    assert out.returncode == 0, out.stderr
    assert "converted 40 entries (sqlite v1); the new chain verifies" in out.stdout
    assert f"old head {old_head}" in out.stdout
    new_head = rmas("head", "--url", url).stdout.strip()
    assert f"new head {new_head}  (keep this one as your anchor)" in out.stdout
    assert rmas("verify", "--url", url, "--expect-head", new_head).returncode == 0
    again = rmas("migrate", "--url", url)
    assert again.returncode == 2 and "already has the current layout" in again.stderr
    gone = rmas("migrate", "--url", "postgresql+asyncpg://u@127.0.0.1:1/db")
    assert gone.returncode == 2 and "unreachable" in gone.stderr
