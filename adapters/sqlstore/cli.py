"""``rmas store``: import records from CSV, and show what a store holds."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rmas.errors import RmasError, StoreError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    store = subparsers.add_parser("store", help="manage an economy's SQL store")
    sub = store.add_subparsers(dest="store_command", metavar="COMMAND", required=True)

    imp = sub.add_parser("import", help="load records from a CSV file")
    imp.add_argument("--url", required=True, help="store URL, e.g. sqlite+aiosqlite:///nzl.db")
    imp.add_argument("file", type=Path, help="CSV file (see docs/adapters.md for the columns)")
    imp.add_argument("--replace", action="store_true", help="replace the store's records")
    imp.add_argument("--abtc", action="store_true",
                     help="the file holds APEC Business Travel Cards (docs/abtc.md)")  # fmt: skip
    imp.set_defaults(func=_cmd_import)

    mig = sub.add_parser("migrate", help="bring the store's schema to this rmas's revision")
    mig.add_argument("--url", required=True)
    mig.set_defaults(func=_cmd_migrate)

    apply = sub.add_parser("apply", help="apply a delta feed (JSON Lines) atomically")
    apply.add_argument("--url", required=True)
    apply.add_argument("file", type=Path)
    apply.set_defaults(func=_cmd_apply)

    prune = sub.add_parser("prune", help="remove change-log rows older than the retention")
    prune.add_argument("--url", required=True)
    prune.add_argument("--retention", type=float, metavar="SECONDS",
                       help="first set the change-log retention (default 7 days)")  # fmt: skip
    prune.set_defaults(func=_cmd_prune)

    stats = sub.add_parser("stats", help="record counts by state and status")
    stats.add_argument("--url", required=True)
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(func=_cmd_stats)


def _cmd_import(args: argparse.Namespace) -> int:
    from adapters.sqlstore.cards import import_cards
    from adapters.sqlstore.importer import import_csv
    from rmas.runtime import run_async

    load = import_cards if args.abtc else import_csv
    try:
        report = run_async(load(args.url, args.file, replace=args.replace))
    except RmasError as exc:
        print(f"rmas store import: {exc}", file=sys.stderr)
        return 2
    what = "cards" if args.abtc else "records"
    print(
        f"loaded {report.loaded} {what} ({report.inserted} new, {report.updated} updated) "
        f"in {report.seconds:.2f}s"
    )
    if report.duplicates:
        print(f"{report.duplicates} duplicate rows: the later row of each "
              f"{'card' if args.abtc else 'document'} was kept")  # fmt: skip
    for line, reason in report.rejected:
        print(f"line {line}: {reason}", file=sys.stderr)
    if report.rejected:
        print(f"rejected {len(report.rejected)} rows", file=sys.stderr)
        return 1
    return 0


def _cmd_migrate(args: argparse.Namespace) -> int:
    from adapters.sqlstore.migrate import migrate_engine
    from adapters.sqlstore.schema import make_engine
    from rmas.runtime import run_async

    async def go() -> tuple[str | None, str | None]:
        engine = make_engine(args.url, create=False)
        try:
            return await migrate_engine(engine)
        finally:
            await engine.dispose()

    try:
        before, after = run_async(go())
    except RmasError as exc:
        print(f"rmas store migrate: {exc}", file=sys.stderr)
        return 2
    print(f"schema revision {before or 'none'} -> {after}")
    return 0


def _cmd_apply(args: argparse.Namespace) -> int:
    from adapters.sqlstore.feeds import apply_feed
    from rmas.runtime import run_async

    try:
        report = run_async(apply_feed(args.url, args.file))
    except StoreError as exc:  # the feed (a bad line), or a store that cannot take it
        print(f"rmas store apply: {exc}", file=sys.stderr)
        return 1
    except RmasError as exc:  # the URL
        print(f"rmas store apply: {exc}", file=sys.stderr)
        return 2
    if report.already_applied:
        print(f"{args.file.name} was applied before: nothing changed")
    else:
        print(f"applied {report.applied} changes, skipped {report.stale} stale ones "
              f"in {report.seconds:.2f}s")  # fmt: skip
    return 0


def _cmd_prune(args: argparse.Namespace) -> int:
    from adapters.sqlstore import changelog
    from adapters.sqlstore.schema import make_engine
    from rmas.runtime import run_async

    if args.retention is not None and not 0 <= args.retention <= 10 * 365 * 86400:
        print("rmas store prune: --retention must be 0 to 3650 days in seconds", file=sys.stderr)
        return 2

    async def go() -> tuple[int, float]:
        engine = make_engine(args.url, create=False)
        try:
            removed = await changelog.prune(engine, args.retention)
            return removed, await changelog.retention(engine)
        finally:
            await engine.dispose()

    try:
        removed, kept = run_async(go())
    except RmasError as exc:
        print(f"rmas store prune: {exc}", file=sys.stderr)
        return 2
    print(f"removed {removed} change-log rows (retention {kept:g}s)")
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    from adapters.sqlstore.importer import store_stats
    from rmas.runtime import run_async

    try:
        stats = run_async(store_stats(args.url))
    except RmasError as exc:
        print(f"rmas store stats: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    print(f"{stats['total']} records")
    if stats.get("last_feed"):
        f = stats["last_feed"]
        print(f"last feed: {f['name']} applied {f['applied_at']} ({f['changes']} changes)")
    for state, by_status in stats["by_state"].items():
        parts = ", ".join(f"{k} {v}" for k, v in by_status.items())
        print(f"  {state}: {parts}")
    for economy, by_status in stats["abtc_cards"].items():
        parts = ", ".join(f"{k} {v}" for k, v in by_status.items())
        print(f"  {economy} ABTC cards: {parts}")
    return 0
