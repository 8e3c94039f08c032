"""An independent reference model of rmas's verdict rules, written from the documents only.

Sources: docs/architecture.md ("Verdict rules", "Scanned documents"), docs/adapters.md (what a
provider answers, holder matching, registry kinds) and the design brief's refinements (a type never
filters a hit; an answer counts only if it is about what was asked; an uncovered issuer is "not
consulted"). It shares no code with rmas: normalisation, state codes, document-type codes, check
digits and the merge are written again here, small and literal, for the states the differential
generator uses. When the model and the hub disagree, one of them is wrong: the model is meant to
be easy enough to read that it is the other one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

ALERTING = frozenset({"LOST", "STOLEN", "STOLEN_BLANK", "REVOKED", "INVALID", "NOT_ISSUED"})
ANSWERED = "ANSWERED"

#: The states the generator uses: alpha-3 -> alpha-2 (the SLTD-style store speaks alpha-2).
STATES: dict[str, str] = {
    "NZL": "NZ",
    "AUS": "AU",
    "PHL": "PH",
    "USA": "US",
    "JPN": "JP",
    "CAN": "CA",
    "MEX": "MX",
    "SGP": "SG",
    "THA": "TH",
    "IDN": "ID",
    "MYS": "MY",
    "CHL": "CL",
    "PER": "PE",
}
_FROM_ALPHA2 = {a2: a3 for a3, a2 in STATES.items()}
#: Codes that are no state at all (the generator's "unknown state" inputs).
NOT_STATES = ("QQQ", "ZZQ", "XYZ", "Q1Q", "")

#: Document codes of every channel and the type the hub must report for them (ICAO 9303: the
#: first letter; A, C and I are identity cards; the PAXLST DOC codes VS/IP included).
TYPE_OF_CODE: dict[str, str] = {
    "P": "PASSPORT", "PT": "PASSPORT", "PD": "PASSPORT", "PO": "PASSPORT", "PS": "PASSPORT",
    "I": "IDENTITY_CARD", "ID": "IDENTITY_CARD", "IP": "IDENTITY_CARD", "AC": "IDENTITY_CARD",
    "A": "IDENTITY_CARD", "C": "IDENTITY_CARD", "IR": "IDENTITY_CARD",
    "V": "VISA", "VS": "VISA", "VT": "VISA",
}  # fmt: skip


def normalise_number(raw: str) -> str:
    """Upper case; spaces, dashes and ``<`` fillers removed (the only separators generated)."""
    return "".join(c for c in raw.upper() if c not in " -<\t")


def valid_number(n: str) -> bool:
    return 0 < len(n) <= 20 and all(c.isascii() and c.isalnum() for c in n)


def normalise_state(raw: str) -> str | None:
    """Alpha-3 of a state code as sent (any case, spaces, ``<`` fillers, alpha-2); None: unknown."""
    c = raw.strip().upper().replace("<", "")
    if c in STATES:
        return c
    return _FROM_ALPHA2.get(c)


def normalise_name(raw: str) -> str:
    return " ".join(raw.upper().split())


def type_of(code: str) -> str:
    c = code.strip().upper().replace("<", "")
    if not c:
        return "UNSPECIFIED"
    return TYPE_OF_CODE.get(c, "OTHER")


# -- check digits (ICAO 9303 Part 3: weights 7, 3, 1; A-Z = 10-35; < = 0) --------------------


def check_digit(s: str) -> str:
    total = 0
    for i, c in enumerate(s):
        v = int(c) if c.isdigit() else (ord(c) - 55 if c.isalpha() else 0)
        total += v * (7, 3, 1)[i % 3]
    return str(total % 10)


#: One-character misreads an OCR makes (the architecture's list), both ways.
CONFUSABLE = {"O": "0", "0": "O", "I": "1", "1": "I", "B": "8", "8": "B", "S": "5", "5": "S",
              "Z": "2", "2": "Z", "G": "6", "6": "G"}  # fmt: skip


def td3_candidates(line2: str) -> list[str]:
    """Numbers one misread away from a TD3 line 2's number that make every check digit verify."""
    out = []
    field9 = line2[0:9]
    for i, c in enumerate(field9):
        alt = CONFUSABLE.get(c)
        if alt is None:
            continue
        f = field9[:i] + alt + field9[i + 1 :]
        l2 = f + line2[9:]
        if check_digit(f) != l2[9]:
            continue
        if check_digit(l2[0:10] + l2[13:20] + l2[21:43]) != l2[43]:
            continue
        out.append(f.replace("<", ""))
    return out


def td3_suspect(line2: str) -> bool:
    """Whether the number's or the composite check digit of a TD3 line 2 is refuted."""
    return check_digit(line2[0:9]) != line2[9] or (
        check_digit(line2[0:10] + line2[13:20] + line2[21:43]) != line2[43]
    )


# -- the world the model judges ---------------------------------------------------------------


@dataclass(frozen=True)
class HolderData:
    surname: str = ""
    given_names: str = ""
    birth_date: dt.date | None = None
    sex: str = ""


@dataclass(frozen=True)
class StoreRecord:
    status: str
    type_code: str = "P"
    holder: HolderData | None = None


@dataclass(frozen=True)
class ProviderSpec:
    """A provider as the hub is configured with it, and how it really behaves.

    ``behaviour``: "ok"; "down" (refuses connections); "hang" (never answers); "wrong_state" (its
    Describe names other states than configured); "wrong_key" (answers echo another key).
    ``records``: (alpha-3, number) -> records; for the SLTD-style store the key uses the alpha-3 of
    the record's country and may hold several records (one per document type).
    """

    id: str
    scope: str  # "issuer" or "global"
    states: frozenset[str] = frozenset()
    required: bool = True
    registry: str = "alerts"  # or "complete"
    behaviour: str = "ok"
    records: Mapping[tuple[str, str], Sequence[StoreRecord]] = field(default_factory=dict)


_FAILED = {
    "down": frozenset({"UNAVAILABLE", "TIMEOUT"}),
    "hang": frozenset({"TIMEOUT", "UNAVAILABLE"}),
    "wrong_state": frozenset({"UNAVAILABLE"}),
    # Asked, so it may also run out of time under load: any of these is a non-answer.
    "wrong_key": frozenset({"ERROR", "UNAVAILABLE", "TIMEOUT"}),
}


@dataclass(frozen=True)
class Doc:
    """A document as the generator sent it (raw), with what it meant to send."""

    state_raw: str
    number_raw: str
    type_code: str = ""
    holder: HolderData | None = None
    #: Set for a scanned zone (TD3 only carries suspect readings): its second line.
    mrz_line2: str = ""
    #: The generator's own verdict that the data is invalid (a field the hub must refuse).
    invalid_reason: str = ""


@dataclass(frozen=True)
class Expected:
    verdict: str
    directive: str
    unchecked: bool = False
    #: True/False as the hub must report it; None where the rules leave it open.
    issuer_consulted: bool | None = None
    #: provider id -> allowed outcomes; absent providers must not be asked.
    outcomes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    #: provider id -> (status, holder mismatch?) when it answers about the number as read.
    answers: Mapping[str, tuple[str, bool]] = field(default_factory=dict)
    #: A suspect zone's OCR candidates: number -> provider id -> (status, holder mismatch?).
    candidates: Mapping[str, Mapping[str, tuple[str, bool]]] = field(default_factory=dict)
    doc_type: str = ""
    number: str = ""
    state: str = ""


def _answer(
    p: ProviderSpec, economy: str, number: str, holder: HolderData | None
) -> tuple[str, bool]:
    recs = p.records.get((economy, number), ())
    if p.scope == "global":
        # The SLTD-style store: a hit is same country and number, whatever the type.
        alerts = [r.status for r in recs if r.status in ALERTING]
        return (alerts[0] if alerts else "NO_RECORD", False)
    if not recs:
        return ("NOT_ISSUED" if p.registry == "complete" else "NO_RECORD", False)
    rec = recs[0]
    return (rec.status, _mismatch(rec.holder, holder))


def _mismatch(rec: HolderData | None, q: HolderData | None) -> bool:
    if rec is None or q is None:
        return False
    pairs = [
        (rec.surname, normalise_name(q.surname)),
        (rec.given_names, normalise_name(q.given_names)),
        (rec.birth_date, q.birth_date),
        (rec.sex, q.sex),
    ]
    return any(a and b and a != b for a, b in pairs)


def expect(providers: Sequence[ProviderSpec], doc: Doc, on_incomplete: str) -> Expected:
    """The verdict the rules give ``doc`` against ``providers``."""
    state = normalise_state(doc.state_raw)
    number = normalise_number(doc.number_raw)
    if doc.invalid_reason or state is None or not valid_number(number):
        return Expected("INVALID_DATA", "INSUFFICIENT_DATA")
    routed = [p for p in providers if p.scope == "global" or state in p.states]
    issuer = [p for p in routed if p.scope == "issuer"]
    numbers = [number]
    suspect = bool(doc.mrz_line2) and td3_suspect(doc.mrz_line2)
    if suspect:
        numbers += [c for c in td3_candidates(doc.mrz_line2) if c != number]
    outcomes: dict[str, frozenset[str]] = {}
    answers: dict[str, tuple[str, bool]] = {}
    candidates: dict[str, dict[str, tuple[str, bool]]] = {n: {} for n in numbers[1:]}
    alert = False
    for p in routed:
        if p.behaviour != "ok":
            outcomes[p.id] = _FAILED[p.behaviour]
            continue
        outcomes[p.id] = frozenset({ANSWERED})
        for i, n in enumerate(numbers):
            status, mismatch = _answer(p, state, n, doc.holder)
            if i == 0:
                answers[p.id] = (status, mismatch)
            else:
                candidates[n][p.id] = (status, mismatch)
            alert = alert or status in ALERTING or mismatch
    answered_issuer = any(p.behaviour == "ok" for p in issuer)
    consulted: bool | None = True if answered_issuer else (False if not issuer else None)
    common = {
        "outcomes": outcomes,
        "answers": answers,
        "candidates": candidates,
        "doc_type": type_of(doc.type_code),
        "number": number,
        "state": state,
    }
    if alert:
        return Expected("ALERT", "DO_NOT_BOARD", issuer_consulted=consulted, **common)
    if suspect:
        return Expected("INVALID_DATA", "INSUFFICIENT_DATA", **common)
    required_ok = all(p.behaviour == "ok" for p in routed if p.required or p.scope == "issuer")
    any_answered = any(p.behaviour == "ok" for p in routed)
    if routed and required_ok and any_answered:
        return Expected("CLEAR", "OK_TO_BOARD", issuer_consulted=consulted, **common)
    if on_incomplete == "board":
        return Expected(
            "INCOMPLETE", "OK_TO_BOARD", unchecked=True, issuer_consulted=consulted, **common
        )
    return Expected("INCOMPLETE", "CONTACT_AUTHORITY", issuer_consulted=consulted, **common)
