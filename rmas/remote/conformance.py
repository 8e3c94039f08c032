"""The conformance kit: protocol checks an economy runs against its node before going live.

``rmas conformance --target HOST:PORT [--state NZL ...] [--known NZL:LA000002:STOLEN ...]
[--tls-cert F --tls-key F --tls-ca F]``

With ``--tls-*`` the kit connects with mutual TLS, as a hub does to a production node (the
certificate must be one the node admits, e.g. ``rmas://hub/...``). Each check sends real
requests to the node and reports PASS, FAIL (with the reason) or SKIPPED (with the reason: a
check that could not run, for want of ``--known`` documents, a declared batch limit, or a
``describe`` that failed, is never reported as passed):

- ``describe``: Describe names the provider, its issuing states (known codes) and a batch limit;
- ``unknown_documents``: numbers nobody issued answer NO_RECORD (NOT_ISSUED for a node that
  declares a complete registry), one per state;
- ``known_statuses``: every ``--known`` document answers its status;
- ``refs_in_order``: one result per item, in order, each with its item's ref;
- ``key_echo``: each result echoes its item's key: ``issuing_state`` (the economy asked about)
  and ``number`` (normalised: a number sent as ``zq 1234-abcd`` comes back ``ZQ1234ABCD``), so a
  hub can tell which document an answer is about;
- ``batch_limit``: a batch over the declared limit is refused cleanly (INVALID_ARGUMENT or
  RESOURCE_EXHAUSTED), neither answered nor half answered;
- ``deadline``: calls abandoned at a 50 ms deadline end promptly and leave the node free to
  answer the next call at once (a node still busy with abandoned work fails);
- ``malformed_requests``: an unknown state code, an empty number and an oversized number each
  get INVALID_ARGUMENT;
- ``large_batch``: a batch at the limit (at most 1,000) is answered in full;
- ``concurrency``: 32 calls at once are all answered, consistently;
- ``abtc_cards`` (APEC Business Travel Cards), when Describe says ``abtc``: unknown card numbers
  answer NOT_ISSUED, every ``--known-card`` answers its status, results come back in order with
  their refs echoing the key asked (home economy, number), and a malformed card gets
  INVALID_ARGUMENT. A node that does not describe ABTC must answer LookupCards UNIMPLEMENTED.
- ``watch_changes`` (record changes, issue 17): UNIMPLEMENTED from a node that does not describe
  it; otherwise a ``current_position``, OUT_OF_RANGE for a position never handed out, and, with
  ``--change-command CMD`` (run while the kit watches: something that changes a record at the
  node), the change streamed with distinct positions, resumable and replayable
  (rmas.remote.conformance_changes). SKIPPED after the parts that can run without the command.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from rmas.conformance import FAIL, PASS, SHARED_CHECKS, SKIPPED, CheckResult, run_checks
from rmas.conformance import Fail as _Fail
from rmas.conformance import Skip as _Skip
from rmas.conformance import unknown_number as _unknown_number
from rmas.documents import normalise_number
from rmas.remote.conformance_changes import (
    ChangeCheckFailed,
    ChangeCheckSkipped,
    check_watch_changes,
)
from rmas.security.tls import TlsConfig
from rmas.states import canonical_economy, is_known_state, to_alpha3
from rmas.v1 import common_pb2, provider_pb2, provider_pb2_grpc

__all__ = ["FAIL", "PASS", "SKIPPED", "CheckResult", "run_conformance"]

_STATUS = {v: k.removeprefix("RECORD_STATUS_") for k, v in common_pb2.RecordStatus.items()}
_CARD_STATUS = {v: k.removeprefix("CARD_STATUS_") for k, v in common_pb2.CardStatus.items()}


def _item(ref: str, state: str, number: str) -> provider_pb2.LookupItem:
    return provider_pb2.LookupItem(
        ref=ref, document=common_pb2.Document(issuing_state=state, number=number)
    )


async def run_conformance(
    target: str,
    *,
    states: Sequence[str] = (),
    known: Sequence[tuple[str, str, str]] = (),
    known_cards: Sequence[tuple[str, str, str]] = (),
    call_timeout_s: float = 5.0,
    tls: TlsConfig | None = None,
    server_name: str = "",
    make_change: Callable[[], Awaitable[object]] | None = None,
) -> list[CheckResult]:
    """Run every check against ``target``; one result per check, in the order listed above.

        With ``tls``, over mutual TLS (``server_name``: the name to verify in the node's
        certificate when it differs from the target's host; ``make_change``: changes a record at the
    node, for the ``watch_changes`` check)."""
    options: list[tuple[str, Any]] = [("grpc.max_receive_message_length", 64 << 20)]
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    channel = (
        grpc.aio.secure_channel(target, tls.channel_credentials(), options=options)
        if tls is not None
        else grpc.aio.insecure_channel(target, options=options)
    )
    async with channel:
        stub = provider_pb2_grpc.DocumentStatusProviderStub(channel)
        ctx = _Context(stub, call_timeout_s, list(states), list(known), list(known_cards),
                       make_change)  # fmt: skip
        shared = {name: _bind(check, ctx) for name, check in SHARED_CHECKS.items()}
        checks: list[tuple[str, Callable[[], Awaitable[str]]]] = [
            ("describe", ctx.describe),
            ("unknown_documents", shared["unknown_documents"]),
            ("known_statuses", shared["known_statuses"]),
            ("refs_in_order", ctx.refs_in_order),
            ("key_echo", ctx.key_echo),
            ("batch_limit", ctx.batch_limit),
            ("deadline", shared["deadline"]),
            ("malformed_requests", ctx.malformed),
            ("large_batch", shared["large_batch"]),
            ("concurrency", shared["concurrency"]),
            ("abtc_cards", ctx.abtc_cards),
            ("watch_changes", ctx.watch_changes),
        ]

        def ready(name: str) -> str:
            if name != "describe" and not ctx.states:
                return "no issuing state to ask about: describe failed and no --state was given"
            return ""

        def failure(exc: Exception) -> str | None:
            if isinstance(exc, grpc.aio.AioRpcError):
                return _rpc_failure(exc, tls is not None)
            return None

        return await run_checks(checks, ready=ready, failure=failure)


def _bind(check: Callable[[Any], Awaitable[str]], ctx: Any) -> Callable[[], Awaitable[str]]:
    return lambda: check(ctx)


def _rpc_failure(exc: grpc.aio.AioRpcError, tls: bool) -> str:
    text = f"{exc.code().name}: {exc.details()}"
    if exc.code() is grpc.StatusCode.UNAVAILABLE and not tls:
        details = (exc.details() or "").lower()
        if "connection refused" not in details:
            text += " (a node with [tls] needs --tls-cert, --tls-key and --tls-ca)"
    return text


@dataclass
class _Context:
    stub: Any
    timeout: float
    states: list[str]
    known: list[tuple[str, str, str]]
    known_cards: list[tuple[str, str, str]]
    make_change: Callable[[], Awaitable[object]] | None = None
    described: provider_pb2.DescribeResponse | None = None

    async def watch_changes(self) -> str:
        try:
            return await check_watch_changes(
                self.stub, self.described, self.timeout, self.make_change
            )
        except ChangeCheckFailed as exc:
            raise _Fail(str(exc)) from None
        except ChangeCheckSkipped as exc:
            raise _Skip(str(exc)) from None

    async def _lookup(
        self, items: Sequence[provider_pb2.LookupItem], budget_s: float | None = None
    ) -> provider_pb2.LookupBatchResponse:
        resp: provider_pb2.LookupBatchResponse = await self.stub.LookupBatch(
            provider_pb2.LookupBatchRequest(items=items), timeout=budget_s or self.timeout
        )
        return resp

    @property
    def limit(self) -> int:
        return int(self.described.max_batch_size) if self.described else 0

    @property
    def complete(self) -> bool:
        return (
            self.described is not None
            and self.described.registry == provider_pb2.REGISTRY_KIND_COMPLETE
        )

    async def statuses(
        self, keys: Sequence[tuple[str, str]], budget_s: float | None = None
    ) -> list[str]:
        """The shared checks' question (:class:`rmas.conformance.Asker`), as a LookupBatch."""
        items = [_item(str(i), state, number) for i, (state, number) in enumerate(keys)]
        try:
            resp = await self._lookup(items, budget_s)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise TimeoutError from None
            raise
        return [_STATUS.get(r.record.status, "?") for r in resp.results]

    async def describe(self) -> str:
        d: provider_pb2.DescribeResponse = await self.stub.Describe(
            provider_pb2.DescribeRequest(), timeout=self.timeout
        )
        self.described = d
        if not d.provider_id:
            raise _Fail("Describe names no provider_id")
        if not d.issuing_states:
            raise _Fail("Describe names no issuing state")
        unknown = [s for s in d.issuing_states if not is_known_state(s)]
        if unknown:
            raise _Fail(f"Describe names unknown state codes {unknown}")
        if not self.states:
            self.states = list(d.issuing_states)
        missing = set(self.states) - set(d.issuing_states)
        if missing:
            raise _Fail(f"--state {sorted(missing)} not among the node's states")
        return f"{d.provider_id}: states {list(d.issuing_states)}, batch limit {d.max_batch_size}"

    async def refs_in_order(self) -> str:
        n = max(2, min(10, self.limit or 10))
        refs = [f"ref-{i}-{os.urandom(2).hex()}" for i in range(n)]
        state = self.states[0]
        resp = await self._lookup([_item(r, state, _unknown_number()) for r in refs])
        got = [r.ref for r in resp.results]
        if got != refs:
            raise _Fail(f"results came back with refs {got[:4]}..., expected {refs[:4]}...")
        return f"{n} refs echoed in order"

    async def key_echo(self) -> str:
        """Each result names the document it answers for: the item's economy and number, the
        number normalised (lower case and separators sent, canonical form expected back)."""
        state = self.states[0]
        sent = [_unknown_number() for _ in range(3)]
        spelt = [f"{n[:2].lower()} {n[2:6]}-{n[6:].lower()}" for n in sent]
        items = [_item(f"e{i}", state, raw) for i, raw in enumerate(spelt)]
        resp = await self._lookup(items)
        if len(resp.results) != len(items):
            raise _Fail(f"{len(items)} items got {len(resp.results)} results")
        economy = _economy(state)
        wrong = []
        for raw, r in zip(spelt, resp.results, strict=True):
            want = normalise_number(raw)
            if r.number != want or _economy(r.issuing_state) != economy:
                wrong.append(
                    f"{state}:{raw!r} answered as issuing_state={r.issuing_state!r} "
                    f"number={r.number!r}, expected {economy!r} and {want!r}"
                )
        if wrong:
            raise _Fail(
                "results must echo their item's issuing_state and normalised number "
                "(LookupResult fields 3 and 4): " + "; ".join(wrong)
            )
        return f"{len(items)} results echo their issuing state and normalised number"

    async def batch_limit(self) -> str:
        if not self.limit:
            raise _Skip("the node declares no batch limit (Describe max_batch_size)")
        state = self.states[0]
        items = [_item(str(i), state, _unknown_number()) for i in range(self.limit + 1)]
        try:
            resp = await self._lookup(items)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED):
                return f"{self.limit + 1} items refused with {exc.code().name}"
            raise
        raise _Fail(
            f"declares a limit of {self.limit} but a batch of {len(items)} got "
            f"{len(resp.results)} results instead of INVALID_ARGUMENT or RESOURCE_EXHAUSTED"
        )

    async def malformed(self) -> str:
        state = self.states[0]
        cases = {
            "unknown state code": _item("a", "QQQ", "A1"),
            "empty number": _item("b", state, ""),
            "oversized number": _item("c", state, "A" * 40),
        }
        wrong = []
        for label, item in cases.items():
            try:
                await self._lookup([item])
                wrong.append(f"{label}: answered")
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
                    wrong.append(f"{label}: {exc.code().name}")
        if wrong:
            raise _Fail("expected INVALID_ARGUMENT; " + "; ".join(wrong))
        return "INVALID_ARGUMENT for each"

    async def abtc_cards(self) -> str:
        d = self.described
        request = provider_pb2.LookupCardsRequest()
        if d is None or not d.abtc:
            request.items.add(ref="0", home_economy=self.states[0], number=_unknown_number())
            try:
                await self.stub.LookupCards(request, timeout=self.timeout)
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                    return "the node does not describe ABTC (LookupCards: UNIMPLEMENTED)"
                raise
            raise _Fail("the node does not describe ABTC but answered LookupCards")
        asked = [(s, _unknown_number(), "NOT_ISSUED") for s in self.states]
        asked += [(s, n, st.upper()) for s, n, st in self.known_cards]
        for i, (state, number, _st) in enumerate(asked):
            request.items.add(ref=f"card-{i}", home_economy=state, number=number)
        resp: provider_pb2.LookupCardsResponse = await self.stub.LookupCards(
            request, timeout=self.timeout
        )
        if len(resp.results) != len(asked):
            raise _Fail(f"{len(asked)} cards got {len(resp.results)} results")
        wrong = []
        for i, ((state, number, expected), res) in enumerate(zip(asked, resp.results, strict=True)):
            if res.ref != f"card-{i}":
                wrong.append(f"result {i} came back with ref {res.ref[:20]!r}")
            elif res.home_economy != state or res.number != number:
                wrong.append(f"result {i} echoes {res.home_economy}:{res.number[:20]}, "
                             f"not the card asked ({state}:{number})")  # fmt: skip
            elif _CARD_STATUS.get(res.card.status) != expected:
                got = _CARD_STATUS.get(res.card.status, "?")
                wrong.append(f"{state}:{number} answered {got}, expected {expected}")
        if wrong:
            raise _Fail("; ".join(wrong))
        bad = provider_pb2.LookupCardsRequest()
        bad.items.add(ref="0", home_economy="QQQ", number="A" * 40)
        try:
            await self.stub.LookupCards(bad, timeout=self.timeout)
            raise _Fail("a malformed card (unknown economy, oversized number) was answered")
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
                raise _Fail(
                    f"a malformed card got {exc.code().name}, not INVALID_ARGUMENT"
                ) from None
        return (
            f"NOT_ISSUED for unknown cards of {len(self.states)} economy(ies), "
            f"{len(self.known_cards)} known card(s) answered their status, keys echoed"
        )


def _economy(code: str) -> str | None:
    alpha3 = to_alpha3(code) if code else None
    return canonical_economy(alpha3) if alpha3 is not None else None
