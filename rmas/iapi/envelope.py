"""The envelope of a PAXLST as the answer needs it: its UNB/UNH references (also of an
unreadable message, as far as it can be read), whether its senders are the caller's, and the
answer's text encoded in the request's syntax."""

from __future__ import annotations

from collections.abc import Sequence

from rmas.iapi.cusres import ErrorHeader
from rmas.iapi.paxlst import Part
from rmas.iapi.syntax import SYNTAX_IDS, EdifactError, Group, Interchange, quote, tokenize

__all__ = ["encode", "error_header", "read_envelope", "sender_refusal"]


def error_header(part: Part) -> ErrorHeader:
    m = part.message
    return ErrorHeader(
        m.ref, m.common_access_ref, (m.sequence, m.sequence_marker), part.transaction_ref
    )


def sender_refusal(ic: Interchange, senders: Sequence[str]) -> str:
    if not senders:
        return ""
    for who in (ic.sender, *(g.sender for g in ic.groups)):
        if who not in senders:
            return f"sender {quote(who)} is not an identity of the calling airline"
    return ""


def encode(text: str, ic: Interchange | None) -> bytes:
    # "ignore", never "replace": a replacement "?" would be read as the release character.
    return text.encode("latin-1" if ic is not None and ic.syntax == "UNOC" else "ascii", "ignore")


def read_envelope(data: bytes) -> tuple[Interchange | None, ErrorHeader | None]:
    """The envelope of an unreadable PAXLST, as far as it can be read, to address the answer:
    UNB (and whether a UNG follows), and the first message's UNH references and RFF+TN, read up
    to the first fault."""
    try:
        segments, seps, una = tokenize(data)
    except EdifactError as exc:
        try:
            segments, seps, una = tokenize(data[: max(exc.offset, 0)])
        except EdifactError:
            return None, None
    if not segments or segments[0].tag != "UNB":
        return None, None
    unb = segments[0]
    ung = next((s for s in segments[1:4] if s.tag == "UNG"), None)
    syntax = unb.get(1, 0) if unb.get(1, 0) in SYNTAX_IDS else "UNOA"
    ic = Interchange(
        separators=seps,
        una_present=una,
        syntax=syntax,
        syntax_version=unb.get(1, 1)[:2],
        sender=unb.get(2, 0)[:35],
        sender_qualifier=unb.get(2, 1)[:4],
        recipient=unb.get(3, 0)[:35],
        recipient_qualifier=unb.get(3, 1)[:4],
        prepared_date=unb.get(4, 0)[:8],
        prepared_time=unb.get(4, 1)[:4],
        control_ref=unb.get(5)[:14],
        groups=[Group(ung.get(5)[:14], "", "", "")] if ung is not None else [],
        messages=[],
        segment_count=len(segments),
        application_ref=unb.get(7)[:14],
    )
    unh = next((s for s in segments[1:4] if s.tag == "UNH"), None)
    if unh is None:
        return ic, None
    tn = ""
    for s in segments[unh.number : unh.number + 12]:
        if s.tag == "RFF" and s.get(1, 0) == "TN":
            tn = s.get(1, 1)[:70]
            break
        if s.tag == "NAD" and s.get(1) != "MS":
            break
    return ic, ErrorHeader(
        unh.get(1)[:14], unh.get(3)[:35], (unh.get(4, 0)[:4], unh.get(4, 1)[:1]), tn
    )
