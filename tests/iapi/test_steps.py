"""Readings in steps (rmas.iapi.steps): cut anywhere, they read exactly what the reference
implementations read (tests/iapi/reference.py), errors included; run on the loop, they give it
a turn between two steps only while asked to."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from rmas.iapi import paxlst as paxlst_module
from rmas.iapi import segments as seg_module
from rmas.iapi.paxlst import read_paxlst, read_paxlst_steps
from rmas.iapi.steps import STEP, Steps, finish, stepped
from rmas.iapi.syntax import EdifactError, tokenize
from tests.iapi.reference import reference_tokenize
from tests.iapi.test_fast_paths import (
    SETTINGS,
    TODAY,
    _reference_read,
    interchanges,
    outcome,
    paxlst,
)

PAX = Path(__file__).resolve().parents[2] / "fixtures" / "paxlst"


@contextmanager
def step_of(size: int) -> Iterator[None]:
    """The readers cut every ``size`` segments instead of every STEP."""
    with (
        mock.patch.object(seg_module, "STEP", size),
        mock.patch.object(paxlst_module, "STEP", size),
    ):
        yield


def counted(steps: Steps[object]) -> tuple[object, int]:
    """The result of ``steps`` and how many times it stopped between two steps."""
    n = 0
    try:
        while True:
            next(steps)
            n += 1
    except StopIteration as done:
        return done.value, n


@SETTINGS
@given(interchanges(), st.integers(1, 7))
@example("UNB+UNOA:4+S+R+1:2+R'\r\nUNH+1'\r\n\r\nNAD'\r\nUNT+2+1'\r\nUNZ+1+R'", 1)
@example("UNB+UNOA:4+S+R+1:2+R'UNH+1'NAD'nad+1'UNT+3+1'UNZ+1+R'", 2)
@example("UNB+UNOA:4+S+R+1:2+R'UNH+1'NAD+FL+++O?'BRIEN'\r\nnad+1'UNT+3+1'UNZ+1+R'", 1)
def test_tokenizing_in_any_steps_gives_the_reference_segments_and_errors(
    data: str, size: int
) -> None:
    with step_of(size):
        got = outcome(tokenize, data)
    assert got == outcome(reference_tokenize, data)


@SETTINGS
@given(paxlst(), st.integers(1, 7))
@example((PAX / "crlf_and_carrier_junk.edi").read_bytes(), 2)
@example((PAX / "iapi_progressive.edi").read_bytes(), 3)
@example((PAX / "multi_document.edi").read_bytes(), 1)
@example((PAX / "release_obrien.edi").read_bytes(), 2)
def test_reading_in_any_steps_gives_the_reference_manifest_and_errors(
    data: bytes, size: int
) -> None:
    with step_of(size):
        got = outcome(lambda d: read_paxlst(d, today=TODAY), data)
    assert got == outcome(_reference_read, data)


def released(data: bytes) -> bytes:
    """``data`` with a released apostrophe in its first passenger's surname (O'BRIEN): the
    tokenizer reads every segment of it one at a time."""
    at = data.index(b"+++", data.index(b"NAD+FL+++")) + 3
    return data[:at] + b"O?'" + data[at:]


@pytest.mark.parametrize("form", ["plain", "released"])
def test_the_480_passenger_interchange_is_read_in_steps_of_step_segments(form: str) -> None:
    data = (PAX / "manifest_480.edi").read_bytes()
    if form == "released":
        data = released(data)
    manifest, stops = counted(read_paxlst_steps(data, today=TODAY))
    assert manifest == read_paxlst(data, today=TODAY)
    segments = data.count(b"'") - 1  # the UNA's terminator is not a segment's
    # Tokenizing stops every STEP segments, and reading each message every STEP more.
    assert stops >= 2 * (segments // STEP) - 1 >= 16
    with step_of(100_000):
        assert counted(read_paxlst_steps(data, today=TODAY)) == (manifest, 0)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"CNT+42:480'", b"CNT+42:4X0'"),  # read in the last step of the message's reading
        (b"UNT+", b"UNT+9"),  # the message's segment count: the envelope, after tokenizing
    ],
)
def test_an_error_in_a_late_step_is_the_same_error(old: bytes, new: bytes) -> None:
    data = (PAX / "manifest_480.edi").read_bytes()
    broken = data.replace(old, new, 1)
    assert broken != data
    with pytest.raises(EdifactError) as whole, step_of(100_000):
        read_paxlst(broken, today=TODAY)
    with pytest.raises(EdifactError) as in_steps:
        finish(read_paxlst_steps(broken, today=TODAY))
    assert str(in_steps.value) == str(whole.value)
    assert in_steps.value.segment == whole.value.segment > 4000


def _three() -> Steps[str]:
    for _ in range(3):
        yield
    return "read"


class Ticker:
    def __init__(self) -> None:
        self.ticks = 0

    async def run(self) -> None:
        while True:
            self.ticks += 1
            await asyncio.sleep(0)


@pytest.mark.parametrize(("turns", "expected"), [(True, 3), (False, 0)])
async def test_stepped_gives_the_loop_a_turn_between_steps_only_while_asked(
    turns: bool, expected: int
) -> None:
    ticker = Ticker()
    task = asyncio.get_running_loop().create_task(ticker.run())
    await asyncio.sleep(0)
    before = ticker.ticks
    try:
        assert await stepped(_three(), lambda: turns) == "read"
        assert ticker.ticks - before == expected
    finally:
        task.cancel()


async def test_stepped_asks_before_each_turn() -> None:
    asked: list[int] = []

    def turns() -> bool:
        asked.append(1)
        return len(asked) == 2  # only the second time

    ticker = Ticker()
    task = asyncio.get_running_loop().create_task(ticker.run())
    await asyncio.sleep(0)
    before = ticker.ticks
    try:
        assert await stepped(_three(), turns) == "read"
    finally:
        task.cancel()
    assert len(asked) == 3 and ticker.ticks - before == 1


async def test_stepped_raises_what_the_reading_raises() -> None:
    def failing() -> Steps[None]:
        yield
        raise EdifactError("bad segment", segment=7, tag="NAD")

    with pytest.raises(EdifactError, match="bad segment") as err:
        await stepped(failing(), lambda: True)
    assert err.value.segment == 7


def test_finish_gives_the_result_of_the_steps() -> None:
    assert finish(_three()) == "read"
