"""The hub's open flights: the conversation with an airline after a PAXLST's first answer.

- :mod:`.config` — the ``[flights]`` table (pure);
- :mod:`.model` — what the hub keeps of a flight and its passengers, and what a PAXLST reports
  of them (pure);
- :mod:`.sealing` — document keys and sealed queries: the only form in which a document is kept;
- :mod:`.store` — the flight store (SQLAlchemy: SQLite by default, PostgreSQL for several hubs),
  with the status-change outbox and the change watcher's positions;
- :mod:`.tracker` — records answers, re-checks passengers when records change, overrides.

This package's ``__init__`` imports nothing, so that :mod:`rmas.config` may read the
``[flights]`` table without loading SQLAlchemy.
"""
