"""Single-check answers sent together while the hub is busy (``[hub] coalesce_ms``, issue 20).

A lone ``CheckDocument`` is answered the moment its verdict is known. Under load, gRPC's own
work per call (its I/O threads waking, the completion-queue hand-over to the event loop, one
write per answer) costs the hub more CPU than the check itself, and it is paid call by call.
When many single checks arrive close together, :class:`AnswerCoalescer` holds each finished
answer for at most ``coalesce_ms`` and releases everything held at once: the answers leave in
one burst, the callers' next requests come back in one, and the per-call machinery runs in
batches. Measured on one core with 64 checks in flight (docs/benchmarks.md, session 10): 211
instead of 386 µs of the hub's CPU a check, 1.8 times the checks a second, and half the wait
for each; the audit trail's group commit does the same for its writes.

When it holds:

- only while the hub is **busy**: at least :data:`BUSY_CALLS` answers in the current and the
  previous window of :data:`WINDOW_S` together (about 1,500 checks a second or more, where a
  hub on one core nears what it can answer without holding). Below that, answers leave at once:
  at 1,000 a second a 2 ms hold saved 10% of the CPU a check but added 2 ms to every answer,
  not worth it while the hub has room; at 200 a second it would never engage;
- never past the caller's deadline: an answer whose caller has less than
  :data:`DEADLINE_MARGIN` times the hold left is sent at once;
- never the verdict: the answer is built, audited and final before it is held; holding only
  decides when the bytes leave.

Each held answer waits on its own future, so a caller that goes away cancels its own wait and
nobody else's. Core-free: it knows only the event loop's clock.
"""

from __future__ import annotations

import asyncio
from typing import Final

__all__ = ["BUSY_CALLS", "DEADLINE_MARGIN", "WINDOW_S", "AnswerCoalescer"]

#: The busy test's window, in seconds (the count of this window and the previous one).
WINDOW_S: Final = 0.010
#: Answers in the current and previous window from which the hub counts as busy.
BUSY_CALLS: Final = 30
#: An answer is held only when its caller has at least this many holds' time left.
DEADLINE_MARGIN: Final = 4.0


class AnswerCoalescer:
    """Holds finished single-check answers for at most ``hold_s`` while the hub is busy; see
    the module docstring. ``hold_s`` 0: never holds."""

    __slots__ = (
        "_count", "_held", "_previous", "_timer", "_window", "busy_calls", "held", "hold_s",
        "released",
    )  # fmt: skip

    def __init__(self, hold_s: float, busy_calls: int = BUSY_CALLS) -> None:
        if hold_s < 0:
            raise ValueError("hold_s must be 0 or more")
        self.hold_s = hold_s
        #: The busy test's bound (:data:`BUSY_CALLS`; tests lower it).
        self.busy_calls = busy_calls
        #: Answers held so far, and batches released (for tests and the operator).
        self.held = 0
        self.released = 0
        self._window = -1
        self._count = 0
        self._previous = 0
        self._held: list[asyncio.Future[None]] = []
        self._timer: asyncio.TimerHandle | None = None

    def hold(self, remaining_s: float | None) -> asyncio.Future[None] | None:
        """Note one finished answer; the future to await before sending it, or None to send it
        now. ``remaining_s``: its caller's time left (None: no deadline)."""
        hold_s = self.hold_s
        if not hold_s:
            return None
        loop = asyncio.get_running_loop()
        window = int(loop.time() / WINDOW_S)
        if window == self._window:
            self._count += 1
        else:
            self._previous = self._count if window == self._window + 1 else 0
            self._count = 1
            self._window = window
        if self._count + self._previous < self.busy_calls:
            return None
        if remaining_s is not None and remaining_s < DEADLINE_MARGIN * hold_s:
            return None
        future: asyncio.Future[None] = loop.create_future()
        self._held.append(future)
        self.held += 1
        if self._timer is None:
            self._timer = loop.call_later(hold_s, self._release)
        return future

    def _release(self) -> None:
        self._timer = None
        held, self._held = self._held, []
        self.released += 1
        for future in held:
            if not future.done():  # its caller went away: cancelled
                future.set_result(None)

    def flush(self) -> None:
        """Release whatever is held now (the hub stopping, or the hold switched off)."""
        if self._timer is not None:
            self._timer.cancel()
            self._release()

    def reconfigure(self, hold_s: float) -> None:
        """A new ``coalesce_ms`` from a reload; what is held now leaves at once."""
        if hold_s < 0:
            raise ValueError("hold_s must be 0 or more")
        self.flush()
        self.hold_s = hold_s
