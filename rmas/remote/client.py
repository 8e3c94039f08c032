"""The hub's client for a national node (``kind = "grpc"``): one channel, isolated and resilient.

- One long-lived ``grpc.aio`` channel per node, with keepalive, so a dead peer is noticed.
- The node's ``Describe`` is read before the first lookup and refreshed in the background; its
  batch limit is honoured by splitting. A node is asked only while its last Describe names every
  state it is configured for: a node serving AUS at the address configured for NZL would answer
  NO_RECORD for a stolen NZL passport, so it is not asked (UNAVAILABLE, with the mismatch shown
  by ``rmas status``).
- Every result must echo the key it answers (issuing state and number): a result about another
  document is refused and the whole answer is an ERROR outcome, never a CLEAR.
- The query's remaining deadline is the call's gRPC timeout.
- A bulkhead bounds calls in flight: past it, UNAVAILABLE at once, never a queue behind a dead
  node. A circuit breaker stops calling a node that keeps failing and probes it again later. It
  judges the node, not the caller: a call cut short by a caller's own short deadline (given less
  than ``breaker_min_budget_ms``) counts neither way, and any failure to read an answer counts.
  Both are the :class:`~rmas.resilience.Guard` every configured provider has; this client runs
  its own (it also counts a Describe that fails), so the hub does not wrap it again.
- Retries only for errors worth retrying (UNAVAILABLE), and only while time remains; an optional
  hedged request goes out after ``hedge_after_ms`` if the first has not answered.
- Record changes: the node's ``WatchChanges`` stream, when its Describe offers it, is this
  provider's :class:`~rmas.changes.ChangeFeed` (rules: :mod:`rmas.remote.changefeed`).

Config::

    [[providers]]
    id = "NZL"
    kind = "grpc"
    target = "127.0.0.1:50061"
    issuing_states = ["NZL"]
    max_in_flight = 64
    breaker_failures = 5
    breaker_reset_ms = 5000
    retries = 1
    hedge_after_ms = 0
    describe_refresh_s = 60
    breaker_min_budget_ms = 250  # time-outs of calls given less than this are not the node's
    server_name = ""        # name to verify in the node's certificate, when not the host

With the hub's ``[tls]`` the channel is mutual TLS (the hub's certificate as client certificate,
the node's verified against the hub's CA); without it the target must be a loopback address.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc
import structlog

from rmas.abtc import CardQuery, CardRecord
from rmas.changes import DocumentChange
from rmas.documents import DocumentQuery
from rmas.errors import ConfigError, ProviderError, ProviderTimeout, ProviderUnavailable
from rmas.grpckit.lookup import cards_from, cards_request, lookup_request, records_from
from rmas.net import require_loopback_unless_tls
from rmas.providers import ProviderConfig, ProviderInfo, ProviderSnapshot
from rmas.remote import changefeed
from rmas.resilience import Bulkhead, CircuitBreaker, Guard
from rmas.security.tls import TlsConfig
from rmas.states import canonical_economy
from rmas.v1 import provider_pb2, provider_pb2_grpc
from rmas.verdict import Record

__all__ = ["RemoteProvider"]

log = structlog.get_logger("rmas.remote.client")

T = TypeVar("T")

_KEEPALIVE = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", 64 << 20),
    # Reconnect quickly after a node restarts: the breaker, not gRPC's backoff, paces probes.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1_000),
]


class RemoteProvider:
    def __init__(
        self,
        info: ProviderInfo,
        target: str,
        *,
        max_in_flight: int = 64,
        breaker_failures: int = 5,
        breaker_reset_s: float = 5.0,
        retries: int = 1,
        hedge_after_s: float = 0.0,
        describe_refresh_s: float = 60.0,
        breaker_min_budget_s: float = 0.25,
        tls: TlsConfig | None = None,
        server_name: str = "",
    ) -> None:
        self._info = info
        self.target = target
        self.tls = tls
        self.server_name = server_name
        #: The breaker and bulkhead every lookup goes through (:mod:`rmas.resilience`).
        self.guard = Guard(
            info.id,
            CircuitBreaker(info.id, breaker_failures, breaker_reset_s),
            Bulkhead(max_in_flight),
            breaker_min_budget_s,
        )
        self.retries = retries
        self.hedge_after_s = hedge_after_s
        self.describe_refresh_s = describe_refresh_s
        self.described: provider_pb2.DescribeResponse | None = None
        #: Why the node is not asked: its last Describe does not name the states it is configured
        #: for, or it could not be read ("" when it describes what it is configured for, or has
        #: not been asked yet).
        self.describe_problem = ""
        self._describe_retry_at = 0.0
        self._describing: asyncio.Task[None] | None = None
        self._channel: grpc.aio.Channel | None = None
        self._stub: Any = None
        self._refresher: asyncio.Task[None] | None = None
        #: Changes from the node's stream dropped by the trust rules (rmas.remote.changefeed).
        self.changes_dropped = 0

    @classmethod
    def from_config(cls, cfg: ProviderConfig) -> RemoteProvider:
        key = f"providers[{cfg.index}]"

        def positive(name: str, typ: type[Any], default: Any, low: float = 0) -> Any:
            value = cfg.option(name, typ, default)
            if value < low:
                raise ConfigError(f"{key}.{name}", f"must be at least {low}")
            return value

        target = cfg.option("target", str)
        if ":" not in target:
            raise ConfigError(f"{key}.target", "expected HOST:PORT")
        host = target.rpartition(":")[0].strip("[]")
        require_loopback_unless_tls(
            host,
            tls=cfg.tls is not None,
            key=f"{key}.target",
            message="without [tls] a node must be on a loopback address",
        )
        guard = cfg.guard
        return cls(
            cfg.info,
            target,
            max_in_flight=64 if guard.max_in_flight is None else guard.max_in_flight,
            breaker_failures=guard.breaker_failures,
            breaker_reset_s=guard.breaker_reset_s,
            retries=positive("retries", int, 1),
            hedge_after_s=positive("hedge_after_ms", int, 0) / 1000,
            describe_refresh_s=positive("describe_refresh_s", float, 60.0, 1),
            breaker_min_budget_s=guard.breaker_min_budget_s,
            tls=cfg.tls,
            server_name=cfg.option("server_name", str, ""),
        )

    @property
    def info(self) -> ProviderInfo:
        return self._info

    @property
    def breaker(self) -> CircuitBreaker:
        return self.guard.breaker

    @property
    def bulkhead(self) -> Bulkhead:
        return self.guard.bulkhead

    @property
    def max_batch(self) -> int:
        return int(self.described.max_batch_size) if self.described is not None else 0

    def _connect(self) -> Any:
        if self._stub is None:
            if self.tls is not None:
                options: list[tuple[str, int | str]] = list(_KEEPALIVE)
                if self.server_name:
                    options.append(("grpc.ssl_target_name_override", self.server_name))
                self._channel = grpc.aio.secure_channel(
                    self.target, self.tls.channel_credentials(), options=options
                )
            else:
                self._channel = grpc.aio.insecure_channel(self.target, options=_KEEPALIVE)
            self._stub = provider_pb2_grpc.DocumentStatusProviderStub(self._channel)
        return self._stub

    async def describe(self, budget_s: float = 2.0) -> provider_pb2.DescribeResponse | None:
        """Read the node's Describe; None (and a log line) when it cannot be read now."""
        try:
            resp: provider_pb2.DescribeResponse = await self._connect().Describe(
                provider_pb2.DescribeRequest(), timeout=budget_s
            )
        except grpc.aio.AioRpcError as exc:
            log.warning("describe_failed", provider=self._info.id, code=exc.code().name)
            if self.described is None:
                self.describe_problem = f"Describe failed: {exc.code().name}"
            return None
        if not isinstance(resp, provider_pb2.DescribeResponse):
            log.warning("describe_failed", provider=self._info.id, code="UNDECODABLE")
            if self.described is None:
                self.describe_problem = "Describe answer cannot be decoded"
            return None
        self.described = resp
        problem = _describe_problem(self._info.issuing_states, resp.issuing_states)
        if problem != self.describe_problem and problem:
            log.error("describe_mismatch", provider=self._info.id, problem=problem)
        self.describe_problem = problem
        return resp

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.describe_refresh_s)
            await self.describe()

    async def _await_describe(self, deadline: float) -> None:
        """Wait, within the call's budget, for the node's first Describe.

        One Describe at a time, shared by every call that needs it and shielded from their
        cancellation: a caller that gives up (its own short deadline) leaves it running for the
        next, instead of leaving the node undescribed. After a failed one, the next is tried no
        sooner than a second (or the breaker's reset interval) later.
        """
        task = self._describing
        if task is None or task.done():
            if time.monotonic() < self._describe_retry_at:
                return
            task = self._describing = asyncio.get_running_loop().create_task(self._describe_first())
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), remaining)

    async def _describe_first(self) -> None:
        if await self.describe(budget_s=1.0) is None:
            # A node that cannot describe itself is failing: the breaker hears of it once.
            self._describe_retry_at = time.monotonic() + min(1.0, self.breaker.reset_s)
            self.breaker.failure()

    async def start(self) -> None:
        """At hub start-up: connect and begin reading the node's Describe in the background, so
        that ``rmas status`` knows what the node serves before the first check needs it."""
        self._begin()
        if self.described is None and self._describing is None:
            self._describing = asyncio.get_running_loop().create_task(self._describe_first())

    def stub(self) -> Any:
        """The node's stub on the provider's one channel."""
        return self._connect()

    def start_background(self) -> None:
        """Connect and keep the node's Describe fresh (done by the first call otherwise)."""
        self._begin()

    async def current_position(self) -> str:
        """ChangeFeed: the node's current change position, from its Describe."""
        return await changefeed.current_position(self)

    async def watch_changes(self, since: str) -> AsyncIterator[Sequence[DocumentChange]]:
        """ChangeFeed: the node's WatchChanges stream, checked (rmas.remote.changefeed)."""
        async for batch in changefeed.watch(self, since):
            yield batch

    def _begin(self) -> None:
        if self._refresher is None:
            self._connect()
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_forever())

    async def lookup_many(self, queries: Sequence[DocumentQuery], deadline: float) -> list[Record]:
        return await self._guarded(self._call, queries, deadline)

    async def lookup_cards(self, queries: Sequence[CardQuery], deadline: float) -> list[CardRecord]:
        """ABTC cards: asked only while the node's Describe says it answers them; every result
        must echo the card it answers (else the whole answer is an ERROR)."""
        return await self._guarded(self._call_cards, queries, deadline)

    async def _guarded(self, call: Any, queries: Sequence[Any], deadline: float) -> list[Any]:
        """A lookup behind the node's Describe check and its :class:`~rmas.resilience.Guard`
        (breaker and bulkhead), split to its batch limit (documents and cards alike)."""
        self._begin()

        async def admit() -> None:
            # Not asking a node that does not (yet) describe what it is configured for says
            # nothing about the node's health: the guard frees the breaker's probe.
            if self.described is None:
                await self._await_describe(deadline)
            if self.described is None or self.describe_problem:
                why = self.describe_problem or "not described yet"
                raise ProviderUnavailable(f"{self._info.id} not asked: {why}")
            if call == self._call_cards and not self.described.abtc:
                raise ProviderUnavailable(
                    f"{self._info.id} not asked: the node does not answer ABTC"
                )

        async def lookup(queries: Sequence[Any], deadline: float) -> list[Any]:
            limit = self.max_batch
            if limit and len(queries) > limit:
                parts = await asyncio.gather(*(
                    call(queries[i : i + limit], deadline)
                    for i in range(0, len(queries), limit)
                ))  # fmt: skip
                return [r for part in parts for r in part]
            records: list[Any] = await call(queries, deadline)
            return records

        return await self.guard.run(lookup, queries, deadline, admit)

    async def _call_cards(self, queries: Sequence[CardQuery], deadline: float) -> list[CardRecord]:
        request = cards_request(queries)

        async def once() -> list[CardRecord]:
            resp = await self._once_rpc("LookupCards", request, deadline)
            if not isinstance(resp, provider_pb2.LookupCardsResponse):
                raise ProviderError("node sent an answer that cannot be decoded")
            return cards_from(resp, queries)

        return await self._retrying(once, deadline)

    async def _call(self, queries: Sequence[DocumentQuery], deadline: float) -> list[Record]:
        request = lookup_request(queries)

        async def once() -> list[Record]:
            if self.hedge_after_s > 0:
                resp = await self._hedged(request, deadline)
            else:
                resp = await self._once(request, deadline)
            return records_from(resp, queries)

        return await self._retrying(once, deadline)

    async def _retrying(self, once: Callable[[], Awaitable[T]], deadline: float) -> T:
        """``once()``, again after a short pause while the node is UNAVAILABLE, up to
        ``retries`` times and only while the deadline leaves time for it."""
        attempt = 0
        while True:
            try:
                return await once()
            except ProviderUnavailable:
                attempt += 1
                pause = 0.01 * attempt
                if attempt > self.retries or deadline - time.monotonic() < pause + 0.005:
                    raise
                await asyncio.sleep(pause)

    async def _once(
        self, request: provider_pb2.LookupBatchRequest, deadline: float
    ) -> provider_pb2.LookupBatchResponse:
        resp = await self._once_rpc("LookupBatch", request, deadline)
        if not isinstance(resp, provider_pb2.LookupBatchResponse):
            # grpc.aio hands back None when the answer's bytes cannot be decoded.
            raise ProviderError("node sent an answer that cannot be decoded")
        return resp

    async def _once_rpc(self, method: str, request: Any, deadline: float) -> Any:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ProviderTimeout("deadline passed")
        try:
            return await getattr(self._connect(), method)(request, timeout=remaining)
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise ProviderTimeout("node did not answer in time") from None
            if code == grpc.StatusCode.UNAVAILABLE:
                raise ProviderUnavailable(f"node unavailable: {exc.details()}") from None
            raise ProviderError(f"node answered {code.name}: {exc.details()}") from None

    async def _hedged(
        self, request: provider_pb2.LookupBatchRequest, deadline: float
    ) -> provider_pb2.LookupBatchResponse:
        first = asyncio.ensure_future(self._once(request, deadline))
        done, _ = await asyncio.wait({first}, timeout=self.hedge_after_s)
        if done:
            return first.result()
        second = asyncio.ensure_future(self._once(request, deadline))
        pending = {first, second}
        error: BaseException | None = None
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task.exception() is None:
                        return task.result()
                    error = task.exception()
        finally:
            for task in pending:
                task.cancel()
        assert error is not None
        raise error

    async def record_count(self) -> int | None:
        """The node's own figure, from its last Describe (0 there means it does not say)."""
        if self.described is None or not self.described.record_count:
            return None
        return int(self.described.record_count)

    def snapshot(self) -> ProviderSnapshot:
        """The guard's figures, and what the node described (for ``rmas status`` and logs)."""
        return ProviderSnapshot(
            **self.guard.snapshot(),
            target=self.target,
            max_batch=self.max_batch,
            described_states=list(self.described.issuing_states) if self.described else [],
            describe_problem=self.describe_problem,
            watch_changes=bool(self.described and self.described.watch_changes),
            changes_dropped=self.changes_dropped,
        )

    async def aclose(self) -> None:
        if self._describing is not None and not self._describing.done():
            self._describing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._describing
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
        if self._channel is not None:
            await self._channel.close(None)
            self._channel = None
            self._stub = None


def _describe_problem(configured: frozenset[str], described: Sequence[str]) -> str:
    """Why a node whose Describe names ``described`` must not be asked for ``configured``."""
    said = {canonical_economy(s.strip().upper()) for s in described}
    missing = sorted(configured - said)
    if not missing:
        return ""
    return (
        f"configured for {', '.join(sorted(configured))} but the node describes "
        f"{', '.join(sorted(said)) or 'no state'}"
    )[:200]
