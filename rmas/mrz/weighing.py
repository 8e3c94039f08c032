"""Every check digit of a zone at once: the characters each digit covers, weighed by a few
big-integer operations instead of one multiplication per character.

A zone's encoded characters (values 0-35, :func:`rmas.mrz.charset.encode`) are the bytes of one
big integer. Masks select the bytes weighed 7, 3 and 1 (ICAO 9303's weights, by each character's
place in what its digit covers); each masked integer is multiplied by its weight (7 x 35 still
fits in a byte, so no byte carries into the next) and the three added. Each digit's weighed bytes
are then one slice, summed in C. The composite digit weighs characters otherwise than the digit of
their own field does, so it weighs a second copy of the characters.

Only for zones whose every character is an MRZ character: a BAD value (255) would carry into its
neighbours. docs/benchmarks.md has the figures.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from typing import NamedTuple

from rmas.mrz.charset import DIGITS, WEIGHTS
from rmas.mrz.layouts import COMPOSITE, LAYOUTS, WIDTH, Layout

#: The weighted sum -> its check digit, for every sum a check digit can have (the weighted sum of
#: 50 characters of value 35 at most is under 12,500): one C-level lookup instead of ``% 10``.
_DIGIT_OF_SUM = DIGITS * 1300


class Weighing(NamedTuple):
    """How :func:`expected_digits` weighs the characters each check digit of a layout covers."""

    #: The slice of the encoded lines (joined) every covered character lies in.
    window: slice
    #: How many copies of it to weigh: a second one for the composite digit.
    copies: int
    #: Bytes of the copies.
    size: int
    #: Masks of the bytes of the copies weighed 7, 3 and 1.
    weigh_7: int
    weigh_3: int
    weigh_1: int
    #: The weighed copies -> each digit's weighed bytes, in the layout's digits' order.
    weighed: Callable[[bytes], tuple[bytes, ...]]


def weighing_of(layout: Layout) -> Weighing:
    """The weighing of ``layout``'s check digits, in the order of its digit specifications."""
    spans, digit_specs = LAYOUTS[layout]
    width = WIDTH[layout]
    # Every covered character, per digit: (its offset in the joined lines, its weight).
    covered: dict[str, list[tuple[int, int]]] = {}
    for name, (_li, _col, covers) in digit_specs.items():
        segments = COMPOSITE[layout] if name == "composite" else [spans[covers[0]]]
        offsets = [li * width + col for li, start, end in segments for col in range(start, end)]
        covered[name] = [(offset, WEIGHTS[k]) for k, offset in enumerate(offsets)]
    everywhere = [offset for weighted in covered.values() for offset, _w in weighted]
    lo, hi = min(everywhere), max(everywhere) + 1
    copies = 2 if "composite" in covered else 1
    lanes: dict[int, int] = {}  # a byte of the copies -> its weight
    weighed: list[slice] = []
    for name, weighted in covered.items():
        base = (hi - lo if name == "composite" else 0) - lo
        mine = {base + offset: w for offset, w in weighted}
        assert not mine.keys() & lanes.keys(), "a character weighed twice in one copy"
        lanes.update(mine)
        weighed.append(slice(min(mine), max(mine) + 1))
    assert max(map(len, covered.values())) * 7 * 35 < len(_DIGIT_OF_SUM)
    masks = {w: sum(0xFF << (8 * lane) for lane, lw in lanes.items() if lw == w) for w in (7, 3, 1)}
    return Weighing(
        slice(lo, hi), copies, (hi - lo) * copies, masks[7], masks[3], masks[1],
        itemgetter(*weighed),
    )  # fmt: skip


def expected_digits(weighing: Weighing, coded: bytes) -> tuple[str, ...]:
    """Every check digit's expected value, in the layout's digits' order, from its lines joined
    and encoded (no BAD value in them)."""
    window, copies, size, weigh_7, weigh_3, weigh_1, weighed = weighing
    x = int.from_bytes(coded[window] * copies, "little")
    x = (x & weigh_7) * 7 + (x & weigh_3) * 3 + (x & weigh_1)
    return tuple(map(_DIGIT_OF_SUM.__getitem__, map(sum, weighed(x.to_bytes(size, "little")))))
