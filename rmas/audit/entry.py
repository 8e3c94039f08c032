"""What the hub writes into the audit trail: who asked, the keyed hash that names a document
without revealing it, and the entries of check results (:func:`entries_for`,
:func:`encode_entries`). Pure: no SQL, no gRPC.

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

from rmas.audit.format import FORMAT, GROUP, AuditEntry, clean, decode
from rmas.errors import ConfigError
from rmas.states import canonical_economy

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
    "entries_for",
    "read_key_file",
    "utc_timestamp",
]

#: Shortest HMAC key accepted (128 bits).
MIN_KEY_BYTES = 16


class Channel(enum.StrEnum):
    """How the check arrived at the hub."""

    DOCUMENT = "document"
    MANIFEST = "manifest"
    PAXLST = "paxlst"
    #: A government officer's override of a directive on an open flight (rmas.flights).
    OVERRIDE = "override"
    #: A re-check of an open flight's passenger after a record changed (rmas.flights).
    RECHECK = "recheck"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asked: the identity the hub admitted, and the role configuration gave it."""

    #: e.g. ``"rmas://airline/QF"``; development mode without TLS: ``"insecure:127.0.0.1"``.
    identity: str
    #: ``"airline"``, ``"officer"``, ``"operator"`` or ``"node"``.
    role: str


class DocumentKeyer:
    """Keyed hash of a document's identity: correlates checks without revealing the number.

    HMAC-SHA256 (RFC 2104) with the key's inner and outer hash states computed once, so a
    document costs two state copies and two short updates instead of a key schedule. The result
    equals ``hmac.digest(key, message, "sha256")`` (tests compare them for short, block-long and
    long keys).
    """

    __slots__ = ("_inner", "_outer")

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

    @classmethod
    def from_file(cls, path: str | Path) -> DocumentKeyer:
        """Read a key file: hex text (whitespace around it ignored) or raw bytes.

        Content that is entirely hex digits (an even count) is decoded; anything else is taken
        byte for byte. ``rmas audit keygen`` writes 32 random bytes as hex.
        """
        return cls(read_key_file(path))

    def key_of(self, issuing_state: str, number: str) -> str:
        """Hex HMAC-SHA256 of ``"{issuing_state}:{number}"`` (both already normalised)."""
        inner = self._inner.copy()
        inner.update(f"{issuing_state}:{number}".encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def __repr__(self) -> str:  # never show the key
        return "DocumentKeyer(<secret>)"


_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


def read_key_file(path: str | Path, key: str = "audit.key_file") -> bytes:
    """The key a key file holds (see :meth:`DocumentKeyer.from_file`); ConfigError naming
    ``key`` (the config key that named the file) when it cannot be read or is too short."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError(key, f"cannot read {p}: {exc.strerror}") from None
    secret = _decode_key(data)
    if len(secret) < MIN_KEY_BYTES:
        raise ConfigError(
            key,
            f"{p} holds a {len(secret)}-byte key; {MIN_KEY_BYTES} bytes or more are needed "
            "(raw, or as hex text)",
        )
    return secret


def _decode_key(data: bytes) -> bytes:
    text = data.strip()
    if text and len(text) % 2 == 0:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except ValueError:  # UnicodeDecodeError is a ValueError too
            pass
    return data


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
# and outcomes give few distinct values, so after warm-up an entry's sources are a dict lookup.
# One answer (the common case) is keyed by its own 4-tuple, several by a tuple of them.
_SourceItem = tuple[str, str, str, str]
_SOURCES_CACHE: dict[tuple[_SourceItem, ...] | _SourceItem, str] = {}
_SOURCES_CACHE_MAX = 4096


def _sources_json(
    key: tuple[_SourceItem, ...], cache_key: tuple[_SourceItem, ...] | _SourceItem
) -> str:
    text = json.dumps(key, separators=(",", ":"), ensure_ascii=False)
    if len(_SOURCES_CACHE) >= _SOURCES_CACHE_MAX:
        _SOURCES_CACHE.clear()
    _SOURCES_CACHE[cache_key] = text
    return text


def _card_item(card: CardResult, key_of: Callable[[str, str], str]) -> _SourceItem:
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


def encode_entries(
    results: Sequence[CheckResult],
    caller: Caller,
    channel: Channel,
    keyer: DocumentKeyer,
    *,
    hub: str = "",
    reference: str = "",
    now: dt.datetime | None = None,
) -> bytes:
    """Each result's entry, in order, in the byte format of new blocks
    (:data:`rmas.audit.format.FORMAT`, the bytes :func:`rmas.audit.format.encode` makes of
    them), all stamped with the same time (``now``, default: now) and the id of the ``hub``
    writing them: the hub's hot path, which builds no :class:`AuditEntry`.

    A result without a document (data that failed validation) has no issuing state and no
    document key: what the caller sent was not a usable identity. Free texts go through
    :func:`~rmas.audit.format.clean` (the check ids too, when they are not ASCII free of NUL
    and the separators, as the hub's are); the other fields are codes (the state as
    validated), hex and JSON, which escapes control characters. So the bytes are well formed
    whatever the texts (tests hold this on random input), and the sink need not count their
    separators.

    The fields shared by every entry of the call (time, hub, caller, role, channel and
    reference) are its call record, written once per group of up to
    :data:`~rmas.audit.format.GROUP` entries; each entry record is one f-string.
    """
    if not results:
        return b""
    call = (utc_timestamp(now), clean(hub), clean(caller.identity), clean(caller.role),
            channel.value, clean(reference) if reference else "")  # fmt: skip
    head = "\x00" + "\x1f".join(call) + "\x1e"
    key_of = keyer.key_of
    economy_of = canonical_economy
    cache = _SOURCES_CACHE
    # The check ids (the hub's hex) checked all at once: cleaned one by one only if need be.
    ids = [r.check_id for r in results]
    joined = "".join(ids)
    if not joined.isascii() or "\x1e" in joined or "\x1f" in joined or "\x00" in joined:
        ids = [clean(i) for i in ids]
    parts: list[str] = []
    append = parts.append
    for r, cid in zip(results, ids, strict=True):
        doc = r.document
        if doc is None:
            state = key = ""
        else:
            # ``doc.key`` read by its parts (no property call, no tuple): the same rule.
            state = doc.issuing_state
            number = doc.number
            key = key_of(economy_of(state), number) if number else ""
        answers = r.sources
        if len(answers) == 1 and r.abtc is None:
            a = answers[0]
            rec = a.record
            item: _SourceItem = (
                a.provider_id,
                a.outcome,
                rec.status if rec is not None else "",
                "candidate" if a.queried_number else "",
            )
            sources = cache.get(item) or _sources_json((item,), item)
        else:
            items: tuple[_SourceItem, ...] = tuple(
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
                items = (*items, _card_item(card, key_of))
            sources = cache.get(items) or _sources_json(items, items)
        # ``_value_``: the plain text, without the cost of the ``value`` property.
        append(
            f"{cid}\x1f{state}\x1f{key}\x1f{sources}\x1f{r.verdict._value_}\x1f"
            f"{r.directive._value_}\x1e"
        )
    if len(parts) <= GROUP:
        parts.insert(0, head)
    else:  # the call record before each group of GROUP entries (from the end: places stay put)
        for at in reversed(range(0, len(parts), GROUP)):
            parts.insert(at, head)
    return "".join(parts).encode("utf-8")


def entries_for(
    results: Sequence[CheckResult],
    caller: Caller,
    channel: Channel,
    keyer: DocumentKeyer,
    *,
    hub: str = "",
    reference: str = "",
    now: dt.datetime | None = None,
) -> list[AuditEntry]:
    """The entries :func:`encode_entries` makes, as :class:`AuditEntry` values (one encoder,
    so the two can never differ)."""
    body = encode_entries(results, caller, channel, keyer, hub=hub, reference=reference, now=now)
    return decode(FORMAT, body) if body else []
