"""The hub server's lifecycle: build the hub from config, serve it over gRPC, stop cleanly.

Besides ``rmas.v1.DocumentCheck`` it serves ``rmas.v1.HubAdmin`` and the standard gRPC health
checking and server reflection services, all behind one access interceptor
(:mod:`rmas.server.auth`). With ``[tls]`` the listener requires a client certificate from the
configured CA; without it the hub binds to loopback addresses only (development mode) and says so
at start-up. The audit trail, when configured, is opened before the first call is accepted and
flushed after the last one is answered. With ``hub.metrics_listen`` the hub also serves
Prometheus metrics on a separate HTTP port (:mod:`rmas.server.metrics`).
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from rmas.audit.trail import AuditTrail
from rmas.config import HubConfig, RmasConfig, is_loopback, parse_listen
from rmas.errors import ConfigError, ProviderError
from rmas.hub import Hub, HubPolicy
from rmas.iapi.channel import IapiChannel, IapiConfig
from rmas.providers import Provider
from rmas.security.access import AccessPolicy
from rmas.security.tls import TlsConfig
from rmas.server.admin_service import HubAdminService
from rmas.server.auth import AccessInterceptor
from rmas.server.check_service import DocumentCheckService
from rmas.server.metrics import HubMetrics
from rmas.v1 import check_pb2, check_pb2_grpc

__all__ = ["HubServer"]

log = structlog.get_logger("rmas.server")

CHECK_SERVICE = check_pb2.DESCRIPTOR.services_by_name["DocumentCheck"].full_name
ADMIN_SERVICE = check_pb2.DESCRIPTOR.services_by_name["HubAdmin"].full_name


class HubServer:
    """A hub: its providers, the gRPC server, health and reflection."""

    def __init__(
        self,
        config: HubConfig,
        providers: Sequence[Provider],
        iapi: IapiConfig | None = None,
        *,
        tls: TlsConfig | None = None,
        policy: AccessPolicy | None = None,
        audit: AuditTrail | None = None,
    ) -> None:
        host, _port = parse_listen(config.listen)
        if tls is None and not is_loopback(host):
            raise ConfigError(
                "hub.listen",
                f"{host} is not a loopback address; without TLS the hub binds to loopback only",
            )
        if tls is not None and policy is None:
            raise ConfigError("callers", "with [tls], name the callers: [[callers]]")
        if config.metrics_listen:
            m_host, _m_port = parse_listen(config.metrics_listen, "hub.metrics_listen")
            if tls is None and not is_loopback(m_host):
                raise ConfigError(
                    "hub.metrics_listen",
                    f"{m_host} is not a loopback address; without TLS, metrics are loopback only",
                )
        self.config = config
        self.tls = tls
        self.policy = policy if tls is not None else None
        self.audit = audit
        self.hub = Hub(
            providers,
            HubPolicy(
                on_incomplete=config.on_incomplete, max_deadline_s=config.deadline_ms / 1000.0
            ),
        )
        # grpc_health's stubs omit the aio sub-module; it is public API (grpc_health.v1.health.aio).
        self.iapi = IapiChannel(self.hub, iapi)
        self.health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        #: Prometheus metrics (``hub.metrics_listen``); None when off.
        self.metrics = (
            HubMetrics(self.hub, config.metrics_listen, audit=audit)
            if config.metrics_listen
            else None
        )
        self._server: grpc.aio.Server | None = None
        self.port = 0

    @classmethod
    def from_config(cls, cfg: RmasConfig, providers: Sequence[Provider]) -> HubServer:
        """A hub with everything a config file names: TLS, callers, limits, audit."""
        policy = None
        if cfg.tls is not None:
            policy = AccessPolicy(
                cfg.callers, documents_per_s=cfg.limits.documents_per_s, burst=cfg.limits.burst
            )
        audit = None
        if cfg.audit is not None:
            a = cfg.audit
            audit = AuditTrail.from_config(
                a.url, str(a.key_file), required=a.required, synchronous=a.synchronous
            )
        return cls(cfg.hub, providers, cfg.iapi, tls=cfg.tls, policy=policy, audit=audit)

    async def open_providers(self) -> None:
        """Let providers that can open early do so: a store on an outdated schema stops the hub
        here, with its message, rather than failing every check; one that is merely unreachable
        is logged and tried again at the first check."""
        for p in self.hub.providers:
            start = getattr(p, "start", None)
            if not callable(start):
                continue
            try:
                await start()
            except ProviderError as exc:
                log.warning("provider_not_ready", provider=p.info.id, error=type(exc).__name__)

    async def start(self) -> int:
        """Bind and start serving; returns the bound port (useful with port 0)."""
        await self.open_providers()
        if self.audit is not None:
            await self.audit.start()
        limit = self.config.max_message_bytes
        server = grpc.aio.server(
            # Metrics first: the outermost handler, so calls the access check refuses count too.
            interceptors=[
                *([self.metrics.interceptor] if self.metrics is not None else []),
                AccessInterceptor(self.policy),
            ],
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.so_reuseport", 0),
            ],
        )
        check_pb2_grpc.add_DocumentCheckServicer_to_server(
            DocumentCheckService(
                self.hub,
                self.iapi,
                max_manifest=self.config.max_manifest,
                policy=self.policy,
                audit=self.audit,
                metrics=self.metrics,
            ),
            server,
        )
        check_pb2_grpc.add_HubAdminServicer_to_server(HubAdminService(self.hub), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (CHECK_SERVICE, ADMIN_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        if self.tls is not None:
            self.port = server.add_secure_port(self.config.listen, self.tls.server_credentials())
        else:
            self.port = server.add_insecure_port(self.config.listen)
        if self.port == 0:
            raise ConfigError("hub.listen", f"cannot bind {self.config.listen}")
        await server.start()
        self._server = server
        if self.metrics is not None:
            try:
                await self.metrics.start()
            except ConfigError:
                await self.stop(grace=0)
                raise
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        await self.health.set(CHECK_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        providers = [p.info.id for p in self.hub.providers]
        audit = "off" if self.audit is None else ("required" if self.audit.required else "on")
        if self.tls is None:
            log.warning(
                "hub_started",
                listen=self.config.listen,
                port=self.port,
                providers=providers,
                tls=False,
                audit=audit,
                warning="insecure development mode: loopback only, no TLS, no caller identities",
            )
        else:
            log.info(
                "hub_started",
                listen=self.config.listen,
                port=self.port,
                providers=providers,
                tls=True,
                identity=self.tls.identity,
                certificate_expires=self.tls.not_after.isoformat(),
                callers=len(self.policy.rules) if self.policy else 0,
                audit=audit,
            )
            if self.tls.expires_soon():
                log.warning("certificate_expires_soon", expires=self.tls.not_after.isoformat())
        return self.port

    async def wait(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, let in-flight checks finish within ``grace``, close providers."""
        await self.health.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
        if self.metrics is not None:
            await self.metrics.stop()
        if self.audit is not None:
            await self.audit.aclose()
        for p in self.hub.providers:
            try:
                await p.aclose()
            except Exception as exc:
                log.warning("provider_close_failed", provider=p.info.id, error=type(exc).__name__)
        log.info("hub_stopped")
