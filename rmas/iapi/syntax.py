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

Segments (separators, tokenizing, writing) are in :mod:`rmas.iapi.segments`; this module reads the
envelopes, and re-exports the segment level for its callers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from operator import itemgetter

from rmas.iapi.segments import (
    DEFAULT_SEPARATORS,
    EdifactError,
    Segment,
    Separators,
    quote,
    segment_texts,
    tokenize,
    tokenize_steps,
    write_segments,
)
from rmas.iapi.steps import Steps, finish

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
    "parse_interchange_steps",
    "quote",
    "segment_texts",
    "tokenize",
    "write_segments",
]

#: ISO 9735 levels, IATA's own (IATA like UNOA, IATB like UNOB), and SIRE, which a
#: departure-control system in service writes in its interactive API traffic (read as UNOA).
SYNTAX_IDS = frozenset({"UNOA", "UNOB", "UNOC", "UNOD", "UNOE", "UNOF", "UNOW", "UNOY", "IATA",
                        "IATB", "SIRE"})  # fmt: skip
_TAG_OF = itemgetter(0)
#: The tags that end a message's body: UNT, or a service segment that must not be inside it.
_SERVICE_TAGS = re.compile("UN[THZGEB]")
#: Digits a control count or a traveller count may have (ISO 9735 counts are n..6).
MAX_COUNT_DIGITS = 6


def count_value(raw: str) -> int | None:
    """A count element's value, None unless it is 1-6 digits (so a count of thousands of digits
    is an error, never a giant int)."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > MAX_COUNT_DIGITS:
        return None
    return int(raw)


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


def parse_interchange(data: bytes | str) -> Interchange:
    """Read and check an interchange's envelope; raise EdifactError naming what is wrong."""
    return finish(parse_interchange_steps(data))


def parse_interchange_steps(data: bytes | str) -> Steps[Interchange]:
    """:func:`parse_interchange` in steps (:mod:`rmas.iapi.steps`): tokenizing's."""
    segments, seps, una = yield from tokenize_steps(data)
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
    # Every tag is three characters: "|"-joined, tag k starts at 4k, and a match of a service
    # tag's pattern lies inside one tag. A message's body is found with one search instead of
    # a look at each of its segments.
    tags = "|".join(map(_TAG_OF, segments))
    end = len(segments) - 1
    i = 0
    while i + 1 < end:
        i += 1
        seg = segments[i]
        tag = seg.tag
        if msg is not None:
            # Only UNT (closing) or another service segment (an error) ends a message's body.
            found = _SERVICE_TAGS.search(tags, 4 * i)
            j = min(found.start() // 4, end) if found else end
            msg.segments += segments[i : j if j == end else j + 1]
            i = j
            if j == end:
                break  # no UNT before UNZ: the message is reported below
            seg = segments[j]
            tag = seg.tag
            if tag == "UNT":
                _close_message(msg, seg)
                msg = None
            else:
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
