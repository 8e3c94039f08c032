"""What a store holds: record counts by state and status, the last feed, ABTC cards."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from adapters.sqlstore.schema import abtc_cards, documents, make_engine

__all__ = ["store_stats"]


async def store_stats(url: str) -> dict[str, Any]:
    """Record counts by state and status (withdrawn records left out), the last feed, and the
    ABTC cards by home economy and status."""
    from adapters.sqlstore.schema import feeds

    engine = make_engine(url, create=False)
    last_feed: dict[str, Any] | None = None
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    select(feeds.c.name, feeds.c.applied_at, feeds.c.changes)
                    .order_by(feeds.c.applied_at.desc())
                    .limit(1)
                )
            ).first()
            if row is not None:
                last_feed = {"name": row[0], "applied_at": row[1], "changes": row[2]}
            result = await conn.execute(
                select(documents.c.issuing_state, documents.c.status, func.count())
                .where(documents.c.withdrawn.is_(False))
                .group_by(documents.c.issuing_state, documents.c.status)
                .order_by(documents.c.issuing_state, documents.c.status)
            )
            by: dict[str, dict[str, int]] = {}
            for state, status, n in result:
                by.setdefault(state, {})[status] = n
            cards: dict[str, dict[str, int]] = {}
            for economy, status, n in await conn.execute(
                select(abtc_cards.c.home_economy, abtc_cards.c.status, func.count())
                .where(abtc_cards.c.withdrawn.is_(False))
                .group_by(abtc_cards.c.home_economy, abtc_cards.c.status)
                .order_by(abtc_cards.c.home_economy, abtc_cards.c.status)
            ):
                cards.setdefault(economy, {})[status] = n
    finally:
        await engine.dispose()
    return {
        "total": sum(sum(v.values()) for v in by.values()),
        "by_state": by,
        "last_feed": last_feed,
        "abtc_cards": cards,
    }
