"""The airline channel: a PAXLST in, a CUSRES out, through the hub's one fan-out.

Every document of every traveller becomes one item of a single hub batch (so a 480-passenger
manifest is one ``lookup_many`` call per provider). A traveller's directive is the most severe of
its documents' directives (DO_NOT_BOARD, then CONTACT_AUTHORITY, then INSUFFICIENT_DATA, then
OK_TO_BOARD); a traveller with no document, or with malformed data, is INSUFFICIENT_DATA.

Airlines resend interchanges (time-outs, retries). The same interchange control reference from the
same sender, with the same content, gets the very same CUSRES without a second check; the same
reference with different content is refused at message level, since answering it would make the
reference ambiguous.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from rmas.documents import DocumentQuery, validate_document
from rmas.errors import FieldViolation, ValidationError
from rmas.hub import CheckResult, Hub, InvalidDocument
from rmas.iapi.cusres import CusresCodes, PassengerAnswer, write_cusres, write_error_cusres
from rmas.iapi.paxlst import Manifest, Traveller, read_paxlst
from rmas.iapi.syntax import SYNTAX_IDS, EdifactError, Group, Interchange, tokenize
from rmas.verdict import Directive

__all__ = ["IapiAnswer", "IapiChannel", "IapiConfig", "PassengerResult"]

_SEVERITY = {
    Directive.OK_TO_BOARD: 0,
    Directive.INSUFFICIENT_DATA: 1,
    Directive.CONTACT_AUTHORITY: 2,
    Directive.DO_NOT_BOARD: 3,
}


@dataclass(frozen=True, slots=True)
class IapiConfig:
    """The ``[iapi]`` table."""

    #: Our identity in the CUSRES envelope when the PAXLST names no recipient.
    hub_id: str = "RMAS"
    #: ERC codes and texts (only 0Z and 1Z are confirmed by published guides).
    codes: CusresCodes = field(default_factory=CusresCodes)
    #: Largest PAXLST accepted, in bytes.
    max_bytes: int = 2 * 1024 * 1024
    #: Interchanges remembered for duplicate detection.
    remember: int = 10_000


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


@dataclass(frozen=True, slots=True)
class IapiAnswer:
    cusres: bytes
    passengers: tuple[PassengerResult, ...]
    errors: tuple[str, ...]
    transaction_ref: str
    duplicate: bool = False


def _stamp(now: dt.datetime) -> tuple[str, str]:
    return now.strftime("%y%m%d"), now.strftime("%H%M")


def _ref() -> str:
    return os.urandom(7).hex().upper()  # an..14, unique enough per hub


class IapiChannel:
    """Answers PAXLST interchanges through a hub. One per server; safe to share."""

    def __init__(self, hub: Hub, config: IapiConfig | None = None) -> None:
        self.hub = hub
        self.config = config or IapiConfig()
        self._seen: OrderedDict[tuple[str, str, str], tuple[bytes, IapiAnswer]] = OrderedDict()

    async def answer(
        self,
        data: bytes,
        deadline: float,
        *,
        caller: str = "",
        admit: Callable[[int], None] | None = None,
        record: Callable[[IapiAnswer], Awaitable[None]] | None = None,
    ) -> IapiAnswer:
        """Answer one interchange. ``caller`` (the authenticated identity) scopes duplicate
        detection, so no caller is answered from another's interchange; ``admit`` is told how
        many documents are about to be checked and may raise to refuse (rate limits); ``record``
        (the audit trail) is awaited with a fresh answer before it is remembered, so a resend
        after a failed write is checked and recorded again, never answered unrecorded. A resent
        duplicate is answered from memory and charged nothing."""
        cfg = self.config
        now = dt.datetime.now(dt.UTC)
        transaction = _ref()
        if len(data) > cfg.max_bytes:
            return self._error(None, f"message of {len(data)} bytes exceeds {cfg.max_bytes}",
                               transaction, now)  # fmt: skip
        try:
            manifest = read_paxlst(data)
        except EdifactError as exc:
            return self._error(_envelope(data), str(exc), transaction, now)
        ic = manifest.interchange
        digest = hashlib.sha256(data).digest()
        key = (caller, ic.sender, ic.control_ref)
        seen = self._seen.get(key)
        if seen is not None:
            if seen[0] == digest:
                self._seen.move_to_end(key)
                previous = seen[1]
                return IapiAnswer(previous.cusres, previous.passengers, previous.errors,
                                  previous.transaction_ref, duplicate=True)  # fmt: skip
            return self._error(
                ic,
                f"interchange control reference {ic.control_ref} was already used by this "
                "sender for a different message",
                transaction,
                now,
            )
        answer = await self._check(manifest, deadline, transaction, now, admit)
        if record is not None:
            await record(answer)
        # Remember only what a resend is answered with: full results would keep thousands of
        # objects per interchange alive (and make every garbage collection scan them).
        slim = tuple(replace(p, results=()) for p in answer.passengers)
        self._seen[key] = (digest, replace(answer, passengers=slim))
        if len(self._seen) > cfg.remember:
            self._seen.popitem(last=False)
        return answer

    async def _check(
        self,
        manifest: Manifest,
        deadline: float,
        transaction: str,
        now: dt.datetime,
        admit: Callable[[int], None] | None = None,
    ) -> IapiAnswer:
        items: list[DocumentQuery | InvalidDocument] = []
        owners: list[int] = []
        for t in manifest.travellers:
            for item in _traveller_items(t):
                items.append(item)
                owners.append(t.position)
        if admit is not None:
            admit(len(items))
        results = await self.hub.check(items, deadline)
        by_traveller: dict[int, list[CheckResult]] = {}
        for pos, r in zip(owners, results, strict=True):
            by_traveller.setdefault(pos, []).append(r)
        passengers = []
        for t in manifest.travellers:
            rs = by_traveller.get(t.position, [])
            directive = max((r.directive for r in rs), key=_SEVERITY.__getitem__,
                            default=Directive.INSUFFICIENT_DATA)  # fmt: skip
            passengers.append(
                PassengerResult(
                    position=t.position,
                    booking_ref=t.booking_ref,
                    passenger_ref=t.passenger_ref or ("" if t.booking_ref else str(t.position)),
                    crew=t.crew,
                    directive=directive,
                    check_ids=tuple(r.check_id for r in rs),
                    results=tuple(rs),
                )
            )
        f = manifest.flight
        cusres = write_cusres(
            manifest.interchange,
            flight=f.number,
            legs=[("125", f.departure_airport), ("87", f.arrival_airport)],
            passengers=[
                PassengerAnswer(p.booking_ref, p.passenger_ref, p.directive) for p in passengers
            ],
            transaction_ref=transaction,
            control_ref=_ref(),
            stamp=_stamp(now),
            codes=self.config.codes,
            hub_id=self.config.hub_id,
        )
        return IapiAnswer(_encode(cusres, manifest.interchange), tuple(passengers), (),
                          transaction)  # fmt: skip

    def _error(
        self, ic: Interchange | None, detail: str, transaction: str, now: dt.datetime
    ) -> IapiAnswer:
        text = write_error_cusres(
            ic,
            error=self.config.codes.syntax_error,
            detail=detail,
            transaction_ref=transaction,
            control_ref=_ref(),
            stamp=_stamp(now),
            hub_id=self.config.hub_id,
        )
        return IapiAnswer(_encode(text, ic), (), (detail,), transaction)


def _encode(text: str, ic: Interchange | None) -> bytes:
    # "ignore", never "replace": a replacement "?" would be read as the release character.
    return text.encode("latin-1" if ic is not None and ic.syntax == "UNOC" else "ascii", "ignore")


def _envelope(data: bytes) -> Interchange | None:
    """The envelope of an unreadable PAXLST, as far as it can be read, to address the answer.

    Only UNB (and whether a UNG follows) is needed; segments are read up to the first fault.
    """
    try:
        segments, seps, una = tokenize(data)
    except EdifactError as exc:
        try:
            segments, seps, una = tokenize(data[: max(exc.offset, 0)])
        except EdifactError:
            return None
    if not segments or segments[0].tag != "UNB":
        return None
    unb = segments[0]
    grouped = any(s.tag == "UNG" for s in segments[1:4])
    syntax = unb.get(1, 0) if unb.get(1, 0) in SYNTAX_IDS else "UNOA"
    return Interchange(
        separators=seps, una_present=una, syntax=syntax, syntax_version=unb.get(1, 1),
        sender=unb.get(2, 0), sender_qualifier=unb.get(2, 1), recipient=unb.get(3, 0),
        recipient_qualifier=unb.get(3, 1), prepared_date=unb.get(4, 0),
        prepared_time=unb.get(4, 1), control_ref=unb.get(5),
        groups=[Group("", "", "", "")] if grouped else [], messages=[],
        segment_count=len(segments),
    )  # fmt: skip


def _traveller_items(t: Traveller) -> list[DocumentQuery | InvalidDocument]:
    ref = t.passenger_ref or t.booking_ref or str(t.position)
    prefix = f"travellers[{t.position - 1}]"
    if not t.documents:
        return [InvalidDocument(ref, (FieldViolation(f"{prefix}.documents", "no DOC segment"),))]
    out: list[DocumentQuery | InvalidDocument] = []
    for j, d in enumerate(t.documents):
        if t.problems:
            out.append(InvalidDocument(ref, tuple(t.problems)))
            continue
        try:
            out.append(
                validate_document(
                    issuing_state=d.issuing_state,
                    number=d.number,
                    type_code=d.type_code,
                    surname=t.surname,
                    given_names=t.given_names,
                    birth_date=t.birth_date,
                    sex=t.sex,
                    nationality=t.nationality,
                    expiry_date=d.expiry_date,
                    ref=ref,
                    prefix=f"{prefix}.documents[{j}]",
                )
            )
        except ValidationError as exc:
            out.append(InvalidDocument.from_error(ref, exc))
    return out
