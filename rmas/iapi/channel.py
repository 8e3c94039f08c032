"""The airline channel: a PAXLST in, a CUSRES out, through the hub's one fan-out.

Every document of every traveller becomes one item of a single hub batch (so a 480-passenger
manifest is one ``lookup_many`` call per provider). Each document is judged on its own: a bad
document (an empty LOC+91, a malformed expiry) leaves only itself unchecked. A traveller's
directive is the most severe of its documents' (DO_NOT_BOARD, then CONTACT_AUTHORITY, then
INSUFFICIENT_DATA, then OK_TO_BOARD), so a stolen passport next to a bad document is still NO
BOARD; a traveller-level fault (no surname, a malformed birth date) adds INSUFFICIENT_DATA but its
documents are still checked. A visa sent without LOC+91 (its issuer is implied) is checked as
issued by ``[iapi] visa_issuer``, or, when that is "", not checked at all: it never turns a
checked traveller's OK TO BOARD into INSUFFICIENT DATA.

Before anything is checked or audited a message is refused (``ERP+1``) when it is unreadable, too
large, sent under another airline's UNB/UNG sender than the caller's ``[[callers]] senders``, when
its answer could not fit in one gRPC message, or when the parts of a split flight disagree on its
total.

Resends. Airlines resend interchanges (time-outs, retries). A resend (same sender, interchange
control reference and content) is always checked again and audited again: nothing is ever
replayed unchecked. Within ``[iapi] resend_window_s`` of the first answer, and only when every
passenger's answer is still the same, the resend gets the very same CUSRES bytes (``duplicate``);
otherwise (the window passed, or any document changed status since) it gets a fresh CUSRES. The
same reference with different content inside the window is refused, since answering it would make
the reference ambiguous; after the window the reference may be reused.

Beside it: :mod:`rmas.iapi.items` (a traveller's documents as hub items),
:mod:`rmas.iapi.answer` (the answer, and what it tells the open flights) and
:mod:`rmas.iapi.envelope` (the references of an unreadable message, the senders, the encoding).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import os
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import structlog

from rmas.documents import DocumentQuery
from rmas.flights.model import FlightReport
from rmas.hub import CheckResult, Hub, InvalidDocument, in_turns
from rmas.iapi.answer import IapiAnswer, PassengerResult, flight_report, verdicts
from rmas.iapi.cusres import (
    ErrorHeader,
    read_acknowledgment,
    write_cusres,
    write_error_cusres,
)
from rmas.iapi.envelope import encode, error_header, read_envelope, sender_refusal
from rmas.iapi.items import traveller_items
from rmas.iapi.paxlst import Manifest, Part, read_paxlst_steps
from rmas.iapi.steps import stepped
from rmas.iapi.syntax import (
    EdifactError,
    Interchange,
    parse_interchange,
    quote,
)
from rmas.iapiconfig import IapiConfig
from rmas.verdict import Directive, most_severe

__all__ = ["FlightHook", "IapiAnswer", "IapiChannel", "PassengerResult"]

log = structlog.get_logger("rmas.iapi")

_BOARD = Directive.OK_TO_BOARD


class FlightHook(Protocol):
    """Where the channel reports answered flights and acknowledgments (rmas.flights)."""

    async def record(self, report: FlightReport) -> None: ...

    def answering(self) -> contextlib.AbstractContextManager[None]: ...

    async def acknowledge(self, owner: str, change_ids: Sequence[str]) -> list[str]: ...


#: Longest message-level error kept in an answer's ``errors``.
MAX_ERROR = 300
#: Travellers whose documents are made into the hub's items between two turns of the loop
#: while single checks are coming (about half a millisecond of a 480-passenger interchange's
#: two).
TRAVELLERS_STEP = 128
#: Estimated answer bytes per traveller (CUSRES group and PassengerDirective, without refs), per
#: document (a check id), and per document for a caller who sees full results.
_PER_TRAVELLER = 160
_PER_DOCUMENT = 48
_PER_FULL_RESULT = 2048


@dataclass(frozen=True, slots=True)
class _Seen:
    """What is remembered of an answered interchange: what a resend is compared with, and what
    an unchanged resend gets again. Atomic values only, no object per passenger (see
    :func:`~rmas.iapi.answer.verdicts`)."""

    digest: bytes
    at: float
    #: None once ``resend_window_s`` has passed: the digest alone is used then.
    cusres: bytes | None
    transaction_ref: str = ""
    verdicts: str = ""


def _stamp(now: dt.datetime) -> tuple[str, str]:
    return now.strftime("%y%m%d"), now.strftime("%H%M")


def _ref() -> str:
    return os.urandom(7).hex().upper()  # an..14, unique enough per hub


class IapiChannel:
    """Answers PAXLST interchanges through a hub. One per server; safe to share."""

    def __init__(
        self,
        hub: Hub,
        config: IapiConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hub = hub
        self.config = config or IapiConfig()
        self._clock = clock
        self._seen: OrderedDict[tuple[str, str, str], _Seen] = OrderedDict()
        #: When each remembered answer was given, oldest first: once past ``resend_window_s``,
        #: its CUSRES is let go (about 30 KB for 480 passengers, for up to ``remember`` of them).
        self._answered: deque[tuple[float, tuple[str, str, str]]] = deque()
        #: The hub's open flights (``[flights]``): every answered PAXLST is reported to it, and
        #: a CUSRES BGM+312 (an acknowledgment of a status change) is accepted. None: off.
        self.flights: FlightHook | None = None
        #: Split flights: (caller, sender, flight key) -> {part number: (travellers, total, last)}.
        self._parts: OrderedDict[tuple[str, str, str], dict[int, tuple[int, int, bool]]] = (
            OrderedDict()
        )

    async def answer(
        self,
        data: bytes,
        deadline: float,
        *,
        caller: str = "",
        senders: Sequence[str] = (),
        admit: Callable[[int], None] | None = None,
        record: Callable[[IapiAnswer], Awaitable[None]] | None = None,
        max_answer_bytes: int = 0,
        full_results: bool = False,
    ) -> IapiAnswer:
        """Answer one interchange. ``caller`` (the authenticated identity) scopes resends and
        split flights; ``senders`` (when not empty) are the UNB/UNG sender ids this caller may
        send as; ``admit`` is told how many documents are about to be checked and may raise to
        refuse (rate limits); ``record`` (the audit trail) is awaited with every checked answer,
        resends included, before it is remembered or returned; ``max_answer_bytes`` (when not
        0) refuses a message whose answer could exceed it, ``full_results`` saying whether the
        answer carries every document's full result."""
        cfg = self.config
        received_at = time.time()
        now = dt.datetime.now(dt.UTC)
        answer_id = _ref()
        if len(data) > cfg.max_bytes:
            return self._error(
                None, None, f"message of {len(data)} bytes exceeds {cfg.max_bytes}", answer_id, now
            )
        try:
            # In steps, with turns of the loop between them while single checks are coming.
            manifest = await stepped(read_paxlst_steps(data), self.hub.gives_turns)
        except EdifactError as exc:
            if self.flights is not None:
                acked = await self._acknowledge(self.flights, data, caller, answer_id, now)
                if acked is not None:
                    return acked
            ic, header = read_envelope(data)
            return self._error(ic, header, str(exc), answer_id, now)
        await self._turn()
        ic = manifest.interchange
        header = error_header(manifest.parts[0])
        refusal = (
            sender_refusal(ic, senders)
            or self._size_refusal(manifest, max_answer_bytes, full_results)
            or self._parts_refusal(manifest, caller)
        )
        if refusal:
            return self._error(ic, header, refusal, answer_id, now)
        digest = hashlib.sha256(data).digest()
        key = (caller, ic.sender, ic.control_ref)
        seen = self._seen.get(key)
        at = self._clock()
        fresh = seen is None or self._past_window(seen.at, at)
        if seen is not None and not fresh and seen.digest != digest:
            return self._error(
                ic,
                header,
                f"interchange control reference {quote(ic.control_ref)} was already used by this "
                "sender for a different message",
                answer_id,
                now,
            )
        resend = seen is not None and seen.digest == digest
        flights = self.flights
        # From the first provider answer until the flight is queued for recording, a record
        # change must wait for this answer, or the passenger would not be found yet.
        with flights.answering() if flights is not None else contextlib.nullcontext():
            answer = await self._check(manifest, deadline, answer_id, now, admit)
            if (
                resend
                and not fresh
                and seen is not None
                and seen.cusres is not None
                and seen.verdicts == verdicts(answer)
            ):
                answer = replace(
                    answer,
                    cusres=seen.cusres,
                    transaction_ref=seen.transaction_ref,
                    duplicate=True,
                )
            answer = replace(answer, resend=resend)
            if record is not None:
                await record(answer)
            if flights is not None:
                try:
                    await flights.record(flight_report(manifest, answer, caller, received_at))
                except Exception as exc:  # the airline still gets its answer; say what was lost
                    log.error("flight_not_recorded", flight=manifest.flight.number,
                              error=f"{type(exc).__name__}: {exc}"[:300])  # fmt: skip
        self._remember_parts(manifest, caller)
        if not answer.duplicate:
            self._seen[key] = _Seen(
                digest, at, answer.cusres, answer.transaction_ref, verdicts(answer)
            )
            self._seen.move_to_end(key)
            while len(self._seen) > cfg.remember:
                self._seen.popitem(last=False)
            self._answered.append((at, key))
        self._let_go(self._clock())
        return answer

    async def _turn(self) -> None:
        """A turn of the event loop between two long steps of an answer, while single checks
        are coming (:meth:`rmas.hub.Hub.gives_turns`): a 480-passenger interchange takes tens
        of milliseconds, and gRPC accepts about one new call per turn."""
        if self.hub.gives_turns():
            await asyncio.sleep(0)

    def _past_window(self, then: float, now: float) -> bool:
        """Whether an answer given at ``then`` is past the resend window at ``now``: a resend is
        answered afresh, and only the message's digest is still needed."""
        return now - then > self.config.resend_window_s

    def _let_go(self, now: float) -> None:
        """Keep only the digest of the answers past the resend window."""
        answered, seen = self._answered, self._seen
        while answered and self._past_window(answered[0][0], now):
            at, key = answered.popleft()
            entry = seen.get(key)
            if entry is not None and entry.at == at and entry.cusres is not None:
                seen[key] = _Seen(entry.digest, at, None)  # keeps its place in the order
        # More than ``remember`` within the window: the oldest are forgotten (see ``answer``).
        while len(answered) > self.config.remember:
            answered.popleft()

    async def _acknowledge(
        self, flights: FlightHook, data: bytes, caller: str, answer_id: str, now: dt.datetime
    ) -> IapiAnswer | None:
        """A CUSRES BGM+312 acknowledging status changes: answered with no CUSRES when every
        change it names is the caller's, with an ERP+1 otherwise; None when ``data`` is no
        CUSRES at all."""
        try:
            messages = parse_interchange(data).messages
        except EdifactError:
            return None  # not readable: the PAXLST's own error stands
        if not messages or messages[0].type != "CUSRES":
            return None
        try:
            ids = read_acknowledgment(data)
        except EdifactError as exc:
            ic, header = read_envelope(data)
            return self._error(ic, header, str(exc), answer_id, now)
        if ids is None:
            return None
        problems = await flights.acknowledge(caller, ids)
        if problems:
            ic, header = read_envelope(data)
            return self._error(ic, header, "; ".join(problems), answer_id, now)
        return IapiAnswer(b"", (), (), ids[0], answer_id=answer_id)

    def _size_refusal(self, manifest: Manifest, limit: int, full: bool) -> str:
        if not limit:
            return ""
        docs = sum(max(len(t.documents), 1) for t in manifest.travellers)
        refs = sum(len(t.booking_ref) + len(t.passenger_ref) for t in manifest.travellers)
        estimate = (
            4096
            + _PER_TRAVELLER * len(manifest.travellers)
            + 3 * refs
            + docs * (_PER_DOCUMENT + (_PER_FULL_RESULT if full else 0))
        )
        if estimate <= limit:
            return ""
        return (
            f"the answer to {len(manifest.travellers)} travellers ({docs} documents) would exceed "
            f"the hub's message limit of {limit} bytes; send the flight in parts"
        )

    def _flight_key(self, part: Part, caller: str, sender: str) -> tuple[str, str, str] | None:
        """What ties the parts of one flight: the UNH common access reference, else the first
        leg's flight and departure, else nothing (the part stands alone)."""
        ref = part.message.common_access_ref
        if not ref and part.legs and part.legs[0].number:
            leg = part.legs[0]
            ref = f"{leg.number}/{leg.times[0][1] if leg.times else ''}"
        return (caller, sender, ref) if ref else None

    def _parts_refusal(self, manifest: Manifest, caller: str) -> str:
        """The flight total of a split manifest against the parts seen in earlier interchanges."""
        for part in manifest.parts:
            if not part.multipart or part.declared is None:
                continue
            fkey = self._flight_key(part, caller, manifest.interchange.sender)
            known = dict(self._parts.get(fkey, {})) if fkey is not None else {}
            for other in manifest.parts:
                if other.multipart:
                    known[other.sequence] = (len(other.travellers), other.declared or 0, other.last)
            totals = {total for _n, total, _last in known.values()}
            if len(totals) > 1:
                return (
                    f"CNT+42 declares {part.declared} travellers for the flight; an earlier part "
                    f"declared {min(totals - {part.declared}, default=0)}"
                )
            last = [n for n, (_c, _t, is_last) in known.items() if is_last]
            if last and sorted(known) == list(range(1, last[0] + 1)):
                held = sum(c for c, _t, _l in known.values())
                if held != part.declared:
                    return (
                        f"CNT+42 declares {part.declared} travellers for the flight; its "
                        f"{len(known)} parts hold {held}"
                    )
        return ""

    def _remember_parts(self, manifest: Manifest, caller: str) -> None:
        for part in manifest.parts:
            if not part.multipart:
                continue
            key = self._flight_key(part, caller, manifest.interchange.sender)
            if key is None:
                continue
            entry = self._parts.setdefault(key, {})
            entry[part.sequence] = (len(part.travellers), part.declared or 0, part.last)
            self._parts.move_to_end(key)
            while len(self._parts) > self.config.remember:
                self._parts.popitem(last=False)

    async def _check(
        self,
        manifest: Manifest,
        deadline: float,
        answer_id: str,
        now: dt.datetime,
        admit: Callable[[int], None] | None = None,
    ) -> IapiAnswer:
        items: list[DocumentQuery | InvalidDocument] = []
        # Each traveller's items are consecutive: its results are items[start:end]'s.
        ends: list[int] = []
        visa_issuer = self.config.visa_issuer
        travellers = manifest.travellers
        step = TRAVELLERS_STEP if self.hub.gives_turns() else 0
        async for part in in_turns(len(travellers), step):
            for t in travellers[part]:
                items += traveller_items(t, visa_issuer)
                ends.append(len(items))
        await self._turn()
        if admit is not None:
            admit(len(items))
        results: list[CheckResult] = await self.hub.check(items, deadline)
        if len(results) != len(items):
            raise ValueError(f"the hub answered {len(results)} of {len(items)} items")
        passengers = []
        start = 0
        for t, end in zip(manifest.travellers, ends, strict=True):
            if end - start == 1:  # one document (most travellers): its answer is the passenger's
                r = results[start]
                directive = r.directive
                rs: tuple[CheckResult, ...] = (r,)
                check_ids: tuple[str, ...] = (r.check_id,)
                unchecked = r.unchecked and directive is _BOARD
            else:
                rs = tuple(results[start:end])
                directive = most_severe(r.directive for r in rs)
                check_ids = tuple(r.check_id for r in rs)
                unchecked = directive is _BOARD and any(r.unchecked for r in rs)
            start = end
            passengers.append(
                PassengerResult(
                    t.position,
                    t.booking_ref,
                    t.passenger_ref or ("" if t.booking_ref else str(t.position)),
                    t.crew,
                    directive,
                    check_ids,
                    rs,
                    unchecked,
                )
            )
        await self._turn()
        cusres = write_cusres(
            manifest,
            {p.position: p for p in passengers},
            transaction_ref=answer_id,
            stamp=_stamp(now),
            codes=self.config.codes,
            hub_id=self.config.hub_id,
        )
        tn = manifest.parts[0].transaction_ref or answer_id
        return IapiAnswer(
            encode(cusres, manifest.interchange), tuple(passengers), (), tn, answer_id=answer_id
        )

    def _error(
        self,
        ic: Interchange | None,
        header: ErrorHeader | None,
        detail: str,
        answer_id: str,
        now: dt.datetime,
    ) -> IapiAnswer:
        detail = detail if len(detail) <= MAX_ERROR else detail[: MAX_ERROR - 3] + "..."
        text = write_error_cusres(
            ic,
            error=self.config.codes.syntax_error,
            detail=detail,
            transaction_ref=answer_id,
            control_ref=(ic.control_ref if ic is not None and ic.control_ref else answer_id),
            stamp=_stamp(now),
            hub_id=self.config.hub_id,
            header=header,
        )
        tn = header.transaction_ref if header is not None and header.transaction_ref else answer_id
        return IapiAnswer(encode(text, ic), (), (detail,), tn, answer_id=answer_id)
