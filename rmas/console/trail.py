"""The audit trail's read side, as the console uses it: one call each, easy to re-point.

The same public readers ``rmas audit find | head | verify`` use (:mod:`rmas.audit`), and the
same rendering of a stored entry (:func:`rmas.audit.cli.check_json`): never a document number,
which the trail does not hold in clear.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

from rmas import audit
from rmas.audit.cli import check_json

__all__ = ["Verification", "find_check", "head", "verify"]


async def find_check(url: str, check_id: str) -> list[dict[str, Any]]:
    """The stored entries (normally one) of a check, as ``rmas audit find --check-id --json``."""
    return [check_json(row) for row in await audit.find_check(url, check_id)]


async def head(url: str) -> tuple[int, str]:
    """(seq, hash) of the trail's last entry."""
    return await audit.head(url)


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of one full verification of the chain, and when it ran."""

    at: dt.datetime
    ok: bool
    count: int
    head: tuple[int, str]
    problems: tuple[str, ...]
    seconds: float


async def verify(url: str) -> Verification:
    """Verify the whole chain now (``rmas audit verify``)."""
    start = time.monotonic()
    report = await audit.verify(url)
    return Verification(
        at=dt.datetime.now(dt.UTC),
        ok=report.ok,
        count=report.count,
        head=report.head,
        problems=tuple(str(p) for p in report.problems),
        seconds=time.monotonic() - start,
    )
