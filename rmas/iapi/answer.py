"""What the airline channel answers a PAXLST, and what that answer tells the hub's open flights.

:class:`IapiAnswer` is one answered interchange (its CUSRES, and per traveller a
:class:`PassengerResult`); :func:`flight_report` turns it into the
:class:`~rmas.flights.model.FlightReport` the flight tracker records (rmas.flights.model's table).
"""

from __future__ import annotations

from dataclasses import dataclass

from rmas.flights.model import FlightReport, LegInfo, ReportedPassenger, event_of
from rmas.frozen import fast_init
from rmas.hub import CheckResult
from rmas.iapi.paxlst import Manifest
from rmas.verdict import Directive, Verdict

__all__ = ["IapiAnswer", "PassengerResult", "flight_report", "verdicts"]


@fast_init
@dataclass(frozen=True, slots=True)
class PassengerResult:
    position: int
    booking_ref: str
    passenger_ref: str
    crew: bool
    directive: Directive
    check_ids: tuple[str, ...]
    #: Full results for audit and officers; never sent to the airline.
    results: tuple[CheckResult, ...] = ()
    #: OK_TO_BOARD although a document was not checked (``on_incomplete = "board"``).
    unchecked: bool = False


@dataclass(frozen=True, slots=True)
class IapiAnswer:
    cusres: bytes
    passengers: tuple[PassengerResult, ...]
    errors: tuple[str, ...]
    #: The CUSRES's RFF+TN: the request's own when it sent one.
    transaction_ref: str
    #: The very same CUSRES as the first answer to this interchange (a resend, still the same).
    duplicate: bool = False
    #: This hub's id of the answer (the audit entries' reference).
    answer_id: str = ""
    #: A resend of an interchange answered before (whether or not the CUSRES is the same).
    resend: bool = False


def flight_report(
    manifest: Manifest, answer: IapiAnswer, caller: str, received_at: float
) -> FlightReport:
    """What an answered PAXLST tells the hub's open flights (rmas.flights.model)."""
    ic = manifest.interchange
    first = manifest.parts[0]
    passengers = tuple(
        ReportedPassenger(
            booking_ref=p.booking_ref,
            passenger_ref=p.passenger_ref,
            crew=p.crew,
            directive=p.directive,
            unchecked=p.unchecked,
            incomplete=any(r.verdict is Verdict.INCOMPLETE for r in p.results),
            floor=(
                Directive.INSUFFICIENT_DATA
                if any(r.document is None for r in p.results) or not p.results
                else None
            ),
            documents=tuple((r.document, r.check_id) for r in p.results if r.document),
            check_ids=p.check_ids,
        )
        for p in answer.passengers
    )
    legs = tuple(LegInfo(leg.number, tuple(leg.places), tuple(leg.times)) for leg in first.legs)
    return FlightReport(
        owner=caller,
        event=event_of(first.function),
        carrier=manifest.flight.carrier,
        number=manifest.flight.number,
        departure=manifest.flight.departure_time,
        legs=legs,
        sender=ic.sender,
        recipient=ic.recipient,
        syntax=ic.syntax,
        received_at=received_at,
        passengers=passengers,
    )


#: One letter per directive, upper case when the passenger is ``unchecked`` (see :func:`verdicts`);
#: a directive added to the enum without a letter fails here, at import.
_MARKS = {d: (m, m.upper()) for d, m in zip(Directive, "bnci", strict=True)}


def verdicts(answer: IapiAnswer) -> str:
    """Every passenger's answer (position, directive, unchecked) as one string: two answers tell
    each passenger the same exactly when their ``verdicts`` are equal.

    What the channel remembers of an answer for a resend to be compared with: one string, not an
    object per passenger that every full garbage collection would scan again for as long as the
    interchange is remembered (``[iapi] remember``, 10,000 by default).
    """
    marks = _MARKS
    return "".join([f"{p.position}{marks[p.directive][p.unchecked]}" for p in answer.passengers])
