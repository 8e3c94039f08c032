"""Single-check answers sent together while the loop is saturated (``[hub] coalesce_ms``).

A lone ``CheckDocument`` is answered the moment its verdict is known. Under load, gRPC's own
work per call (its I/O threads waking, the completion-queue hand-over to the event loop, one
write per answer) costs the hub more CPU than the check itself, and it is paid call by call.
When the event loop is saturated with single checks, :class:`AnswerCoalescer` holds each
finished answer for at most ``coalesce_ms`` and releases everything held at once: the answers
leave in one burst, the callers' next requests come back in one, and the per-call machinery
runs in batches. Measured on one core with 64 checks in flight (docs/benchmarks.md, session
10, issue 20): 213-253 instead of 394-428 µs of the hub's CPU a check, 1.7-1.85 times the
checks a second, and about half the wait for each; the audit trail's group commit does the
same for its writes.

When it holds:

- only while the **event loop is saturated**: the loop's thread used at least
  :data:`ENGAGE_SHARE` of the last window of :data:`WINDOW_S` in CPU (and holding goes on until
  it falls below :data:`RELEASE_SHARE`), and at least :data:`MIN_CALLS` answers were given in
  that window and this one. A hub with room answers at once. Holding at a fixed rate instead
  (measured: from about 500 checks a second) saved 10% of the CPU a check at 1,000 a second
  and 8% at 2,000 (40% and 75% of what one core answers here), but added 2 and 1-2 ms to the
  median answer and up to 7 ms to the 99th percentile; and any fixed rate is one machine's (a
  slower one saturates below it and would never hold). The loop's own share decides instead;
- never past the caller's deadline: an answer whose caller has less than
  :data:`DEADLINE_MARGIN` times the hold left is sent at once;
- not for a caller alone: when a batch released a single answer (nothing else was answered
  during its hold: one caller waiting for each answer before sending its next request), the
  next :data:`COOLDOWN` answers leave at once, so such a caller is held once in 17 answers at
  most;
- never the verdict: the answer is built, audited and final before it is held; holding only
  decides when the bytes leave.

Each held answer waits on its own future, so a caller that goes away cancels its own wait and
nobody else's. It knows only the event loop's clock and its thread's CPU clock.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

__all__ = [
    "COOLDOWN", "DEADLINE_MARGIN", "ENGAGE_SHARE", "MIN_CALLS", "RELEASE_SHARE", "WINDOW_S",
    "AnswerCoalescer",
]  # fmt: skip

#: The saturation test's window, in seconds.
WINDOW_S: Final = 0.010
#: Holding starts when the loop's thread used this share of a window in CPU...
ENGAGE_SHARE: Final = 0.65
#: ...and stops when it used less than this one (hysteresis: holding lowers the CPU a check).
RELEASE_SHARE: Final = 0.5
#: Fewest answers in the current and previous window for a hold (a lone check gains nothing).
MIN_CALLS: Final = 8
#: An answer is held only when its caller has at least this many holds' time left.
DEADLINE_MARGIN: Final = 4.0
#: After a batch of one answer, this many answers leave at once before a batch opens again.
COOLDOWN: Final = 16


class AnswerCoalescer:
    """Holds finished single-check answers for at most ``hold_s`` while the loop is saturated;
    see the module docstring. ``hold_s`` 0: never holds."""

    __slots__ = (
        "_cooldown", "_count", "_cpu", "_held", "_previous", "_started", "_timer", "_window",
        "engage_share", "held", "hold_s", "released", "saturated",
    )  # fmt: skip

    def __init__(self, hold_s: float, engage_share: float = ENGAGE_SHARE) -> None:
        if hold_s < 0:
            raise ValueError("hold_s must be 0 or more")
        self.hold_s = hold_s
        #: The share that starts holding (:data:`ENGAGE_SHARE`; tests set it).
        self.engage_share = engage_share
        #: Whether the last window found the loop saturated.
        self.saturated = False
        #: Answers held so far, and batches released (for tests and the operator).
        self.held = 0
        self.released = 0
        self._window = -1
        self._count = 0
        self._previous = 0
        self._started = 0.0
        self._cpu = 0.0
        self._held: list[asyncio.Future[None]] = []
        self._timer: asyncio.TimerHandle | None = None
        #: Answers still to send at once before a new batch may open (after a batch of one).
        self._cooldown = 0

    def hold(self, remaining_s: float | None) -> asyncio.Future[None] | None:
        """Note one finished answer; the future to await before sending it, or None to send it
        now. ``remaining_s``: its caller's time left (None: no deadline)."""
        hold_s = self.hold_s
        if not hold_s:
            return None
        loop = asyncio.get_running_loop()
        now = loop.time()
        window = int(now / WINDOW_S)
        if window == self._window:
            self._count += 1
        else:
            self._new_window(window, now)
        if not self.saturated or self._count + self._previous < MIN_CALLS:
            return None
        if remaining_s is not None and remaining_s < DEADLINE_MARGIN * hold_s:
            return None
        if not self._held and self._cooldown:  # the last batch held one answer: nobody to join
            self._cooldown -= 1
            return None
        future: asyncio.Future[None] = loop.create_future()
        self._held.append(future)
        self.held += 1
        if self._timer is None:
            self._timer = loop.call_later(hold_s, self._release)
        return future

    def _new_window(self, window: int, now: float) -> None:
        """The first answer of a window: the loop thread's CPU share since the previous window
        began decides ``saturated`` (once a window: one clock read of the thread's CPU)."""
        cpu = time.thread_time()
        if window == self._window + 1:
            self._previous = self._count
            share = (cpu - self._cpu) / max(now - self._started, 1e-6)
            engage = self.engage_share
            bound = min(RELEASE_SHARE, engage) if self.saturated else engage
            self.saturated = share >= bound
        else:  # a window without any answer: not saturated
            self._previous = 0
            self.saturated = False
        self._count = 1
        self._window = window
        self._started = now
        self._cpu = cpu

    def _release(self) -> None:
        self._timer = None
        held, self._held = self._held, []
        self.released += 1
        if len(held) == 1:
            # Nothing else was answered during the hold: a caller waiting for each answer
            # before its next request (a saturated loop's other work being something else).
            # Holding it again would only delay it: the next COOLDOWN answers leave at once.
            self._cooldown = COOLDOWN
        for future in held:
            if not future.done():  # its caller went away: cancelled
                future.set_result(None)

    def flush(self) -> None:
        """Release whatever is held now (a reload changing the hold)."""
        if self._timer is not None:
            self._timer.cancel()
            self._release()

    def reconfigure(self, hold_s: float) -> None:
        """A new ``coalesce_ms`` from a reload; what is held now leaves at once."""
        if hold_s < 0:
            raise ValueError("hold_s must be 0 or more")
        self.flush()
        self.hold_s = hold_s
