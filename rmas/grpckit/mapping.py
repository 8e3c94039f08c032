"""Protobuf <-> domain translation of the messages' contents (documents, records, cards, results).

With :mod:`rmas.grpckit.lookup` (the provider protocol's requests and answers) it is where
``*_pb2`` messages meet domain types; the other modules that name a message type, and why, are
listed in :mod:`rmas.grpckit`.

Inbound, it turns request messages into validated :class:`~rmas.documents.DocumentQuery` objects
(or the violations that stopped them); outbound, it writes :class:`~rmas.hub.CheckResult` and
:class:`~rmas.verdict.Record` objects into response messages.

Outbound is also where need-to-know is applied, once for every RPC: :func:`result_to_pb` writes
a result in the caller's :class:`~rmas.security.access.View` (an airline's is directive, check id
and its own reference; an officer's is everything), and nothing else writes results.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rmas.abtc import (
    CardQuery,
    CardReason,
    CardRecord,
    CardResult,
    CardStatus,
    parse_economies,
    validate_card,
    validate_economy,
)
from rmas.documents import (
    EMPTY_HOLDER,
    DocumentQuery,
    DocumentType,
    valid_plain,
    validate_document,
)
from rmas.errors import FieldViolation, ValidationError
from rmas.grpckit import enums
from rmas.hub import CheckResult, InvalidDocument, ScannedDocument
from rmas.mrz import DigitState, MrzReading, read_mrz
from rmas.security.access import View
from rmas.v1 import check_pb2, common_pb2
from rmas.verdict import (
    Directive,
    HolderMatch,
    Outcome,
    Record,
    Verdict,
)

if TYPE_CHECKING:  # a national node maps records, never a PAXLST: it loads no EDIFACT code
    from rmas.iapi.channel import IapiAnswer

__all__ = [
    "card_query_from_pb",
    "card_record_from_pb",
    "card_record_to_pb",
    "directive_to_pb",
    "document_from_pb",
    "document_to_pb",
    "paxlst_answer_to_pb",
    "plain_from_pb",
    "query_from_document",
    "query_from_lookup_pb",
    "record_from_pb",
    "record_to_pb",
    "result_to_pb",
    "results_to_pb",
    "scanned_from_lines",
    "scanned_or_invalid",
]

_TYPE_TO_PB = enums.TYPE_TO_PB
_TYPE_FROM_PB = {v: k for k, v in _TYPE_TO_PB.items()}
_STATUS_TO_PB = enums.STATUS_TO_PB
_STATUS_FROM_PB = {v: k for k, v in _STATUS_TO_PB.items()}
_MATCH_TO_PB = enums.MATCH_TO_PB
_MATCH_FROM_PB = {v: k for k, v in _MATCH_TO_PB.items()}
_VERDICT_TO_PB = enums.VERDICT_TO_PB
_DIRECTIVE_TO_PB = enums.DIRECTIVE_TO_PB


def directive_to_pb(directive: Directive) -> check_pb2.Directive.ValueType:
    """A directive's wire form."""
    return _DIRECTIVE_TO_PB[directive]


_OUTCOME_TO_PB = {o: check_pb2.Outcome.Value(f"OUTCOME_{o.name}") for o in Outcome}
_CARD_TO_PB = {c: common_pb2.CardStatus.Value(f"CARD_STATUS_{c.name}") for c in CardStatus}
_CARD_FROM_PB = {v: k for k, v in _CARD_TO_PB.items()}
_REASON_TO_PB = {
    r: check_pb2.AbtcReason.Value(f"ABTC_REASON_{r.name}" if r.value else "ABTC_REASON_UNSPECIFIED")
    for r in CardReason
}


# Enum members read in the per-document code, as constants (a member read through its class is
# about 0.1 µs on Python 3.11).
_NOT_CHECKED = HolderMatch.NOT_CHECKED
_UNSPECIFIED = DocumentType.UNSPECIFIED
_FULL = View.FULL


def _iso(d: dt.date | None) -> str:
    return d.isoformat() if d is not None else ""


def query_from_document(
    doc: common_pb2.Document, *, ref: str = "", prefix: str = "document"
) -> DocumentQuery:
    """Validate a Document message; raise ValidationError naming fields under ``prefix``."""
    doc_type = _TYPE_FROM_PB.get(doc.type)
    if doc_type is None:
        raise ValidationError([FieldViolation(f"{prefix}.type", f"unknown type {doc.type}")])
    if not doc.HasField("holder"):  # no holder data (most manifests): five reads fewer
        return validate_document(
            issuing_state=doc.issuing_state,
            number=doc.number,
            type_code=doc_type.letter,
            expiry_date=doc.expiry_date,
            ref=ref,
            prefix=prefix,
        )
    h = doc.holder
    return validate_document(
        issuing_state=doc.issuing_state,
        number=doc.number,
        type_code=doc_type.letter,
        surname=h.surname,
        given_names=h.given_names,
        birth_date=h.birth_date,
        sex=h.sex,
        nationality=h.nationality,
        expiry_date=doc.expiry_date,
        ref=ref,
        prefix=prefix,
    )


def plain_from_pb(doc: common_pb2.Document, ref: str) -> DocumentQuery | None:
    """The query of a document that gives only a valid state and number (most manifest lines,
    :func:`rmas.documents.valid_plain`), read without building its field path; None for any
    other document (absent included): :func:`document_from_pb` reads and names it then."""
    if doc.type or doc.expiry_date or doc.HasField("holder"):
        return None
    return valid_plain(doc.issuing_state, doc.number, ref)


def document_from_pb(
    doc: common_pb2.Document, *, ref: str, prefix: str
) -> DocumentQuery | InvalidDocument:
    """Like :func:`query_from_document`, but a bad document becomes an InvalidDocument."""
    try:
        return query_from_document(doc, ref=ref, prefix=prefix)
    except ValidationError as exc:
        return InvalidDocument.from_error(ref, exc)


def scanned_from_lines(lines: Sequence[str], *, ref: str = "", prefix: str) -> ScannedDocument:
    """Read MRZ lines into a document to check; raise ValidationError when it cannot be checked.

    A zone that cannot be read, an unknown issuing state or an empty number stop the check (there
    is nothing to route); refuted check digits do not: the hub checks the number as read and its
    OCR candidates (see rmas.verdict). Violations name ``prefix`` and say where in the zone.
    """
    reading = read_mrz(lines)
    if reading.layout is None:
        raise ValidationError([FieldViolation(prefix, p.description) for p in reading.problems])
    fields = reading.document_fields()
    blocking = [k for k in ("issuing_state", "document_number") if k in reading.field_problems]
    if blocking:
        spans = reading.fields
        raise ValidationError(
            [
                FieldViolation(
                    prefix,
                    f"line {spans[k].line}, columns {spans[k].start + 1}-{spans[k].end} ({k}): "
                    f"{reading.field_problems[k]}",
                )
                for k in blocking
            ]
        )
    # Other field problems (an unknown nationality, a bad date) do not stop the lookup: they are
    # reported in the evidence, and the fields at fault are left out of the holder data.
    for key, name in (("nationality", "nationality"), ("birth_date", "birth_date"),
                      ("expiry_date", "expiry_date"), ("sex", "sex")):  # fmt: skip
        if key in reading.field_problems:
            fields[name] = ""
    query = validate_document(**fields, ref=ref, prefix=prefix)
    return ScannedDocument(query, reading)


def scanned_or_invalid(
    lines: Sequence[str], *, ref: str, prefix: str
) -> ScannedDocument | InvalidDocument:
    try:
        return scanned_from_lines(lines, ref=ref, prefix=prefix)
    except ValidationError as exc:
        return InvalidDocument.from_error(ref, exc)


_EVIDENCE = {
    DigitState.VERIFIED: check_pb2.EVIDENCE_STATE_VERIFIED,
    DigitState.REFUTED: check_pb2.EVIDENCE_STATE_REFUTED,
    DigitState.ABSENT: check_pb2.EVIDENCE_STATE_ABSENT,
}


def _set_mrz(r: MrzReading, out: check_pb2.MrzEvidence) -> None:
    out.layout = r.layout.value if r.layout else ""
    for f in r.fields.values():
        out.fields.add(
            name=f.name, raw=f.raw, value=f.value, line=f.line, start=f.start, end=f.end,
            problem=f.problem or "",
        )  # fmt: skip
    for c in r.check_digits:
        d = out.check_digits.add(
            name=c.name, state=_EVIDENCE[c.state], found=c.found, expected=c.expected
        )
        if len(c.covers) > 1 and c.name != "composite":
            d.covers = "+".join(c.covers)
    for sug in r.suggestions:
        out.suggestions.add(
            field=sug.field, line=sug.line, column=sug.column, found=sug.found,
            replacement=sug.replacement, document_number=sug.document_number,
        )  # fmt: skip
    out.expired = r.expired


def document_to_pb(q: DocumentQuery, out: common_pb2.Document) -> None:
    _set_document(q, out)


def query_from_lookup_pb(doc: common_pb2.Document, ref: str) -> DocumentQuery:
    """A provider-side query from a LookupItem's document (already normalised by the hub)."""
    return query_from_document(doc, ref=ref, prefix="items.document")


def record_to_pb(r: Record, out: common_pb2.Record) -> None:
    _set_record(r, out)


def record_from_pb(r: common_pb2.Record) -> Record:
    """Read a provider's Record message; raise ValueError when it is not a usable answer."""
    status = _STATUS_FROM_PB.get(r.status)
    if status is None:
        raise ValueError(f"record status {r.status} is not a known status")
    reported = dt.date.fromisoformat(r.reported_on) if r.reported_on else None
    return Record(
        status=status,
        holder_match=_MATCH_FROM_PB.get(r.holder_match, HolderMatch.NOT_CHECKED),
        reported_on=reported,
        record_ref=r.record_ref,
        reporting_authority=r.reporting_authority,
        detail=r.detail,
        document_type=DocumentType.from_code(r.document_type).letter,
    )


def card_query_from_pb(
    card: check_pb2.Card, checking_economy: str, passport: DocumentQuery, hub_economy: str
) -> CardQuery:
    """Validate the card of a CheckDocument request, tied to the passport it came with; raise
    ValidationError naming ``abtc.home_economy``, ``abtc.number`` or ``checking_economy``.

    The home economy defaults to the passport's issuing state; the checking economy to the
    hub's own (``[hub] economy``).
    """
    return validate_card(
        home_economy=card.home_economy,
        number=card.number,
        checking_economy=checking_economy or hub_economy,
        passport_number=passport.number,
        passport_state=passport.issuing_state,
    )


def card_record_to_pb(r: CardRecord, out: common_pb2.CardRecord) -> None:
    out.status = _CARD_TO_PB[r.status]
    if r.expiry_date is not None:
        out.expiry_date = r.expiry_date.isoformat()
    if r.passport_number:
        out.passport_number = r.passport_number
    if r.passport_economy:
        out.passport_issuing_state = r.passport_economy
    out.pre_cleared.extend(sorted(r.pre_cleared))
    if r.record_ref:
        out.record_ref = r.record_ref
    if r.reporting_authority:
        out.reporting_authority = r.reporting_authority


def card_record_from_pb(r: common_pb2.CardRecord) -> CardRecord:
    """Read a provider's CardRecord; raise ValueError when it is not a usable answer."""
    status = _CARD_FROM_PB.get(r.status)
    if status is None:
        raise ValueError(f"card status {r.status} is not a known status")
    passport_economy = ""
    if r.passport_issuing_state:
        passport_economy = validate_economy(r.passport_issuing_state) or ""
        if not passport_economy:
            raise ValueError("passport_issuing_state is not a known state code")
    return CardRecord(
        status=status,
        expiry_date=dt.date.fromisoformat(r.expiry_date) if r.expiry_date else None,
        passport_number=r.passport_number,
        passport_economy=passport_economy,
        pre_cleared=parse_economies(r.pre_cleared),
        record_ref=r.record_ref,
        reporting_authority=r.reporting_authority,
    )


def _set_abtc(c: CardResult, out: check_pb2.AbtcResult) -> None:
    if c.status is not None:
        out.status = _CARD_TO_PB[c.status]
    out.usable = c.usable
    out.reason = _REASON_TO_PB[c.reason]
    out.pre_cleared_for_us = c.pre_cleared_for_us
    if c.expiry_date is not None:
        out.expiry = c.expiry_date.isoformat()
    out.provider = c.provider_id
    if c.outcome is not None:
        out.outcome = _OUTCOME_TO_PB[c.outcome]
    out.passport_match = _MATCH_TO_PB[c.passport_match]
    out.home_economy = c.query.home_economy
    out.checking_economy = c.query.checking_economy
    if c.record is not None:
        out.pre_cleared.extend(sorted(c.record.pre_cleared))
        out.record_ref = c.record.record_ref
        out.reporting_authority = c.record.reporting_authority
    out.detail = c.detail
    out.contact = c.contact


# Building messages by setting fields on repeated-field ``add()`` results is the fastest form with
# upb (measured: constructor keyword arguments and CopyFrom are 25-100% slower). Empty values are
# skipped: proto3 defaults cost nothing on the wire and nothing to set.


def _set_record(r: Record, out: common_pb2.Record) -> None:
    out.status = _STATUS_TO_PB[r.status]
    if r.holder_match is not _NOT_CHECKED:
        out.holder_match = _MATCH_TO_PB[r.holder_match]
    if r.reported_on is not None:
        out.reported_on = r.reported_on.isoformat()
    if r.record_ref:
        out.record_ref = r.record_ref
    if r.reporting_authority:
        out.reporting_authority = r.reporting_authority
    if r.detail:
        out.detail = r.detail
    if r.document_type:
        out.document_type = r.document_type


def _set_document(q: DocumentQuery, out: common_pb2.Document) -> None:
    out.issuing_state = q.issuing_state
    out.number = q.number
    if q.type is not _UNSPECIFIED:
        out.type = _TYPE_TO_PB[q.type]
    if q.expiry_date is not None:
        out.expiry_date = q.expiry_date.isoformat()
    h = q.holder
    if h is not EMPTY_HOLDER:
        oh = out.holder
        oh.surname = h.surname
        oh.given_names = h.given_names
        oh.birth_date = _iso(h.birth_date)
        oh.sex = h.sex
        oh.nationality = h.nationality


def result_to_pb(
    r: CheckResult,
    out: check_pb2.CheckResult,
    view: View = View.FULL,
    shared: dict[tuple[int, Verdict, bool], bytes] | None = None,
) -> None:
    """Write a CheckResult as ``view`` may see it: the one place results are filtered.

    ``shared`` (a batch's, from :func:`results_to_pb`): the verdict and sources of results that
    share one ``sources`` tuple (the hub gives documents with the same answers the same tuple),
    from the second such result on, are written once as bytes and merged into the others. The
    dict must not outlive the results it was filled from (it is keyed by the tuples' identities).
    """
    out.check_id = r.check_id
    if r.ref:
        out.ref = r.ref
    out.directive = _DIRECTIVE_TO_PB[r.directive]
    # Every view learns that an OK_TO_BOARD was not checked (fail-open policy): an airline must
    # be able to tell it from a checked one.
    if r.unchecked:
        out.unchecked = True
    if view is not _FULL:
        return
    if shared is None or not r.sources:
        _set_answers(r, out)
    else:
        key = (id(r.sources), r.verdict, r.issuer_consulted)
        part = shared.get(key)
        if part is None:  # first seen: written field by field (most answers are not shared)
            shared[key] = b""
            _set_answers(r, out)
        else:
            if not part:  # seen again: written once more, kept as bytes for the next ones
                msg = check_pb2.CheckResult()
                _set_answers(r, msg)
                part = shared[key] = msg.SerializeToString()
            out.MergeFromString(part)
    for p in r.problems:
        out.problems.add(field=p.field, description=p.description)
    if r.warnings:
        out.warnings.extend(r.warnings)
    if r.document is not None:
        _set_document(r.document, out.document)
    if r.mrz is not None:
        _set_mrz(r.mrz, out.mrz)
    if r.abtc is not None:
        _set_abtc(r.abtc, out.abtc)


def _set_answers(r: CheckResult, out: check_pb2.CheckResult) -> None:
    """The full view's verdict, ``issuer_consulted`` and sources."""
    out.verdict = _VERDICT_TO_PB[r.verdict]
    if r.issuer_consulted:
        out.issuer_consulted = True
    for s in r.sources:
        o = out.sources.add()
        o.provider_id = s.provider_id
        o.outcome = _OUTCOME_TO_PB[s.outcome]
        o.latency_ms = s.latency_ms
        o.required = s.required
        o.issuer = s.issuer
        if s.contact:
            o.contact = s.contact
        if s.error:
            o.error = s.error
        if s.queried_number:
            o.queried_number = s.queried_number
        if s.record is not None:
            _set_record(s.record, o.record)


def paxlst_answer_to_pb(
    a: IapiAnswer, view: View = View.DIRECTIVE
) -> check_pb2.CheckPaxlstResponse:
    """The CUSRES and a directive per traveller (never a reason); with the full view, also
    every document's result."""
    out = check_pb2.CheckPaxlstResponse(
        cusres=a.cusres,
        errors=list(a.errors),
        duplicate=a.duplicate,
        transaction_ref=a.transaction_ref,
    )
    for p in a.passengers:
        out.passengers.add(
            position=p.position, booking_ref=p.booking_ref, passenger_ref=p.passenger_ref,
            crew=p.crew, directive=_DIRECTIVE_TO_PB[p.directive], check_ids=list(p.check_ids),
            unchecked=p.unchecked,
        )  # fmt: skip
    if view is View.FULL:
        add = out.results.add
        shared: dict[tuple[int, Verdict, bool], bytes] = {}
        for p in a.passengers:
            for r in p.results:
                result_to_pb(r, add(), view, shared)
    return out


def results_to_pb(
    results: Sequence[CheckResult], out: check_pb2.CheckManifestResponse, view: View = View.FULL
) -> None:
    add = out.results.add
    shared: dict[tuple[int, Verdict, bool], bytes] = {}
    for r in results:
        result_to_pb(r, add(), view, shared)
