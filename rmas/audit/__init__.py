"""The tamper-evident audit trail: one chained, durable entry per checked document.

- :mod:`rmas.audit.format`: the entry, the byte format of a block, the chain's hash and the
  table (standard library only; the hub and the SQLite writer process both import it).
- :mod:`rmas.audit.entry`: who asked (:class:`Caller`), the keyed hash that names a document
  without revealing it (:class:`DocumentKeyer`), and check results -> entries. Pure.
- :mod:`rmas.audit.chain`: verification of the chain of blocks. Pure.
- :mod:`rmas.audit.sink` and :mod:`rmas.audit.writers`: the group-committing writer
  (:class:`AuditSink`) to SQLite (through :mod:`rmas.audit.writer`, a process of its own) or
  PostgreSQL; :mod:`rmas.audit.trail`: what the servicers use (:class:`AuditTrail`).
- :mod:`rmas.audit.reader`: :func:`verify`, :func:`find`, :func:`head`, for both engines;
  :mod:`rmas.audit.migrate`: earlier layouts -> blocks.
- :mod:`rmas.audit.cli`: ``rmas audit verify | find | head | migrate | keygen``.

This face is lazy: ``import rmas.audit`` loads none of them (nor SQLite, SQLAlchemy or asyncpg)
until a name is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rmas.audit.chain import BlockVerifier, VerifyReport, parse_anchor
    from rmas.audit.entry import Caller, Channel, DocumentKeyer, encode_entries, entries_for
    from rmas.audit.format import FIELDS, FORMAT, GENESIS, AuditEntry
    from rmas.audit.reader import find, find_check, head, verify
    from rmas.audit.sink import AuditSink
    from rmas.audit.trail import AuditTrail

_WHERE = {
    "AuditEntry": "format", "FIELDS": "format", "FORMAT": "format", "GENESIS": "format",
    "BlockVerifier": "chain", "VerifyReport": "chain", "parse_anchor": "chain",
    "Caller": "entry", "Channel": "entry", "DocumentKeyer": "entry",
    "encode_entries": "entry", "entries_for": "entry",
    "AuditSink": "sink", "AuditTrail": "trail",
    "find": "reader", "find_check": "reader", "head": "reader", "verify": "reader",
}  # fmt: skip

__all__ = [
    "FIELDS",
    "FORMAT",
    "GENESIS",
    "AuditEntry",
    "AuditSink",
    "AuditTrail",
    "BlockVerifier",
    "Caller",
    "Channel",
    "DocumentKeyer",
    "VerifyReport",
    "encode_entries",
    "entries_for",
    "find",
    "find_check",
    "head",
    "parse_anchor",
    "verify",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'rmas.audit' has no attribute {name!r}")
    return getattr(importlib.import_module(f"rmas.audit.{module}"), name)
