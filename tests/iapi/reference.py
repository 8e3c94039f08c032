"""Reference models for the fast paths of rmas.iapi: the implementations they replaced, one value
or segment at a time, kept to test the fast ones against (tests/iapi/test_fast_paths.py).

Taken from rmas/iapi at commit 0f28e9e (before issue 20's PAXLST work), unchanged but for names
and imports. Do not speed these up: they are the reference.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from unittest import mock

from rmas.documents import DocumentQuery, DocumentType, validate_document
from rmas.errors import FieldViolation, ValidationError
from rmas.hub import InvalidDocument
from rmas.iapi import segments as seg_module
from rmas.iapi.answer import IapiAnswer
from rmas.iapi.cusres import (
    ErrorHeader,
    PassengerAnswer,
    Seg,
    _part_header,
    fit_text,
)
from rmas.iapi.paxlst import (
    KNOWN_TAGS,
    MAX_REF,
    PASSENGER_QUALIFIERS,
    Document,
    Leg,
    Manifest,
    Part,
    Traveller,
    _d,
    _date,
    _header,
    _v,
)
from rmas.iapi.syntax import (
    DEFAULT_SEPARATORS,
    SYNTAX_IDS,
    EdifactError,
    Group,
    Interchange,
    Message,
    Segment,
    Separators,
    _check_count,
    _close_message,
    count_value,
    quote,
    tokenize,
)
from rmas.iapiconfig import CusresCodes
from rmas.states import to_alpha3


def _refuse(*_args: object) -> list[Segment]:
    raise seg_module._Unusual


def reference_tokenize(data: bytes | str) -> tuple[list[Segment], seg_module.Separators, bool]:
    """tokenize with its fast path switched off: every segment through the per-segment loop."""
    with mock.patch.object(seg_module, "_fast_segments", _refuse):
        return tokenize(data)


def reference_parse_interchange(data: bytes | str) -> Interchange:
    """parse_interchange as it was: each segment of a message looked at in turn."""
    segments, seps, una = reference_tokenize(data)
    if not segments or segments[0].tag != "UNB":
        first = segments[0] if segments else None
        raise EdifactError(
            "the interchange must start with UNB",
            segment=first.number if first else 1,
            tag=first.tag if first else "",
            offset=first.offset if first else 0,
        )
    unb = segments[0]
    syntax = unb.get(1, 0)
    if syntax not in SYNTAX_IDS:
        raise unb.error(f"unknown syntax identifier {quote(syntax)}", 1, 1)
    control_ref = unb.get(5)
    if not control_ref:
        raise unb.error("interchange control reference is missing", 5)
    last = segments[-1]
    if last.tag != "UNZ":
        raise EdifactError(
            "the interchange does not end with UNZ (truncated?)",
            segment=last.number,
            tag=last.tag,
            offset=last.offset,
        )
    if last.get(2) != control_ref:
        raise last.error(
            f"control reference {quote(last.get(2))} does not match UNB's {quote(control_ref)}", 2
        )
    groups: list[Group] = []
    messages: list[Message] = []
    group: Group | None = None
    msg: Message | None = None
    for seg in segments[1:-1]:
        tag = seg.tag
        if msg is not None:
            msg.segments.append(seg)
            if tag == "UNT":
                _close_message(msg, seg)
                msg = None
            elif tag in ("UNH", "UNZ", "UNG", "UNE", "UNB"):
                raise seg.error(f"{tag} inside message {quote(msg.ref)}, which has no UNT")
            continue
        if tag == "UNH":
            msg = Message(
                ref=seg.get(1),
                type=seg.get(2, 0),
                version=seg.get(2, 1),
                release=seg.get(2, 2),
                agency=seg.get(2, 3),
                association=seg.get(2, 4),
                segments=[seg],
                common_access_ref=seg.get(3),
                sequence=seg.get(4, 0),
                sequence_marker=seg.get(4, 1),
            )
            if not msg.ref:
                raise seg.error("message reference is missing", 1)
            messages.append(msg)
            if group is not None:
                group.messages.append(msg)
            elif groups:
                raise seg.error("message outside a functional group, after a group ended")
        elif tag == "UNG":
            if group is not None:
                raise seg.error(f"UNG inside group {quote(group.ref)}, which has no UNE")
            if messages and not groups:
                raise seg.error("functional group after messages outside any group")
            group = Group(seg.get(5), seg.get(1), seg.get(2), seg.get(3))
            groups.append(group)
        elif tag == "UNE":
            if group is None:
                raise seg.error("UNE without UNG")
            _check_count(seg, len(group.messages), "messages in the group")
            if seg.get(2) != group.ref:
                raise seg.error(
                    f"group reference {quote(seg.get(2))} does not match UNG's {quote(group.ref)}",
                    2,
                )
            group = None
        else:
            raise seg.error(f"{tag} outside any message")
    if msg is not None:
        raise last.error(f"message {quote(msg.ref)} has no UNT (truncated?)")
    if group is not None:
        raise last.error(f"group {quote(group.ref)} has no UNE (truncated?)")
    _check_count(last, len(groups) if groups else len(messages),
                 "groups" if groups else "messages")  # fmt: skip
    return Interchange(
        separators=seps,
        una_present=una,
        syntax=syntax,
        syntax_version=unb.get(1, 1),
        sender=unb.get(2, 0),
        sender_qualifier=unb.get(2, 1),
        recipient=unb.get(3, 0),
        recipient_qualifier=unb.get(3, 1),
        prepared_date=unb.get(4, 0),
        prepared_time=unb.get(4, 1),
        control_ref=control_ref,
        groups=groups,
        messages=messages,
        segment_count=len(segments),
        application_ref=unb.get(7),
    )


def reference_read_message(
    msg: Message,
    travellers: list[Traveller],
    warnings: list[str],
    today: dt.date,
) -> Part:
    mtype = ""
    function = ""
    party = ""
    tn = ""
    legs: list[Leg] = []
    declared: int | None = None
    own: list[Traveller] = []
    trav: Traveller | None = None
    doc: Document | None = None
    for seg in msg.segments[1:-1]:
        tag = seg.tag
        if tag == "BGM":
            mtype = seg.get(1)
            function = seg.get(2, 0).strip().upper()[:8]
            if mtype not in ("745", "250", "266"):
                warnings.append(
                    f"segment {seg.number}: BGM document code {quote(mtype)} unexpected"
                )
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
            own.append(trav)
            doc = None
        elif tag == "CNT":
            if seg.get(1, 0) == "42":
                raw = seg.get(1, 1)
                declared = count_value(raw)
                if declared is None:
                    raise seg.error(f"traveller count {quote(raw)} is not a number of 1-6 digits",
                                    1, 2)  # fmt: skip
            trav = None
        elif trav is None:
            if tag == "RFF" and seg.get(1, 0) == "TN":
                tn = seg.get(1, 1)
                if len(tn) > MAX_REF:
                    raise seg.error(f"RFF+TN is longer than {MAX_REF} characters", 1, 2)
            else:
                _header(seg, legs, tag)
        elif tag == "ATT" and seg.get(1) == "2":
            sex = seg.get(3, 0).upper()
            trav.sex = {"M": "M", "F": "F", "U": "X", "X": "X"}.get(sex, "")
            if not trav.sex:
                trav.problems.append(_v(trav, "sex", f"ATT sex {quote(sex)} is not M, F, U or X",
                                        seg))  # fmt: skip
        elif tag == "DTM":
            q = seg.get(1, 0)
            raw = seg.get(1, 1)
            try:
                if q == "329":
                    trav.birth_date = _date(raw, "birth", today)
                elif q == "36" and doc is not None:
                    doc.expiry_date = _date(raw, "expiry", today)
            except ValueError as exc:
                if q == "329":
                    trav.problems.append(_v(trav, "birth_date", f"DTM+329: {str(exc)[:80]}", seg))
                else:
                    assert doc is not None
                    doc.problems.append(_d(trav, "expiry_date", f"DTM+36: {str(exc)[:80]}", seg))
        elif tag == "NAT" and seg.get(1) == "2":
            code = seg.get(2)
            nat = to_alpha3(code) if code else None
            if nat is None:
                trav.problems.append(_v(trav, "nationality", f"unknown code {quote(code)}", seg))
            else:
                trav.nationality = nat
        elif tag == "RFF":
            q, value = seg.get(1, 0), seg.get(1, 1)
            if q in ("AVF", "ABO") and len(value) > MAX_REF:
                trav.problems.append(
                    _v(trav, f"rff_{q.lower()}", f"RFF+{q} longer than {MAX_REF} characters", seg)
                )
                value = value[:MAX_REF]
            if q == "AVF":
                trav.booking_ref = value
            elif q == "ABO":
                trav.passenger_ref = value
            elif q == "SEA":
                trav.seat = value[:MAX_REF]
        elif tag == "DOC":
            # The DOC code as sent: rmas.documents.DocumentType.from_code reads it (one table).
            doc = Document(seg.get(1, 0).strip().upper(), seg.get(2), segment=seg.number)
            trav.documents.append(doc)
        elif tag == "LOC" and seg.get(1) == "91":
            code = seg.get(2)
            state = to_alpha3(code) if code else None
            if doc is None:
                trav.problems.append(_v(trav, "issuing_state", "LOC+91 before any DOC", seg))
            else:
                doc.issuer_given = True
                if state is None:
                    doc.issuing_state = ""
                    doc.problems.append(_d(trav, "issuing_state",
                                           f"unknown state code {quote(code)}" if code
                                           else "LOC+91 names no state", seg))  # fmt: skip
                else:
                    doc.issuing_state = state
        elif tag not in KNOWN_TAGS:
            warnings.append(f"segment {seg.number}: unknown segment {tag} ignored")
    return Part(msg, mtype, party, tn, legs, own, declared, function)


def _write(
    segments: Iterable[Sequence[str | Sequence[str]]],
    seps: Separators = DEFAULT_SEPARATORS,
    *,
    una: bool = True,
    newline: bool = False,
) -> str:
    """Text of segments given as ``[tag, element, ...]`` (an element may be a list of components).

    Values are escaped with the release character; trailing empty elements and components are
    dropped, as ISO 9735 requires.
    """
    # Looked up once per call, not per value: hashing the separators for the pattern's cache
    # cost more than escaping (a CUSRES for 480 passengers escapes about 4,800 values).
    specials = re.compile(
        "[" + re.escape(seps.release + seps.component + seps.element + seps.segment) + "]"
    )
    search, sub = specials.search, specials.sub
    rel, component, element = seps.release, seps.component, seps.element
    end = seps.segment + ("\n" if newline else "")

    def released(m: re.Match[str]) -> str:
        return rel + m.group(0)

    out = [seps.una + ("\n" if newline else "")] if una else []
    for seg in segments:
        tag, *elements = seg
        parts = [str(tag)]
        for e in elements:
            if isinstance(e, str):
                parts.append(e if search(e) is None else sub(released, e))
            else:
                comps = [c if search(c) is None else sub(released, c) for c in e]
                while comps and not comps[-1]:
                    comps.pop()
                parts.append(component.join(comps))
        while len(parts) > 1 and not parts[-1]:
            parts.pop()
        out.append(element.join(parts) + end)
    return "".join(out)


def _p(value: str) -> str:
    """An echoed reference in printable ASCII (what every syntax level carries): control and
    other characters cannot come back to break the answer or empty a reference."""
    return "".join(c for c in value if " " <= c <= "~")


def _unb(
    request: Interchange | None, control_ref: str, stamp: tuple[str, str], hub_id: str
) -> tuple[list[Seg], str, str]:
    sender = (_p(request.recipient) if request else "") or hub_id
    recipient = (_p(request.sender) if request else "") or "UNKNOWN"
    syntax = request.syntax if request else "UNOA"
    version = (_p(request.syntax_version) if request else "") or "4"
    app = _p(request.application_ref) if request else ""
    segs: list[Seg] = [
        [
            "UNB",
            [syntax, version],
            [sender, _p(request.recipient_qualifier) if request else ""],
            [recipient, _p(request.sender_qualifier) if request else ""],
            list(stamp),
            control_ref,
            "",
            app,
        ],
    ]
    return segs, sender, recipient


def _message(ref: str, head: ErrorHeader, body: list[Seg]) -> list[Seg]:
    ref = _p(ref) or "1"
    unh: Seg = ["UNH", ref, ["CUSRES", "D", "05B", "UN", "IATA"]]
    if head.common_access_ref or head.sequence[0]:
        unh.append(_p(head.common_access_ref))
    if head.sequence[0]:
        unh.append([_p(x) for x in head.sequence])
    return [unh, *body, ["UNT", str(len(body) + 2), ref]]


def _envelope(
    request: Interchange | None,
    messages: list[list[Seg]],
    *,
    control_ref: str,
    stamp: tuple[str, str],
    hub_id: str,
) -> str:
    control_ref = _p(control_ref) or "0"
    segs, sender, recipient = _unb(request, control_ref, stamp, hub_id)
    grouped = bool(request and request.groups)
    group_ref = _p(request.groups[0].ref if request and request.groups else "") or "1"
    if grouped:
        segs.append(
            ["UNG", "CUSRES", sender, recipient, list(stamp), group_ref, "UN", ["D", "05B"]]
        )
    for m in messages:
        segs.extend(m)
    if grouped:
        segs.append(["UNE", str(len(messages)), group_ref])
    segs.append(["UNZ", "1" if grouped else str(len(messages)), control_ref])
    seps = request.separators if request else DEFAULT_SEPARATORS
    # UNA when the request had one (or could not be read): a request without it uses the
    # default separators, and its answer is written the same way.
    return _write(segs, seps, una=request.una_present if request else True)


def reference_write_cusres(
    manifest: Manifest,
    answers: Mapping[int, PassengerAnswer],
    *,
    transaction_ref: str,
    stamp: tuple[str, str],
    codes: CusresCodes | None = None,
    hub_id: str = "RMAS",
) -> str:
    """The CUSRES answering ``manifest``: ``answers`` by traveller position; deterministic in its
    inputs. ``transaction_ref`` is used where a message sent no ``RFF+TN``; ``stamp``: (YYMMDD,
    HHMM)."""
    c = codes or CusresCodes()
    ic = manifest.interchange
    messages = []
    for part in manifest.parts:
        head = _part_header(part, transaction_ref)
        body: list[Seg] = [["BGM", "962"], ["RFF", ["TN", _p(head.transaction_ref)]]]
        for leg in part.legs:
            if leg.number:
                body.append(["RFF", ["AF", _p(leg.number)]])
            body += [["DTM", [q, _p(value), _p(fmt)]] for q, value, fmt in leg.times]
            body += [["LOC", q, _p(place)] for q, place in leg.places if place]
        for t in part.travellers:
            p = answers[t.position]
            code, text = c.for_directive(p.directive, unchecked=p.unchecked)
            body.append(["ERP", "2"])
            if p.booking_ref:
                body.append(["RFF", ["AVF", _p(p.booking_ref)]])
            if p.passenger_ref:
                body.append(["RFF", ["ABO", _p(p.passenger_ref)]])
            body.append(["ERC", code])
            body.append(["FTX", "AAP", "", "", fit_text(text, ic.syntax)])
        messages.append(_message(part.message.ref, head, body))
    return _envelope(ic, messages, control_ref=ic.control_ref, stamp=stamp, hub_id=hub_id)


def reference_same_answers(a: IapiAnswer, b: IapiAnswer) -> bool:
    """Whether every passenger's answer is what it was (rmas/iapi/answer.py at 5fe1883, which
    compared the remembered ``PassengerResult``s of the first answer with a resend's)."""
    return [(p.position, p.directive, p.unchecked) for p in a.passengers] == [
        (p.position, p.directive, p.unchecked) for p in b.passengers
    ]


def reference_traveller_items(
    t: Traveller, visa_issuer: str
) -> list[DocumentQuery | InvalidDocument]:
    """``traveller_items`` of rmas/iapi/items.py at 8481918 (before its fast path): every
    document through validate_document."""
    ref = t.passenger_ref or t.booking_ref or str(t.position)
    prefix = f"travellers[{t.position - 1}]"
    out: list[DocumentQuery | InvalidDocument] = []
    for j, d in enumerate(t.documents):
        state = d.issuing_state
        if not d.issuer_given and DocumentType.from_code(d.type_code) is DocumentType.VISA:
            if not visa_issuer:
                continue  # not checked: its issuer is implied and not configured
            state = visa_issuer
        if d.problems:
            out.append(InvalidDocument(ref, tuple(d.problems)))
            continue
        try:
            out.append(
                validate_document(
                    issuing_state=state,
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
    problems = list(t.problems)
    if not out:
        what = "no DOC segment" if not t.documents else "no document that can be checked"
        problems.append(FieldViolation(f"{prefix}.documents", what))
    if problems:
        i = next((i for i, x in enumerate(out) if isinstance(x, InvalidDocument)), None)
        if i is None:
            out.append(InvalidDocument(ref, tuple(problems)))
        else:
            bad = out[i]
            assert isinstance(bad, InvalidDocument)
            out[i] = InvalidDocument(ref, (*problems, *bad.violations))
    return out
