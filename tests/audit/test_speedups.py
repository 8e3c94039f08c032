"""The compiled per-entry work (rmas/audit/_speedups.c) and its Python twin agree, byte for byte,
on what they accept, what they refuse and what they produce; and the hub's fast encoding path
agrees with the general one."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import importlib.machinery
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmas.audit import Caller, Channel, DocumentKeyer, entries_for, verify
from rmas.audit import writer as w
from rmas.audit.chain import GENESIS, link_hash
from rmas.audit.entry import encode_entries
from rmas.audit.sink import encode_group
from tests.audit import CALLER, NOW, entries, result, started

compiled = w.speedups
#: Whether the compiled part was built (whether or not this process loaded it).
built = any(
    Path(w.__file__).with_name(f"_speedups{suffix}").exists()
    for suffix in importlib.machinery.EXTENSION_SUFFIXES
)
needs_compiled = pytest.mark.skipif(
    compiled is None,
    reason="rmas.audit._speedups not loaded: RMAS_AUDIT_SPEEDUPS=0 (else test_..._is_built fails)",
)


def test_the_compiled_part_is_built() -> None:
    """CI and every developer machine build it (gcc and OpenSSL's headers); a missing build
    would silently cost the hub its throughput, so it is a failure unless switched off."""
    if os.environ.get("RMAS_AUDIT_SPEEDUPS") == "0":
        assert compiled is None
        return
    assert compiled is not None, (
        "rmas.audit._speedups was not built: install a C compiler and OpenSSL's headers "
        "(Debian: gcc libssl-dev), then `pip install -e .` again; or set RMAS_AUDIT_SPEEDUPS=0"
    )


@contextlib.contextmanager
def python_only() -> Iterator[None]:
    """rmas.audit.writer.link without the compiled part, for the duration of the block."""
    kept = w.speedups
    w.speedups = None
    try:
        yield
    finally:
        w.speedups = kept


@pytest.fixture
def pure() -> Iterator[None]:
    with python_only():
        yield


def _link(prev: bytes, tail: int, count: int, group: bytes) -> tuple[bytes, bytes, bytes] | str:
    try:
        return w.link(prev, tail, count, group)
    except w.MalformedGroup as exc:
        return f"refused: {exc}"


def _both(prev: bytes, tail: int, count: int, group: bytes) -> tuple[object, object]:
    fast = _link(prev, tail, count, group)
    with python_only():
        slow = _link(prev, tail, count, group)
    return fast, slow


# Field texts: ASCII, control characters (stored as JSON), 2-4 byte UTF-8, empty.
_field = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12
) | st.sampled_from(["", "a", "\x01", "\x1e", "é", "日本", "\U0001f600", "x" * 70])
_entry = st.lists(_field, min_size=w.NFIELDS, max_size=w.NFIELDS)


def _group(entries_: list[list[str]]) -> bytes:
    return b"\x00".join(b"\xff\x00" + "\x00".join(f).encode() for f in entries_)


@needs_compiled
@settings(max_examples=400, deadline=None)
@given(
    st.lists(_entry, min_size=1, max_size=5),
    st.integers(min_value=0, max_value=2**62),
    st.binary(min_size=32, max_size=32),
)
def test_well_formed_groups_link_alike(
    entries_: list[list[str]], tail: int, prev_digest: bytes
) -> None:
    group = _group(entries_)
    prev = prev_digest.hex().encode()
    fast, slow = _both(prev, tail, len(entries_), group)
    assert fast == slow
    assert not isinstance(fast, str)
    hashes, head, body = fast
    # The chain's own definition, entry by entry.
    expected = prev.decode()
    for i, fields in enumerate(entries_):
        expected = link_hash(expected, tail + 1 + i, "\x00".join(fields).encode())
        assert hashes[32 * i : 32 * i + 32].hex() == expected
    assert head.decode() == expected
    assert w.block_fields(body) == entries_


# Damage: a byte set to a separator, a lone continuation, a surrogate's lead, a truncation...
_damage = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=10_000),
        st.sampled_from([0x00, 0xFF, 0x80, 0xC3, 0xED, 0xA0, 0xF4, 0x90, 0xF5, 0xC0, 0x41, 0x01]),
    ),
    min_size=1,
    max_size=3,
)


@needs_compiled
@settings(max_examples=600, deadline=None)
@given(
    st.lists(_entry, min_size=1, max_size=4),
    _damage,
    st.integers(min_value=-1, max_value=1),
    st.integers(min_value=0, max_value=10_000),
)
def test_damaged_groups_are_refused_alike(
    entries_: list[list[str]], damage: list[tuple[int, int]], miscount: int, cut: int
) -> None:
    group = bytearray(_group(entries_))
    for at, byte in damage:
        group[at % len(group)] = byte
    if cut % 3 == 0:
        del group[cut % len(group) :]
    count = len(entries_) + miscount
    fast, slow = _both(b"0" * 64, 0, count, bytes(group))
    assert fast == slow


# UTF-8 at its edges: valid sequences of each length, and each way one can be invalid.
_pieces = [
    b"a", b"\x01", b"\xc2\x80", b"\xdf\xbf", b"\xe0\xa0\x80", b"\xed\x9f\xbf", b"\xee\x80\x80",
    b"\xf0\x90\x80\x80", b"\xf4\x8f\xbf\xbf",  # valid
    b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\x80", b"\xf0\x80\x80\x80",  # overlong
    b"\xed\xa0\x80", b"\xed\xbf\xbf",  # surrogates
    b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xf8", b"\xfe",  # beyond U+10FFFF
    b"\xe2\x82", b"\xf0\x9f\x98", b"\x80", b"\xbf",  # truncated, stray continuation
]  # fmt: skip
_raw_field = st.lists(st.sampled_from(_pieces) | st.binary(max_size=3), max_size=4).map(b"".join)


@needs_compiled
@settings(max_examples=600, deadline=None)
@given(st.lists(st.lists(_raw_field, min_size=w.NFIELDS, max_size=w.NFIELDS), max_size=3))
def test_raw_bytes_are_judged_alike(entries_: list[list[bytes]]) -> None:
    """Whatever the bytes, both accept exactly the groups Python's strict UTF-8 decoder reads."""
    group = b"\x00".join(b"\xff\x00" + b"\x00".join(f) for f in entries_)
    fast, slow = _both(b"0" * 64, 0, len(entries_), group)
    assert fast == slow


@needs_compiled
def test_the_compiled_chain_checks_its_arguments() -> None:
    assert compiled is not None
    good = _group([["f"] * w.NFIELDS])
    with pytest.raises(TypeError):
        compiled.chain("0" * 64, 0, 1, good)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="64 bytes"):
        compiled.chain(b"0" * 63, 0, 1, good)
    with pytest.raises(OverflowError):
        compiled.chain(b"0" * 64, -1, 1, good)
    assert compiled.chain(b"0" * 64, 2**64 - 1, 1, good) is None  # no seq after the last
    assert compiled.chain(b"0" * 64, 0, 0, good) is None


@needs_compiled
@pytest.mark.parametrize("size", [16, 32, 64, 65, 200])
def test_the_compiled_hmac_is_hmac_sha256(size: int) -> None:
    assert compiled is not None
    key = os.urandom(size)
    keyer = DocumentKeyer(key)
    # The hub's keyer (and so encode_entries, which calls _key_of) runs the compiled HMAC.
    assert type(keyer._key_of.__self__) is compiled.Keyer  # type: ignore[attr-defined]
    for state, number in [("NZL", "LA1234567"), ("D", "C01X00T47"), ("É", "日本"), ("", "")]:
        message = f"{state}:{number}".encode()
        expected = hmac.digest(key, message, "sha256").hex()
        assert compiled.Keyer(key).key_of(state, number) == expected
        assert keyer.key_of(state, number) == expected
        assert keyer._py_key_of(state, number) == expected
    with pytest.raises(UnicodeEncodeError):
        compiled.Keyer(key).key_of("NZL", "\udcff")
    with pytest.raises(TypeError):
        compiled.Keyer(key).key_of("NZL", b"X")  # type: ignore[arg-type]
    assert "secret" in repr(compiled.Keyer(key)) and key.hex() not in repr(compiled.Keyer(key))


def test_the_python_twin_is_what_the_chain_defines(pure: None) -> None:
    group = _group([["a"] * w.NFIELDS, ["é"] * w.NFIELDS])
    hashes, head, body = w.link(GENESIS.encode(), 7, 2, group)
    first = link_hash(GENESIS, 8, "\x00".join(["a"] * w.NFIELDS).encode())
    second = link_hash(first, 9, "\x00".join(["é"] * w.NFIELDS).encode())
    assert hashes == bytes.fromhex(first + second) and head == second.encode()
    assert body == w.store_body(group)
    with pytest.raises(w.MalformedGroup, match="not 3 entries"):
        w.link(GENESIS.encode(), 0, 3, group)


def test_a_caller_text_holding_the_fast_paths_mark_encodes_as_any_other() -> None:
    """encode_entries joins with a 0x01 mark where each entry starts and turns it into 0xFF; a
    caller text holding 0x01 takes the general path, with the same result."""
    results = [result(), result("LA7654321", "AUS")]
    for caller in (CALLER, Caller("rmas://airline/\x01QF", "airline\x01")):
        keys, group = encode_entries(
            results, caller, Channel.MANIFEST, DocumentKeyer(bytes(16)), reference="Q\x01", now=NOW
        )
        made = entries_for(
            results, caller, Channel.MANIFEST, DocumentKeyer(bytes(16)), reference="Q\x01", now=NOW
        )
        assert (keys, group) == encode_group(made)
        assert w.link(GENESIS.encode(), 0, 2, group)[2][:1] == b"["  # control characters: JSON


async def test_the_writer_process_runs_compiled_and_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer loads the compiled part from its file (it imports no rmas code), reports it,
    and writes the same chain without it."""
    batch = entries(3, reference="QF1")
    heads = []
    for setting in ("1", "0"):
        monkeypatch.setenv("RMAS_AUDIT_SPEEDUPS", setting)
        url = f"sqlite+aiosqlite:///{tmp_path / f'audit-{setting}.db'}"
        async with started(url) as sink:
            assert sink._writer.pragmas["speedups"] is (setting == "1" and built)  # type: ignore[attr-defined]
            await sink.record(batch)
        report = await verify(url)
        assert report.ok and report.count == 3
        heads.append(report.head)
    assert heads[0] == heads[1]


def test_the_writer_script_loads_no_rmas_module() -> None:
    """Loaded as the hub's ``python -I writer.py`` loads it, the writer finds the compiled part
    next to its file and imports no rmas package: its start stays cheap."""
    probe = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('writer', {w.__file__!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "print(m.speedups is not None, sorted(k for k in sys.modules if k.startswith('rmas')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split(" ", 1)
    assert out[0] == str(compiled is not None)
    assert out[1].strip() == "[]"  # loaded from its file, not as part of a package


def test_hashlib_and_the_chain_agree_on_a_long_body() -> None:
    """A body longer than any buffer inside the compiled loop (SHA-256 blocks are 64 bytes)."""
    fields = ["x" * 10_000] + ["y"] * (w.NFIELDS - 1)
    group = _group([fields])
    hashes, _, _ = w.link(GENESIS.encode(), 0, 1, group)
    body = "\x00".join(fields).encode()
    assert hashes == hashlib.sha256(b"%s\x001\x00%s" % (GENESIS.encode(), body)).digest()
