"""The screenshots in docs/console.md can be taken again (``tests/console/screenshots.py``)."""

from __future__ import annotations

from pathlib import Path

from tests.console.screenshots import SHOTS, take


def test_every_page_of_the_docs_is_photographed(tmp_path: Path) -> None:
    files = take(tmp_path)
    assert [f.name for f in files] == list(SHOTS)
    for f in files:
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f
        assert f.stat().st_size > 10_000, f  # a page, not a blank
