"""A national node's ``WatchChanges`` stream as the hub's :class:`~rmas.changes.ChangeFeed`.

- The node is watched only while its Describe says ``watch_changes`` and names the states it is
  configured for. A node that does not report changes is waited for quietly (its Describe is
  read again every ``describe_refresh_s``): nothing is wrong with it, it just cannot tell.
- ``current_position`` is the Describe's ``current_position``.
- The trust rules of the client: a change must name a state the node is configured for (for an
  issuer's node) or a known state (for a global one), a number normalised as the hub normalises
  it, and a position; any other is dropped, logged (without its number) and counted
  (``RemoteProvider.changes_dropped``): a node must not make the hub re-check others' documents.
- OUT_OF_RANGE from the node: :class:`~rmas.changes.ChangesLost`. Any other failure, or a stream
  the node ends, is :class:`~rmas.errors.ProviderUnavailable`; the hub's watcher resumes from the
  last position it acted on. The channel's keepalive notices a dead node.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

import grpc
import structlog

from rmas.changes import ChangesLost, DocumentChange
from rmas.documents import normalise_number, number_problem
from rmas.errors import ProviderError, ProviderUnavailable
from rmas.providers import Scope
from rmas.states import canonical_economy, is_known_state
from rmas.v1 import provider_pb2

if TYPE_CHECKING:
    from rmas.remote.client import RemoteProvider

__all__ = ["MAX_POSITION_CHARS", "current_position", "watch"]

log = structlog.get_logger("rmas.remote.client")

#: A position longer than this is refused (the node's own limit is the same).
MAX_POSITION_CHARS = 256


async def _watchable(node: RemoteProvider) -> provider_pb2.DescribeResponse:
    """The node's Describe once it says it reports changes (waiting quietly until it does)."""
    node.start_background()
    told = False
    while True:
        resp = await node.describe()
        if resp is None:
            raise ProviderUnavailable(f"{node.info.id}: Describe failed")
        if node.describe_problem:
            raise ProviderUnavailable(f"{node.info.id} not watched: {node.describe_problem}")
        if resp.watch_changes:
            return resp
        if not told:
            log.info("node_reports_no_changes", provider=node.info.id)
            told = True
        await asyncio.sleep(node.describe_refresh_s)


async def current_position(node: RemoteProvider) -> str:
    resp = await _watchable(node)
    position = resp.current_position
    if not position or len(position) > MAX_POSITION_CHARS:
        raise ProviderUnavailable(f"{node.info.id}: Describe gives no usable current_position")
    return position


def _trusted(node: RemoteProvider, batch: provider_pb2.ChangeBatch) -> list[DocumentChange]:
    out: list[DocumentChange] = []
    info = node.info
    for c in batch.changes:
        state = canonical_economy(c.issuing_state.strip().upper())
        why = ""
        if info.scope is Scope.ISSUER and state not in info.issuing_states:
            why = "a state the node is not configured for"
        elif not is_known_state(state) and state != "DEU":
            why = "an unknown state"
        elif c.number != normalise_number(c.number) or number_problem(c.number) is not None:
            why = "a number that is not normalised"
        elif not c.position or len(c.position) > MAX_POSITION_CHARS:
            why = "no usable position"
        if why:
            node.changes_dropped += 1
            log.warning("change_dropped", provider=info.id, reason=why,
                        state=c.issuing_state[:3], dropped=node.changes_dropped)  # fmt: skip
            continue
        out.append(DocumentChange(state, c.number, c.position))
    return out


async def watch(node: RemoteProvider, since: str) -> AsyncIterator[Sequence[DocumentChange]]:
    """The node's changes after ``since`` (rmas.changes contract)."""
    await _watchable(node)
    call = node.stub().WatchChanges(provider_pb2.WatchChangesRequest(since=since))
    try:
        async for msg in call:
            if not isinstance(msg, provider_pb2.ChangeBatch):
                raise ProviderError(f"{node.info.id} sent a change batch that cannot be decoded")
            changes = _trusted(node, msg)
            if changes:
                yield changes
    except grpc.aio.AioRpcError as exc:
        code = exc.code()
        if code == grpc.StatusCode.OUT_OF_RANGE:
            raise ChangesLost(f"{node.info.id}: {exc.details()}"[:300]) from None
        raise ProviderUnavailable(f"{node.info.id} change stream: {code.name}") from None
    finally:
        call.cancel()
    raise ProviderUnavailable(f"{node.info.id} ended its change stream")
