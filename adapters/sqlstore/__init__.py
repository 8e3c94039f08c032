"""An economy's document store in SQL: lost/stolen/revoked records, or its complete registry.

- :mod:`.schema` — the tables (SQLAlchemy Core), shared by import, lookups and stats;
- :mod:`.importer` — CSV import with per-line errors, and synthetic stores for benchmarks;
- :mod:`.provider` — the ``sql`` provider kind: batched, index-using, coalesced lookups;
- :mod:`.cli` — ``rmas store import`` and ``rmas store stats``.
"""
