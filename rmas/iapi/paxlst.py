"""PAXLST (passenger and crew lists, directories D:02B and D:05B) into manifests.

Structure followed (WCO/IATA/ICAO API guidelines, PAXLST implementation guide v3.0): BGM (745
passenger list, 250 crew list), RFF+TN the sender's transaction reference (echoed in the CUSRES),
NAD+MS reporting party, then one or more legs: TDT+20 flight, each followed by its own LOC/DTM
(LOC+125 departure airport, LOC+87 arrival airport, LOC+92 a stop of a progressive flight, DTM+189
departure, DTM+232 arrival); then per traveller a group starting at NAD: FL passenger, FM crew
member, DDT/DDU passengers and COT crew in transit; ATT+2 sex, DTM+329 date of birth, NAT+2
nationality, RFF (AVF booking reference, ABO passenger reference, SEA seat), and per document a
group starting at DOC (``DOC+P:110:111+number``) with DTM+36 expiry and LOC+91 issuing state; a
traveller may carry several documents. CNT+42 gives the number of travellers.

Each UNH..UNT message is a :class:`Part`: a DCS splits a large flight into parts (UNH sequence
``01:C``, ``02:C`` ... ``NN:F``) and writes the whole flight's total in every part's CNT+42, so a
part's count is checked as the flight total (at least the part's travellers; equal to the sum of
the parts when all of them are in the interchange; across interchanges, see
:mod:`rmas.iapi.channel`). A single message (no sequence, or ``01:F``) must count its own
travellers (or, in an interchange of several messages, all of them).

Bad data stays where it is: a malformed DTM+36 or an empty or unknown LOC+91 is that document's
problem (the traveller's other documents are still checked); a traveller-level fault (no surname,
a malformed birth date...) is the traveller's. Message-level faults (envelope, counts, an
over-long RFF+TN) raise :class:`~rmas.iapi.syntax.EdifactError`. Segments this reader does not use
are ignored. ``DOC`` codes are passed through as they are: :mod:`rmas.documents` decides the type.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from rmas.documents import yymmdd
from rmas.errors import FieldViolation
from rmas.iapi.steps import STEP, Steps, finish
from rmas.iapi.syntax import (
    EdifactError,
    Interchange,
    Message,
    Segment,
    count_value,
    parse_interchange_steps,
    quote,
)
from rmas.states import to_alpha3

__all__ = [
    "Document",
    "Flight",
    "Leg",
    "Manifest",
    "Part",
    "Traveller",
    "read_paxlst",
    "read_paxlst_steps",
]

# Segments of PAXLST D:02B/D:05B; anything else inside a message is ignored with a warning.
KNOWN_TAGS = frozenset({"BGM", "NAD", "COM", "TDT", "LOC", "DTM", "ATT", "GEI", "FTX", "MEA",
                        "NAT", "RFF", "DOC", "CPI", "QTY", "FII", "CNT", "EMP", "TOD"})  # fmt: skip
PASSENGER_QUALIFIERS = {"FL": False, "DDT": False, "DDU": False, "FM": True, "COT": True}
#: Longest reference echoed (RFF 1154 is an..70 in D:05B): a longer one is a fault, not echoed.
MAX_REF = 70
#: LOC qualifiers of a leg: departure, arrival, and the stops of a progressive flight.
LEG_PLACES = frozenset({"125", "87", "92"})
#: DTM qualifiers of a leg: departure and arrival date/time.
LEG_TIMES = frozenset({"189", "232"})


@dataclass(slots=True)
class Document:
    #: The DOC code as sent (P, V, I, C, A, VS, IP...): rmas.documents decides the type.
    type_code: str = ""
    number: str = ""
    expiry_date: dt.date | None = None  # handed to validation as read, never as text
    issuing_state: str = ""
    segment: int = 0
    #: Whether a LOC+91 was given for it (a visa's issuer is often implied).
    issuer_given: bool = False
    #: This document's own faults: they leave it unchecked, not the traveller's other documents.
    problems: list[FieldViolation] = field(default_factory=list)


@dataclass(slots=True)
class Traveller:
    """One NAD group. ``position`` is 1-based within the interchange."""

    position: int
    crew: bool
    qualifier: str
    surname: str = ""
    given_names: str = ""
    sex: str = ""
    birth_date: dt.date | None = None
    nationality: str = ""
    booking_ref: str = ""  # RFF+AVF
    passenger_ref: str = ""  # RFF+ABO
    seat: str = ""  # RFF+SEA
    documents: list[Document] = field(default_factory=list)
    problems: list[FieldViolation] = field(default_factory=list)
    segment: int = 0


@dataclass(slots=True)
class Flight:
    """A summary of a manifest's flight: its first leg's number, first departure, last arrival."""

    carrier: str = ""
    number: str = ""  # as TDT gives it, e.g. QF35
    departure_airport: str = ""
    arrival_airport: str = ""
    departure_time: str = ""  # ISO 8601 when given
    arrival_time: str = ""


@dataclass(slots=True)
class Leg:
    """One TDT+20 with the LOC and DTM segments that follow it, as sent (for the CUSRES)."""

    number: str = ""
    carrier: str = ""
    #: (LOC qualifier, place) in order: 125 departure, 87 arrival, 92 a stop.
    places: list[tuple[str, str]] = field(default_factory=list)
    #: (DTM qualifier, value, format) in order: 189 departure, 232 arrival.
    times: list[tuple[str, str, str]] = field(default_factory=list)
    segment: int = 0

    def place(self, qualifier: str) -> str:
        return next((p for q, p in self.places if q == qualifier), "")

    def time(self, qualifier: str) -> str:
        """ISO 8601 minutes of the first DTM with ``qualifier``; "" when absent or unreadable."""
        return next((_datetime(v) for q, v, _f in self.times if q == qualifier), "")


@dataclass(slots=True)
class Part:
    """One PAXLST message (UNH..UNT): a whole manifest, or one part of a split one."""

    message: Message
    message_type: str  # BGM: "745" passengers, "250" crew
    reporting_party: str
    #: RFF+TN: the sender's transaction reference, echoed in the answer ("" when not sent).
    transaction_ref: str
    legs: list[Leg]
    travellers: list[Traveller]
    #: CNT+42 as sent (None when absent).
    declared: int | None
    #: BGM's document identifier (element 2): "" for a new list, CP, XR, RP (passengers
    #: changed, cancelled, party reduced), CL, CLOB, CLNB (flight closed), XF (flight cancelled).
    function: str = ""

    @property
    def multipart(self) -> bool:
        """Whether this message is one of several parts (``NN:C``, or ``NN:F`` with NN > 1)."""
        m = self.message
        return m.sequence_marker == "C" or (m.sequence_marker == "F" and self.sequence > 1)

    @property
    def sequence(self) -> int:
        s = self.message.sequence
        return int(s) if s.isascii() and s.isdigit() and len(s) <= 4 else 1

    @property
    def last(self) -> bool:
        return self.message.sequence_marker != "C"


@dataclass(slots=True)
class Manifest:
    interchange: Interchange
    message_type: str  # "745" passengers, "250" crew
    reporting_party: str
    flight: Flight
    travellers: list[Traveller]
    warnings: list[str]
    parts: list[Part] = field(default_factory=list)


def _date(raw: str, kind: str, today: dt.date) -> dt.date:
    """YYMMDD or CCYYMMDD; raises ValueError."""
    if len(raw) == 8 and raw.isdigit():
        return dt.date(int(raw[:4]), int(raw[4:6]), int(raw[6:]))
    return yymmdd(raw, kind, today)


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
    return finish(read_paxlst_steps(data, today=today))


def read_paxlst_steps(data: bytes | str, *, today: dt.date | None = None) -> Steps[Manifest]:
    """:func:`read_paxlst` in steps (:mod:`rmas.iapi.steps`): one every :data:`STEP`
    segments, tokenizing and reading."""
    day = today or dt.date.today()
    ic = yield from parse_interchange_steps(data)
    if not ic.messages:
        raise EdifactError("the interchange holds no message", segment=1, tag="UNB")
    travellers: list[Traveller] = []
    warnings: list[str] = []
    parts: list[Part] = []
    dates: dict[tuple[str, str], dt.date] = {}
    for msg in ic.messages:
        if msg.type != "PAXLST":
            raise msg.segments[0].error(f"message type {quote(msg.type)} is not PAXLST", 2, 1)
        if msg.version not in ("D",) or msg.release not in ("02B", "05B"):
            warnings.append(
                f"message {msg.ref[:20]}: directory {msg.version[:5]}:{msg.release[:5]} "
                "(expected D:02B or D:05B); read as D:05B"
            )
        parts.append((yield from _read_message(msg, travellers, warnings, day, dates)))
    _check_counts(parts, len(travellers))
    first = parts[0]
    legs = [leg for p in parts[:1] for leg in p.legs]
    flight = Flight()
    if legs:
        flight = Flight(
            carrier=legs[0].carrier, number=legs[0].number,
            departure_airport=legs[0].place("125") or legs[0].place("92"),
            arrival_airport=legs[-1].place("87") or (legs[-1].places[-1][1]
                                                    if legs[-1].places else ""),
            departure_time=legs[0].time("189"), arrival_time=legs[-1].time("232"),
        )  # fmt: skip
    return Manifest(ic, first.message_type, first.reporting_party, flight, travellers, warnings,
                    parts)  # fmt: skip


def _check_counts(parts: list[Part], total: int) -> None:
    """CNT+42: a single message counts its travellers (or the interchange's); a part of a split
    manifest gives the flight's total: at least its own travellers, the same in every part, and
    the sum of the parts once all of them (01 .. NN:F) are here."""
    declared_total: int | None = None
    for part in parts:
        seg = _cnt(part.message)
        if seg is None or part.declared is None:
            continue
        n = part.declared
        own = len(part.travellers)
        if part.multipart:
            if n < own:
                raise seg.error(
                    f"CNT+42 declares {n} travellers for the flight; this part alone holds {own}",
                    1, 2,
                )  # fmt: skip
            if declared_total is not None and n != declared_total:
                raise seg.error(
                    f"CNT+42 declares {n} travellers; another part declares {declared_total}", 1, 2
                )
            declared_total = n
        elif n not in (own, total):
            raise seg.error(f"CNT+42 declares {n} travellers; the message holds {own}", 1, 2)
    multi = [p for p in parts if p.multipart]
    if multi and declared_total is not None:
        numbers = sorted(p.sequence for p in multi)
        final = [p for p in multi if p.last]
        if final and numbers == list(range(1, final[0].sequence + 1)):
            held = sum(len(p.travellers) for p in multi)
            if held != declared_total:
                seg = _cnt(final[0].message) or final[0].message.segments[-1]
                raise seg.error(
                    f"CNT+42 declares {declared_total} travellers for the flight; its "
                    f"{len(numbers)} parts hold {held}",
                    1, 2,
                )  # fmt: skip


def _cnt(msg: Message) -> Segment | None:
    return next((s for s in reversed(msg.segments) if s.tag == "CNT" and s.get(1, 0) == "42"), None)


#: Sex as ATT+2 gives it, as the hub reads it (U, unknown, is X).
_SEX = {"M": "M", "F": "F", "U": "X", "X": "X"}
#: What a missing element or component reads as (Segment.get's "").
_ABSENT: tuple[str, ...] = ("",)


def _read_message(
    msg: Message,
    travellers: list[Traveller],
    warnings: list[str],
    today: dt.date,
    dates: dict[tuple[str, str], dt.date] | None = None,
) -> Steps[Part]:
    """One message's part, in steps of :data:`STEP` segments. ``dates`` memoises the dates
    read in this interchange (a date of birth or expiry often repeats in a manifest); a
    malformed one is read again, to raise.

    Element access is written out (``els[i][j]`` guarded by lengths, exactly
    :meth:`Segment.get`): a 480-passenger manifest has about 4,800 segments here, and the method
    calls were a third of this loop (docs/benchmarks.md, "Issue 20")."""
    memo: dict[tuple[str, str], dt.date] = {} if dates is None else dates
    mtype = ""
    function = ""
    party = ""
    tn = ""
    legs: list[Leg] = []
    declared: int | None = None
    own: list[Traveller] = []
    trav: Traveller | None = None
    doc: Document | None = None
    segments = msg.segments
    last = len(segments) - 1  # UNT
    for at in range(1, last, STEP):
        if at > 1:
            yield
        for seg in segments[at : min(at + STEP, last)]:
            tag = seg[0]
            els = seg[1]
            e1 = els[0] if els else _ABSENT
            q = e1[0]  # seg.get(1) and seg.get(1, 0)
            if trav is not None:
                # A traveller's own segments, the most frequent first; each tag's rule as below.
                if tag == "RFF":
                    value = e1[1] if len(e1) > 1 else ""
                    if q in ("AVF", "ABO") and len(value) > MAX_REF:
                        long = f"RFF+{q} longer than {MAX_REF} characters"
                        trav.problems.append(_v(trav, f"rff_{q.lower()}", long, seg))
                        value = value[:MAX_REF]
                    if q == "AVF":
                        trav.booking_ref = value
                    elif q == "ABO":
                        trav.passenger_ref = value
                    elif q == "SEA":
                        trav.seat = value[:MAX_REF]
                    continue
                if tag == "DTM":
                    raw = e1[1] if len(e1) > 1 else ""
                    if q == "329":
                        key = (raw, "birth")
                        got = memo.get(key)
                        if got is not None:
                            trav.birth_date = got
                            continue
                        try:
                            trav.birth_date = memo[key] = _date(raw, "birth", today)
                        except ValueError as exc:
                            trav.problems.append(
                                _v(trav, "birth_date", f"DTM+329: {str(exc)[:80]}", seg)
                            )
                    elif q == "36" and doc is not None:
                        key = (raw, "expiry")
                        got = memo.get(key)
                        if got is not None:
                            doc.expiry_date = got
                            continue
                        try:
                            doc.expiry_date = memo[key] = _date(raw, "expiry", today)
                        except ValueError as exc:
                            doc.problems.append(
                                _d(trav, "expiry_date", f"DTM+36: {str(exc)[:80]}", seg)
                            )
                    continue
                if tag == "ATT":
                    if q == "2":
                        sex = (els[2][0] if len(els) > 2 else "").upper()
                        trav.sex = _SEX.get(sex, "")
                        if not trav.sex:
                            trav.problems.append(
                                _v(trav, "sex", f"ATT sex {quote(sex)} is not M, F, U or X", seg)
                            )
                    continue
                if tag == "NAT":
                    if q == "2":
                        code = els[1][0] if len(els) > 1 else ""
                        nat = to_alpha3(code) if code else None
                        if nat is None:
                            trav.problems.append(
                                _v(trav, "nationality", f"unknown code {quote(code)}", seg)
                            )
                        else:
                            trav.nationality = nat
                    continue
                if tag == "DOC":
                    # The DOC code as sent: rmas.documents.DocumentType.from_code reads it (one
                    # table).
                    # Every field given in order: half the cost of keywords and defaults (the
                    # tests compare with the reference reader, which names them).
                    doc = Document(q.strip().upper(), els[1][0] if len(els) > 1 else "", None, "",
                                   seg[2], False, [])  # fmt: skip
                    trav.documents.append(doc)
                    continue
                if tag == "LOC":
                    if q == "91":
                        code = els[1][0] if len(els) > 1 else ""
                        state = to_alpha3(code) if code else None
                        if doc is None:
                            trav.problems.append(
                                _v(trav, "issuing_state", "LOC+91 before any DOC", seg)
                            )
                        elif state is None:
                            doc.issuer_given = True
                            doc.issuing_state = ""
                            doc.problems.append(_d(trav, "issuing_state",
                                                   f"unknown state code {quote(code)}" if code
                                                   else "LOC+91 names no state", seg))  # fmt: skip
                        else:
                            doc.issuer_given = True
                            doc.issuing_state = state
                    continue
            if tag == "BGM":
                mtype = q
                function = (els[1][0] if len(els) > 1 else "").strip().upper()[:8]
                if mtype not in ("745", "250", "266"):
                    warnings.append(
                        f"segment {seg.number}: BGM document code {quote(mtype)} unexpected"
                    )
            elif tag == "NAD":
                if q == "MS":
                    party = seg.get(4, 0) or seg.get(2, 0)
                    continue
                if q not in PASSENGER_QUALIFIERS:
                    continue
                name = els[3] if len(els) > 3 else _ABSENT
                n = len(name)
                given = name[1] if n > 1 else ""
                middle = name[2] if n > 2 else ""
                trav = Traveller(
                    len(travellers) + 1, PASSENGER_QUALIFIERS[q], q, name[0],
                    f"{given} {middle}" if given and middle else given or middle,
                    "", None, "", "", "", "", [], [], seg[2],
                )  # fmt: skip
                if not trav.surname:
                    trav.problems.append(_v(trav, "surname", "NAD has no surname", seg))
                travellers.append(trav)
                own.append(trav)
                doc = None
            elif tag == "CNT":
                if q == "42":
                    raw = e1[1] if len(e1) > 1 else ""
                    declared = count_value(raw)
                    if declared is None:
                        raise seg.error(
                            f"traveller count {quote(raw)} is not a number of 1-6 digits", 1, 2
                        )
                trav = None
            elif trav is None:
                if tag == "RFF" and q == "TN":
                    tn = e1[1] if len(e1) > 1 else ""
                    if len(tn) > MAX_REF:
                        raise seg.error(f"RFF+TN is longer than {MAX_REF} characters", 1, 2)
                else:
                    _header(seg, legs, tag)
            elif tag not in KNOWN_TAGS:
                warnings.append(f"segment {seg.number}: unknown segment {tag} ignored")
    return Part(msg, mtype, party, tn, legs, own, declared, function)


def _header(seg: Segment, legs: list[Leg], tag: str) -> None:
    if tag == "TDT" and seg.get(1) == "20":
        number = seg.get(2)
        legs.append(Leg(number, seg.get(5, 0) or seg.get(8, 0) or number[:2], segment=seg.number))
    elif tag == "LOC" and seg.get(1) in LEG_PLACES:
        if not legs:
            legs.append(Leg(segment=seg.number))
        legs[-1].places.append((seg.get(1), seg.get(2)))
    elif tag == "DTM" and seg.get(1, 0) in LEG_TIMES:
        if not legs:
            legs.append(Leg(segment=seg.number))
        legs[-1].times.append((seg.get(1, 0), seg.get(1, 1), seg.get(1, 2)))


def _d(trav: Traveller, name: str, description: str, seg: Segment) -> FieldViolation:
    """A violation of the traveller's latest document."""
    return _v(trav, f"documents[{len(trav.documents) - 1}].{name}", description, seg)


def _v(trav: Traveller, name: str, description: str, seg: Segment) -> FieldViolation:
    return FieldViolation(
        f"travellers[{trav.position - 1}].{name}",
        f"{description} (segment {seg.number}, {seg.tag})",
    )
