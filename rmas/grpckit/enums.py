"""The domain's enums in their wire form: one table each, by the proto's naming rule.

Every ``rmas.v1`` enum value is the domain value's name behind the enum's prefix
(``DOCUMENT_TYPE_PASSPORT``, ``RECORD_STATUS_STOLEN``, ``VERDICT_ALERT``,
``DIRECTIVE_OK_TO_BOARD``); the tables are built from that rule here, once, for the toolkit's
mapping and the command line.
"""

from __future__ import annotations

from rmas.documents import DocumentType
from rmas.v1 import check_pb2, common_pb2
from rmas.verdict import Directive, HolderMatch, RecordStatus, Verdict

__all__ = ["DIRECTIVE_TO_PB", "MATCH_TO_PB", "STATUS_TO_PB", "TYPE_TO_PB", "VERDICT_TO_PB"]

TYPE_TO_PB = {t: common_pb2.DocumentType.Value(f"DOCUMENT_TYPE_{t.name}") for t in DocumentType}
STATUS_TO_PB = {s: common_pb2.RecordStatus.Value(f"RECORD_STATUS_{s.name}") for s in RecordStatus}
MATCH_TO_PB = {m: common_pb2.HolderMatch.Value(f"HOLDER_MATCH_{m.name}") for m in HolderMatch}
VERDICT_TO_PB = {v: check_pb2.Verdict.Value(f"VERDICT_{v.name}") for v in Verdict}
DIRECTIVE_TO_PB = {d: check_pb2.Directive.Value(f"DIRECTIVE_{d.name}") for d in Directive}
