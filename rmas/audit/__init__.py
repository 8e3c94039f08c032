"""The tamper-evident audit trail: one chained, durable entry per checked document.

- :mod:`rmas.audit.entry`: what an entry says (:class:`AuditEntry`), who asked (:class:`Caller`),
  the keyed hash that names a document without revealing it (:class:`DocumentKeyer`), and
  :func:`entries_for` (check results -> entries). Pure.
- :mod:`rmas.audit.chain`: the hash chain and its verification. Pure.
- :mod:`rmas.audit.sink`: the group-committing writer (:class:`AuditSink`) to SQLite or
  PostgreSQL, and the read side (:func:`verify`, :func:`find`, :func:`head`).
- :mod:`rmas.audit.cli`: ``rmas audit verify | find | head | keygen``.
"""

from __future__ import annotations

from rmas.audit.chain import GENESIS, ChainVerifier, VerifyReport, parse_anchor
from rmas.audit.entry import AuditEntry, Caller, Channel, DocumentKeyer, entries_for
from rmas.audit.sink import AuditSink, find, find_check, head, verify

__all__ = [
    "GENESIS",
    "AuditEntry",
    "AuditSink",
    "Caller",
    "ChainVerifier",
    "Channel",
    "DocumentKeyer",
    "VerifyReport",
    "entries_for",
    "find",
    "find_check",
    "head",
    "parse_anchor",
    "verify",
]
