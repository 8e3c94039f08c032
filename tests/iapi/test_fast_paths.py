"""The fast paths of rmas.iapi give exactly what their reference models give (tests/iapi/
reference.py: the implementations they replaced), on random interchanges: segments, positions
and errors of the tokenizer, envelopes, manifests, and CUSRES bytes."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rmas.errors import FieldViolation
from rmas.iapi import paxlst as paxlst_module
from rmas.iapi import segments as seg_module
from rmas.iapi.answer import IapiAnswer, PassengerResult, verdicts
from rmas.iapi.cusres import PassengerAnswer, write_cusres
from rmas.iapi.items import traveller_items
from rmas.iapi.paxlst import Document, Traveller, read_paxlst
from rmas.iapi.syntax import EdifactError, Separators, parse_interchange, tokenize
from rmas.iapiconfig import CusresCodes
from rmas.verdict import Directive
from tests.iapi.reference import (
    reference_parse_interchange,
    reference_read_message,
    reference_same_answers,
    reference_tokenize,
    reference_traveller_items,
    reference_write_cusres,
)

PAX = Path(__file__).resolve().parents[2] / "fixtures" / "paxlst"
TODAY = dt.date(2026, 11, 23)
SETTINGS = settings(max_examples=400, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])  # fmt: skip

# Separator characters a UNA may name (printable ASCII, no letter or digit, no space), and a few
# it may not (to compare the errors too).
MARKS = "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~'"
TAGS = ["UNB", "UNG", "UNH", "BGM", "NAD", "DTM", "RFF", "DOC", "LOC", "ATT", "NAT", "CNT",
        "UNT", "UNE", "UNZ", "TDT", "FTX", "ZZ9"]  # fmt: skip
BAD_TAGS = ["", "ab1", "NADX", "N", " NAD", "\r\nUNH", "1AB", "\nUNZ"]


def outcome(fn: Callable[[Any], Any], data: Any) -> tuple[Any, ...]:
    """A result, or an error with everything it says of where it is."""
    try:
        return ("ok", fn(data))
    except EdifactError as exc:
        return ("error", str(exc), exc.segment, exc.tag, exc.element, exc.component, exc.offset)


@st.composite
def separators(draw: st.DrawFn) -> tuple[Separators, bool]:
    """The default separators (with or without UNA), or odd ones a UNA announces (sometimes
    invalid ones: the same character twice, a letter)."""
    if draw(st.booleans()):
        return Separators(), draw(st.booleans())
    pool = MARKS + ("A5 " if draw(st.integers(0, 9)) == 0 else "")
    comp, elem, rel, term = (draw(st.sampled_from(pool)) for _ in range(4))
    if draw(st.integers(0, 9)):  # mostly four different characters
        chosen = draw(st.permutations(list(MARKS)))
        comp, elem, rel, term = chosen[:4]
    return Separators(comp, elem, draw(st.sampled_from(".,")), rel, " ", term), True


def _value(draw: st.DrawFn, seps: Separators, plain: bool) -> str:
    alphabet = (
        "AB01 -"
        if plain
        else "AB01 -\r\n\u00e9" + seps.component + seps.element + (seps.release + seps.segment)
    )
    return draw(st.text(alphabet, max_size=6))


def _escape(value: str, seps: Separators) -> str:
    return "".join(
        seps.release + c if c in (seps.release, seps.component, seps.element, seps.segment) else c
        for c in value
    )


@st.composite
def interchanges(draw: st.DrawFn) -> str:
    """Random interchanges: mostly well-formed envelopes, segments with random elements (often
    released separators, sometimes unreleased ones), CR/LF between segments, bad tags, carrier
    junk, a trailer, truncation."""
    seps, una = draw(separators())
    plain = draw(st.booleans())  # no separator in any value: the fast path's case
    segs: list[tuple[str, list[list[str]]]] = []
    body_tags = draw(st.lists(st.sampled_from(TAGS[3:]), max_size=8))
    tags = ["UNB", *(["UNG"] if draw(st.booleans()) else []), "UNH", *body_tags, "UNT"]
    if "UNG" in tags:
        tags.append("UNE")
    tags.append("UNZ")
    for good in tags:
        tag = draw(st.sampled_from(BAD_TAGS)) if draw(st.integers(0, 30)) == 0 else good
        shape = draw(st.lists(st.integers(1, 3), max_size=4))
        segs.append((tag, [[_value(draw, seps, plain) for _ in range(n)] for n in shape]))
    # Envelope values that usually agree, so that parsing gets past the envelope.
    fixed = {"UNB": [["UNOA", "4"], ["S"], ["R"], ["261123", "0900"], ["REF1"]],
             "UNH": [["M1"], ["PAXLST", "D", "05B", "UN", "IATA"]],
             "UNG": [["PAXLST"], ["S"], ["R"], ["261123", "0900"], ["G1"]],
             "UNT": [[str(len(body_tags) + 2)], ["M1"]], "UNE": [["1"], ["G1"]],
             "UNZ": [["1"], ["REF1"]]}  # fmt: skip
    lines = []
    gaps = ["", "\r\n", " ", "\n\n", "\r\n\r\n"] if draw(st.integers(0, 3)) == 0 else [""]
    for tag, drawn in segs:
        elements = fixed[tag] if tag in fixed and draw(st.integers(0, 5)) else drawn
        escape = plain or draw(st.integers(0, 9)) > 0
        text = tag + "".join(
            seps.element
            + seps.component.join(_escape(v, seps) if escape else v for v in components)
            for components in elements
        )
        gap = draw(st.sampled_from(gaps))
        lines.append(text + seps.segment + gap)
    head = seps.una if una else ""
    data = draw(st.sampled_from(["", "", "ZCZC\r\n"])) + head + "".join(lines)
    data += draw(st.sampled_from(["", "", "NNNN", "\r\n", seps.release]))
    if draw(st.integers(0, 5)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return data


def _refuse_fast(*_args: object) -> list[seg_module.Segment]:
    raise AssertionError("the fast path was taken")


def test_the_fast_path_reads_the_480_passenger_fixture_alone() -> None:
    data = (PAX / "manifest_480.edi").read_bytes()
    with mock.patch.object(seg_module, "_reference_segments", _refuse_fast):
        segments, _, _ = tokenize(data)
    assert segments == reference_tokenize(data)[0]
    assert len(segments) > 4000


@SETTINGS
@given(interchanges())
@example("UNA:+.? 'UNB+UNOA:4+S+R+261123:0900+REF1'UNZ+0+REF1'")
@example("UNB+UNOA:4+S+R+1:2+R'\r\nUNZ+0+R'")
@example("UNB+UNOA:4+S+R+1:2+R'UNH+1'NAD'UNZ")
@example("UNB+UNOA:4+S+R+1:2+R'nad+1'UNZ+0+R'")
@example("UNB+UNOA:4+S+R+1:2+R''UNZ+0+R'")
def test_tokenize_gives_the_reference_segments_positions_and_errors(data: str) -> None:
    assert outcome(tokenize, data) == outcome(reference_tokenize, data)
    raw = data.encode("utf-8")
    assert outcome(tokenize, raw) == outcome(reference_tokenize, raw)


@SETTINGS
@given(interchanges())
@example(
    "UNB+UNOA:4+S+R+261123:0900+REF1'UNH+M1+PAXLST:D:05B:UN:IATA'BGM+745'UNH+M2'UNT+3+M1'"
    "UNZ+1+REF1'"
)
@example("UNB+UNOA:4+S+R+261123:0900+REF1'UNH+M1+PAXLST:D:05B:UN:IATA'BGM+745'UNZ+1+REF1'")
@example("UNB+UNOA:4+S+R+261123:0900+REF1'UNH+M1+PAXLST:D:05B:UN:IATA'UNZ+1+REF1'")
def test_parse_interchange_gives_the_reference_envelope_and_errors(data: str) -> None:
    assert outcome(parse_interchange, data) == outcome(reference_parse_interchange, data)


# -- PAXLST and CUSRES ----------------------------------------------------------------------------

# Birth and expiry read some of these differently (451231: 1945 born, expires 2045).
DATES = ["451231", "300101", "800101", "000229", "010229", "20010101", "8001", "", "80013A"]
CODES = ["AUS", "NZL", "NZ", "", "ZZZ", "PHL"]


@st.composite
def traveller(draw: st.DrawFn, seps: Separators) -> list[list[Any]]:
    q = draw(st.sampled_from(["FL", "FM", "DDT", "COT", "MS", "XX"]))
    name = draw(st.lists(st.sampled_from(["", "O'BRIEN", "ANNA", "LEE", "A+B"]), max_size=3))
    segs: list[list[Any]] = [["NAD", q, "", "", name]]
    for _ in range(draw(st.integers(0, 10))):
        kind = draw(st.integers(0, 8))
        if kind == 0:
            segs.append(["ATT", draw(st.sampled_from(["2", "1"])), "",
                         draw(st.sampled_from(["M", "f", "U", "Q", ""]))])  # fmt: skip
        elif kind == 1:
            segs.append(["DTM", [draw(st.sampled_from(["329", "36", "189"])),
                                 draw(st.sampled_from(DATES))]])  # fmt: skip
        elif kind == 2:
            segs.append(["NAT", draw(st.sampled_from(["2", "1"])), draw(st.sampled_from(CODES))])
        elif kind == 3:
            ref = draw(st.sampled_from(["B1", "x" * 75, "", "O'B", "\u00e9\x01Z"]))
            segs.append(["RFF", [draw(st.sampled_from(["AVF", "ABO", "SEA", "TN"])), ref]])
        elif kind == 4:
            segs.append(["DOC", [draw(st.sampled_from(["P", " v ", "I", ""])), "110", "111"],
                         draw(st.sampled_from(["PA1", "", "X:Y"]))])  # fmt: skip
        elif kind == 5:
            segs.append(["LOC", draw(st.sampled_from(["91", "125", "87"])),
                         draw(st.sampled_from(CODES))])  # fmt: skip
        elif kind == 6:
            segs.append(["ZZZ", "1"])
        elif kind == 7:
            segs.append(["FTX", "AAP", "", "", "TEXT"])
        else:
            segs.append(["DTM"])
    return segs


def _valid(seps: Separators) -> bool:
    marks = (seps.component, seps.element, seps.release, seps.segment)
    return len(set(marks)) == 4 and not any(c.isalnum() or c == " " for c in marks)


@st.composite
def paxlst(draw: st.DrawFn) -> bytes:
    """A PAXLST of random travellers (good and bad values) in one or two messages."""
    seps, una = draw(separators().filter(lambda s: _valid(s[0])))
    messages = []
    count = draw(st.integers(1, 2))
    for m in range(count):
        body: list[list[Any]] = [["BGM", draw(st.sampled_from(["745", "250", "999"])),
                                  draw(st.sampled_from(["", "CP", "xr"]))]]  # fmt: skip
        if draw(st.booleans()):
            body.append(["RFF", ["TN", draw(st.sampled_from(["T1", "O'T", "y" * 71]))]])
        body.append(["NAD", "MS", "", "", "DCS"])
        if draw(st.booleans()):
            body += [["TDT", "20", "NZ1"], ["LOC", "125", "AKL"],
                     ["DTM", ["189", "2611231030", "201"]], ["LOC", "87", "SYD"]]  # fmt: skip
        n = 0
        for t in draw(st.lists(traveller(seps), max_size=5)):
            body += t
            n += t[0][1] in ("FL", "FM", "DDT", "COT")
        if draw(st.integers(0, 4)):
            body.append(["CNT", ["42", str(n)]])
        seq = [["01", "F"]] if count == 1 else [[f"0{m + 1}", "F" if m else "C"]]
        unh: list[Any] = ["UNH", f"M{m}", ["PAXLST", "D", "05B", "UN", "IATA"], "CAR", *seq]
        messages += [unh, *body, ["UNT", str(len(body) + 2), f"M{m}"]]
    segs = [["UNB", ["UNOA", "4"], "AIR", "HUB", ["261123", "0900"], "ICR1", "", "IAPI"],
            *messages, ["UNZ", str(count), "ICR1"]]  # fmt: skip
    return seg_module.write_segments(segs, seps, una=una).encode("latin-1")


def _reference_read(data: bytes) -> Any:
    def old(msg: Any, travellers: Any, warnings: Any, today: Any, _dates: Any = None) -> Any:
        # The reader is a generator of steps (rmas.iapi.steps): this one has a single step.
        return reference_read_message(msg, travellers, warnings, today)
        yield  # a generator

    with mock.patch.object(paxlst_module, "_read_message", old):
        return read_paxlst(data, today=TODAY)


@SETTINGS
@given(paxlst())
@example((PAX / "manifest_480.edi").read_bytes())
@example((PAX / "release_obrien.edi").read_bytes())
@example(
    b"UNB+UNOA:4+A+H+261123:0900+I1'UNH+M1+PAXLST:D:05B:UN:IATA'BGM+745'NAD+FL+++X'"
    b"DOC+P+N1'DTM+36:451231'DTM+329:451231'NAD+FL+++Y'DTM+329:300101'DOC+P+N2'DTM+36:300101'"
    b"CNT+42:2'UNT+12+M1'UNZ+1+I1'"
)
def test_read_paxlst_gives_the_reference_manifest_and_errors(data: bytes) -> None:
    fast = outcome(lambda d: read_paxlst(d, today=TODAY), data)
    assert fast == outcome(_reference_read, data)


@SETTINGS
@given(
    paxlst(),
    st.lists(
        st.tuples(
            st.sampled_from(list(Directive)),
            st.booleans(),
            st.sampled_from(["", "B1", "O'B+:?", "\u00e9\x01", "\x02"]),
            st.sampled_from(["", "P1", "A?B", "\u00ff"]),
        ),
        min_size=1,
    ),
    st.sampled_from(
        [CusresCodes(), CusresCodes(ok_to_board=("0'Z", "OK: TO+BOARD?"), do_not_board=("", ""))]
    ),
)
def test_write_cusres_gives_the_reference_bytes(
    data: bytes, picks: list[tuple[Directive, bool, str, str]], codes: CusresCodes
) -> None:
    try:
        manifest = read_paxlst(data, today=TODAY)
    except EdifactError:
        return
    answers = {}
    for i, t in enumerate(manifest.travellers):
        directive, unchecked, booking, passenger = picks[i % len(picks)]
        answers[t.position] = PassengerAnswer(booking, passenger, directive, unchecked)
    kwargs: dict[str, Any] = {"transaction_ref": "T\x01X", "stamp": ("261123", "0900"),
                              "codes": codes, "hub_id": "HUB"}  # fmt: skip
    assert write_cusres(manifest, answers, **kwargs) == reference_write_cusres(
        manifest, answers, **kwargs
    )


@st.composite
def answers(draw: st.DrawFn) -> IapiAnswer:
    passengers = draw(st.lists(st.builds(
        PassengerResult, position=st.integers(1, 1200), booking_ref=st.just("B"),
        passenger_ref=st.just("P"), crew=st.booleans(), directive=st.sampled_from(Directive),
        check_ids=st.just(("c1",)), unchecked=st.booleans(),
    ), max_size=12))  # fmt: skip
    return IapiAnswer(b"", tuple(passengers), (), "TN")


@SETTINGS
@given(answers(), answers(), st.data())
def test_equal_verdicts_are_the_reference_comparison_of_answers(
    a: IapiAnswer, b: IapiAnswer, data: st.DataObject
) -> None:
    """What the channel remembers of an answer (one string) tells a changed resend from an
    unchanged one exactly as comparing the remembered passengers did."""
    assert (verdicts(a) == verdicts(b)) == reference_same_answers(a, b)
    # Mostly unequal at random: also a copy of ``a`` with one passenger changed in one field.
    if a.passengers:
        i = data.draw(st.integers(0, len(a.passengers) - 1))
        field = data.draw(st.sampled_from(["position", "directive", "unchecked", "crew"]))
        p = a.passengers[i]
        value = {"position": p.position + data.draw(st.sampled_from([-1, 1, 10, 100])),
                 "directive": data.draw(st.sampled_from(Directive)),
                 "unchecked": not p.unchecked, "crew": not p.crew}[field]  # fmt: skip
        new = dataclasses.replace(p, **{field: value})
        c = dataclasses.replace(a, passengers=(*a.passengers[:i], new, *a.passengers[i + 1 :]))
        assert verdicts(a) == verdicts(a) and reference_same_answers(a, a)
        assert (verdicts(a) == verdicts(c)) == reference_same_answers(a, c)


# What a DCS sends for a traveller and its documents, and what it should not: names needing
# normalising (digits, diacritics, apostrophes, blanks), sexes and codes in every spelling, a bad
# one of each, visas with and without LOC+91, document and traveller faults.
_NAMES = st.sampled_from(["", "SMITH", "PAX3", "O'BRIEN-SMITH", "Müller", "  ", "ÅSA LEE", "X<Y"])
_SEXES = st.sampled_from(["", "M", "F", "X", "U", "<", "m", " F", "Q"])
_STATES = st.sampled_from(["NZL", "AUS", "D", "nzl", " PHL", "DE", "", "XXX", "D<<", "UTO"])
_NUMBERS = st.sampled_from(
    ["LA000004", "la 12-34", "", "ß12", "X" * 21, "A1/B2", "12345678901234567890"]
)
_CODES = st.sampled_from(["P", "PT", "V", "VS", "I", "IP", "", "ZZ", "A", " v"])
_DATES = st.one_of(st.none(), st.dates(dt.date(1900, 1, 1), dt.date(2099, 12, 31)))
_FAULT = st.lists(st.builds(FieldViolation, st.just("x"), st.just("bad")), max_size=1)


@st.composite
def travellers(draw: st.DrawFn) -> Traveller:
    documents = draw(st.lists(st.builds(
        Document, type_code=_CODES, number=_NUMBERS, expiry_date=_DATES, issuing_state=_STATES,
        issuer_given=st.booleans(), problems=_FAULT,
    ), max_size=3))  # fmt: skip
    return Traveller(
        position=draw(st.integers(1, 999)), crew=draw(st.booleans()), qualifier="FL",
        surname=draw(_NAMES), given_names=draw(_NAMES), sex=draw(_SEXES),
        birth_date=draw(_DATES), nationality=draw(_STATES),
        booking_ref=draw(st.sampled_from(["", "B1"])),
        passenger_ref=draw(st.sampled_from(["", "P1"])), documents=documents,
        problems=draw(_FAULT),
    )  # fmt: skip


@SETTINGS
@given(travellers(), st.sampled_from(["", "NZL", "D"]))
def test_traveller_items_are_the_reference_items(t: Traveller, visa_issuer: str) -> None:
    """The airline channel's fast path reads each traveller's documents into exactly the items
    the reference (validate_document for every document) gives: the same queries, holders
    included, and the same faults named by the same field paths."""
    assert traveller_items(t, visa_issuer) == reference_traveller_items(t, visa_issuer)
