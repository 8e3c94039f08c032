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

__all__ = ["IapiAnswer", "PassengerResult", "flight_report", "same_answers"]


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

    def slim(self) -> PassengerResult:
        """The same without ``results`` (what a resend is compared with). Built directly:
        ``dataclasses.replace`` cost more than the rest of remembering an answer."""
        return PassengerResult(
            self.position, self.booking_ref, self.passenger_ref, self.crew, self.directive,
            self.check_ids, (), self.unchecked,
        )  # fmt: skip


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


def same_answers(a: IapiAnswer, b: IapiAnswer) -> bool:
    """Whether every passenger's answer is what it was."""
    return [(p.position, p.directive, p.unchecked) for p in a.passengers] == [
        (p.position, p.directive, p.unchecked) for p in b.passengers
    ]
