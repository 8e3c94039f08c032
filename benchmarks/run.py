"""`make bench`: every benchmark, each against its reference measured in the same run.

    python -m benchmarks.run [SECTION ...] [--quick]

Sections: hub, mrz, iapi, remote, sltd, metrics, security, audit, console, flights (default: all).
Results go to bench-out/results.json and a summary with each target's ratio is printed;
docs/benchmarks.md records them with this command.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench-out"


def _module(name: str) -> Callable[[bool], dict[str, Any]]:
    """Run one section in a process of its own: a section's leftovers (gRPC poller threads, a
    large heap, CPU pinning) must not slow the next one down (seen: MRZ reads at 35 µs right
    after the hub section in the same process, 18.5 µs alone)."""

    def runner(quick: bool) -> dict[str, Any]:
        cmd = [sys.executable, "-m", f"benchmarks.{name}", *(["--quick"] if quick else [])]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        sys.stderr.write(proc.stderr[-4000:])
        if proc.returncode != 0:
            raise RuntimeError(f"benchmarks.{name} failed with exit code {proc.returncode}")
        result: dict[str, Any] = json.loads(proc.stdout[proc.stdout.index("{") :])
        return result

    return runner


SECTIONS: dict[str, Callable[[bool], dict[str, Any]]] = {
    "hub": _module("hub_bench"),
    "mrz": _module("bench_mrz"),
    "iapi": _module("bench_iapi"),
    "remote": _module("remote_bench"),
    "sltd": _module("sltd_bench"),
    "metrics": _module("metrics_bench"),
    "security": _module("security_bench"),
    "audit": _module("audit_micro"),
    "console": _module("console_bench"),
    "flights": _module("flights_bench"),
}

# Targets computed here from a section's figures (issue 20's bounds; issue 2's were 0.5 / 2.0 /
# 0.35): (section, ratio key in the result's "median" or top level, comparison, bound,
# description, the hub's figure, the same-run reference's figure, unit).
TARGETS: list[tuple[str, str, str, float, str, str, str, str]] = [
    ("hub", "ratio_64", ">=", 0.6, "CheckDocument at 64 in flight / echo",
     "hub_64_rate", "echo_64_rate", "calls/s"),
    ("hub", "ratio_p99_200", "<=", 1.5, "CheckDocument p99 at 200/s / echo p99",
     "hub_200_p99_ms", "echo_200_p99_ms", "ms"),
    ("hub", "ratio_manifest", ">=", 0.35, "CheckManifest(400) docs/s / echo items/s",
     "hub_manifest_docs_s", "echo_manifest_items_s", "/s"),
]  # fmt: skip


def _lookup(result: dict[str, Any], key: str) -> float | None:
    for scope in (result.get("median", {}), result):
        if key in scope and isinstance(scope[key], (int, float)):
            return float(scope[key])
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run")
    parser.add_argument("sections", nargs="*", choices=[*SECTIONS, []], default=[])
    parser.add_argument("--quick", action="store_true", help="small data, one short round")
    args = parser.parse_args(argv)
    chosen = args.sections or list(SECTIONS)
    OUT.mkdir(exist_ok=True)
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "quick": args.quick,
    }
    for name in chosen:
        print(f"== {name}", file=sys.stderr, flush=True)
        try:
            results[name] = SECTIONS[name](args.quick)
        except RuntimeError as exc:
            print(f"   failed: {exc}", file=sys.stderr)
            results[name] = {"error": str(exc)}
            continue
        print(json.dumps(results[name], indent=1, default=str), flush=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=1, default=str))
    failed = 0
    print("\n| target | figure | same-run reference | bound | result |")
    print("| --- | --- | --- | --- | --- |")
    for section, key, op, bound, text, mine, ref, unit in TARGETS:
        if section not in results:
            continue
        value = _lookup(results[section], key)
        ok = value is not None and (value >= bound if op == ">=" else value <= bound)
        failed += not ok
        shown = "n/a" if value is None else f"{value:.3f}"
        hub, echo = _lookup(results[section], mine), _lookup(results[section], ref)
        reference = (
            f"hub {hub:,.2f} {unit}, echo {echo:,.2f} {unit}"
            if hub is not None and echo is not None
            else ""
        )
        print(f"| {text} | {shown} | {reference} | {op} {bound} | {'met' if ok else 'MISSED'} |")
    for name in chosen:
        for t in (results.get(name) or {}).get("targets", []):
            failed += not t["met"]
            print(f"| {t['text']} | {t['value']:.3f} | {t.get('reference', '')} | "
                  f"{t['op']} {t['bound']} | {'met' if t['met'] else 'MISSED'} |")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
