"""PAXLST (passenger and crew lists, directories D:02B and D:05B) into manifests.

Structure followed (WCO/IATA/ICAO API guidelines, PAXLST implementation guide v3.0): BGM (745
passenger list, 250 crew list), NAD+MS reporting party, TDT flight, LOC/DTM legs (LOC+125 departure
airport, LOC+87 arrival airport, DTM+189 departure, DTM+232 arrival), then per traveller a group
starting at NAD: FL passenger, FM crew member, DDT/DDU passengers and COT crew in transit; ATT+2
sex, DTM+329 date of birth, NAT+2 nationality, RFF (AVF booking reference, ABO passenger reference,
SEA seat), and per document a group starting at DOC (``DOC+P:110:111+number``) with DTM+36 expiry
and LOC+91 issuing state; a traveller may carry several documents. CNT+42 gives the number of
travellers and is checked.

A traveller with missing or malformed data is kept, with its problems, so that it is answered
INSUFFICIENT_DATA while the others are checked. Message-level faults (envelope, counts) raise
:class:`~rmas.iapi.syntax.EdifactError`. Segments this reader does not use are ignored.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from rmas.documents import yymmdd
from rmas.errors import FieldViolation
from rmas.iapi.syntax import EdifactError, Interchange, Message, Segment, parse_interchange
from rmas.states import to_alpha3

__all__ = ["Document", "Flight", "Manifest", "Traveller", "read_paxlst"]

# Segments of PAXLST D:02B/D:05B; anything else inside a message is ignored with a warning.
KNOWN_TAGS = frozenset({"BGM", "NAD", "COM", "TDT", "LOC", "DTM", "ATT", "GEI", "FTX", "MEA",
                        "NAT", "RFF", "DOC", "CPI", "QTY", "FII", "CNT", "EMP", "TOD"})  # fmt: skip
PASSENGER_QUALIFIERS = {"FL": False, "DDT": False, "DDU": False, "FM": True, "COT": True}


@dataclass(slots=True)
class Document:
    type_code: str = ""
    number: str = ""
    expiry_date: str = ""  # ISO 8601, "" when absent
    issuing_state: str = ""
    segment: int = 0


@dataclass(slots=True)
class Traveller:
    """One NAD group. ``position`` is 1-based within the interchange."""

    position: int
    crew: bool
    qualifier: str
    surname: str = ""
    given_names: str = ""
    sex: str = ""
    birth_date: str = ""
    nationality: str = ""
    booking_ref: str = ""  # RFF+AVF
    passenger_ref: str = ""  # RFF+ABO
    seat: str = ""  # RFF+SEA
    documents: list[Document] = field(default_factory=list)
    problems: list[FieldViolation] = field(default_factory=list)
    segment: int = 0


@dataclass(slots=True)
class Flight:
    carrier: str = ""
    number: str = ""  # as TDT gives it, e.g. QF35
    departure_airport: str = ""
    arrival_airport: str = ""
    departure_time: str = ""  # ISO 8601 when given
    arrival_time: str = ""


@dataclass(slots=True)
class Manifest:
    interchange: Interchange
    message_type: str  # "745" passengers, "250" crew
    reporting_party: str
    flight: Flight
    travellers: list[Traveller]
    warnings: list[str]


def _date(raw: str, kind: str, today: dt.date) -> str:
    """YYMMDD or CCYYMMDD to ISO; raises ValueError."""
    if len(raw) == 8 and raw.isdigit():
        return dt.date(int(raw[:4]), int(raw[4:6]), int(raw[6:])).isoformat()
    return yymmdd(raw, kind, today).isoformat()


def _datetime(raw: str) -> str:
    """YYMMDDHHMM (format 201) or CCYYMMDDHHMM to ISO 8601 minutes; "" when unreadable."""
    try:
        if len(raw) == 10:
            return dt.datetime.strptime(raw, "%y%m%d%H%M").isoformat(timespec="minutes")
        if len(raw) == 12:
            return dt.datetime.strptime(raw, "%Y%m%d%H%M").isoformat(timespec="minutes")
    except ValueError:
        return ""
    return ""


def read_paxlst(data: bytes | str, *, today: dt.date | None = None) -> Manifest:
    """A manifest from a PAXLST interchange; raises EdifactError for message-level faults."""
    day = today or dt.date.today()
    ic = parse_interchange(data)
    if not ic.messages:
        raise EdifactError("the interchange holds no message", segment=1, tag="UNB")
    travellers: list[Traveller] = []
    flight = Flight()
    warnings: list[str] = []
    message_type = ""
    reporting = ""
    for msg in ic.messages:
        if msg.type != "PAXLST":
            raise msg.segments[0].error(f"message type {msg.type!r} is not PAXLST", 2, 1)
        if msg.version not in ("D",) or msg.release not in ("02B", "05B"):
            warnings.append(
                f"message {msg.ref}: directory {msg.version}:{msg.release} (expected D:02B or "
                "D:05B); read as D:05B"
            )
        mtype, party = _read_message(msg, flight, travellers, warnings, day)
        message_type = message_type or mtype
        reporting = reporting or party
    _check_counts(ic, travellers)
    return Manifest(ic, message_type, reporting, flight, travellers, warnings)


def _check_counts(ic: Interchange, travellers: list[Traveller]) -> None:
    """CNT+42 must match the travellers of its message (or, in a manifest split over several
    messages, the interchange's total)."""
    total = len(travellers)
    for msg in ic.messages:
        in_msg = sum(1 for s in msg.segments if s.tag == "NAD" and s.get(1) in PASSENGER_QUALIFIERS)
        for seg in msg.segments:
            if seg.tag == "CNT" and seg.get(1, 0) == "42":
                raw = seg.get(1, 1)
                if not raw.isdigit():
                    raise seg.error(f"traveller count {raw!r} is not a number", 1, 2)
                if int(raw) not in (in_msg, total):
                    raise seg.error(
                        f"CNT+42 declares {raw} travellers; the message holds {in_msg}", 1, 2
                    )


def _read_message(
    msg: Message,
    flight: Flight,
    travellers: list[Traveller],
    warnings: list[str],
    today: dt.date,
) -> tuple[str, str]:
    mtype = ""
    party = ""
    trav: Traveller | None = None
    doc: Document | None = None
    for seg in msg.segments[1:-1]:
        tag = seg.tag
        if tag == "BGM":
            mtype = seg.get(1)
            if mtype not in ("745", "250", "266"):
                warnings.append(f"segment {seg.number}: BGM document code {mtype!r} unexpected")
        elif tag == "NAD":
            q = seg.get(1)
            if q == "MS":
                party = seg.get(4, 0) or seg.get(2, 0)
                continue
            if q not in PASSENGER_QUALIFIERS:
                continue
            trav = Traveller(
                position=len(travellers) + 1, crew=PASSENGER_QUALIFIERS[q], qualifier=q,
                surname=seg.get(4, 0), given_names=" ".join(
                    x for x in (seg.get(4, 1), seg.get(4, 2)) if x),
                segment=seg.number,
            )  # fmt: skip
            if not trav.surname:
                trav.problems.append(_v(trav, "surname", "NAD has no surname", seg))
            travellers.append(trav)
            doc = None
        elif trav is None:
            _header(seg, flight, tag)
        elif tag == "ATT" and seg.get(1) == "2":
            sex = seg.get(3, 0).upper()
            trav.sex = {"M": "M", "F": "F", "U": "X", "X": "X"}.get(sex, "")
            if not trav.sex:
                trav.problems.append(_v(trav, "sex", f"ATT sex {sex!r} is not M, F, U or X", seg))
        elif tag == "DTM":
            q = seg.get(1, 0)
            raw = seg.get(1, 1)
            try:
                if q == "329":
                    trav.birth_date = _date(raw, "birth", today)
                elif q == "36" and doc is not None:
                    doc.expiry_date = _date(raw, "expiry", today)
            except ValueError as exc:
                what = "birth_date" if q == "329" else "expiry_date"
                trav.problems.append(_v(trav, what, f"DTM+{q}: {exc}", seg))
        elif tag == "NAT" and seg.get(1) == "2":
            code = seg.get(2)
            nat = to_alpha3(code) if code else None
            if nat is None:
                trav.problems.append(_v(trav, "nationality", f"unknown code {code!r}", seg))
            else:
                trav.nationality = nat
        elif tag == "RFF":
            q, value = seg.get(1, 0), seg.get(1, 1)
            if q == "AVF":
                trav.booking_ref = value
            elif q == "ABO":
                trav.passenger_ref = value
            elif q == "SEA":
                trav.seat = value
        elif tag == "DOC":
            # The DOC code as sent: rmas.documents.DocumentType.from_code reads it (one table).
            doc = Document(seg.get(1, 0).upper(), seg.get(2), segment=seg.number)
            trav.documents.append(doc)
        elif tag == "LOC" and seg.get(1) == "91":
            code = seg.get(2)
            state = to_alpha3(code) if code else None
            if doc is None:
                trav.problems.append(_v(trav, "issuing_state", "LOC+91 before any DOC", seg))
            elif state is None:
                doc.issuing_state = ""
                trav.problems.append(
                    _v(trav, f"documents[{len(trav.documents) - 1}].issuing_state",
                       f"unknown state code {code!r}", seg)
                )  # fmt: skip
            else:
                doc.issuing_state = state
        elif tag == "CNT":
            trav = None
        elif tag not in KNOWN_TAGS:
            warnings.append(f"segment {seg.number}: unknown segment {tag} ignored")
    return mtype, party


def _header(seg: Segment, flight: Flight, tag: str) -> None:
    if tag == "TDT" and seg.get(1) == "20":
        flight.number = seg.get(2)
        flight.carrier = seg.get(5, 0) or seg.get(8, 0) or flight.number[:2]
    elif tag == "LOC":
        q, place = seg.get(1), seg.get(2)
        if q == "125" and not flight.departure_airport:
            flight.departure_airport = place
        elif q == "87":
            flight.arrival_airport = place
    elif tag == "DTM":
        q, raw = seg.get(1, 0), seg.get(1, 1)
        if q == "189" and not flight.departure_time:
            flight.departure_time = _datetime(raw)
        elif q == "232":
            flight.arrival_time = _datetime(raw)


def _v(trav: Traveller, name: str, description: str, seg: Segment) -> FieldViolation:
    return FieldViolation(
        f"travellers[{trav.position - 1}].{name}",
        f"{description} (segment {seg.number}, {seg.tag})",
    )
