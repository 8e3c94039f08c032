"""The reference model against a real hub: thousands of random documents, every channel.

The seed is fixed per run and can be varied: ``RMAS_DIFF_SEED=123 pytest tests/differential``;
``RMAS_DIFF_DOCS`` scales the number of documents (``make fuzz`` runs far more). On a
disagreement the failure lists each class of disagreement with a reproducer (seed, phase, channel,
what was sent, what the stores hold, what the model expected and what the hub answered).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.differential.harness import run

SEED = int(os.environ.get("RMAS_DIFF_SEED", "20261207"))
DOCS = int(os.environ.get("RMAS_DIFF_DOCS", "4000"))


@pytest.mark.timeout(300)
async def test_the_hub_agrees_with_the_reference_model(tmp_path: Path) -> None:
    report = await run(SEED, DOCS, tmp_path)
    assert report.documents >= DOCS * 0.99
    assert set(report.by_channel) == {"fields", "mrz", "manifest", "manifest_mrz", "paxlst"}
    assert not report.errors and not report.disagreements, (
        f"RMAS_DIFF_SEED={SEED} RMAS_DIFF_DOCS={DOCS}\n{report.summary()}"
    )
