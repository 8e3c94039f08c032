"""The hub's fast encoder against a reference model written from the format's rules, on random
batches: the same entries, always well formed (the sink skips its separator scans on them),
sealed and verified; and the writer's checks of a block (both formats) against the plain
reading of the rules (tests.audit.spec).
"""

from __future__ import annotations

import dataclasses
import hmac
import json
from collections.abc import Sequence
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmas.abtc import CardAnswer, CardQuery, CardRecord, CardStatus, judge_card
from rmas.audit.chain import BlockVerifier
from rmas.audit.entry import Caller, Channel, encode_entries, entries_for
from rmas.audit.format import (
    FIELDS,
    FORMAT,
    FORMAT_2,
    GENESIS,
    GROUP,
    NFIELDS,
    AuditEntry,
    clean,
    decode,
    encode,
    entry_bytes,
    groups,
    seal,
    well_formed,
)
from rmas.documents import DocumentQuery, DocumentType, validate_document
from rmas.hub import CheckResult, new_check_id
from rmas.states import canonical_economy
from rmas.verdict import Directive, Outcome, RecordStatus, SourceAnswer, Verdict
from tests.audit import KEY, KEYER, NOW, answer, spec

# -- the reference: each field as docs/architecture.md and rmas.audit.format state it ------------


def reference_entry(
    r: CheckResult, caller: Caller, channel: Channel, hub: str, reference: str, time: str
) -> AuditEntry:
    """One entry, field by field, with the standard library's HMAC and JSON."""
    doc = r.document
    state = key = ""
    if doc is not None:
        state = doc.issuing_state
        economy = canonical_economy(doc.issuing_state)
        if doc.number:
            key = hmac.digest(KEY, f"{economy}:{doc.number}".encode(), "sha256").hex()
    items: list[list[str]] = [
        [
            a.provider_id,
            a.outcome.value,
            a.record.status.value if a.record is not None else "",
            "candidate" if a.queried_number else "",
        ]
        for a in r.sources
    ]
    card = r.abtc
    if card is not None:
        digest = hmac.digest(
            KEY, f"ABTC:{card.query.home_economy}:{card.query.number}".encode(), "sha256"
        ).hex()
        items.append(
            [
                f"abtc:{card.provider_id}",
                card.outcome.value if card.outcome is not None else "",
                card.status.value if card.status is not None else "",
                f"card:{digest} {'USABLE' if card.usable else card.reason.value} for "
                f"{card.query.checking_economy}",
            ]
        )
    return AuditEntry(
        time=time,
        hub=clean(hub),
        caller=clean(caller.identity),
        role=clean(caller.role),
        channel=channel.value,
        check_id=clean(r.check_id),
        issuing_state=state,
        document_key=key,
        sources=json.dumps(items, separators=(",", ":"), ensure_ascii=False),
        verdict=r.verdict.value,
        directive=r.directive.value,
        reference=clean(reference),
    )


def reference_bytes(entries: Sequence[AuditEntry]) -> bytes:
    """The entries of one call in format 2, spelled out by tests.audit.spec."""
    rows = [dataclasses.asdict(e) for e in entries]
    return spec.encode2(spec.grouped(rows, [len(rows)] if rows else []))


# -- random batches --------------------------------------------------------------------------

#: Free text with what a field may never hold: the separators, NUL, lone surrogates, non-ASCII.
nasty = st.text(
    alphabet=st.one_of(
        st.sampled_from('\x00\x1e\x1f\ud800\udfff\u00e9\u4e2d:,"\\ '),
        st.characters(codec="utf-8"),
    ),
    max_size=12,
)
#: Provider ids come from the configuration (TOML: no lone surrogates), but may hold anything else.
provider_ids = st.text(
    alphabet=st.one_of(st.sampled_from('\x00\x1e\x1f"\\'), st.characters(codec="utf-8")),
    min_size=1,
    max_size=8,
)


@st.composite
def answers(draw: st.DrawFn) -> SourceAnswer:
    outcome = draw(st.sampled_from(list(Outcome)))
    status = draw(st.sampled_from([None, *RecordStatus]))
    a = answer(draw(provider_ids), status, outcome)
    if draw(st.booleans()):
        a = dataclasses.replace(a, queried_number=draw(st.sampled_from(["L898902G3", "X"])))
    return a


@st.composite
def results(draw: st.DrawFn) -> CheckResult:
    kind = draw(st.sampled_from(["valid", "valid", "none", "no-number"]))
    doc: DocumentQuery | None = None
    if kind == "valid":
        state = draw(st.sampled_from(["NZL", "D", "DEU", "DE", "AUS", "UTO"]))
        doc = validate_document(
            issuing_state=state, number=draw(st.from_regex(r"[A-Z0-9]{1,12}", fullmatch=True))
        )
        assert isinstance(doc, DocumentQuery)
    elif kind == "no-number":
        doc = DocumentQuery("NZL", "", DocumentType.UNSPECIFIED)
    check_id = draw(st.one_of(st.just(new_check_id()), nasty))
    r = CheckResult(
        check_id,
        "",
        draw(st.sampled_from(list(Verdict))),
        draw(st.sampled_from(list(Directive))),
        sources=tuple(draw(st.lists(answers(), max_size=3))),
        document=doc,
    )
    if draw(st.integers(0, 4)) == 0:
        card = CardQuery("AUS", draw(st.from_regex(r"AU[0-9]{7}", fullmatch=True)), "NZL")
        found = CardAnswer(
            draw(provider_ids), Outcome.ANSWERED, required=True, issuer=True,
            record=CardRecord(draw(st.sampled_from(list(CardStatus)))),
        )  # fmt: skip
        r = dataclasses.replace(r, abtc=judge_card(card, draw(st.sampled_from([[], [found]]))))
    return r


batches = st.lists(results(), max_size=8)


@settings(max_examples=300, deadline=None)
@given(
    batch=batches,
    identity=nasty,
    role=nasty,
    hub=nasty,
    reference=nasty,
    channel=st.sampled_from(list(Channel)),
)
def test_the_fast_encoder_writes_what_the_rules_say_and_always_well_formed(
    batch: list[CheckResult],
    identity: str,
    role: str,
    hub: str,
    reference: str,
    channel: Channel,
) -> None:
    caller = Caller(identity, role)
    body = encode_entries(batch, caller, channel, KEYER, hub=hub, reference=reference, now=NOW)
    time = NOW.isoformat(timespec="microseconds")
    expected = [reference_entry(r, caller, channel, hub, reference, time) for r in batch]
    assert FORMAT == FORMAT_2
    assert reference_bytes(expected) == body
    assert encode([[getattr(e, f) for f in FIELDS] for e in expected]) == body
    assert expected == (decode(FORMAT, body) if batch else [])
    assert [dataclasses.asdict(e) for e in expected] == (spec.entries2(body) if batch else [])
    assert expected == entries_for(
        batch, caller, channel, KEYER, hub=hub, reference=reference, now=NOW
    )
    if not batch:  # nothing to record (the trail queues nothing then)
        assert body == b""
        return
    # What lets the sink skip its scans for the trail's own bytes (AuditTrail.submit).
    assert well_formed(len(batch), body)
    # And the writer seals it into a block that verifies, with a digest a group.
    block = seal(GENESIS, 0, len(batch), body)
    assert block.digests == spec.digests2(body)
    verifier = BlockVerifier()
    verifier.feed(*block.row())
    assert verifier.finish().ok


@pytest.mark.parametrize("size", [1, GROUP - 1, GROUP, GROUP + 1, 2 * GROUP, 2 * GROUP + 1, 400])
def test_a_call_of_more_than_64_entries_is_written_as_groups_each_with_the_call_record(
    size: int,
) -> None:
    docs = [validate_document(issuing_state="NZL", number=f"L{i}") for i in range(size)]
    batch = [
        CheckResult(new_check_id(), "", Verdict.CLEAR, Directive.OK_TO_BOARD,
                    sources=(answer("NZL"),), document=doc)
        for doc in docs
    ]  # fmt: skip
    caller = Caller("rmas://airline/QF", "airline")
    body = encode_entries(batch, caller, Channel.MANIFEST, KEYER, hub="h", reference="QF1",
                          now=NOW)  # fmt: skip
    time = NOW.isoformat(timespec="microseconds")
    expected = [reference_entry(r, caller, Channel.MANIFEST, "h", "QF1", time) for r in batch]
    assert body == reference_bytes(expected)
    assert [len(records) for _call, records in spec.parse2(body)] == [
        min(GROUP, size - at) for at in range(0, size, GROUP)
    ]
    assert decode(FORMAT, body) == expected
    assert seal(GENESIS, 0, size, body).digests == spec.digests2(body)
    assert well_formed(size, body) and not well_formed(size + 1, body)


def test_a_batch_of_one_answer_each_shares_the_cache_without_mixing_answers() -> None:
    """The one-answer cache key (the answer's 4-tuple) never serves a many-answer result."""
    one = answer("NZL", RecordStatus.STOLEN)
    many = (answer("NZL", RecordStatus.STOLEN), answer("SLTD"))
    batch = [
        CheckResult(new_check_id(), "", Verdict.ALERT, Directive.DO_NOT_BOARD, sources=s)
        for s in ((one,), many, (one,), (), many)
    ]
    made = entries_for(batch, KEYER_CALLER, Channel.MANIFEST, KEYER)
    got = [json.loads(e.sources) for e in made]
    assert [len(s) for s in got] == [1, 2, 1, 0, 2]


KEYER_CALLER = Caller("rmas://officer/nz-akl", "officer")


# -- the writer's checks of a block ---------------------------------------------------------------


def reference_entry_bytes(body: bytes) -> list[bytes]:
    """Format 1's rules read plainly: ends with 0x1E, each entry NFIELDS fields, UTF-8."""
    if not body.endswith(b"\x1e"):
        raise ValueError("end")
    entries = body[:-1].split(b"\x1e")
    for e in entries:
        if e.count(b"\x1f") != NFIELDS - 1:
            raise ValueError("fields")
    body.decode("utf-8")
    return entries


@settings(max_examples=500, deadline=None)
@given(
    pieces=st.lists(
        st.one_of(
            st.sampled_from([b"\x1e", b"\x1f", b"\x1f" * (NFIELDS - 1), b"\xc3", b"\xe9", b""]),
            st.binary(max_size=6),
            st.just(b"\x1f".join([b"f"] * NFIELDS) + b"\x1e"),
        ),
        max_size=12,
    )
)
def test_the_writers_check_of_format_1_entries_agrees_with_the_rules(pieces: list[bytes]) -> None:
    body = b"".join(pieces)
    try:
        expected: list[bytes] | None = reference_entry_bytes(body)
    except (ValueError, UnicodeDecodeError):
        expected = None
    if expected is None:
        with pytest.raises(ValueError, match=r"entry|entries|UTF-8"):
            entry_bytes(body)
    else:
        assert expected == entry_bytes(body)


#: A format-2 record, a run of them, and the pieces that break the rules when misplaced.
_RECORD = b"\x1f".join([b"f\xc3\xa9"] * 6) + b"\x1e"
_FORMAT_2_PIECES = st.one_of(
    st.sampled_from([b"\x00", b"\x1e", b"\x1f", b"\x1f" * 5, b"\xc3", b"\xe9", b"", _RECORD]),
    st.just(_RECORD * GROUP),
    st.builds(lambda n: b"\x00" + _RECORD * (n + 1), st.integers(0, GROUP + 1)),
    st.binary(max_size=6),
)


#: Well-formed groups, with fields of any text but the marks and separators.
_FORMAT_2_GROUPS = st.builds(
    lambda fields, n: b"\x00" + b"".join(
        b"\x1f".join(f.encode() for f in fields[i : i + 6]) + b"\x1e" for i in range(0, 6 * n, 6)
    ),
    st.lists(st.text(st.characters(codec="utf-8", exclude_characters="\x00\x1e\x1f"),
                     max_size=3), min_size=6 * (GROUP + 1), max_size=6 * (GROUP + 1)),
    st.integers(2, GROUP + 1),
)  # fmt: skip


@settings(max_examples=1000, deadline=None)
@given(
    pieces=st.one_of(
        st.lists(_FORMAT_2_PIECES, max_size=12),
        st.lists(st.one_of(_FORMAT_2_GROUPS, _FORMAT_2_PIECES), min_size=1, max_size=4),
    )
)
def test_the_writers_check_of_format_2_groups_agrees_with_the_rules(pieces: list[bytes]) -> None:
    """Production's one pass over the marks and separators against tests.audit.spec's reading
    byte by byte: the same bodies refused, the same groups and entries counted otherwise."""
    body = b"".join(pieces)
    try:
        expected = spec.parse2(body)
    except spec.NotInFormat:
        with pytest.raises(ValueError, match=r"group|UTF-8"):
            groups(body)
        assert not _sealable(body)
        return
    parts, counts = groups(body)
    assert [bytes(p) for p in parts] == spec.group_bytes2(body)
    assert counts == [len(records) for _call, records in expected]
    assert well_formed(sum(counts), body)
    assert seal(GENESIS, 0, sum(counts), body).digests == spec.digests2(body)


def _sealable(body: bytes) -> bool:
    try:
        seal(GENESIS, 0, max(1, body.count(b"\x1e")), body)
    except ValueError:
        return False
    return True


async def test_the_trail_vouches_for_its_own_bytes_and_the_sink_then_skips_its_scans(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """AuditTrail.submit hands encode_entries' bytes over as ``encoded_here``; the sink then
    counts no separators (other callers' bytes are still counted: test_writer.py)."""
    import asyncio

    from rmas.audit import sink as sink_module
    from rmas.audit.sink import AuditSink
    from rmas.audit.trail import AuditTrail

    seen: list[tuple[int, bool]] = []

    class Queue:
        def submit_encoded(
            self, count: int, body: bytes, *, encoded_here: bool = False
        ) -> asyncio.Future[None]:
            seen.append((count, encoded_here))
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

    trail = AuditTrail(cast(AuditSink, Queue()), KEYER, hub_id="hub-1")
    batch = [CheckResult(new_check_id(), "", Verdict.CLEAR, Directive.OK_TO_BOARD)] * 3
    await trail.submit(batch, KEYER_CALLER, Channel.MANIFEST)
    assert seen == [(3, True)]

    def never(count: int, body: bytes) -> bool:
        raise AssertionError("scanned")

    monkeypatch.setattr(sink_module, "well_formed", never)
    sink = AuditSink("sqlite+aiosqlite:///unused.db")
    sink._state = "open"  # queueing alone, no writer
    monkeypatch.setattr(sink, "_enqueue", lambda count, body: None)
    sink.submit_encoded(1, b"x", encoded_here=True)
    with pytest.raises(AssertionError, match="scanned"):
        sink.submit_encoded(1, b"x")
