"""A national node: any provider served as ``rmas.v1.DocumentStatusProvider`` over gRPC.

This is what an economy runs on its side (``rmas provider serve``). ``LookupBatch`` validates
every item (INVALID_ARGUMENT naming ``items[i].document.<field>``), refuses batches over the
node's limit, runs the lookup under the caller's deadline and cancels it when that passes
(DEADLINE_EXCEEDED), and answers one result per item, in order, with the item's ref and the key
(issuing state, number) it answers. An issuer's node refuses documents of states it does not
serve (INVALID_ARGUMENT): a misrouted query gets an error, never a NO_RECORD.

``LookupCards`` (APEC Business Travel Cards, rmas.abtc) is served the same way when the provider
answers card lookups (a CardProvider not configured ``abtc = false``; Describe then says
``abtc``), and is UNIMPLEMENTED otherwise.

``WatchChanges`` (issue 17) streams the provider's record changes when it is a
:class:`~rmas.changes.ChangeFeed` (Describe then says ``watch_changes`` and gives its
``current_position``), and is UNIMPLEMENTED otherwise. A position the provider can no longer
serve is OUT_OF_RANGE; a provider that fails mid-stream ends it UNAVAILABLE (the hub resumes from
the last position it acted on). An issuer's node streams only changes of the states it serves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from rmas import __version__
from rmas.abtc import CardQuery, validate_economy
from rmas.changes import ChangeFeed, ChangesLost, change_capable
from rmas.documents import DocumentQuery, normalise_number, number_problem
from rmas.errors import (
    ConfigError,
    FieldViolation,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    ValidationError,
)
from rmas.grpckit.auth import AccessInterceptor
from rmas.grpckit.errors import abort_invalid
from rmas.grpckit.lookup import cards_response, describe_response, lookup_response
from rmas.grpckit.mapping import query_from_document
from rmas.net import parse_listen, require_loopback_unless_tls
from rmas.providers import (
    CardProvider,
    Provider,
    Scope,
    card_capable,
    record_count,
    registry_of,
)
from rmas.remote.changefeed import MAX_POSITION_CHARS
from rmas.security.access import node_policy
from rmas.security.tls import TlsConfig
from rmas.states import canonical_economy
from rmas.v1 import provider_pb2, provider_pb2_grpc

__all__ = ["ProviderNode", "ProviderService"]

log = structlog.get_logger("rmas.remote.node")

SERVICE = provider_pb2.DESCRIPTOR.services_by_name["DocumentStatusProvider"].full_name
Ctx = grpc.aio.ServicerContext[object, object]


class ProviderService(provider_pb2_grpc.DocumentStatusProviderServicer):
    def __init__(self, provider: Provider, *, max_batch: int = 1000) -> None:
        self.provider = provider
        self.max_batch = provider.info.max_batch or max_batch
        info = provider.info
        #: The economies an issuer's node answers for (empty: a global provider, every state).
        self.served = info.issuing_states if info.scope is Scope.ISSUER else frozenset()

    async def Describe(
        self, request: provider_pb2.DescribeRequest, context: Ctx
    ) -> provider_pb2.DescribeResponse:
        info = self.provider.info
        registry = registry_of(self.provider)
        count = await record_count(self.provider)
        return describe_response(
            record_count=count or 0,
            provider_id=info.id,
            issuing_states=sorted(info.issuing_states),
            contact=info.contact,
            max_batch_size=self.max_batch,
            registry=registry,
            software_version=f"rmas {__version__}",
            abtc=card_capable(self.provider),
            watch_changes=change_capable(self.provider),
            current_position=await self._current_position(),
        )

    async def _current_position(self) -> str:
        """The provider's current change position ("" when it has none, or cannot say now: a
        Describe must not fail for want of it)."""
        provider = self.provider
        if not isinstance(provider, ChangeFeed):
            return ""
        try:
            return await provider.current_position()
        except ProviderError as exc:
            log.warning("change_position_unavailable", error=type(exc).__name__)
            return ""

    async def WatchChanges(
        self, request: provider_pb2.WatchChangesRequest, context: Ctx
    ) -> AsyncIterator[provider_pb2.ChangeBatch]:
        provider = self.provider
        if not isinstance(provider, ChangeFeed):
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "this node reports no changes")
            return
        if len(request.since) > MAX_POSITION_CHARS:
            await abort_invalid(
                context, [FieldViolation("since", f"at most {MAX_POSITION_CHARS} characters")]
            )
        try:
            since = request.since or await provider.current_position()
            async for batch in provider.watch_changes(since):
                out = provider_pb2.ChangeBatch()
                for c in batch:
                    if self.served and canonical_economy(c.issuing_state) not in self.served:
                        continue  # not this node's to tell
                    out.changes.add(
                        issuing_state=c.issuing_state, number=c.number, position=c.position
                    )
                if out.changes:
                    yield out
        except ChangesLost as exc:
            await context.abort(grpc.StatusCode.OUT_OF_RANGE, f"changes lost: {exc}"[:300])
        except ProviderError as exc:
            log.warning("change_feed_failed", error=type(exc).__name__)
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"change feed failed: {exc}"[:300])

    async def LookupBatch(
        self, request: provider_pb2.LookupBatchRequest, context: Ctx
    ) -> provider_pb2.LookupBatchResponse:
        n = len(request.items)
        if n > self.max_batch:
            await abort_invalid(
                context,
                [FieldViolation("items", f"{n} items; this node takes at most {self.max_batch}")],
            )
        queries: list[DocumentQuery] = []
        bad: list[FieldViolation] = []
        for i, item in enumerate(request.items):
            if not item.HasField("document"):
                bad.append(FieldViolation(f"items[{i}].document", "required"))
                continue
            try:
                queries.append(
                    query_from_document(item.document, ref=item.ref, prefix=f"items[{i}].document")
                )
            except ValidationError as exc:
                bad.extend(exc.violations)
                continue
            served = self.served
            if served and queries[-1].economy not in served:
                bad.append(
                    FieldViolation(
                        f"items[{i}].document.issuing_state",
                        f"this node answers for {', '.join(sorted(served))} only",
                    )
                )
        if bad:
            await abort_invalid(context, bad)
        records = await _run(context, self.provider.lookup_many, queries)
        if len(records) != len(queries):
            await context.abort(grpc.StatusCode.INTERNAL, "provider answered the wrong count")
        return lookup_response(queries, records)

    async def LookupCards(
        self, request: provider_pb2.LookupCardsRequest, context: Ctx
    ) -> provider_pb2.LookupCardsResponse:
        provider = self.provider
        if not card_capable(provider):
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "this node does not answer ABTC")
        assert isinstance(provider, CardProvider)  # card_capable says so
        n = len(request.items)
        if n > self.max_batch:
            await abort_invalid(
                context,
                [FieldViolation("items", f"{n} items; this node takes at most {self.max_batch}")],
            )
        queries: list[CardQuery] = []
        bad: list[FieldViolation] = []
        for i, item in enumerate(request.items):
            home = validate_economy(item.home_economy) if item.home_economy else None
            number = normalise_number(item.number)
            problem = number_problem(number)
            if home is None:
                bad.append(FieldViolation(f"items[{i}].home_economy", "unknown economy code"
                                          if item.home_economy else "required"))  # fmt: skip
            elif self.served and home not in self.served:
                only = ", ".join(sorted(self.served))
                bad.append(FieldViolation(f"items[{i}].home_economy",
                                          f"this node answers for {only} only"))  # fmt: skip
            if problem is not None:
                bad.append(FieldViolation(f"items[{i}].number", problem))
            if home is not None and problem is None:
                # The checking economy and passport are the hub's business: a node answers
                # what it knows of the card.
                queries.append(CardQuery(home, number, checking_economy=""))
        if bad:
            await abort_invalid(context, bad)
        records = await _run(context, provider.lookup_cards, queries)
        if len(records) != len(queries):
            await context.abort(grpc.StatusCode.INTERNAL, "provider answered the wrong count")
        return cards_response([item.ref for item in request.items], queries, records)


async def _run(context: Ctx, lookup: Any, queries: Any) -> Any:
    """Run a provider lookup under the caller's deadline: DEADLINE_EXCEEDED (and the work
    cancelled) when it passes, UNAVAILABLE when the provider is."""
    remaining = context.time_remaining()
    budget = 30.0 if remaining is None else remaining
    try:
        async with asyncio.timeout(budget):
            return await lookup(queries, time.monotonic() + budget)
    except (TimeoutError, ProviderTimeout):
        # The caller has given up: the lookup was cancelled, no work goes on for it.
        await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed")
        raise
    except ProviderUnavailable as exc:
        await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc) or "unavailable")
        raise


class ProviderNode:
    """The gRPC server around a provider, with health checking and reflection.

    With ``tls`` the listener requires a client certificate from its CA, and admits the
    identities in ``allow`` (exact or ``*`` prefixes; default: any ``rmas://`` identity); without
    it, it binds to loopback only (development mode).
    """

    def __init__(
        self,
        provider: Provider,
        listen: str,
        *,
        max_batch: int = 1000,
        tls: TlsConfig | None = None,
        allow: tuple[str, ...] = (),
        max_message_bytes: int = 64 << 20,
    ) -> None:
        host, _port = parse_listen(listen, "--listen")
        require_loopback_unless_tls(
            host,
            tls=tls is not None,
            key="--listen",
            message="without TLS a node binds to loopback only",
        )
        self.tls = tls
        self.allow = allow
        self.max_message_bytes = max_message_bytes
        self.provider = provider
        self.listen = listen
        self.service = ProviderService(provider, max_batch=max_batch)
        self.health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        self._server: grpc.aio.Server | None = None
        self.port = 0

    async def start(self) -> int:
        policy = node_policy(self.allow) if self.tls is not None else None
        server = grpc.aio.server(
            interceptors=[AccessInterceptor(policy)],
            options=[
                ("grpc.max_receive_message_length", self.max_message_bytes),
                ("grpc.max_send_message_length", self.max_message_bytes),
                # The hub pings every 10 s (rmas.remote.client) to notice a dead node, also on a
                # WatchChanges stream that is quiet for hours: accept those pings instead of
                # answering GOAWAY "too_many_pings", which would cut the stream every ~30 s.
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
            ],
        )
        provider_pb2_grpc.add_DocumentStatusProviderServicer_to_server(self.service, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        if self.tls is not None:
            self.port = server.add_secure_port(self.listen, self.tls.server_credentials())
        else:
            self.port = server.add_insecure_port(self.listen)
        if self.port == 0:
            raise ConfigError("--listen", f"cannot bind {self.listen}")
        await server.start()
        self._server = server
        await self.health.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "node_started",
            provider=self.provider.info.id,
            port=self.port,
            tls=self.tls is not None,
            allow=list(self.allow) or "any certified identity",
        )
        return self.port

    async def stop(self, grace: float = 2.0) -> None:
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
        await self.provider.aclose()
