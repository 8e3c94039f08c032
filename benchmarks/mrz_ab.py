"""The MRZ reader against the reader before session 8, side by side in one process.

``python -m benchmarks.mrz_ab [ROUNDS]``. The old reader is the reference model the tests keep
(tests/mrz_reference.py). Thread CPU time (``time.thread_time``: a core shared with other work
does not count), best of ROUNDS (default 25) rounds; each round times every workload in turn, so
old and new see the same moments of a machine whose speed moves. Each read is also given as a
ratio to the fixed reference workload of ``benchmarks.bench_mrz``, timed in the same rounds.
"""

from __future__ import annotations

import sys
import time
import timeit
from collections.abc import Callable

from benchmarks.bench_mrz import MISREAD, TD1, TD3, _reference_workload, varied_td3
from rmas.mrz import read_mrz
from tests.mrz_reference import reference_read_mrz

TD2 = ["I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<", "D231458907UTO7408122F1204159<<<<<<<6"]


def _best_us(
    work: dict[str, tuple[Callable[[], object], int, int]], rounds: int
) -> dict[str, float]:
    """Per workload (function, calls per timing, reads per call): best µs a read over the rounds."""
    best = dict.fromkeys(work, float("inf"))
    for _ in range(rounds):
        for name, (fn, number, reads) in work.items():
            t = timeit.Timer(fn, timer=time.thread_time).timeit(number)
            best[name] = min(best[name], t / (number * reads) * 1e6)
    return best


def main(rounds: int = 25) -> None:
    zones = varied_td3()

    def varied(read: Callable[..., object]) -> Callable[[], None]:
        def work() -> None:
            for z in zones:
                read(z)

        return work

    work: dict[str, tuple[Callable[[], object], int, int]] = {
        "reference workload": (_reference_workload(), 3000, 1)
    }
    for name, zone in (("TD3", TD3), ("TD1", TD1), ("TD2", TD2)):
        work[f"{name} before"] = (lambda z=zone: reference_read_mrz(z), 3000, 1)
        work[f"{name} after"] = (lambda z=zone: read_mrz(z), 3000, 1)
    work["2,000 varied TD3 before"] = (varied(reference_read_mrz), 1, len(zones))
    work["2,000 varied TD3 after"] = (varied(read_mrz), 1, len(zones))
    work["misread TD3 before"] = (lambda: reference_read_mrz(MISREAD), 100, 1)
    work["misread TD3 after"] = (lambda: read_mrz(MISREAD), 100, 1)
    best = _best_us(work, rounds)
    reference = best["reference workload"]
    print(f"reference workload {reference:.2f} µs")
    for name in ("TD3", "TD1", "TD2", "2,000 varied TD3", "misread TD3"):
        old, new = best[f"{name} before"], best[f"{name} after"]
        print(f"{name}: {old:.2f} -> {new:.2f} µs (x{new / old:.2f}); "
              f"over the reference {old / reference:.2f} -> {new / reference:.2f}")  # fmt: skip


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 25)
