"""UN/EDIFACT segments (ISO 9735): separators, tokenizing an interchange into segments, and
writing segments back, with the release character both ways.

Segments are split with ``str.split`` and re-joined where a separator was released, so a message
without release characters never goes through a per-character loop. Envelopes (UNB/UNG/UNH and
their control counts) are :mod:`rmas.iapi.syntax`'s.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate, count, repeat
from operator import add, itemgetter
from typing import NamedTuple

from rmas.errors import RmasError
from rmas.iapi.steps import STEP, Steps, finish

__all__ = [
    "DEFAULT_SEPARATORS",
    "MAX_ERROR_TEXT",
    "EdifactError",
    "Segment",
    "Separators",
    "escaper",
    "quote",
    "segment_texts",
    "tokenize",
    "tokenize_steps",
    "write_segments",
]

_TAG = re.compile(r"[A-Z][A-Z0-9]{2}")
_SERVICE = re.compile(r"\s*UN[A-Z]")
# Building a Segment with tuple.__new__ skips the NamedTuple's Python-level __new__ (the fields
# are all given, in order), a measurable share of tokenizing (docs/benchmarks.md, "Issue 20").
_new_segment = tuple.__new__
# Tags already seen to be well formed: a set lookup instead of a pattern match per segment (a
# 480-passenger PAXLST has about 4,800 segments and a few dozen distinct tags).
_TAGS: set[str] = set()
_MAX_TAGS = 2048
_FIRST_THREE = itemgetter(slice(0, 3))
#: Longest error text: an error names where it is and quotes input values shortened.
MAX_ERROR_TEXT = 300


def quote(value: str, limit: int = 20) -> str:
    """``repr`` of a value from the input, shortened: error texts stay bounded."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


class EdifactError(RmasError):
    """A syntax or envelope error, with where it is."""

    def __init__(
        self,
        message: str,
        *,
        segment: int = 0,
        tag: str = "",
        element: int = 0,
        component: int = 0,
        offset: int = 0,
    ) -> None:
        where = []
        if segment:
            where.append(f"segment {segment}" + (f" ({tag})" if tag else ""))
        if element:
            where.append(f"element {element}" + (f", component {component}" if component else ""))
        where.append(f"offset {offset}")
        if len(message) > MAX_ERROR_TEXT:
            message = message[: MAX_ERROR_TEXT - 3] + "..."
        super().__init__(f"{', '.join(where)}: {message}")
        self.reason = message
        self.segment = segment
        self.tag = tag
        self.element = element
        self.component = component
        self.offset = offset


@dataclass(frozen=True, slots=True)
class Separators:
    component: str = ":"
    element: str = "+"
    decimal: str = "."
    release: str = "?"
    reserved: str = " "
    segment: str = "'"

    @property
    def una(self) -> str:
        return (
            f"UNA{self.component}{self.element}{self.decimal}{self.release}{self.reserved}"
            f"{self.segment}"
        )


DEFAULT_SEPARATORS = Separators()


class Segment(NamedTuple):
    """One segment: ``elements[i][j]`` is component j of element i (both 0-based, tag excluded).

    A NamedTuple: a 480-passenger PAXLST has about 4,800 segments, and a frozen dataclass cost
    twice as much to build.
    """

    tag: str
    elements: tuple[tuple[str, ...], ...]
    number: int = 0
    offset: int = 0

    def get(self, element: int, component: int = 0) -> str:
        """Element ``element`` (1-based, as guides count), component ``component`` (0-based)."""
        try:
            return self.elements[element - 1][component] if element > 0 else ""
        except IndexError:
            return ""

    def error(self, message: str, element: int = 0, component: int = 0) -> EdifactError:
        return EdifactError(
            message,
            segment=self.number,
            tag=self.tag,
            element=element,
            component=component,
            offset=self.offset,
        )


def _split(text: str, sep: str, rel: str) -> list[str]:
    """Split on ``sep`` except where it is released (preceded by an odd run of ``rel``)."""
    parts = text.split(sep)
    if rel not in text:
        return parts
    out: list[str] = []
    pending: str | None = None
    for p in parts:
        cur = p if pending is None else pending + sep + p
        run = len(cur) - len(cur.rstrip(rel))
        if run % 2:
            pending = cur
        else:
            out.append(cur)
            pending = None
    if pending is not None:
        out.append(pending)
    return out


def _unescape(value: str, rel: str) -> str:
    if rel not in value:
        return value
    out = []
    i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if c == rel and i + 1 < n:
            out.append(value[i + 1])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # UNOC (ISO 8859-1) and friends


def tokenize(data: bytes | str) -> tuple[list[Segment], Separators, bool]:
    """Segments of an interchange, from its first UNA or UNB on; raises EdifactError."""
    return finish(tokenize_steps(data))


def tokenize_steps(data: bytes | str) -> Steps[tuple[list[Segment], Separators, bool]]:
    """:func:`tokenize` in steps (:mod:`rmas.iapi.steps`): one every :data:`STEP` segments
    of the fast path."""
    text = _decode(data)
    start_una = text.find("UNA")
    start_unb = text.find("UNB")
    starts = [s for s in (start_una, start_unb) if s >= 0]
    if not starts:
        raise EdifactError("no UNA or UNB segment: not an EDIFACT interchange")
    start = min(starts)
    seps = DEFAULT_SEPARATORS
    una = False
    if start == start_una and len(text) >= start + 9:
        s = text[start + 3 : start + 9]
        seps = Separators(s[0], s[1], s[2], s[3], s[4], s[5])
        if len({seps.component, seps.element, seps.release, seps.segment}) != 4:
            raise EdifactError("UNA names the same character for two separators", offset=start)
        marks = (seps.component, seps.element, seps.release, seps.segment)
        if not all(" " <= c <= "~" for c in s) or " " in (seps.component, seps.element,
                                                            seps.segment):  # fmt: skip
            raise EdifactError(
                "UNA separators must be printable ASCII characters other than space",
                segment=1, tag="UNA", offset=start,
            )  # fmt: skip
        if any(c.isalnum() for c in marks):
            # A letter or digit as a separator would split segment tags and values alike.
            raise EdifactError(
                "UNA separators must not be letters or digits", segment=1, tag="UNA", offset=start
            )
        una = True
        start += 9
    elif start == start_una:
        raise EdifactError("UNA is truncated", offset=start)
    body = text[start:]
    rel = seps.release
    raw_segments = _split(body, seps.segment, rel)
    tail = raw_segments.pop()  # after the last terminator: must be blank
    unz = _unz_index(raw_segments, seps.element)
    if unz is not None and not _SERVICE.match(
        raw_segments[unz + 1] if unz + 1 < len(raw_segments) else tail
    ):
        # A carrier's trailer after UNZ is not part of the interchange; another service
        # segment there (a second UNZ, a UNB) is, and is an error.
        del raw_segments[unz + 1 :]
        tail = ""
    if tail.strip():
        offset = start + len(body) - len(tail)
        if tail.rstrip().endswith(rel) and (len(tail) - len(tail.rstrip(rel))) % 2:
            raise EdifactError(
                f"release character {rel!r} at the end of the input releases nothing",
                segment=len(raw_segments) + 1,
                offset=offset,
            )
        raise EdifactError(
            "truncated: the last segment has no terminator",
            segment=len(raw_segments) + 1,
            tag=tail.strip()[:3],
            offset=offset,
        )
    number = 1 if una else 0
    if rel not in body:
        try:
            return (yield from _fast_segments(raw_segments, seps, start, number)), seps, una
        except _Unusual:
            pass  # a malformed tag: the reference path below raises the error naming it
    return (yield from _reference_segments(raw_segments, seps, start, number)), seps, una


class _Unusual(Exception):
    """The fast path met what only the reference path handles (a malformed tag: the reference
    path raises the error)."""


def _fast_segments(
    raws: list[str], seps: Separators, start: int, number: int
) -> Steps[list[Segment]]:
    """Segments of raw texts holding no release character, :data:`STEP` at a time.

    Exactly :func:`_reference_segments`'s result: with nothing released ``str.split`` is exact,
    a well-formed tag is the first three characters, and each segment starts one terminator
    (and any white space) after the previous one. A segment text seen before in the
    interchange (``ATT+2++M``, ``NAT+2+NZL``, ``LOC+91+NZL`` repeat in every traveller group)
    shares its parsed elements (tuples, immutable). Raises _Unusual for anything else.
    """
    element, comp = seps.element, seps.component
    seen: dict[str, tuple[tuple[str, ...], ...]] = {}

    def parse(raw: str) -> tuple[tuple[str, ...], ...]:
        parts = raw.split(element)
        tag = parts[0]
        if tag not in _TAGS:
            if len(tag) != 3 or not _TAG.fullmatch(tag):
                raise _Unusual  # not a tag: the reference path raises the error
            if len(_TAGS) < _MAX_TAGS:
                _TAGS.add(tag)
        if comp in raw:
            parsed = tuple([tuple(e.split(comp)) for e in parts[1:]])
        else:
            del parts[0]
            parsed = tuple(zip(parts))  # one component each: (e,)
        seen[raw] = parsed
        return parsed

    # Offset of segment i: start + the lengths of the i segments before it, each with its
    # terminator (one more offset than segments: zip stops at the tags).
    offsets: Iterable[int] = accumulate(map(add, map(len, raws), repeat(1)), initial=start)
    stripped = list(map(str.lstrip, raws))
    if stripped != raws:
        # CR/LF or spaces between segments: a segment starts after them, and a blank between
        # two terminators is no segment.
        kept = [
            (s, o + len(r) - len(s)) for r, s, o in zip(raws, stripped, offsets, strict=False) if s
        ]
        raws = [s for s, _o in kept]
        offsets = [o for _s, o in kept]
    # One iterator of offsets and one of numbers for all the steps: each step's zip stops at
    # its tags, having taken exactly one offset and one number per segment of the step.
    at_offsets = iter(offsets)
    numbers = count(number + 1)
    out: list[Segment] = []
    for at in range(0, len(raws), STEP):
        if at:
            yield
        part = raws[at : at + STEP]
        elements = [seen[r] if r in seen else parse(r) for r in part]
        rows = zip(map(_FIRST_THREE, part), elements, numbers, at_offsets, strict=False)
        out += map(_new_segment, repeat(Segment), rows)
    return out


def _reference_segments(
    raw_segments: list[str], seps: Separators, start: int, number: int
) -> Steps[list[Segment]]:
    """Segments of raw segment texts (split on the terminator, releases honoured), one at a time
    (in steps of :data:`STEP`): blanks between terminators skipped, the release character
    honoured, tags checked. An interchange holding one released character anywhere (a name such
    as ``O?'BRIEN``) is read here whole."""
    rel = seps.release
    segments: list[Segment] = []
    offset = start
    for at in range(0, len(raw_segments), STEP):
        if at:
            yield
        for raw in raw_segments[at : at + STEP]:
            seg_offset = offset
            offset += len(raw) + 1
            stripped = raw.lstrip()
            if not stripped:
                continue  # blank between terminators (CR/LF)
            seg_offset += len(raw) - len(stripped)
            number += 1
            comp = seps.component
            if rel in stripped:
                elements = _split(stripped, seps.element, rel)
                parsed = tuple(
                    tuple(_unescape(c, rel) for c in _split(e, comp, rel)) for e in elements[1:]
                )
            else:
                # The common case: nothing released, so plain str.split (C speed) is exact.
                elements = stripped.split(seps.element)
                parsed = tuple([tuple(e.split(comp)) for e in elements[1:]])
            tag = elements[0]
            if tag not in _TAGS:
                if len(tag) != 3 or not _TAG.fullmatch(tag):
                    raise EdifactError(
                        f"{tag[:10]!r} is not a segment tag", segment=number, offset=seg_offset
                    )
                if len(_TAGS) < _MAX_TAGS:
                    _TAGS.add(tag)
            segments.append(_new_segment(Segment, (tag, parsed, number, seg_offset)))
    return segments


def _unz_index(raw_segments: list[str], element: str) -> int | None:
    """Index of the last raw segment that is a UNZ; None when there is none."""
    for i in range(len(raw_segments) - 1, -1, -1):
        if raw_segments[i].lstrip().startswith("UNZ" + element):
            return i
    return None


def segment_texts(data: bytes) -> list[bytes]:
    """The interchange's segments as raw bytes, each with its terminator (UNA alone first), for
    display one a line; a released terminator does not end a segment."""
    seps = DEFAULT_SEPARATORS
    head = b""
    body = data
    if data.startswith(b"UNA") and len(data) >= 9:
        u = data[3:9].decode("latin-1")
        seps = Separators(u[0], u[1], u[2], u[3], u[4], u[5])
        head, body = data[:9], data[9:]
    term, rel = seps.segment.encode("latin-1"), seps.release.encode("latin-1")
    out = [head] if head else []
    start = i = 0
    while i < len(body):
        c = body[i : i + 1]
        if c == rel:
            i += 2
            continue
        i += 1
        if c == term:
            out.append(body[start:i].strip(b"\r\n"))
            start = i
    if body[start:].strip():
        out.append(body[start:].strip(b"\r\n"))
    return out


# -- writing -------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _specials(seps: Separators) -> re.Pattern[str]:
    return re.compile(
        "[" + re.escape(seps.release + seps.component + seps.element + seps.segment) + "]"
    )


def escaper(seps: Separators) -> Callable[[str], str]:
    """The function writing a value with ``seps``: each separator and release character in it
    preceded by the release character."""
    specials = _specials(seps)
    search, sub = specials.search, specials.sub
    rel = seps.release

    def released(m: re.Match[str]) -> str:
        return rel + m.group(0)

    def escape(value: str) -> str:
        return value if search(value) is None else sub(released, value)

    return escape


def write_segments(
    segments: Iterable[Sequence[str | Sequence[str]]],
    seps: Separators = DEFAULT_SEPARATORS,
    *,
    una: bool = True,
    newline: bool = False,
) -> str:
    """Text of segments given as ``[tag, element, ...]`` (an element may be a list of components).

    Values are escaped with the release character; trailing empty elements and components are
    dropped, as ISO 9735 requires.
    """
    # Made once per call, not per value: hashing the separators for the pattern's cache
    # cost more than escaping (a CUSRES for 480 passengers escapes about 4,800 values).
    escape = escaper(seps)
    component, element = seps.component, seps.element
    end = seps.segment + ("\n" if newline else "")
    out = [seps.una + ("\n" if newline else "")] if una else []
    for seg in segments:
        tag, *elements = seg
        parts = [str(tag)]
        for e in elements:
            if isinstance(e, str):
                parts.append(escape(e))
            else:
                comps = [escape(c) for c in e]
                while comps and not comps[-1]:
                    comps.pop()
                parts.append(component.join(comps))
        while len(parts) > 1 and not parts[-1]:
            parts.pop()
        out.append(element.join(parts) + end)
    return "".join(out)
