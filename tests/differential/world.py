"""A random world for the differential test: stores, queries and provider faults, from one seed.

Nothing here decides a verdict: it writes records into real stores (SQLite files through the
importer, the SLTD-style service's database, national nodes), describes the same records to the
reference model (``tests.differential.model``), and generates documents in every channel's
formatting, including the cases a store gets wrong: another document type for the same number,
near misses, holder mismatches, uncovered states and invalid data.
"""

from __future__ import annotations

import datetime as dt
import random
import string
from dataclasses import dataclass, field, replace

from tests.differential.model import (
    CONFUSABLE,
    NOT_STATES,
    STATES,
    Doc,
    HolderData,
    ProviderSpec,
    StoreRecord,
)

ISSUER_STATUSES = ["VALID"] * 6 + ["LOST", "STOLEN", "STOLEN_BLANK", "REVOKED", "INVALID"]
SLTD_STATUSES = {"STOLEN": "STOLEN", "LOST": "LOST", "REVOKED": "REVOKED",
                 "INVALIDATED": "INVALID", "STOLEN_BLANK": "STOLEN_BLANK"}  # fmt: skip
SLTD_TYPES = {"P": "PASSPORT", "I": "ID_CARD", "V": "VISA"}
SURNAMES = ["SMITH", "NGATA", "REYES", "TANAKA", "OBRIEN", "LEE", "GARCIA", "NGUYEN", "KAUR",
            "SILVA", "MARTIN", "CHEN", "WONG", "SANTOS", "TAYLOR", "BROWN"]  # fmt: skip
GIVEN = ["ANNA", "JOHN", "MARIA", "HEMI", "KENJI", "SEAN", "ANA", "MEI", "RAJ", "LUCIA", "TOM",
         "ANNA MARIE", "JOSE LUIS"]  # fmt: skip

#: Which economy each provider answers for, and how it really behaves.
ISSUERS: dict[str, str] = {
    "NZL": "ok",  # SQLite alert list, in-process
    "AUS": "ok",  # SQLite complete registry with holder data, in-process
    "PHL": "ok",  # a national node (rmas.remote) serving a SQLite store
    "USA": "down",  # a national node that is not there
    "JPN": "hang",  # a national node that never answers
    "CAN": "wrong_state",  # a node configured for CAN whose Describe says MEX
    "SGP": "wrong_key",  # a node whose results echo another key
}
UNCOVERED = ("THA", "IDN", "MYS", "CHL", "PER")

#: Type codes per channel (fields: the proto enum by name; the others: codes as written).
FIELD_TYPES = ["P", "I", "V", "", "OTHER"]
MRZ_CODES = {
    "TD3": ["P<", "PT", "PD", "PO"],
    "TD1": ["I<", "ID", "AC", "A<", "C<", "IP"],
    "TD2": ["I<", "ID", "AC", "C<", "P<"],
    "MRV-A": ["V<", "VS"],
    "MRV-B": ["V<", "VT"],
}
PAXLST_CODES = ["P", "PT", "I", "ID", "IP", "AC", "A", "C", "V", "VS"]


@dataclass
class World:
    seed: int
    #: (alpha-3, number) -> record, per issuer store.
    stores: dict[str, dict[tuple[str, str], StoreRecord]] = field(default_factory=dict)
    #: SLTD-style records: (alpha-3, number) -> records (one per type at most).
    sltd: dict[tuple[str, str], list[StoreRecord]] = field(default_factory=dict)

    def specs(self, *, sltd: str = "ok", sltd_required: bool = True) -> list[ProviderSpec]:
        """The providers as the model sees them; ``sltd`` is the global store's behaviour."""
        out = []
        for state, behaviour in ISSUERS.items():
            recs = {k: [v] for k, v in self.stores.get(state, {}).items()}
            out.append(
                ProviderSpec(
                    id=state,
                    scope="issuer",
                    states=frozenset({state}),
                    registry="complete" if state == "AUS" else "alerts",
                    behaviour=behaviour,
                    records=recs,
                )
            )
        out.append(
            ProviderSpec(
                id="SLTD",
                scope="global",
                required=sltd_required,
                behaviour=sltd,
                records={k: list(v) for k, v in self.sltd.items()},
            )
        )
        return out


def _number(rng: random.Random, n: int | None = None) -> str:
    n = n or rng.randint(6, 9)
    head = "".join(rng.choice(string.ascii_uppercase) for _ in range(rng.randint(1, 2)))
    tail = "".join(rng.choice(string.digits + "OISBZG" if rng.random() < 0.1 else string.digits)
                   for _ in range(n - len(head)))  # fmt: skip
    return head + tail


def _holder(rng: random.Random) -> HolderData:
    return HolderData(
        surname=rng.choice(SURNAMES),
        given_names=rng.choice(GIVEN),
        birth_date=dt.date(rng.randint(1940, 2005), rng.randint(1, 12), rng.randint(1, 28)),
        sex=rng.choice("MFX"),
    )


def build_world(seed: int, per_store: int = 120) -> World:
    rng = random.Random(seed)
    w = World(seed)
    used: set[str] = set()

    def fresh() -> str:
        while True:
            n = _number(rng)
            if n not in used:
                used.add(n)
                return n

    for state in ("NZL", "AUS", "PHL", "CAN", "SGP", "JPN", "USA"):
        recs: dict[tuple[str, str], StoreRecord] = {}
        for _ in range(per_store):
            with_holder = state == "AUS" or (state == "PHL" and rng.random() < 0.5)
            status = rng.choice(ISSUER_STATUSES)
            if state == "CAN":
                status = "VALID"  # the wrong-state node knows these: today it would say VALID
            recs[(state, fresh())] = StoreRecord(
                status, rng.choice("PIV"), _holder(rng) if with_holder else None
            )
        w.stores[state] = recs
    # The node behind CAN's address really serves Mexico's records.
    w.stores["MEX"] = {("MEX", fresh()): StoreRecord("STOLEN", "P") for _ in range(per_store // 4)}
    # The SLTD-style store: copies of issuers' alerts (often filed under another type), alerts the
    # issuers do not know, uncovered economies' records.
    for state in ("NZL", "AUS", "PHL", "USA", "JPN", "CAN", "SGP"):
        for key in list(w.stores[state])[: per_store // 3]:
            t = rng.choice("PIV")
            w.sltd.setdefault(key, []).append(StoreRecord(_sltd_status(rng), t))
            if rng.random() < 0.2:  # a second record, another type, same number
                other = rng.choice([x for x in "PIV" if x != t])
                w.sltd[key].append(StoreRecord(_sltd_status(rng), other))
    for state in (*ISSUERS, *UNCOVERED):
        for _ in range(per_store // 4):
            w.sltd[(state, fresh())] = [StoreRecord(_sltd_status(rng), rng.choice("PIV"))]
    return w


def _sltd_status(rng: random.Random) -> str:
    return SLTD_STATUSES[rng.choice(list(SLTD_STATUSES))]


# -- documents -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One generated document: what is sent (``doc`` plus the channel's own form) and why."""

    doc: Doc
    channel: str  # fields, mrz, manifest, manifest_mrz, paxlst
    tag: str  # the generator's scenario, e.g. "issuer_record", "sltd_other_type", "near_miss"
    mrz: tuple[str, ...] = ()
    #: The DOC code as written in a PAXLST / the document code of a zone / the field type name.
    code: str = ""


def _format_number(rng: random.Random, n: str) -> str:
    """Random human formatting: lower case, spaces, dashes, ``<`` fillers."""
    out = []
    for c in n:
        if rng.random() < 0.15:
            out.append(rng.choice([" ", "-", "<", " - "]))
        out.append(c.lower() if rng.random() < 0.3 else c)
    s = "".join(out)
    if rng.random() < 0.2:
        s = rng.choice([" ", "<<", "-"]) + s + rng.choice(["", " ", "<<<"])
    return s


def _format_state(rng: random.Random, s: str, channel: str) -> str:
    if channel in ("mrz", "manifest_mrz"):
        return s
    r = rng.random()
    if r < 0.15:
        return s.lower()
    if r < 0.25:
        return f" {s} "
    if r < 0.35 and s in STATES:
        return STATES[s]  # alpha-2, as airline data may carry
    return s


def _holder_for(rng: random.Random, rec: StoreRecord | None) -> tuple[HolderData | None, str]:
    """A query's holder data against a record: matching, mismatching, partial or none."""
    if rec is None or rec.holder is None:
        return (_holder(rng) if rng.random() < 0.3 else None), ""
    h = rec.holder
    r = rng.random()
    if r < 0.45:
        return h, "holder_match"
    if r < 0.8:
        which = rng.choice(["surname", "given_names", "birth_date", "sex"])
        if which == "birth_date":
            assert h.birth_date is not None
            new: object = h.birth_date + dt.timedelta(days=rng.choice([1, 365, -40]))
        elif which == "sex":
            new = rng.choice([x for x in "MFX" if x != h.sex])
        else:
            pool = SURNAMES if which == "surname" else GIVEN
            new = rng.choice([x for x in pool if x != getattr(h, which)])
        return replace(h, **{which: new}), f"holder_mismatch_{which}"
    if r < 0.9:
        return HolderData(surname=h.surname.lower()), "holder_partial"
    return None, "holder_none"


def pick_key(rng: random.Random, w: World) -> tuple[str, str, str, StoreRecord | None]:
    """(state, number, scenario tag, the issuer's record if any)."""
    r = rng.random()
    if r < 0.4:
        state = rng.choice(list(ISSUERS))
        key, rec = rng.choice(list(w.stores[state].items()))
        tag = "issuer_record" if key not in w.sltd else "issuer_and_sltd"
        return key[0], key[1], tag, rec
    if r < 0.6:
        key, _ = rng.choice(list(w.sltd.items()))
        return key[0], key[1], "sltd_record", w.stores.get(key[0], {}).get(key)
    if r < 0.7:
        (state, number), _ = rng.choice(list(w.sltd.items()))
        if rng.random() < 0.5:
            other = rng.choice([s for s in (*ISSUERS, *UNCOVERED) if s != state])
            if (other, number) not in w.sltd:
                return (
                    other,
                    number,
                    "near_miss_country",
                    w.stores.get(other, {}).get((other, number)),
                )
        for i, c in enumerate(number):
            alt = CONFUSABLE.get(c)
            if alt and (state, number[:i] + alt + number[i + 1 :]) not in w.sltd:
                near = number[:i] + alt + number[i + 1 :]
                return state, near, "near_miss_ocr", w.stores.get(state, {}).get((state, near))
        return state, number, "sltd_record", w.stores.get(state, {}).get((state, number))
    state = rng.choice([*ISSUERS, *UNCOVERED, "MEX"])
    number = _number(rng)
    rec = w.stores.get(state, {}).get((state, number))
    return state, number, f"fresh_{'uncovered' if state in UNCOVERED else state}", rec


def make_case(rng: random.Random, w: World, channel: str) -> Case:
    state, number, tag, rec = pick_key(rng, w)
    holder, htag = _holder_for(rng, rec)
    if htag:
        tag = f"{tag}+{htag}"
    if channel in ("mrz", "manifest_mrz"):
        return _mrz_case(rng, state, number, holder, tag, channel)
    if channel == "paxlst" and holder is None:
        holder = HolderData(surname=rng.choice(SURNAMES))  # a PAXLST traveller always has a name
    invalid = ""
    state_raw = _format_state(rng, state, channel)
    number_raw = _format_number(rng, number)
    r = rng.random()
    if r < 0.04:
        number_raw, invalid, tag = rng.choice(["", " ", "<<", " - "]), "empty number", "invalid"
    elif r < 0.07:
        number_raw, invalid, tag = number[:3] + rng.choice("#*!?_") + number[3:], "char", "invalid"
    elif r < 0.09:
        number_raw, invalid, tag = number * 5, "too long", "invalid"
    elif r < 0.12:
        state_raw, invalid, tag = rng.choice(NOT_STATES), "unknown state", "invalid"
    if invalid and channel == "paxlst" and invalid == "char":
        number_raw = number[:3] + "*" + number[3:]
    codes = PAXLST_CODES if channel == "paxlst" else FIELD_TYPES
    code = rng.choice(codes)
    if rec is not None and rng.random() < 0.5 and channel == "fields":
        code = rng.choice([t for t in "PIV" if t != rec.type_code])  # a type the record is not
    doc = Doc(state_raw, number_raw, code, holder, invalid_reason=invalid)
    return Case(doc, channel, tag, code=code)


def _mrz_case(
    rng: random.Random, state: str, number: str, holder: HolderData | None, tag: str, channel: str
) -> Case:
    from rmas.mrz import Layout
    from rmas.testing import compose

    layout = rng.choice(list(MRZ_CODES))
    code = rng.choice(MRZ_CODES[layout])
    h = holder or _holder(rng)
    birth = h.birth_date or dt.date(1980, 1, 1)
    sex = h.sex or "X"
    expiry = dt.date(rng.choice([2019, 2030, 2031, 2033]), rng.randint(1, 12), rng.randint(1, 28))
    lines = compose(
        Layout(layout),
        document_code=code,
        issuing_state=state,
        surname=h.surname or "DOE",
        given_names=h.given_names,
        document_number=number,
        nationality=state,
        birth_date=birth.strftime("%y%m%d"),
        sex="<" if sex == "X" else sex,
        expiry_date=expiry.strftime("%y%m%d"),
    )
    sent = HolderData(h.surname or "DOE", h.given_names, birth, sex)
    line2 = ""
    if layout == "TD3" and rng.random() < 0.2:
        # A misread: one confusable character of the number, check digits as printed.
        spots = [i for i, c in enumerate(lines[1][:9]) if c in CONFUSABLE]
        if spots:
            i = rng.choice(spots)
            bad = lines[1][:i] + CONFUSABLE[lines[1][i]] + lines[1][i + 1 :]
            lines = [lines[0], bad]
            number = bad[:9].replace("<", "")
            tag = f"{tag}+misread"
    if layout == "TD3":
        line2 = lines[1]
    doc = Doc(state, number, code, sent, mrz_line2=line2)
    return Case(doc, channel, tag, mrz=tuple(lines), code=code)
