"""The audit trail's block formats written again from their documented rules (the docstring of
rmas.audit.format, docs/architecture.md), for the tests: a reference that shares no code with
rmas.audit.format, read byte by byte where the production code cuts and translates.

``rmas-audit-entries/1``: each entry is its 12 fields (the order below) in UTF-8 joined by 0x1F,
then 0x1E; a digest per entry, of its bytes without the 0x1E.

``rmas-audit-entries/2``: the body is one or more groups; a group is 0x00, a call record, then 1
to 64 entry records; every record is 6 fields in UTF-8 joined by 0x1F, then 0x1E. The call
record holds time, hub, caller, role, channel, reference; an entry record check_id,
issuing_state, document_key, sources, verdict, directive. A digest per group, of its bytes
after its 0x00 up to the next 0x00 or the end.

The chain: SHA-256 of format LF prev_hash LF first_seq LF last_seq LF body.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

V1 = "rmas-audit-entries/1"
V2 = "rmas-audit-entries/2"

#: An entry's fields, in the order of format 1 (and of the entry as rmas shows it).
NAMES = ("time", "hub", "caller", "role", "channel", "check_id", "issuing_state",
         "document_key", "sources", "verdict", "directive", "reference")  # fmt: skip
CALL = ("time", "hub", "caller", "role", "channel", "reference")
ENTRY = ("check_id", "issuing_state", "document_key", "sources", "verdict", "directive")
MOST = 64

#: An entry as a dict of its fields; a group as (call record's fields, entry records' fields).
Entry = dict[str, str]
Group = tuple[list[str], list[list[str]]]


class NotInFormat(ValueError):
    """The body breaks a rule of its format."""


def chain_hash(fmt: str, prev: str, first: int, last: int, body: bytes) -> str:
    text = fmt.encode() + b"\n" + prev.encode() + b"\n" + str(first).encode() + b"\n"
    return hashlib.sha256(text + str(last).encode() + b"\n" + body).hexdigest()


# -- format 2 -------------------------------------------------------------------------------------


def _record(body: bytes, at: int) -> tuple[list[str], int]:
    """The record starting at ``at``: its fields, and where the next record starts."""
    fields: list[str] = []
    start = at
    while True:
        if at == len(body):
            raise NotInFormat("a record is not ended")
        byte = body[at]
        if byte == 0x00:
            raise NotInFormat("0x00 inside a record")
        if byte in (0x1E, 0x1F):
            try:
                fields.append(body[start:at].decode("utf-8"))
            except UnicodeDecodeError:
                raise NotInFormat("a field is not UTF-8") from None
            start = at + 1
            if byte == 0x1E:
                break
        at += 1
    if len(fields) != 6:
        raise NotInFormat(f"a record of {len(fields)} fields")
    return fields, at + 1


def parse2(body: bytes) -> list[Group]:
    """The groups of a format-2 body; NotInFormat when it breaks a rule."""
    if not body:
        raise NotInFormat("no group")
    out: list[Group] = []
    at = 0
    while at < len(body):
        if body[at] != 0x00:
            raise NotInFormat("a group does not start with 0x00")
        at += 1
        records: list[list[str]] = []
        while at < len(body) and body[at] != 0x00:
            fields, at = _record(body, at)
            records.append(fields)
        if not 2 <= len(records) <= MOST + 1:
            raise NotInFormat(f"a group of {len(records)} records")
        out.append((records[0], records[1:]))
    return out


def group_bytes2(body: bytes) -> list[bytes]:
    """Each group's bytes after its 0x00 (the body must be in the format)."""
    parse2(body)
    starts = [i for i, b in enumerate(body) if b == 0x00]
    return [body[s + 1 : e] for s, e in zip(starts, [*starts[1:], len(body)], strict=True)]


def entries2(body: bytes) -> list[Entry]:
    return [
        dict(zip(CALL, call, strict=True)) | dict(zip(ENTRY, e, strict=True))
        for call, records in parse2(body)
        for e in records
    ]


def encode2(groups: Sequence[Group]) -> bytes:
    out = b""
    for call, records in groups:
        out += b"\x00"
        for fields in [call, *records]:
            out += b"\x1f".join(f.encode("utf-8") for f in fields) + b"\x1e"
    return out


def grouped(entries: Sequence[Entry], calls: Sequence[int]) -> list[Group]:
    """``entries`` as the groups of calls of these many entries each (a call's entries share its
    call fields; the call's first entry gives them), 64 a group at most."""
    assert sum(calls) == len(entries)
    out: list[Group] = []
    at = 0
    for size in calls:
        call = [entries[at][n] for n in CALL]
        for start in range(at, at + size, MOST):
            chunk = entries[start : min(start + MOST, at + size)]
            out.append((call, [[e[n] for n in ENTRY] for e in chunk]))
        at += size
    return out


def digests2(body: bytes) -> bytes:
    return b"".join(hashlib.sha256(g).digest() for g in group_bytes2(body))


def ranges2(body: bytes, first: int) -> list[tuple[int, int]]:
    """The seq range of each group of a block starting at ``first``."""
    out = []
    for _call, records in parse2(body):
        out.append((first, first + len(records) - 1))
        first += len(records)
    return out


# -- format 1 -------------------------------------------------------------------------------------


def parse1(body: bytes) -> list[list[str]]:
    if not body.endswith(b"\x1e"):
        raise NotInFormat("the body does not end an entry")
    out = []
    for raw in body[:-1].split(b"\x1e"):
        fields = raw.split(b"\x1f")
        if len(fields) != 12:
            raise NotInFormat(f"an entry of {len(fields)} fields")
        try:
            out.append([f.decode("utf-8") for f in fields])
        except UnicodeDecodeError:
            raise NotInFormat("a field is not UTF-8") from None
    return out


def entries1(body: bytes) -> list[Entry]:
    return [dict(zip(NAMES, fields, strict=True)) for fields in parse1(body)]


def encode1(entries: Sequence[Entry]) -> bytes:
    return b"".join(b"\x1f".join(e[n].encode("utf-8") for n in NAMES) + b"\x1e" for e in entries)


def digests1(body: bytes) -> bytes:
    return b"".join(hashlib.sha256(b"\x1f".join(f.encode() for f in fields)).digest()
                    for fields in parse1(body))  # fmt: skip


# -- either ---------------------------------------------------------------------------------------


def entries_of(fmt: str, body: bytes) -> list[Entry]:
    return entries1(body) if fmt == V1 else entries2(body)


def edited(fmt: str, body: bytes, index: int, fields: dict[str, str]) -> bytes:
    """``body`` with fields of its entry ``index`` (from 0) changed, as an attacker who knows
    the format would: in format 2, a call field is changed in the call record of the entry's
    group (so for every entry of that group), an entry field in its record alone."""
    if fmt == V1:
        entries = entries1(body)
        entries[index].update(fields)
        return encode1(entries)
    groups = parse2(body)
    for call, records in groups:
        if index < len(records):
            for name, value in fields.items():
                if name in CALL:
                    call[CALL.index(name)] = value
                else:
                    records[index][ENTRY.index(name)] = value
            return encode2(groups)
        index -= len(records)
    raise IndexError("no such entry")
