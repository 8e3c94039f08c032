"""Long readings cut into steps, so that an interchange never holds the event loop for long.

Reading a 480-passenger PAXLST takes several milliseconds of one core (tokenizing about 4,800
segments, then reading them). gRPC's aio server accepts about one new call per turn of the
event loop, so a hub answering airlines' interchanges back to back made single checks wait
behind each reading (docs/benchmarks.md, session 12). The readers are therefore generators:
they ``yield`` (nothing) every :data:`STEP` segments and ``return`` their result. One reader,
two ways to run it:

- :func:`finish` runs the steps back to back (every synchronous caller: ``read_paxlst``,
  ``parse_interchange``, ``tokenize``);
- :func:`stepped` runs them on the event loop, giving it a turn between two steps while
  ``turns()`` says someone is waiting (the airline channel passes
  :meth:`rmas.hub.Hub.gives_turns`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from typing import TypeVar

__all__ = ["STEP", "Steps", "finish", "stepped"]

T = TypeVar("T")

#: A reading in steps: yields nothing between two steps, returns its result.
Steps = Generator[None, None, T]

#: Segments a reader goes through between two steps: about half a millisecond of tokenizing, a
#: quarter of reading, on this project's machines.
STEP = 512


def finish(steps: Steps[T]) -> T:
    """Run ``steps`` to the end, back to back; its result (its exceptions propagate)."""
    try:
        while True:
            next(steps)
    except StopIteration as done:
        result: T = done.value
        return result


async def stepped(steps: Steps[T], turns: Callable[[], bool]) -> T:
    """Run ``steps`` to the end, giving the event loop a turn between two of them whenever
    ``turns()`` is true then; its result (its exceptions propagate)."""
    try:
        while True:
            next(steps)
            if turns():
                await asyncio.sleep(0)
    except StopIteration as done:
        result: T = done.value
        return result
