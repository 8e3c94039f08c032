"""UN/EDIFACT syntax (ISO 9735) as airline API traffic uses it: reading and writing interchanges.

Written in-house: the one maintained Python EDIFACT library crashes on UNG/UNE functional groups,
which airline traffic uses, and is slow. This module reads:

- the UNA service string advice with any separators (defaults ``:+.? '``), and the release
  character in both directions (``O?'BRIEN`` is ``O'BRIEN``; ``??`` is ``?``);
- UNB/UNZ interchanges, UNG/UNE functional groups and UNH/UNT messages, with every control count
  and reference checked (UNT segment count, UNE message count, UNZ group or message count);
- syntax identifiers UNOA-UNOF, UNOW, UNOY (and IATA, IATB, SIRE of airline systems); CR/LF
  and spaces between segments; junk from a carrier
  envelope before UNA/UNB and after UNZ (a teletype trailer such as ``NNNN``).

Every error is an :class:`EdifactError` naming the segment number (1-based, counted from UNA or
UNB), its tag, the element and component, and the character offset in the input. Its text is
bounded (values from the input are quoted shortened), whatever the size of the input.

Segments are split with ``str.split`` and re-joined where a separator was released, so a message
without release characters never goes through a per-character loop.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from rmas.errors import RmasError

__all__ = [
    "DEFAULT_SEPARATORS",
    "SYNTAX_IDS",
    "EdifactError",
    "Group",
    "Interchange",
    "Message",
    "Segment",
    "Separators",
    "count_value",
    "parse_interchange",
    "quote",
    "segment_texts",
    "tokenize",
    "write_segments",
]

#: ISO 9735 levels, IATA's own (IATA like UNOA, IATB like UNOB), and SIRE, which a
#: departure-control system in service writes in its interactive API traffic (read as UNOA).
SYNTAX_IDS = frozenset({"UNOA", "UNOB", "UNOC", "UNOD", "UNOE", "UNOF", "UNOW", "UNOY", "IATA",
                        "IATB", "SIRE"})  # fmt: skip
_TAG = re.compile(r"[A-Z][A-Z0-9]{2}")
_SERVICE = re.compile(r"\s*UN[A-Z]")
#: Longest error text: an error names where it is and quotes input values shortened.
MAX_ERROR_TEXT = 300
#: Digits a control count or a traveller count may have (ISO 9735 counts are n..6).
MAX_COUNT_DIGITS = 6


def quote(value: str, limit: int = 20) -> str:
    """``repr`` of a value from the input, shortened: error texts stay bounded."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


def count_value(raw: str) -> int | None:
    """A count element's value, None unless it is 1-6 digits (so a count of thousands of digits
    is an error, never a giant int)."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > MAX_COUNT_DIGITS:
        return None
    return int(raw)


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


@dataclass(slots=True)
class Message:
    """UNH .. UNT. ``segments`` holds the body, UNH and UNT included."""

    ref: str
    type: str
    version: str
    release: str
    agency: str
    association: str
    segments: list[Segment]
    #: UNH element 3: common access reference (ties the parts of one manifest together).
    common_access_ref: str = ""
    #: UNH element 4: sequence of transfers (``01``) and first/last (``C`` more follow, ``F``).
    sequence: str = ""
    sequence_marker: str = ""


@dataclass(slots=True)
class Group:
    """UNG .. UNE."""

    ref: str
    function: str
    sender: str
    recipient: str
    messages: list[Message] = field(default_factory=list)


@dataclass(slots=True)
class Interchange:
    """UNB .. UNZ, with its groups (if any) and all its messages in order."""

    separators: Separators
    una_present: bool
    syntax: str
    syntax_version: str
    sender: str
    sender_qualifier: str
    recipient: str
    recipient_qualifier: str
    prepared_date: str
    prepared_time: str
    control_ref: str
    groups: list[Group]
    messages: list[Message]
    segment_count: int
    #: UNB element 7: application reference (``IAPI`` in interactive API traffic).
    application_ref: str = ""


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
    segments: list[Segment] = []
    offset = start
    number = 1 if una else 0
    for raw in raw_segments:
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
        if len(tag) != 3 or not _TAG.fullmatch(tag):
            raise EdifactError(
                f"{tag[:10]!r} is not a segment tag", segment=number, offset=seg_offset
            )
        segments.append(Segment(tag, parsed, number, seg_offset))
    return segments, seps, una


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


def parse_interchange(data: bytes | str) -> Interchange:
    """Read and check an interchange's envelope; raise EdifactError naming what is wrong."""
    segments, seps, una = tokenize(data)
    if not segments or segments[0].tag != "UNB":
        first = segments[0] if segments else None
        raise EdifactError(
            "the interchange must start with UNB",
            segment=first.number if first else 1,
            tag=first.tag if first else "",
            offset=first.offset if first else 0,
        )
    unb = segments[0]
    syntax = unb.get(1, 0)
    if syntax not in SYNTAX_IDS:
        raise unb.error(f"unknown syntax identifier {quote(syntax)}", 1, 1)
    control_ref = unb.get(5)
    if not control_ref:
        raise unb.error("interchange control reference is missing", 5)
    last = segments[-1]
    if last.tag != "UNZ":
        raise EdifactError(
            "the interchange does not end with UNZ (truncated?)",
            segment=last.number,
            tag=last.tag,
            offset=last.offset,
        )
    if last.get(2) != control_ref:
        raise last.error(
            f"control reference {quote(last.get(2))} does not match UNB's {quote(control_ref)}", 2
        )
    groups: list[Group] = []
    messages: list[Message] = []
    group: Group | None = None
    msg: Message | None = None
    for seg in segments[1:-1]:
        tag = seg.tag
        if msg is not None:
            msg.segments.append(seg)
            if tag == "UNT":
                _close_message(msg, seg)
                msg = None
            elif tag in ("UNH", "UNZ", "UNG", "UNE", "UNB"):
                raise seg.error(f"{tag} inside message {quote(msg.ref)}, which has no UNT")
            continue
        if tag == "UNH":
            msg = Message(
                ref=seg.get(1),
                type=seg.get(2, 0),
                version=seg.get(2, 1),
                release=seg.get(2, 2),
                agency=seg.get(2, 3),
                association=seg.get(2, 4),
                segments=[seg],
                common_access_ref=seg.get(3),
                sequence=seg.get(4, 0),
                sequence_marker=seg.get(4, 1),
            )
            if not msg.ref:
                raise seg.error("message reference is missing", 1)
            messages.append(msg)
            if group is not None:
                group.messages.append(msg)
            elif groups:
                raise seg.error("message outside a functional group, after a group ended")
        elif tag == "UNG":
            if group is not None:
                raise seg.error(f"UNG inside group {quote(group.ref)}, which has no UNE")
            if messages and not groups:
                raise seg.error("functional group after messages outside any group")
            group = Group(seg.get(5), seg.get(1), seg.get(2), seg.get(3))
            groups.append(group)
        elif tag == "UNE":
            if group is None:
                raise seg.error("UNE without UNG")
            _check_count(seg, len(group.messages), "messages in the group")
            if seg.get(2) != group.ref:
                raise seg.error(
                    f"group reference {quote(seg.get(2))} does not match UNG's {quote(group.ref)}",
                    2,
                )
            group = None
        else:
            raise seg.error(f"{tag} outside any message")
    if msg is not None:
        raise last.error(f"message {quote(msg.ref)} has no UNT (truncated?)")
    if group is not None:
        raise last.error(f"group {quote(group.ref)} has no UNE (truncated?)")
    _check_count(last, len(groups) if groups else len(messages),
                 "groups" if groups else "messages")  # fmt: skip
    return Interchange(
        separators=seps,
        una_present=una,
        syntax=syntax,
        syntax_version=unb.get(1, 1),
        sender=unb.get(2, 0),
        sender_qualifier=unb.get(2, 1),
        recipient=unb.get(3, 0),
        recipient_qualifier=unb.get(3, 1),
        prepared_date=unb.get(4, 0),
        prepared_time=unb.get(4, 1),
        control_ref=control_ref,
        groups=groups,
        messages=messages,
        segment_count=len(segments),
        application_ref=unb.get(7),
    )


def _check_count(seg: Segment, actual: int, what: str) -> None:
    raw = seg.get(1)
    value = count_value(raw)
    if value is None:
        raise seg.error(f"control count {quote(raw)} is not a number of 1-6 digits", 1)
    if value != actual:
        raise seg.error(f"control count {raw} does not match {actual} {what}", 1)


def _close_message(msg: Message, unt: Segment) -> None:
    _check_count(unt, len(msg.segments), "segments from UNH to UNT")
    if unt.get(2) != msg.ref:
        raise unt.error(
            f"message reference {quote(unt.get(2))} does not match UNH's {quote(msg.ref)}", 2
        )


# -- writing -------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _specials(seps: Separators) -> re.Pattern[str]:
    return re.compile(
        "[" + re.escape(seps.release + seps.component + seps.element + seps.segment) + "]"
    )


def _escape(value: str, seps: Separators) -> str:
    specials = _specials(seps)
    if specials.search(value) is None:
        return value
    rel = seps.release
    return specials.sub(lambda m: rel + m.group(0), value)


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
    out = [seps.una + ("\n" if newline else "")] if una else []
    for seg in segments:
        tag, *elements = seg
        parts = [str(tag)]
        for e in elements:
            if isinstance(e, str):
                parts.append(_escape(e, seps))
            else:
                comps = [_escape(c, seps) for c in e]
                while comps and not comps[-1]:
                    comps.pop()
                parts.append(seps.component.join(comps))
        while len(parts) > 1 and not parts[-1]:
            parts.pop()
        out.append(seps.element.join(parts) + seps.segment + ("\n" if newline else ""))
    return "".join(out)
