"""CUSRES: the authority's answer to an interactive API PAXLST, one directive per passenger.

The answer is written with the request's separators (and a UNA only when the request had one)
and correlates with its request the way departure-control systems match it: the UNB echoes
the request's interchange control reference and application reference (``IAPI``), a UNG (when the
request had one) its group reference, and there is one CUSRES message per PAXLST message echoing
its UNH message reference, common access reference and sequence (``01:F``), and its ``RFF+TN``.
Then one flight group per leg: ``RFF+AF`` (flight), ``DTM+189`` / ``DTM+232`` and the leg's
``LOC`` segments, as sent. Per passenger: ``ERP+2``, ``RFF+AVF`` / ``RFF+ABO`` (the airline's own
references, echoed), ``ERC`` (the code) and ``FTX+AAP`` (its text). Message-level problems (a
syntax error, a refused message) are ``ERP+1`` with their own code. The airline learns
directives only: never a status, never which economy or database reported a document.

Codes and texts: :mod:`rmas.iapiconfig` (the one table). Texts are written in the request's
character set; under UNOA (the usual level) that means upper case letters, digits, space and
``. , - ( ) / = ' + : ? ! " % & * ; < >`` only (:func:`fit_text`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from rmas.flights.model import StatusChange
from rmas.frozen import fast_init
from rmas.iapi.paxlst import Manifest, Part
from rmas.iapi.segments import escaper
from rmas.iapi.syntax import (
    DEFAULT_SEPARATORS,
    EdifactError,
    Interchange,
    Separators,
    parse_interchange,
    quote,
)
from rmas.iapi.syntax import write_segments as _write
from rmas.iapiconfig import CusresCodes
from rmas.verdict import Directive

__all__ = [
    "Answered",
    "ErrorHeader",
    "PassengerAnswer",
    "fit_text",
    "read_acknowledgment",
    "read_cusres",
    "write_cusres",
    "write_error_cusres",
    "write_status_change",
]

Seg = list[str | list[str]]

# ISO 9735 level A: upper case letters, digits, space and these.
_LATIN = frozenset({"UNOC", "UNOD", "UNOE", "UNOF", "UNOW", "UNOY"})
_UNOA = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,-()/='+:?!\"%&*;<>")


def fit_text(text: str, syntax: str, limit: int = 350) -> str:
    """``text`` in what the syntax level can carry: UNOB printable ASCII, UNOC and above printable
    Latin-1, UNOA (and any other) upper case and its few signs; anything else becomes a space.
    Bounded to
    ``limit`` characters (FTX 4440 is an..512)."""
    if syntax in ("UNOB", "IATB"):
        out = "".join(c if " " <= c <= "~" else " " for c in text)
    elif syntax in _LATIN:
        out = "".join(c if c.isprintable() and ord(c) < 256 else " " for c in text)
    else:  # UNOA, IATA, SIRE and anything unknown: the smallest set
        out = "".join(c if c in _UNOA else " " for c in text.upper())
    out = " ".join(out.split())
    return out if len(out) <= limit else out[: limit - 3] + "..."


class Answered(Protocol):
    """What a CUSRES says of one traveller: its references echoed and its directive (a
    :class:`PassengerAnswer`, or the channel's own per-passenger result, which has the same
    fields: no copy per passenger)."""

    @property
    def booking_ref(self) -> str: ...
    @property
    def passenger_ref(self) -> str: ...
    @property
    def directive(self) -> Directive: ...
    @property
    def unchecked(self) -> bool: ...


@fast_init
@dataclass(frozen=True, slots=True)
class PassengerAnswer:
    booking_ref: str
    passenger_ref: str
    directive: Directive
    #: OK_TO_BOARD although a document was not checked (``on_incomplete = "board"``).
    unchecked: bool = False


@dataclass(frozen=True, slots=True)
class ErrorHeader:
    """What an error answer echoes of a request it could read only in part."""

    message_ref: str = ""
    common_access_ref: str = ""
    sequence: tuple[str, str] = ("", "")
    transaction_ref: str = ""


@dataclass(frozen=True, slots=True)
class ReadLeg:
    flight: str
    times: tuple[tuple[str, str], ...]  # (DTM qualifier, value)
    places: tuple[tuple[str, str], ...]  # (LOC qualifier, place)


@dataclass(frozen=True, slots=True)
class ReadMessage:
    ref: str
    common_access_ref: str
    transaction_ref: str
    legs: tuple[ReadLeg, ...]
    passengers: tuple[tuple[str, str, str, str], ...]
    errors: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class ReadCusres:
    """A CUSRES read back: per passenger (AVF, ABO, ERC, text) and message-level errors."""

    control_ref: str
    transaction_ref: str
    flight: str
    passengers: tuple[tuple[str, str, str, str], ...]
    errors: tuple[tuple[str, str], ...]
    application_ref: str = ""
    messages: tuple[ReadMessage, ...] = field(default=())


def _p(value: str) -> str:
    """An echoed reference in printable ASCII (what every syntax level carries): control and
    other characters cannot come back to break the answer or empty a reference."""
    if value.isascii() and value.isprintable():
        return value  # the usual case: ASCII printable is exactly " " .. "~"
    return "".join(c for c in value if " " <= c <= "~")


def _unb(
    request: Interchange | None, control_ref: str, stamp: tuple[str, str], hub_id: str
) -> tuple[list[Seg], str, str]:
    sender = (_p(request.recipient) if request else "") or hub_id
    recipient = (_p(request.sender) if request else "") or "UNKNOWN"
    syntax = request.syntax if request else "UNOA"
    version = (_p(request.syntax_version) if request else "") or "4"
    app = _p(request.application_ref) if request else ""
    segs: list[Seg] = [
        [
            "UNB",
            [syntax, version],
            [sender, _p(request.recipient_qualifier) if request else ""],
            [recipient, _p(request.sender_qualifier) if request else ""],
            list(stamp),
            control_ref,
            "",
            app,
        ],
    ]
    return segs, sender, recipient


def _message(ref: str, head: ErrorHeader, body: list[Seg]) -> list[Seg]:
    ref = _p(ref) or "1"
    return [_unh(ref, head), *body, ["UNT", str(len(body) + 2), ref]]


def _unh(ref: str, head: ErrorHeader) -> Seg:
    unh: Seg = ["UNH", ref, ["CUSRES", "D", "05B", "UN", "IATA"]]
    if head.common_access_ref or head.sequence[0]:
        unh.append(_p(head.common_access_ref))
    if head.sequence[0]:
        unh.append([_p(x) for x in head.sequence])
    return unh


def _envelope(
    request: Interchange | None,
    messages: Sequence[list[Seg] | str],
    *,
    control_ref: str,
    stamp: tuple[str, str],
    hub_id: str,
) -> str:
    control_ref = _p(control_ref) or "0"
    segs, sender, recipient = _unb(request, control_ref, stamp, hub_id)
    grouped = bool(request and request.groups)
    group_ref = _p(request.groups[0].ref if request and request.groups else "") or "1"
    if grouped:
        segs.append(
            ["UNG", "CUSRES", sender, recipient, list(stamp), group_ref, "UN", ["D", "05B"]]
        )
    end: list[Seg] = []
    if grouped:
        end.append(["UNE", str(len(messages)), group_ref])
    end.append(["UNZ", "1" if grouped else str(len(messages)), control_ref])
    seps = request.separators if request else DEFAULT_SEPARATORS
    # UNA when the request had one (or could not be read): a request without it uses the
    # default separators, and its answer is written the same way. A message may come written
    # already (write_cusres): the text of segments is the texts of its segments one after the
    # other.
    out = [_write(segs, seps, una=request.una_present if request else True)]
    out += [m if isinstance(m, str) else _write(m, seps, una=False) for m in messages]
    out.append(_write(end, seps, una=False))
    return "".join(out)


def _part_header(part: Part, fallback_tn: str) -> ErrorHeader:
    m = part.message
    return ErrorHeader(
        m.ref,
        m.common_access_ref,
        (m.sequence, m.sequence_marker),
        part.transaction_ref or fallback_tn,
    )


def write_cusres(
    manifest: Manifest,
    answers: Mapping[int, Answered],
    *,
    transaction_ref: str,
    stamp: tuple[str, str],
    codes: CusresCodes | None = None,
    hub_id: str = "RMAS",
) -> str:
    """The CUSRES answering ``manifest``: ``answers`` by traveller position; deterministic in its
    inputs. ``transaction_ref`` is used where a message sent no ``RFF+TN``; ``stamp``: (YYMMDD,
    HHMM)."""
    c = codes or CusresCodes()
    ic = manifest.interchange
    seps = ic.separators
    messages: list[list[Seg] | str] = []
    groups = _PassengerGroups(c, ic.syntax, seps)
    for part in manifest.parts:
        head = _part_header(part, transaction_ref)
        body: list[Seg] = [["BGM", "962"], ["RFF", ["TN", _p(head.transaction_ref)]]]
        for leg in part.legs:
            if leg.number:
                body.append(["RFF", ["AF", _p(leg.number)]])
            body += [["DTM", [q, _p(value), _p(fmt)]] for q, value, fmt in leg.times]
            body += [["LOC", q, _p(place)] for q, place in leg.places if place]
        passengers, count = groups.write([answers[t.position] for t in part.travellers])
        ref = _p(part.message.ref) or "1"
        unt: Seg = ["UNT", str(len(body) + count + 2), ref]
        messages.append(
            _write([_unh(ref, head), *body], seps, una=False)
            + passengers
            + _write([unt], seps, una=False)
        )
    return _envelope(ic, messages, control_ref=ic.control_ref, stamp=stamp, hub_id=hub_id)


class _PassengerGroups:
    """The passengers' ERP+2 groups of a CUSRES, written as text: the same text as
    :func:`~rmas.iapi.syntax.write_segments` gives for ``["ERP", "2"]``, ``["RFF", ["AVF",
    ref]]``, ``["RFF", ["ABO", ref]]``, ``["ERC", code]``, ``["FTX", "AAP", "", "", text]``, with
    the constant segments written once per directive rather than once per passenger (a flight
    has hundreds of passengers and four directives)."""

    def __init__(self, codes: CusresCodes, syntax: str, seps: Separators) -> None:
        self.codes = codes
        self.syntax = syntax
        self.seps = seps
        self.escape = escaper(seps)
        self.erp = _write([["ERP", "2"]], seps, una=False)
        self.avf = _write([["RFF", ["AVF"]]], seps, una=False)[: -len(seps.segment)]
        self.abo = _write([["RFF", ["ABO"]]], seps, una=False)[: -len(seps.segment)]
        self.tails: dict[tuple[Directive, bool], str] = {}

    def _tail(self, directive: Directive, unchecked: bool) -> str:
        code, text = self.codes.for_directive(directive, unchecked=unchecked)
        tail = _write(
            [["ERC", code], ["FTX", "AAP", "", "", fit_text(text, self.syntax)]],
            self.seps,
            una=False,
        )
        self.tails[(directive, unchecked)] = tail
        return tail

    def write(self, answers: list[Answered]) -> tuple[str, int]:
        """The groups' text and how many segments it holds."""
        out: list[str] = []
        append = out.append
        escape, term, comp = self.escape, self.seps.segment, self.seps.component
        tails = self.tails
        count = 3 * len(answers)
        for p in answers:
            append(self.erp)
            if p.booking_ref:
                ref = escape(_p(p.booking_ref))
                append(f"{self.avf}{comp}{ref}{term}" if ref else f"{self.avf}{term}")
                count += 1
            if p.passenger_ref:
                ref = escape(_p(p.passenger_ref))
                append(f"{self.abo}{comp}{ref}{term}" if ref else f"{self.abo}{term}")
                count += 1
            key = (p.directive, p.unchecked)
            append(tails[key] if key in tails else self._tail(*key))
        return "".join(out), count


def write_error_cusres(
    request: Interchange | None,
    *,
    error: tuple[str, str],
    detail: str,
    transaction_ref: str,
    control_ref: str,
    stamp: tuple[str, str],
    hub_id: str = "RMAS",
    header: ErrorHeader | None = None,
) -> str:
    """A CUSRES carrying only a message-level error (ERP+1), e.g. when the PAXLST is unreadable.

    It echoes what could be read of the request (``header``: its UNH references and RFF+TN); the
    text quotes the airline's own bytes, fitted to the character set and bounded."""
    head = header or ErrorHeader()
    if not head.transaction_ref:
        head = ErrorHeader(head.message_ref, head.common_access_ref, head.sequence, transaction_ref)
    code, text = error
    syntax = request.syntax if request else "UNOA"
    body: list[Seg] = [
        ["BGM", "962"],
        ["RFF", ["TN", _p(head.transaction_ref)]],
        ["ERP", "1"],
        ["ERC", code],
        ["FTX", "AAP", "", "", fit_text(f"{text}: {detail}", syntax)],
    ]
    msg = _message(head.message_ref or "1", head, body)
    return _envelope(request, [msg], control_ref=control_ref, stamp=stamp, hub_id=hub_id)


def read_cusres(data: bytes | str) -> ReadCusres:
    """Read a CUSRES back (tests, the CLI): raises EdifactError when it is not well formed."""
    ic = parse_interchange(data)
    all_passengers: list[tuple[str, str, str, str]] = []
    all_errors: list[tuple[str, str]] = []
    messages: list[ReadMessage] = []
    for msg in ic.messages:
        passengers: list[tuple[str, str, str, str]] = []
        errors: list[tuple[str, str]] = []
        legs: list[ReadLeg] = []
        tn = ""
        cur: dict[str, str] | None = None
        level = ""
        for seg in msg.segments:
            if seg.tag == "RFF" and cur is None:
                if seg.get(1, 0) == "TN":
                    tn = seg.get(1, 1)
                elif seg.get(1, 0) == "AF":
                    legs.append(ReadLeg(seg.get(1, 1), (), ()))
            elif seg.tag == "DTM" and cur is None and legs:
                last = legs[-1]
                legs[-1] = ReadLeg(
                    last.flight, (*last.times, (seg.get(1, 0), seg.get(1, 1))), last.places
                )
            elif seg.tag == "LOC" and cur is None and legs:
                last = legs[-1]
                legs[-1] = ReadLeg(
                    last.flight, last.times, (*last.places, (seg.get(1), seg.get(2)))
                )
            elif seg.tag == "ERP":
                _flush(cur, level, passengers, errors)
                level = seg.get(1)
                cur = {}
            elif cur is not None and seg.tag == "RFF":
                cur[seg.get(1, 0)] = seg.get(1, 1)
            elif cur is not None and seg.tag == "ERC":
                cur["ERC"] = seg.get(1)
            elif cur is not None and seg.tag == "FTX":
                cur["FTX"] = seg.get(4)
        _flush(cur, level, passengers, errors)
        messages.append(
            ReadMessage(
                msg.ref, msg.common_access_ref, tn, tuple(legs), tuple(passengers), tuple(errors)
            )
        )
        all_passengers += passengers
        all_errors += errors
    first = messages[0] if messages else None
    return ReadCusres(
        ic.control_ref,
        first.transaction_ref if first else "",
        first.legs[0].flight if first and first.legs else "",
        tuple(all_passengers),
        tuple(all_errors),
        ic.application_ref,
        tuple(messages),
    )


def _flush(
    cur: dict[str, str] | None,
    level: str,
    passengers: list[tuple[str, str, str, str]],
    errors: list[tuple[str, str]],
) -> None:
    if cur is None:
        return
    if level == "1":
        errors.append((cur.get("ERC", ""), cur.get("FTX", "")))
    else:
        passengers.append(
            (cur.get("AVF", ""), cur.get("ABO", ""), cur.get("ERC", ""), cur.get("FTX", ""))
        )


def write_status_change(
    change: StatusChange,
    *,
    stamp: tuple[str, str],
    codes: CusresCodes | None = None,
    hub_id: str = "RMAS",
) -> str:
    """An unsolicited CUSRES telling the airline a passenger's new directive (``BGM+132``).

    Addressed back the way the flight's PAXLST came (UNB sender and recipient swapped, its
    syntax level, application reference ``IAPI``); the change id is the interchange control
    reference, the message reference and ``RFF+TN`` (which the airline's ``BGM+312``
    acknowledgment echoes). Then the flight group as the PAXLST sent its legs, and one ``ERP+2``
    passenger group: ``RFF+AVF`` / ``RFF+ABO`` echoed, ``ERC`` and ``FTX+AAP``."""
    c = codes or CusresCodes()
    ref = _p(change.change_id)[:14] or "0"
    syntax = change.syntax or "UNOA"
    body: list[Seg] = [["BGM", "132"], ["RFF", ["TN", ref]]]
    for leg in change.legs:
        if leg.number:
            body.append(["RFF", ["AF", _p(leg.number)]])
        body += [["DTM", [q, _p(value), _p(fmt)]] for q, value, fmt in leg.times]
        body += [["LOC", q, _p(place)] for q, place in leg.places if place]
    code, text = c.for_directive(change.directive, unchecked=change.unchecked)
    body.append(["ERP", "2"])
    if change.booking_ref:
        body.append(["RFF", ["AVF", _p(change.booking_ref)]])
    if change.passenger_ref:
        body.append(["RFF", ["ABO", _p(change.passenger_ref)]])
    body += [["ERC", code], ["FTX", "AAP", "", "", fit_text(text, syntax)]]
    segs: list[Seg] = [
        [
            "UNB",
            [syntax, "4"],
            [_p(change.recipient) or hub_id],
            [_p(change.sender) or "UNKNOWN"],
            list(stamp),
            ref,
            "",
            "IAPI",
        ],
        *_message(ref, ErrorHeader(), body),
        ["UNZ", "1", ref],
    ]
    return _write(segs, DEFAULT_SEPARATORS, una=True)


def read_acknowledgment(data: bytes | str) -> list[str] | None:
    """The status changes an airline's CUSRES ``BGM+312`` acknowledges (each message's
    ``RFF+TN``); None when the interchange is not a CUSRES (a PAXLST, say). Raises EdifactError
    when it is a CUSRES but not a readable acknowledgment."""
    ic = parse_interchange(data)
    if not ic.messages or ic.messages[0].type != "CUSRES":
        return None
    ids: list[str] = []
    for msg in ic.messages:
        if msg.type != "CUSRES":
            raise msg.segments[0].error(f"message type {quote(msg.type)} is not CUSRES", 2, 1)
        bgm = next((s for s in msg.segments if s.tag == "BGM"), None)
        if bgm is None or bgm.get(1) != "312":
            seg = bgm or msg.segments[0]
            raise seg.error("a CUSRES sent to the hub must be an acknowledgment (BGM+312)", 1, 1)
        tn = [s.get(1, 1) for s in msg.segments if s.tag == "RFF" and s.get(1, 0) == "TN"]
        if not tn or not tn[0]:
            raise bgm.error("the acknowledgment names no status change (RFF+TN)", 1, 1)
        ids += [t for t in tn if t]
    if not ids:
        raise EdifactError("the acknowledgment names no status change", segment=1, tag="UNB")
    return ids
