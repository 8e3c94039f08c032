"""What one audit entry says about one checked document, and the keyed hash that names it.

Pure: no SQL, no gRPC. :func:`entries_for` turns the hub's check results into
:class:`AuditEntry` rows; the sink (:mod:`rmas.audit.sink`) chains and stores them.

A document is never named in clear: ``document_key`` is HMAC-SHA256, under a key held outside
the code (:class:`DocumentKeyer`), of ``"{economy}:{number}"`` where both parts are the hub's
normalised forms (:attr:`rmas.documents.DocumentQuery.key`: ICAO ``D`` and alpha-2 ``DE`` both
become ``DEU``; the number as an MRZ writes it). ``rmas audit find`` recomputes it from a number
and state typed by an operator, normalised the same way.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rmas.audit.writer import NO_TAG, key_tag, speedups
from rmas.errors import ConfigError

if TYPE_CHECKING:
    from rmas.abtc import CardResult
    from rmas.hub import CheckResult

__all__ = [
    "MIN_KEY_BYTES",
    "AuditEntry",
    "Caller",
    "Channel",
    "DocumentKeyer",
    "encode_entries",
    "encode_keys",
    "entries_for",
    "utc_timestamp",
]

#: Shortest HMAC key accepted (128 bits).
MIN_KEY_BYTES = 16
#: Fields per entry (len(rmas.audit.chain.FIELDS); chain imports this module).
_NFIELDS = 11
#: Deletes hex digits (what is left of a tag that is all hex: nothing).
_HEX_DIGITS = str.maketrans("", "", "0123456789abcdef")
#: Starts each entry in the wire form: encoded with "surrogateescape" it is the byte 0xFF,
#: which no UTF-8 text holds (rmas.audit.writer).
_SEP = "\udcff"
#: What :func:`encode_entries` puts in the entries' first place instead: with it, the joined
#: text stays ASCII (one byte a character, and the encoder's fast path: about 0.4 µs an entry
#: less than joining and encoding with the surrogate), and then becomes 0xFF in one bytes
#: replace, unless a caller text holds it too.
_MARK = "\x01"


class Channel(enum.StrEnum):
    """How the check arrived at the hub."""

    DOCUMENT = "document"
    MANIFEST = "manifest"
    PAXLST = "paxlst"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asked: the identity the hub admitted, and the role configuration gave it."""

    #: e.g. ``"rmas://airline/QF"``; development mode without TLS: ``"insecure:127.0.0.1"``.
    identity: str
    #: ``"airline"``, ``"officer"``, ``"operator"`` or ``"node"``.
    role: str


class DocumentKeyer:
    """Keyed hash of a document's identity: correlates checks without revealing the number.

    HMAC-SHA256 (RFC 2104) with the key's inner and outer hash states computed once: a document
    then costs two state copies and two short updates: about 0.2 µs in C
    (:mod:`rmas.audit._speedups`, when built), 0.7 µs through hashlib's objects, and 1.5-2 µs
    through ``hmac.digest``, which repeats the key schedule on every call. The result equals
    ``hmac.digest(key, message, "sha256")`` (tests compare them for short, block-long and long
    keys, with and without the C part).
    """

    __slots__ = ("_inner", "_key_of", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ConfigError(
                "audit.key", f"the HMAC key must be {MIN_KEY_BYTES} bytes or more, not {len(key)}"
            )
        block = hashlib.sha256().block_size
        k = hashlib.sha256(key).digest() if len(key) > block else bytes(key)
        k = k.ljust(block, b"\x00")
        self._inner = hashlib.sha256(k.translate(_IPAD))
        self._outer = hashlib.sha256(k.translate(_OPAD))
        #: What key_of calls (the hub's hot path calls it directly).
        self._key_of: Callable[[str, str], str] = (
            self._py_key_of if speedups is None else speedups.Keyer(bytes(key)).key_of
        )

    @classmethod
    def from_file(cls, path: str | Path) -> DocumentKeyer:
        """Read a key file: hex text (whitespace around it ignored) or raw bytes.

        Content that is entirely hex digits (an even count) is decoded; anything else is taken
        byte for byte. ``rmas audit keygen`` writes 32 random bytes as hex.
        """
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise ConfigError("audit.key_file", f"cannot read {p}: {exc.strerror}") from None
        key = _decode_key(data)
        if len(key) < MIN_KEY_BYTES:
            raise ConfigError(
                "audit.key_file",
                f"{p} holds a {len(key)}-byte key; {MIN_KEY_BYTES} bytes or more are needed "
                "(raw, or as hex text)",
            )
        return cls(key)

    def key_of(self, issuing_state: str, number: str) -> str:
        """Hex HMAC-SHA256 of ``"{issuing_state}:{number}"`` (both already normalised)."""
        return self._key_of(issuing_state, number)

    def _py_key_of(self, issuing_state: str, number: str) -> str:
        inner = self._inner.copy()
        inner.update(f"{issuing_state}:{number}".encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def __repr__(self) -> str:  # never show the key
        return "DocumentKeyer(<secret>)"


_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


def _decode_key(data: bytes) -> bytes:
    text = data.strip()
    if text and len(text) % 2 == 0:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except ValueError:  # UnicodeDecodeError is a ValueError too
            pass
    return data


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One checked document, as the audit trail records it. Every field is text."""

    #: UTC ISO 8601 with microseconds, e.g. ``2026-11-22T10:04:05.123456+00:00``.
    time: str
    caller: str
    role: str
    #: A :class:`Channel` value.
    channel: str
    check_id: str
    #: The state code as the document gave it (``D``, ``NZL``); "" when it had no valid state.
    issuing_state: str
    #: :meth:`DocumentKeyer.key_of` hex; "" when there was no usable number.
    document_key: str
    #: Compact JSON array, one item per provider answer:
    #: ``[provider_id, outcome, record status or "", "candidate" or ""]`` ("candidate": the
    #: answer is about an OCR-confusion candidate of the number read, not the number itself);
    #: with an ABTC, one more item for the card (see ``_card_item``).
    sources: str
    #: A :class:`~rmas.verdict.Verdict` name.
    verdict: str
    #: A :class:`~rmas.verdict.Directive` name.
    directive: str
    #: Manifest id, PAXLST transaction reference, or "".
    reference: str = ""


def utc_timestamp(now: dt.datetime | None = None) -> str:
    """``now`` (default: the current time) as UTC ISO 8601 with microseconds; naive means UTC."""
    if now is None:
        now = dt.datetime.now(dt.UTC)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    else:
        now = now.astimezone(dt.UTC)
    return now.isoformat(timespec="microseconds")


# Sources JSON by the answers' (provider, outcome, status, candidate) tuples: a few providers
# and outcomes give few distinct values, so after warm-up an entry's sources cost a dict lookup.
# Outcome and status stay enum members in the key (StrEnum: equal to, hashed and JSON-encoded as
# their values) because reading ``.value`` costs more than the rest of the tuple.
_SOURCES_CACHE: dict[tuple[tuple[str, str, str, str], ...], str] = {}
_SOURCES_CACHE_MAX = 4096


def _sources_json(key: tuple[tuple[str, str, str, str], ...]) -> str:
    text = _SOURCES_CACHE.get(key)
    if text is None:
        text = json.dumps(key, separators=(",", ":"), ensure_ascii=False)
        if len(_SOURCES_CACHE) >= _SOURCES_CACHE_MAX:
            _SOURCES_CACHE.clear()
        _SOURCES_CACHE[key] = text
    return text


def _card_item(card: CardResult, key_of: Callable[[str, str], str]) -> tuple[str, str, str, str]:
    """The ABTC presented with a document, as one more item of the entry's sources:
    ``["abtc:<provider>", outcome, status, "card:<keyed hash> <USABLE|reason> for <economy>"]``.

    The card is named like a document, by a keyed hash, under the key's own domain
    (``"ABTC:<home economy>:<number>"``) so that a card never shares a hash with a document.
    """
    digest = key_of(f"ABTC:{card.query.home_economy}", card.query.number)
    verdict = "USABLE" if card.usable else card.reason.value
    return (
        f"abtc:{card.provider_id}",
        card.outcome.value if card.outcome is not None else "",
        card.status.value if card.status is not None else "",
        f"card:{digest} {verdict} for {card.query.checking_economy}",
    )


def _text(value: str) -> str:
    """Free text from callers (identities, references) as it can be stored and hashed.

    NUL separates fields in the chain's canonical bytes and PostgreSQL text cannot hold it;
    lone surrogates cannot be encoded.
    """
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    if not value.isascii():
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def _fields(  # noqa: PLR0917 (private, called twice with entries_for's arguments)
    results: Sequence[CheckResult],
    caller: Caller,
    channel: Channel,
    keyer: DocumentKeyer,
    reference: str,
    now: dt.datetime | None,
    mark: str = _SEP,
) -> list[str]:
    """The entries' fields, :data:`rmas.audit.chain.FIELDS` order, one flat list: for each
    entry ``mark`` then its 11 fields.

    A result without a document (data that failed validation) has no issuing state and no
    document key: what the caller sent was not a usable identity.
    """
    time = utc_timestamp(now)
    identity = _text(caller.identity)
    role = _text(caller.role)
    chan = channel.value
    ref = _text(reference) if reference else ""
    key_of = keyer._key_of
    known = _SOURCES_CACHE.get
    out: list[str] = []
    extend = out.extend
    for r in results:
        doc = r.document
        if doc is None:
            state = key = ""
        else:
            state = doc.issuing_state
            economy, number = doc.key
            key = key_of(economy, number) if number else ""
        # One answer is the usual case: its key without a comprehension (a function call).
        answers = r.sources
        if len(answers) == 1:
            a = answers[0]
            rec = a.record
            skey: tuple[tuple[str, str, str, str], ...] = (
                (
                    a.provider_id,
                    a.outcome,
                    rec.status if rec is not None else "",
                    "candidate" if a.queried_number else "",
                ),
            )
        else:
            skey = tuple(
                [
                    (
                        a.provider_id,
                        a.outcome,
                        a.record.status if a.record is not None else "",
                        "candidate" if a.queried_number else "",
                    )
                    for a in answers
                ]
            )
        card = r.abtc
        if card is not None:
            skey = (*skey, _card_item(card, key_of))
        sources = known(skey) or _sources_json(skey)
        # ``_value_``: the plain text, without the cost of the ``value`` property.
        extend(
            (mark, time, identity, role, chan, r.check_id, state, key, sources,
             r.verdict._value_, r.directive._value_, ref)
        )  # fmt: skip
    return out


def entries_for(
    results: Sequence[CheckResult],
    caller: Caller,
    channel: Channel,
    keyer: DocumentKeyer,
    *,
    reference: str = "",
    now: dt.datetime | None = None,
) -> list[AuditEntry]:
    """One entry per result, in order, all stamped with the same time (``now``, default: now).

    A result without a document (data that failed validation) has no issuing state and no
    document key: what the caller sent was not a usable identity.
    """
    flat = _fields(results, caller, channel, keyer, reference, now)
    return [AuditEntry(*flat[i + 1 : i + 1 + _NFIELDS]) for i in range(0, len(flat), _NFIELDS + 1)]


def encode_entries(
    results: Sequence[CheckResult],
    caller: Caller,
    channel: Channel,
    keyer: DocumentKeyer,
    *,
    reference: str = "",
    now: dt.datetime | None = None,
) -> tuple[bytes, bytes]:
    """(keys, group): the entries :func:`entries_for` makes, directly in the sink's wire form
    (:mod:`rmas.audit.writer`), for :meth:`rmas.audit.sink.AuditSink.record_encoded`: the hub's
    hot path builds no AuditEntry, and encodes once per call, not per entry.

    No field holds a NUL or a lone surrogate: caller texts go through :func:`_text`, the others
    are codes, hex and JSON. Each entry starts with :data:`_MARK`, which becomes the byte 0xFF;
    when a caller text holds that character too, the entries are joined again with
    :data:`_SEP`, which only "surrogateescape" encodes, as 0xFF.
    """
    flat = _fields(results, caller, channel, keyer, reference, now, _MARK)
    group = "\x00".join(flat).encode("utf-8")
    if group.count(b"\x01") == len(results):
        group = group.replace(b"\x01", b"\xff")
    else:  # a caller text holds the mark
        flat[:: _NFIELDS + 1] = [_SEP] * len(results)
        group = "\x00".join(flat).encode("utf-8", "surrogateescape")
    return encode_keys(flat[5 :: _NFIELDS + 1], flat[7 :: _NFIELDS + 1]), group


def encode_keys(check_ids: Sequence[str], document_keys: Sequence[str]) -> bytes:
    """The ``keys`` of a group (:mod:`rmas.audit.writer`): each entry's check id tag and
    document key tag (:func:`rmas.audit.writer.key_tag`, 16 ASCII characters each).

    The hub's check ids and document keys are lower-case hex, whose tag is their first 16
    characters: that is checked once for the whole group, not per value.
    """
    cids = [c[:16] for c in check_ids]
    dks = [k[:16] for k in document_keys if k]
    joined_c, joined_k = "".join(cids), "".join(dks)
    if (
        len(joined_c) != 16 * len(cids)
        or len(joined_k) != 16 * len(dks)
        or joined_c.translate(_HEX_DIGITS)
        or joined_k.translate(_HEX_DIGITS)
    ):
        tags = [key_tag(v) for pair in zip(check_ids, document_keys, strict=True) for v in pair]
    else:
        tags = [NO_TAG] * (2 * len(cids))
        tags[0::2] = cids
        tags[1::2] = [k[:16] or NO_TAG for k in document_keys]
    return "".join(tags).encode("ascii")
