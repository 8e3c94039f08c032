"""A departure-control system's side of the interactive API, as a test client.

It does what a DCS does with an authority's answer, reading both messages with an independent
EDIFACT parser (pydifact, not rmas's own reader): it sends a PAXLST, matches the CUSRES to its
request by the interchange control reference, each message by its UNH reference and ``RFF+TN``,
requires each flight group's ``DTM+189`` and ``DTM+232``, and applies each passenger's code (a
message-level ``ERP+1`` applies to every passenger of the message). Anything it cannot match or
does not know is a failure, as it would be for the airline.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import grpc
from pydifact.segmentcollection import Interchange
from pydifact.segments import Segment

from rmas.v1 import check_pb2, check_pb2_grpc

#: What the DCS does with each code (docs/airline.md's table).
ACTIONS = {"0Z": "BOARD", "1Z": "NO BOARD", "2Z": "CONTACT", "4Z": "INSUFFICIENT"}
PASSENGER_NADS = {"FL", "FM", "DDT", "DDU", "COT"}


class DcsRejects(AssertionError):
    """The answer is not one the DCS can apply."""


@dataclass
class SentMessage:
    ref: str
    transaction_ref: str
    flights: list[str] = field(default_factory=list)
    passengers: list[str] = field(default_factory=list)  # RFF+ABO (or AVF) in order


@dataclass
class Applied:
    """The DCS's state after applying one answer."""

    actions: dict[str, str]  # passenger ref -> BOARD, NO BOARD, CONTACT, INSUFFICIENT, REJECTED
    texts: dict[str, str]
    flights: list[tuple[str, str, str]]  # (flight, DTM+189, DTM+232) per flight group


def _read(data: bytes) -> Interchange:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Interchange.from_str(data.decode("latin-1"))


def _value(seg: Segment, i: int, j: int = 0) -> str:
    try:
        e = seg.elements[i]
    except IndexError:
        return ""
    if isinstance(e, list):
        return str(e[j]) if j < len(e) else ""
    return str(e) if j == 0 else ""


def _messages(ic: Interchange) -> list[list[Segment]]:
    out: list[list[Segment]] = []
    cur: list[Segment] | None = None
    for seg in ic.segments:
        if seg.tag == "UNH":
            cur = [seg]
        elif cur is not None:
            cur.append(seg)
            if seg.tag == "UNT":
                out.append(cur)
                cur = None
    return out


def sent(paxlst: bytes) -> tuple[str, list[SentMessage]]:
    """What the DCS remembers of a request: control reference, and per message its references
    and its passengers."""
    end = paxlst.rfind(b"UNZ+")
    ic = _read(paxlst[: paxlst.index(b"'", end) + 1] if end >= 0 else paxlst)  # no carrier trailer
    msgs = []
    for segs in _messages(ic):
        m = SentMessage(_value(segs[0], 0), "")
        in_pax = False
        for seg in segs:
            if seg.tag == "RFF" and _value(seg, 0, 0) == "TN" and not in_pax:
                m.transaction_ref = _value(seg, 0, 1)
            elif seg.tag == "TDT":
                m.flights.append(_value(seg, 1))
            elif seg.tag == "NAD" and _value(seg, 0) in PASSENGER_NADS:
                in_pax = True
                m.passengers.append("")
            elif seg.tag == "RFF" and in_pax:
                q = _value(seg, 0, 0)
                if q == "ABO" or (q == "AVF" and not m.passengers[-1]):
                    m.passengers[-1] = _value(seg, 0, 1)
        msgs.append(m)
    return str(ic.control_reference), msgs


def apply(paxlst: bytes, cusres: bytes) -> Applied:
    """Apply ``cusres`` as the answer to ``paxlst``; raise DcsRejects when it cannot be."""
    control, requests = sent(paxlst)
    answer = _read(cusres)
    if str(answer.control_reference) != control:
        raise DcsRejects(f"interchange {answer.control_reference} answers no request of ours")
    by_ref = {m.ref: m for m in requests}
    actions: dict[str, str] = {}
    texts: dict[str, str] = {}
    flights: list[tuple[str, str, str]] = []
    for segs in _messages(answer):
        ref = _value(segs[0], 0)
        if _value(segs[0], 1, 0) != "CUSRES":
            raise DcsRejects(f"message {ref} is not a CUSRES")
        request = by_ref.get(ref)
        if request is None:
            raise DcsRejects(f"message {ref} answers no message of ours")
        tn = next((_value(s, 0, 1) for s in segs if s.tag == "RFF" and _value(s, 0, 0) == "TN"), "")
        if request.transaction_ref and tn != request.transaction_ref:
            raise DcsRejects(f"RFF+TN {tn!r} is not our {request.transaction_ref!r}")
        group: list[str] | None = None
        header_code = ""
        pax_groups: list[dict[str, str]] = []
        level = ""
        for seg in segs[1:-1]:
            if seg.tag == "RFF" and _value(seg, 0, 0) == "AF" and not level:
                if group is not None:
                    flights.append((group[0], group[1], group[2]))
                group = [_value(seg, 0, 1), "", ""]
            elif seg.tag == "DTM" and group is not None and not level:
                q = _value(seg, 0, 0)
                if q in ("189", "232"):
                    group[1 if q == "189" else 2] = _value(seg, 0, 1)
            elif seg.tag == "ERP":
                level = _value(seg, 0)
                if level == "2":
                    pax_groups.append({})
            elif seg.tag == "ERC" and level == "1":
                header_code = _value(seg, 0)
            elif level == "2" and pax_groups:
                if seg.tag == "RFF":
                    pax_groups[-1][_value(seg, 0, 0)] = _value(seg, 0, 1)
                elif seg.tag == "ERC":
                    pax_groups[-1]["ERC"] = _value(seg, 0)
                elif seg.tag == "FTX":
                    pax_groups[-1]["FTX"] = _value(seg, 3)
        if group is not None:
            flights.append((group[0], group[1], group[2]))
        if header_code:
            if header_code != "0":
                for p in request.passengers:
                    actions[p] = "REJECTED"
            continue
        for f, dep, arr in flights:
            if not (dep and arr):
                raise DcsRejects(f"flight group {f} lacks DTM+189 or DTM+232")
        for g in pax_groups:
            who = g.get("ABO") or g.get("AVF", "")
            if who not in request.passengers:
                raise DcsRejects(f"passenger {who!r} is not in message {ref}")
            if g.get("ERC") not in ACTIONS:
                raise DcsRejects(f"unknown code {g.get('ERC')!r} for {who}")
            actions[who] = ACTIONS[g["ERC"]]
            texts[who] = g.get("FTX", "")
        missing = [p for p in request.passengers if p not in actions]
        if missing:
            raise DcsRejects(f"no answer for passengers {missing}")
    return Applied(actions, texts, flights)


async def send(
    target: str, paxlst: bytes, creds: grpc.ChannelCredentials | None = None
) -> tuple[check_pb2.CheckPaxlstResponse, Applied]:
    """Send a PAXLST to a hub and apply its CUSRES."""
    ch = (
        grpc.aio.secure_channel(target, creds)
        if creds is not None
        else grpc.aio.insecure_channel(target)
    )
    async with ch:
        resp: check_pb2.CheckPaxlstResponse = await check_pb2_grpc.DocumentCheckStub(
            ch
        ).CheckPaxlst(check_pb2.CheckPaxlstRequest(message=paxlst), timeout=10)
    return resp, apply(paxlst, resp.cusres)
