"""What a PAXLST tells the hub of a flight, and what the hub keeps of it. Pure: no SQL, no gRPC.

The airline channel (:mod:`rmas.iapi.channel`) turns each answered PAXLST into a
:class:`FlightReport`; the tracker (:mod:`rmas.flights.tracker`) keeps of it only what the
conversation needs (:class:`PassengerRow`): the airline's references, the directive, the check
ids, and each document as a keyed hash and a sealed query (:mod:`rmas.flights.sealing`) — never
a number or a name in clear.

What a message does to a flight is the document identifier of its ``BGM`` (element 2), as
departure-control systems send it (``BGM+745+CP'``, ``BGM+266+CLOB'``):

========  ============  ==============================================================
BGM       function      effect on the open flight
========  ============  ==============================================================
745       (none)        opens or updates the flight; its passengers are recorded
745       ``CP``        change passenger: the passengers listed are recorded again
745       ``XR``        cancel / offload: the passengers listed leave the flight
745       ``RP``        party reduced: the passengers listed leave the flight
266       ``CLOB``      flight closed (passengers on board): the flight is closed
266       ``CLNB``      flight closed (not on board): the flight is closed
266       ``CL``        flight closed: the flight is closed
266/745   ``XF``        flight cancelled: the flight is closed
========  ============  ==============================================================

A closed flight and a passenger who left keep nothing but the flight's own row (so that a late
message for it does not reopen it) and get no status change, ever.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from rmas.documents import DocumentQuery
from rmas.verdict import Directive

__all__ = [
    "FlightEvent",
    "FlightReport",
    "LegInfo",
    "PassengerRow",
    "ReportedPassenger",
    "StatusChange",
    "event_of",
]


class FlightEvent(enum.StrEnum):
    """What a PAXLST does to its flight (see the module's table)."""

    ANSWER = "answer"
    CHANGE = "change"
    OFFLOAD = "offload"
    CLOSE = "close"
    CANCEL = "cancel"


_EVENTS = {
    "": FlightEvent.ANSWER,
    "CP": FlightEvent.CHANGE,
    "XR": FlightEvent.OFFLOAD,
    "RP": FlightEvent.OFFLOAD,
    "CL": FlightEvent.CLOSE,
    "CLOB": FlightEvent.CLOSE,
    "CLNB": FlightEvent.CLOSE,
    "XF": FlightEvent.CANCEL,
}


def event_of(function: str) -> FlightEvent:
    """The event of a ``BGM`` document identifier; an unknown one is an ordinary answer."""
    return _EVENTS.get(function.strip().upper(), FlightEvent.ANSWER)


@dataclass(frozen=True, slots=True)
class LegInfo:
    """One leg as the PAXLST sent it: echoed in the status change's flight group."""

    number: str
    places: tuple[tuple[str, str], ...] = ()
    times: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ReportedPassenger:
    """One traveller of an answered PAXLST, with what was checked of it."""

    booking_ref: str
    passenger_ref: str
    crew: bool
    directive: Directive
    unchecked: bool
    #: Whether a document's check was INCOMPLETE (a required provider did not answer).
    incomplete: bool
    #: INSUFFICIENT_DATA when part of the traveller's data could not be checked at all (it
    #: stays so on every re-check), else None.
    floor: Directive | None
    #: The documents checked, each with the check id of its answer.
    documents: tuple[tuple[DocumentQuery, str], ...]
    #: Every check id of the answer (documents that could not be checked included).
    check_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FlightReport:
    """What an answered PAXLST tells of its flight."""

    #: The airline's identity (the caller): only it receives this flight's status changes.
    owner: str
    event: FlightEvent
    carrier: str
    number: str
    #: ISO 8601 minutes of the first leg's departure ("" when not sent).
    departure: str
    legs: tuple[LegInfo, ...]
    #: The UNB sender and recipient of the PAXLST, and its syntax level: the status change's
    #: envelope is addressed back the same way.
    sender: str
    recipient: str
    syntax: str
    #: time.time() when the PAXLST arrived: a passenger's newest request's answer stands.
    received_at: float
    passengers: tuple[ReportedPassenger, ...] = ()

    @property
    def flight_key(self) -> str:
        """What ties the messages of one flight of one airline: number and departure."""
        return f"{self.number}/{self.departure}"


@dataclass(slots=True)
class PassengerRow:
    """One passenger of an open flight, as the store keeps it."""

    id: int
    flight_id: str
    booking_ref: str
    passenger_ref: str
    #: What the airline was last told.
    directive: Directive
    unchecked: bool
    incomplete: bool
    floor: Directive | None
    #: The directive the providers' answers give (differs from ``directive`` when overridden).
    checked_directive: Directive
    version: int
    received_at: float
    check_ids: tuple[str, ...] = ()
    #: (document key, economy, sealed query, check id) per document.
    documents: list[tuple[str, str, bytes, str]] = field(default_factory=list)
    override_by: str = ""
    override_reason: str = ""
    #: time.time() when the override ends (0: no override).
    override_expires: float = 0.0


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One status change in the outbox: what the airline is told, until it acknowledges."""

    change_id: str
    owner: str
    flight_id: str
    passenger_id: int
    version: int
    flight: str
    departure: str
    passenger_ref: str
    booking_ref: str
    directive: Directive
    unchecked: bool
    check_ids: tuple[str, ...]
    overridden: bool
    created_at: float
    attempts: int
    sender: str
    recipient: str
    syntax: str
    legs: tuple[LegInfo, ...]
