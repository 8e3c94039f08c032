"""Judging one answer: the parts of a CheckResult the model speaks about, and how they differ.

``describe`` reads a ``rmas.v1.CheckResult`` into plain values; ``compare`` lists the
disagreement classes between it and the model's :class:`~tests.differential.model.Expected`.
"""

from __future__ import annotations

from typing import Any

from tests.differential.model import ALERTING, Expected, type_of
from tests.differential.world import ISSUERS, Case


def _name(enum_type: Any, value: int, prefix: str) -> str:
    return str(enum_type.Name(value)).removeprefix(prefix)


def describe(r: Any) -> dict[str, Any]:
    """The parts of a CheckResult the model judges, as plain values."""
    from rmas.v1 import check_pb2, common_pb2

    sources = {}
    errors: dict[str, str] = {}
    candidates: dict[str, dict[str, tuple[str, str, bool]]] = {}
    for s in r.sources:
        answer = (
            _name(check_pb2.Outcome, s.outcome, "OUTCOME_"),
            _name(common_pb2.RecordStatus, s.record.status, "RECORD_STATUS_"),
            s.record.holder_match == common_pb2.HOLDER_MATCH_MISMATCH,
        )
        if s.queried_number:
            candidates.setdefault(s.queried_number, {})[s.provider_id] = answer
        else:
            sources[s.provider_id] = answer
            if s.error:
                errors[s.provider_id] = s.error[:120]
    return {
        "verdict": _name(check_pb2.Verdict, r.verdict, "VERDICT_"),
        "directive": _name(check_pb2.Directive, r.directive, "DIRECTIVE_"),
        "unchecked": r.unchecked,
        "issuer_consulted": getattr(r, "issuer_consulted", None),
        "sources": sources,
        "candidates": candidates,
        "errors": errors,
        "type": _name(common_pb2.DocumentType, r.document.type, "DOCUMENT_TYPE_"),
        "number": r.document.number,
        "state": r.document.issuing_state,
    }


def compare(e: Expected, got: dict[str, Any], case: Case) -> list[str]:
    """The disagreement classes of one answer (empty: the hub agrees with the model).

    Facts (a provider's outcome or status, a type, a flag) are classes of their own; a wrong
    verdict is classed by the facts that explain it, so one defect is one class.
    """
    facts: list[str] = []
    srcs = got["sources"]
    invalid = e.verdict == "INVALID_DATA" and not e.outcomes
    if not invalid:
        if set(srcs) != set(e.outcomes):
            facts.append(f"providers asked {sorted(e.outcomes)} -> {sorted(srcs)}")
        for pid, allowed in e.outcomes.items():
            if pid not in srcs:
                continue
            outcome, status, mismatch = srcs[pid]
            if outcome not in allowed:
                facts.append(f"outcome {pid} ({ISSUERS.get(pid, 'global')}) "
                             f"{'|'.join(sorted(allowed))} -> {outcome}")  # fmt: skip
                continue
            if pid in e.answers and outcome == "ANSWERED":
                want_status, want_mismatch = e.answers[pid]
                if _kind(status) != _kind(want_status):
                    facts.append(f"status {pid} {_kind(want_status)} -> {_kind(status)}"
                                 f"{_sltd_note(case) if pid == 'SLTD' else ''}")  # fmt: skip
                if mismatch != want_mismatch:
                    facts.append(f"holder mismatch {pid} {want_mismatch} -> {mismatch}")
        cands = got["candidates"]
        if set(cands) != set(e.candidates):
            facts.append(f"OCR candidates asked {len(e.candidates)} -> {len(cands)} "
                         f"[{case.channel}]")  # fmt: skip
        for number, want in e.candidates.items():
            for pid, (want_status, _) in want.items():
                outcome, status, _m = cands.get(number, {}).get(pid, ("", "", False))
                if outcome == "ANSWERED" and _kind(status) != _kind(want_status):
                    facts.append(f"candidate status {pid} {_kind(want_status)} -> "
                                 f"{_kind(status)}")  # fmt: skip
    out = list(facts)
    if (got["verdict"], got["directive"]) != (e.verdict, e.directive):
        why = "; ".join(sorted(set(facts))) or f"no provider fact differs, {case.tag}"
        out.append(f"verdict {e.verdict}/{e.directive} -> {got['verdict']}/{got['directive']}"
                   f" <= {why}")  # fmt: skip
    elif got["unchecked"] != e.unchecked:
        out.append(f"unchecked {e.unchecked} -> {got['unchecked']} ({e.verdict})")
    if invalid:
        return out
    if e.issuer_consulted is not None and got["issuer_consulted"] != e.issuer_consulted:
        out.append(f"issuer_consulted {e.issuer_consulted} -> {got['issuer_consulted']}")
    if got["type"] != e.doc_type:
        out.append(f"document type {case.code!r} {e.doc_type} -> {got['type']} [{case.channel}]")
    if e.state and (got["state"], got["number"]) != (e.state, e.number):
        out.append(f"normalised key {e.state}:{e.number} -> {got['state']}:{got['number']} "
                   f"[{case.channel}]")  # fmt: skip
    return out


def _kind(status: str) -> str:
    return "alert" if status in ALERTING and status != "NOT_ISSUED" else status


def _sltd_note(case: Case) -> str:
    """Whether the SLTD-style store holds the number under the type the query named."""
    return f" (query type {type_of(case.code)})"
