"""The writer process's reading of request frames, against the reader it replaced (read ahead
into a buffer, cut each frame out of it), on frames split at random points by the pipe."""

from __future__ import annotations

import os
import threading
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rmas.audit import writer as w


class ReferenceInput:
    """The reader before issue 20's session 8 (a copy): (kind, payload), the commit's count
    still at the head of its payload."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buf = bytearray()

    def _fill(self, size: int) -> bool:
        while len(self._buf) < size:
            chunk = os.read(self.fd, max(1 << 16, size - len(self._buf)))
            if not chunk:
                return False
            self._buf += chunk
        return True

    def frame(self) -> tuple[int, bytes] | None:
        if not self._fill(w.HEADER.size):
            return None
        size, kind = w.HEADER.unpack_from(self._buf)
        if not self._fill(w.HEADER.size + size):
            return None
        with memoryview(self._buf) as view:
            payload = view[w.HEADER.size : w.HEADER.size + size].tobytes()
        del self._buf[: w.HEADER.size + size]
        return kind, payload


def _through_a_pipe(data: bytes, cuts: list[int], reader: type) -> list[Any]:
    """Every frame ``reader`` reads from a pipe fed ``data`` in pieces cut at ``cuts``."""
    r, wfd = os.pipe()

    def feed() -> None:
        at = 0
        for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
            if cut > at:
                os.write(wfd, data[at:cut])  # blocks while the pipe is full: a thread
                at = cut
        os.close(wfd)

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        inp = reader(r)
        got: list[Any] = []
        while (frame := inp.frame()) is not None:
            got.append(frame)
        return got
    finally:
        feeder.join()
        os.close(r)


frames = st.lists(
    st.one_of(
        st.tuples(st.just(b"C"), st.integers(0, 2**32 - 1), st.binary(max_size=3000)),
        st.tuples(st.sampled_from([b"O", b"P", b"x"]), st.just(0), st.binary(max_size=200)),
        # A large commit (a manifest's entries are 100-250 KB): more than one read of the pipe.
        st.tuples(st.just(b"C"), st.just(400), st.just(os.urandom(150_000))),
    ),
    max_size=6,
)


@settings(max_examples=150, deadline=None)
@given(frames=frames, cuts=st.lists(st.integers(0, 10**6), max_size=8), cut_end=st.integers(0, 9))
def test_frames_read_exactly_are_the_frames_the_buffered_reader_read(
    frames: list[tuple[bytes, int, bytes]], cuts: list[int], cut_end: int
) -> None:
    """Same frames, in order, however the pipe splits them; a commit's count apart from its
    entries; and a frame cut short by the end of input is no frame, as before."""
    data = b"".join(
        w.HEADER.pack(len(body) + (w.COMMIT_HEAD.size if kind == b"C" else 0), kind[0])
        + (w.COMMIT_HEAD.pack(count) if kind == b"C" else b"")
        + body
        for kind, count, body in frames
    )
    data = data[: len(data) - cut_end] if frames else data  # maybe a frame cut short at the end
    expected = _through_a_pipe(data, cuts, ReferenceInput)
    got = _through_a_pipe(data, cuts, w._Input)
    assert [
        (kind, w.COMMIT_HEAD.pack(count) + body if kind == ord("C") else body)
        for kind, count, body in got
    ] == expected
    for kind, count, body in got:
        assert isinstance(body, bytes) and (kind == ord("C") or count == 0)
