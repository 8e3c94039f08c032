"""The one check pipeline of the edge: the steps every check takes around the hub.

Every edge that checks documents (``CheckDocument``, ``CheckManifest``, ``CheckPaxlst`` in
:mod:`rmas.server.check_service`, and the web console in :mod:`rmas.console`) reads its wire
format into a :class:`CheckRequest` and hands :meth:`CheckPipeline.run` a function that writes
the :class:`CheckOutcome` back into its own format. In between, in this order:

1. **admit**: the caller is charged the number of documents: RESOURCE_EXHAUSTED-worthy
   :class:`~rmas.errors.Overloaded` when the hub has too many in flight,
   :class:`~rmas.security.access.RateLimited` when the caller's bucket cannot pay (nothing is
   checked then);
2. **check**: the hub asks its providers and merges their answers;
3. **audit**: one entry per document is queued on the audit trail (when there is one);
4. **answer**: the edge's function builds its answer while the commit runs, in the caller's
   view (need-to-know: the outcome carries the :class:`~rmas.security.access.View` the caller
   was admitted with, and :func:`rmas.grpckit.mapping.result_to_pb` is the one place results are
   filtered by it);
5. **durable**: the answer leaves only once the entries are committed (:class:`Unrecorded`
   otherwise: no answer leaves unrecorded);
6. **count**: the metrics count the documents (when on: :mod:`rmas.server.metrics`).

The airline channel (:mod:`rmas.iapi`) checks a PAXLST itself; it is given :meth:`charge` and
:meth:`record` (steps 1, 3, 5 and 6) as its ``admit`` and ``record``.

This is the hub's hottest code: ``run`` adds no task and awaits only the hub and the commit
(and, for a ``slow_answer``, one yield so that the commit starts first). A batch of more than
:data:`rmas.hub.TURN` documents also gives the loop a turn between its steps while single
checks are coming (:meth:`rmas.hub.Hub.gives_turns`; the hub and the edges give it turns
within them), so that a large manifest does not hold the loop for long.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from rmas.abtc import CardQuery
from rmas.audit.entry import Channel
from rmas.audit.trail import AuditTrail
from rmas.errors import AuditError, Overloaded
from rmas.grpckit.auth import Admitted
from rmas.hub import TURN, CheckResult, Hub, InvalidDocument, Item
from rmas.security.access import AccessPolicy, View

if TYPE_CHECKING:
    from rmas.server.metrics import HubMetrics

__all__ = ["CheckOutcome", "CheckPipeline", "CheckRequest", "Unrecorded"]

T = TypeVar("T")


class Unrecorded(AuditError):
    """A required audit trail could not write a check's entries: no answer may leave. The
    message quotes the ``first`` (up to three) of the ``count`` check ids."""

    def __init__(self, first: Sequence[CheckResult], count: int) -> None:
        super().__init__(
            "the audit trail cannot be written; no answer is given unrecorded "
            f"(check ids {', '.join(r.check_id for r in first[:3])}"
            f"{'…' if count > 3 else ''})"
        )


@dataclass(frozen=True, slots=True)
class CheckRequest:
    """What an edge asks, once read from its wire format."""

    who: Admitted
    channel: Channel
    #: The documents, in the order of the answer (bad ones as InvalidDocument: answered too).
    items: Sequence[Item]
    #: The caller's time left (None: the hub's own deadline).
    remaining_s: float | None = None
    #: An APEC Business Travel Card presented with a single document (rmas.abtc).
    card: CardQuery | None = None
    #: What ties the audit entries together (a manifest's id).
    reference: str = ""


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """What an edge writes back: the results, in the order asked, and the view the caller may
    see them in."""

    results: Sequence[CheckResult]
    view: View
    reference: str = ""


class CheckPipeline:
    """The steps around the hub, shared by every edge; limits change with a reload
    (:meth:`reconfigure`)."""

    def __init__(
        self,
        hub: Hub,
        *,
        policy: AccessPolicy | None = None,
        audit: AuditTrail | None = None,
        metrics: HubMetrics | None = None,
        max_in_flight: int = 20_000,
    ) -> None:
        self.hub = hub
        self.policy = policy
        self.audit = audit
        self.metrics = metrics
        self.max_in_flight = max_in_flight

    def reconfigure(self, *, max_in_flight: int, policy: AccessPolicy | None) -> None:
        """New limits from a configuration reload; calls under way keep what they admitted."""
        self.max_in_flight = max_in_flight
        self.policy = policy

    def charge(self, who: Admitted, documents: int) -> None:
        """Step 1: raise Overloaded when the hub has too many documents in flight, RateLimited
        when the caller's bucket cannot pay for ``documents``."""
        in_flight = self.hub.in_flight
        if in_flight and in_flight + documents > self.max_in_flight:
            raise Overloaded(
                f"hub overloaded: {in_flight} documents in flight (at most "
                f"{self.max_in_flight}); retry shortly or at another hub"
            )
        if self.policy is not None and who.rule is not None:
            self.policy.admit(who.caller.identity, who.rule, documents)

    async def run(
        self,
        request: CheckRequest,
        answer: Callable[[CheckOutcome], T] | Callable[[CheckOutcome], Awaitable[T]],
        *,
        slow_answer: bool = False,
    ) -> T:
        """Every step for ``request``; returns ``answer(outcome)`` (awaited, when it is a
        coroutine: a large answer written in turns) once the entries are durable.

        Raises RateLimited or Overloaded (nothing was checked), Unrecorded when a required audit
        trail could not write the entries (the answer must not leave). Edges other than the
        RPCs run it inside the servicer's ``serving()``, so that a drain waits for it.

        ``slow_answer``: yield to the event loop once before building the answer, so that the
        audit trail's writer task starts the commit first and the two run at the same time (an
        HTML page takes longer to build than the commit takes to start; a protobuf does not).
        """
        who, channel, reference = request.who, request.channel, request.reference
        items, card, remaining_s = request.items, request.card, request.remaining_s
        # Only this frame holds the request (edges pass it as a temporary): its documents go
        # once checked (see below).
        del request
        self.charge(who, len(items))
        hub = self.hub
        deadline = hub.deadline(remaining_s)
        results: Sequence[CheckResult]
        if card is not None and len(items) == 1 and not isinstance(items[0], InvalidDocument):
            results = [await hub.check_with_card(items[0], card, deadline)]
        else:
            results = await hub.check(items, deadline)
        del items
        n = len(results)
        first = results[:3]
        audit = self.audit
        pending = None if audit is None else audit.submit(results, who.caller, channel, reference)
        if (slow_answer and pending is not None) or (n > TURN and hub.gives_turns()):
            await asyncio.sleep(0)
        metrics = self.metrics
        tally = None
        try:  # the answer is built while the audit commit runs; it leaves after it
            made = answer(CheckOutcome(results, who.view, reference))
            out: T = await made if inspect.isawaitable(made) else made
            if metrics is not None and n != 1:
                tally = metrics.tally(results)
            # Let the results go now, not once the commit is in: held by every manifest waiting
            # for a commit, a manifest's results and their answers are thousands of objects the
            # collector scans again and again (docs/benchmarks.md, "mTLS and audit").
            del results
        finally:
            if pending is not None:
                try:
                    await pending
                except AuditError as exc:
                    raise Unrecorded(first, n) from exc
        if metrics is not None:
            if tally is None:
                metrics.observe(channel, first)
            else:
                metrics.observe_tally(channel, tally, n)
        return out

    async def record(
        self, who: Admitted, channel: Channel, results: Sequence[CheckResult], reference: str
    ) -> None:
        """Steps 3, 5 and 6 for results an edge checked itself (the airline channel): audit,
        wait until durable (Unrecorded when not), count."""
        audit = self.audit
        if audit is not None:
            try:
                await audit.submit(results, who.caller, channel, reference)
            except AuditError as exc:
                raise Unrecorded(results[:3], len(results)) from exc
        if self.metrics is not None:
            self.metrics.observe(channel, results)
