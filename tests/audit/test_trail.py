"""AuditTrail: entries queued at once, durable before the awaitable completes; a required trail
raises, an optional one logs."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from rmas.audit import AuditSink, Channel, find, verify
from rmas.audit.trail import AuditTrail
from rmas.errors import AuditError
from tests.audit import CALLER, KEYER, result


def _trail(tmp_path: Path, *, required: bool = True) -> AuditTrail:
    return AuditTrail(
        AuditSink(f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}", timeout_s=0.3),
        KEYER,
        required=required,
    )


async def test_submit_queues_at_once_and_completes_once_durable(tmp_path: Path) -> None:
    trail = _trail(tmp_path)
    await trail.start()
    try:
        pending = trail.submit([result("LA1234567", "NZL")] * 3, CALLER, Channel.MANIFEST, "M1")
        assert trail.sink.backlog == 3  # queued before anything is awaited
        assert trail.sink.entries_written == 0
        await pending
        assert (trail.sink.backlog, trail.sink.entries_written) == (0, 3)
        await trail.submit([], CALLER, Channel.DOCUMENT)  # nothing to write
    finally:
        await trail.aclose()
    report = await verify(f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}")
    assert report.ok and report.count == 3


async def test_every_entry_names_the_hub_that_wrote_it(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    named = AuditTrail(AuditSink(url), KEYER, hub_id="hub-akl-1")
    default = AuditTrail(AuditSink(url), KEYER)
    assert default.hub_id == socket.gethostname() != ""
    for trail in (named, default):
        await trail.start()
        try:
            await trail.record([result("LA1234567", "NZL")], CALLER, Channel.DOCUMENT)
        finally:
            await trail.aclose()
    found = await find(url, KEYER.key_of("NZL", "LA1234567"))
    assert [f["hub"] for f in found] == ["hub-akl-1", socket.gethostname()]


@pytest.mark.parametrize("required", [True, False])
async def test_a_trail_that_cannot_be_written(tmp_path: Path, required: bool) -> None:
    trail = _trail(tmp_path, required=required)
    await trail.start()
    blocker = sqlite3.connect(tmp_path / "audit.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        pending = trail.submit([result("LA1234567", "NZL")], CALLER, Channel.DOCUMENT)
        with capture_logs() as logs:
            if required:
                with pytest.raises(AuditError, match="not written"):
                    await pending
            else:
                await pending  # answered anyway; the failure is logged
        errors = [e["event"] for e in logs if e["log_level"] == "error"]
        assert errors == ["audit_commit_failed", "audit_write_failed"]
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        await trail.aclose()


async def test_submit_on_a_closed_trail_fails_when_awaited(tmp_path: Path) -> None:
    trail = _trail(tmp_path)
    await trail.start()
    await trail.aclose()
    pending = trail.submit([result("LA1234567", "NZL")], CALLER, Channel.DOCUMENT)
    with pytest.raises(AuditError, match="closed"):
        await pending
