"""CUSRES: the authority's answer to an interactive API PAXLST, one directive per passenger.

Per passenger: ``ERP+2``, ``RFF+AVF`` / ``RFF+ABO`` (the airline's own references, echoed), ``ERC``
(the directive code) and ``FTX+AAP`` (its text). Message-level problems (a syntax error, a time-out)
are ``ERP+1`` with their own ERC code. The airline learns directives only: never a status, never
which economy or database reported a document.

Confirmed codes: ``0Z`` OK TO BOARD, ``1Z`` NO BOARD. The codes for CONTACT_AUTHORITY and
INSUFFICIENT_DATA, and the message-level codes, are defined in guides we could not read: the
defaults below are placeholders chosen to be distinct, and every one is configurable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rmas.iapi.syntax import DEFAULT_SEPARATORS, Interchange, Separators, parse_interchange
from rmas.iapi.syntax import write_segments as _write
from rmas.verdict import Directive

__all__ = ["CusresCodes", "PassengerAnswer", "read_cusres", "write_cusres", "write_error_cusres"]


@dataclass(frozen=True, slots=True)
class CusresCodes:
    """ERC codes and FTX texts. Only ``0Z`` and ``1Z`` are confirmed by published guides."""

    ok_to_board: tuple[str, str] = ("0Z", "OK TO BOARD")
    do_not_board: tuple[str, str] = ("1Z", "NO BOARD")
    #: Not confirmed: configure to the receiving airline's implementation guide.
    contact_authority: tuple[str, str] = ("2Z", "CONTACT AUTHORITY")
    #: Not confirmed: configure to the receiving airline's implementation guide.
    insufficient_data: tuple[str, str] = ("4Z", "INSUFFICIENT DATA")
    #: Message level (ERP+1). Not confirmed.
    syntax_error: tuple[str, str] = ("SY", "MESSAGE REJECTED: SYNTAX ERROR")
    timeout: tuple[str, str] = ("TO", "NO ANSWER IN TIME: CONTACT AUTHORITY")
    system_error: tuple[str, str] = ("SE", "SYSTEM ERROR: CONTACT AUTHORITY")

    def for_directive(self, d: Directive) -> tuple[str, str]:
        return {
            Directive.OK_TO_BOARD: self.ok_to_board,
            Directive.DO_NOT_BOARD: self.do_not_board,
            Directive.CONTACT_AUTHORITY: self.contact_authority,
            Directive.INSUFFICIENT_DATA: self.insufficient_data,
        }[d]


@dataclass(frozen=True, slots=True)
class PassengerAnswer:
    booking_ref: str
    passenger_ref: str
    directive: Directive


@dataclass(frozen=True, slots=True)
class ReadCusres:
    """A CUSRES read back: per passenger (AVF, ABO, ERC, text) and message-level errors."""

    control_ref: str
    transaction_ref: str
    flight: str
    passengers: tuple[tuple[str, str, str, str], ...]
    errors: tuple[tuple[str, str], ...]


def _envelope_open(
    request: Interchange | None, control_ref: str, stamp: tuple[str, str], hub_id: str
) -> tuple[list[list[str | list[str]]], bool, str]:
    sender = request.recipient if request and request.recipient else hub_id
    recipient = request.sender if request and request.sender else "UNKNOWN"
    syntax = request.syntax if request else "UNOA"
    version = (request.syntax_version if request else "") or "4"
    segs: list[list[str | list[str]]] = [
        ["UNB", [syntax, version], [sender, request.recipient_qualifier if request else ""],
         [recipient, request.sender_qualifier if request else ""], list(stamp), control_ref],
    ]  # fmt: skip
    grouped = bool(request and request.groups)
    if grouped:
        segs.append(["UNG", "CUSRES", sender, recipient, list(stamp), control_ref, "UN",
                     ["D", "05B"]])  # fmt: skip
    return segs, grouped, sender


def _finish(
    segs: list[list[str | list[str]]],
    *,
    body: list[list[str | list[str]]],
    grouped: bool,
    control_ref: str,
    msg_ref: str,
    seps: Separators,
) -> str:
    segs.append(["UNH", msg_ref, ["CUSRES", "D", "05B", "UN", "IATA"]])
    segs.extend(body)
    segs.append(["UNT", str(len(body) + 2), msg_ref])
    if grouped:
        segs.append(["UNE", "1", control_ref])
    segs.append(["UNZ", "1", control_ref])
    return _write(segs, seps)


def write_cusres(
    request: Interchange,
    *,
    flight: str,
    legs: Sequence[tuple[str, str]],
    passengers: Sequence[PassengerAnswer],
    transaction_ref: str,
    control_ref: str,
    stamp: tuple[str, str],
    codes: CusresCodes | None = None,
    hub_id: str = "RMAS",
) -> str:
    """A CUSRES answering ``request``, with the request's separators; deterministic in its inputs.

    ``legs``: (LOC qualifier, place) pairs, e.g. ("125", "AKL"); ``stamp``: (YYMMDD, HHMM).
    """
    c = codes or CusresCodes()
    segs, grouped, _ = _envelope_open(request, control_ref, stamp, hub_id)
    body: list[list[str | list[str]]] = [
        ["BGM", "962"],
        ["RFF", ["TN", transaction_ref]],
        ["RFF", ["AF", flight]],
    ]
    body += [["LOC", q, place] for q, place in legs if place]
    for p in passengers:
        code, text = c.for_directive(p.directive)
        body.append(["ERP", "2"])
        if p.booking_ref:
            body.append(["RFF", ["AVF", p.booking_ref]])
        if p.passenger_ref:
            body.append(["RFF", ["ABO", p.passenger_ref]])
        body.append(["ERC", code])
        body.append(["FTX", "AAP", "", "", text])
    return _finish(segs, body=body, grouped=grouped, control_ref=control_ref, msg_ref="1",
                   seps=request.separators)  # fmt: skip


def write_error_cusres(
    request: Interchange | None,
    *,
    error: tuple[str, str],
    detail: str,
    transaction_ref: str,
    control_ref: str,
    stamp: tuple[str, str],
    hub_id: str = "RMAS",
) -> str:
    """A CUSRES carrying only a message-level error (ERP+1), e.g. when the PAXLST is unreadable."""
    seps = request.separators if request else DEFAULT_SEPARATORS
    segs, grouped, _ = _envelope_open(request, control_ref, stamp, hub_id)
    code, text = error
    # The detail quotes the airline's own bytes; keep it to printable ASCII, which every syntax
    # level (UNOA and up) can carry, so that encoding never introduces a stray release character.
    detail = "".join(c if " " <= c <= "~" else "." for c in detail)
    body: list[list[str | list[str]]] = [
        ["BGM", "962"],
        ["RFF", ["TN", transaction_ref]],
        ["ERP", "1"],
        ["ERC", code],
        ["FTX", "AAP", "", "", f"{text}: {detail}"[:350]],
    ]
    return _finish(segs, body=body, grouped=grouped, control_ref=control_ref, msg_ref="1",
                   seps=seps)  # fmt: skip


def read_cusres(data: bytes | str) -> ReadCusres:
    """Read a CUSRES back (tests, the CLI): raises EdifactError when it is not well formed."""
    ic = parse_interchange(data)
    passengers: list[tuple[str, str, str, str]] = []
    errors: list[tuple[str, str]] = []
    tn = flight = ""
    for msg in ic.messages:
        cur: dict[str, str] | None = None
        level = ""
        for seg in msg.segments:
            if seg.tag == "RFF" and cur is None:
                if seg.get(1, 0) == "TN":
                    tn = seg.get(1, 1)
                elif seg.get(1, 0) == "AF":
                    flight = seg.get(1, 1)
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
    return ReadCusres(ic.control_ref, tn, flight, tuple(passengers), tuple(errors))


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
