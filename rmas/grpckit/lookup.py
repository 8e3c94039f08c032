"""The provider protocol's messages (``rmas.v1.DocumentStatusProvider``), both sides.

The hub's client of a national node (:mod:`rmas.remote.client`) writes lookups with
:func:`lookup_request` and :func:`cards_request` and reads the answers with
:func:`records_from` and :func:`cards_from`, which accept a result only when it answers what was
asked (one per item, in order, its ref and key echoed). The node (:mod:`rmas.remote.node`) writes
its answers with :func:`lookup_response`, :func:`cards_response` and :func:`describe_response`.
Records and cards themselves are translated by :mod:`rmas.grpckit.mapping`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from rmas.abtc import CardQuery, CardRecord
from rmas.documents import DocumentQuery
from rmas.errors import ProviderError
from rmas.grpckit.mapping import (
    card_record_from_pb,
    card_record_to_pb,
    document_to_pb,
    record_from_pb,
    record_to_pb,
)
from rmas.providers import Registry
from rmas.states import canonical_economy
from rmas.v1 import provider_pb2
from rmas.verdict import Record

__all__ = [
    "cards_from",
    "cards_request",
    "cards_response",
    "describe_response",
    "lookup_request",
    "lookup_response",
    "records_from",
]

T = TypeVar("T")

_REGISTRY = {
    Registry.ALERTS: provider_pb2.REGISTRY_KIND_ALERTS,
    Registry.COMPLETE: provider_pb2.REGISTRY_KIND_COMPLETE,
}


# -- the hub's side --------------------------------------------------------------------------


def lookup_request(queries: Sequence[DocumentQuery]) -> provider_pb2.LookupBatchRequest:
    """A LookupBatch for ``queries``; each item's ref is its position."""
    request = provider_pb2.LookupBatchRequest()
    for i, q in enumerate(queries):
        item = request.items.add(ref=str(i))
        document_to_pb(q, item.document)
    return request


def cards_request(queries: Sequence[CardQuery]) -> provider_pb2.LookupCardsRequest:
    """A LookupCards for ``queries``; each item's ref is its position."""
    request = provider_pb2.LookupCardsRequest()
    for i, q in enumerate(queries):
        request.items.add(ref=str(i), home_economy=q.home_economy, number=q.number)
    return request


def records_from(
    resp: provider_pb2.LookupBatchResponse, queries: Sequence[DocumentQuery]
) -> list[Record]:
    """The records of a LookupBatch answer; ProviderError when it does not answer ``queries``."""
    return _checked(
        resp.results,
        [(q.economy, q.number) for q in queries],
        lambda res: (res.issuing_state, res.number),
        lambda res: record_from_pb(res.record),
        "document",
    )


def cards_from(
    resp: provider_pb2.LookupCardsResponse, queries: Sequence[CardQuery]
) -> list[CardRecord]:
    """The card records of a LookupCards answer; ProviderError when it does not answer
    ``queries``."""
    return _checked(
        resp.results,
        [(q.home_economy, q.number) for q in queries],
        lambda res: (res.home_economy, res.number),
        lambda res: card_record_from_pb(res.card),
        "card",
    )


def _checked(
    results: Sequence[Any],
    keys: Sequence[tuple[str, str]],
    echoed: Callable[[Any], tuple[str, str]],
    decode: Callable[[Any], T],
    what: str,
) -> list[T]:
    """A node's results, once each is known to answer what was asked: one per item, in order,
    with the item's ref and its key (economy, number) echoed; ProviderError otherwise."""
    n = len(keys)
    if len(results) != n:
        raise ProviderError(f"node answered {len(results)} results for {n} {what}s")
    out: list[T] = []
    for i, (res, (economy, number)) in enumerate(zip(results, keys, strict=True)):
        if res.ref != str(i):
            raise ProviderError(f"node answered {what} result {i} with ref {res.ref[:20]!r}")
        # The echo must name what was asked about: the node's answer is about its key.
        state, echoed_number = echoed(res)
        if echoed_number != number or canonical_economy(state) != economy:
            raise ProviderError(f"node answered {what} result {i} about another {what} than asked")
        try:
            out.append(decode(res))
        except ValueError as exc:
            raise ProviderError(f"node answered an unusable {what} record: {exc}") from None
    return out


# -- the node's side -------------------------------------------------------------------------


def lookup_response(
    queries: Sequence[DocumentQuery], records: Sequence[Record]
) -> provider_pb2.LookupBatchResponse:
    """A LookupBatch answer: each result echoes the key it answers (the hub refuses one that
    does not)."""
    out = provider_pb2.LookupBatchResponse()
    for q, r in zip(queries, records, strict=True):
        res = out.results.add(ref=q.ref, issuing_state=q.issuing_state, number=q.number)
        record_to_pb(r, res.record)
    return out


def cards_response(
    refs: Sequence[str], queries: Sequence[CardQuery], records: Sequence[CardRecord]
) -> provider_pb2.LookupCardsResponse:
    """A LookupCards answer, each result with its item's ref and the key it answers."""
    out = provider_pb2.LookupCardsResponse()
    for ref, q, r in zip(refs, queries, records, strict=True):
        res = out.results.add(ref=ref, home_economy=q.home_economy, number=q.number)
        card_record_to_pb(r, res.card)
    return out


def describe_response(
    *,
    provider_id: str,
    issuing_states: Sequence[str],
    contact: str,
    record_count: int,
    max_batch_size: int,
    registry: object,
    software_version: str,
    abtc: bool,
    watch_changes: bool = False,
    current_position: str = "",
) -> provider_pb2.DescribeResponse:
    """A node's Describe; ``registry`` is the provider's :class:`~rmas.providers.Registry`, or
    anything else when it does not say (UNSPECIFIED)."""
    return provider_pb2.DescribeResponse(
        record_count=record_count,
        provider_id=provider_id,
        issuing_states=sorted(issuing_states),
        contact=contact,
        max_batch_size=max_batch_size,
        registry=_REGISTRY.get(registry, provider_pb2.REGISTRY_KIND_UNSPECIFIED)
        if isinstance(registry, Registry)
        else provider_pb2.REGISTRY_KIND_UNSPECIFIED,
        software_version=software_version,
        abtc=abtc,
        watch_changes=watch_changes,
        current_position=current_position,
    )
