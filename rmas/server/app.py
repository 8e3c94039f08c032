"""The hub server's lifecycle: build the hub from config, serve it over gRPC, stop cleanly.

Besides ``rmas.v1.DocumentCheck`` it serves ``rmas.v1.HubAdmin`` and the standard gRPC health
checking and server reflection services, all behind one access interceptor
(:mod:`rmas.grpckit.auth`). With ``[tls]`` the listener requires a client certificate from the
configured CA; without it the hub binds to loopback addresses only (development mode) and says so
at start-up. The audit trail, when configured, is opened before the first call is accepted and
flushed after the last one is answered. With ``hub.metrics_listen`` the hub also serves
Prometheus metrics on a separate HTTP port (:mod:`rmas.server.metrics`), and with
``hub.console_listen`` the officer and operator web console (:mod:`rmas.console`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import socket
from collections.abc import Sequence
from pathlib import Path

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from rmas.audit.trail import AuditTrail
from rmas.changewatch import ChangeWatcher
from rmas.config import HubConfig, RmasConfig, require_providers
from rmas.console.app import WebConsole
from rmas.errors import ConfigError, ProviderError
from rmas.fileperm import readable_by_others
from rmas.flights.config import FlightsConfig
from rmas.flights.sealing import FlightKeys
from rmas.flights.store import FlightStore
from rmas.flights.tracker import FlightTracker
from rmas.grpckit.auth import AccessInterceptor
from rmas.hub import Hub
from rmas.iapi.channel import IapiChannel
from rmas.iapiconfig import IapiConfig
from rmas.net import parse_listen, require_loopback_unless_tls
from rmas.providers import Provider, start_provider
from rmas.security.access import AccessPolicy
from rmas.security.tls import TlsConfig
from rmas.server.admin_service import HubAdminService
from rmas.server.flight_service import FlightCheckService
from rmas.server.metrics import HubMetrics
from rmas.server.reload import access_policy, close_later, close_provider, hub_policy, reload_hub
from rmas.server.snapshot import ReloadOutcome
from rmas.v1 import check_pb2, check_pb2_grpc

__all__ = ["HubServer"]

log = structlog.get_logger("rmas.server")

CHECK_SERVICE = check_pb2.DESCRIPTOR.services_by_name["DocumentCheck"].full_name
ADMIN_SERVICE = check_pb2.DESCRIPTOR.services_by_name["HubAdmin"].full_name


class HubServer:
    """A hub: its providers, the gRPC server, health and reflection."""

    #: Seconds without a successful audit write after which the health watch probes the trail.
    audit_idle_probe_s: float = 5.0

    def __init__(
        self,
        config: HubConfig,
        providers: Sequence[Provider],
        iapi: IapiConfig | None = None,
        *,
        tls: TlsConfig | None = None,
        policy: AccessPolicy | None = None,
        audit: AuditTrail | None = None,
        flights: FlightsConfig | None = None,
    ) -> None:
        # Every listener of a hub (gRPC, metrics, console): loopback only unless [tls].
        listeners = {
            "hub.listen": config.listen,
            "hub.metrics_listen": config.metrics_listen,
            "hub.console_listen": config.console_listen,
        }
        for key, listen in listeners.items():
            if not listen and key != "hub.listen":
                continue  # off
            host, _port = parse_listen(listen, key)
            require_loopback_unless_tls(
                host,
                tls=tls is not None,
                key=key,
                message=f"{host} is not a loopback address; "
                "without TLS the hub binds to loopback only",
            )
        if tls is not None and policy is None:
            raise ConfigError("callers", "with [tls], name the callers: [[callers]]")
        self.config = config
        self.tls = tls
        self.policy = policy if tls is not None else None
        self.audit = audit
        self.hub = Hub(providers, hub_policy(config))
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
        #: The config this hub was built from (``from_config``): what a reload compares with.
        self.source: RmasConfig | None = None
        self.access = AccessInterceptor(self.policy)
        #: Open flights and status changes ([flights]); None: each PAXLST is answered once.
        self.flights = _tracker(self.hub, flights, audit)
        self.iapi.flights = self.flights
        if self.metrics is not None:
            self.metrics.flights = self.flights
        #: Watches the change-capable providers for the open flights (started with the hub).
        self.changes: ChangeWatcher | None = None
        self.service = FlightCheckService(
            self.hub,
            self.iapi,
            max_manifest=config.max_manifest,
            policy=self.policy,
            audit=self.audit,
            metrics=self.metrics,
            max_in_flight=config.max_in_flight,
            max_message_bytes=config.max_message_bytes,
            coalesce_s=config.coalesce_ms / 1000.0,
            flights=self.flights,
        )
        if self.metrics is not None:
            self.metrics.coalescer = self.service.coalescer
        #: The last reload's outcome (``note_reload``), for HubAdmin.Status; None: none yet.
        self.last_reload: ReloadOutcome | None = None
        self.admin = HubAdminService(
            self.hub,
            reload_outcome=lambda: self.last_reload,
            flights=self.service.flight_status if self.flights is not None else None,
        )
        #: The officer and operator web console (``hub.console_listen``); None when off.
        self.console = WebConsole(self) if config.console_listen else None
        self._watcher: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._forced = False

    @classmethod
    def from_config(cls, cfg: RmasConfig, providers: Sequence[Provider]) -> HubServer:
        """A hub with everything a config file names: TLS, callers, limits, audit."""
        require_providers(cfg)
        policy = access_policy(cfg)
        audit = None
        if cfg.audit is not None:
            a = cfg.audit
            audit = AuditTrail.from_config(
                a.url,
                str(a.key_file),
                required=a.required,
                synchronous=a.synchronous,
                linger_s=a.linger_ms / 1000.0,
                hub_id=a.hub_id or None,
            )
        server = cls(
            cfg.hub, providers, cfg.iapi, tls=cfg.tls, policy=policy, audit=audit,
            flights=cfg.flights,
        )  # fmt: skip
        server.source = cfg
        return server

    async def open_providers(self) -> None:
        """Let providers that can open early do so: a store on an outdated schema stops the hub
        here, with its message, rather than failing every check; one that is merely unreachable
        is logged and tried again at the first check."""
        for p in self.hub.providers:
            try:
                await start_provider(p)
            except ProviderError as exc:
                log.warning("provider_not_ready", provider=p.info.id, error=type(exc).__name__)

    def _warn_about_key_files(self) -> None:
        """Private keys others may read are no longer private: say so at start-up."""
        keys: dict[str, Path] = {}
        if self.tls is not None:
            keys["tls.key"] = self.tls.key_path
        if self.source is not None and self.source.audit is not None:
            keys["audit.key_file"] = self.source.audit.key_file
        for key, path in keys.items():
            mode = readable_by_others(path)
            if mode is not None:
                log.warning(
                    "key_file_readable_by_others",
                    key=key,
                    path=str(path),
                    mode=f"{mode:04o}",
                    fix=f"chmod 600 {path}",
                )

    async def start(self) -> int:
        """Bind and start serving; returns the bound port (useful with port 0)."""
        self._warn_about_key_files()
        await self.open_providers()
        if self.audit is not None:
            await self.audit.start()
        if self.flights is not None:
            await self.flights.start()
            self.watch_changes()
        limit = self.config.max_message_bytes
        server = grpc.aio.server(
            # Metrics first: the outermost handler, so calls the access check refuses count too.
            interceptors=[
                *([self.metrics.interceptor] if self.metrics is not None else []),
                self.access,
            ],
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.so_reuseport", 0),
            ],
        )
        check_pb2_grpc.add_DocumentCheckServicer_to_server(self.service, server)
        check_pb2_grpc.add_HubAdminServicer_to_server(self.admin, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (CHECK_SERVICE, ADMIN_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        host, wanted = parse_listen(self.config.listen)
        try:
            if wanted and not _can_bind(host, wanted):
                port = 0  # refused here: grpc would log its own error line first
            elif self.tls is not None:
                port = server.add_secure_port(self.config.listen, self.tls.server_credentials())
            else:
                port = server.add_insecure_port(self.config.listen)
        except RuntimeError:  # grpc's "Failed to bind to address"
            port = 0
        if port == 0:
            await self.stop(grace=0)
            raise ConfigError(
                "hub.listen",
                f"cannot bind {self.config.listen}: the port is in use (another hub?) or the "
                "address is not this host's; choose another with --listen",
            )
        self.port = port
        await server.start()
        self._server = server
        for web in (self.metrics, self.console):
            if web is None:
                continue
            try:
                await web.start()
            except ConfigError as exc:
                await self.stop(grace=0)
                how = "--metrics-listen" if web is self.metrics else "[hub] console_listen"
                raise ConfigError(exc.key, f"{exc.message}; choose another with {how}") from None
        await self._set_health(True)
        if self.audit is not None and self.audit.required:
            self._watcher = asyncio.get_running_loop().create_task(self._watch_audit())
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

    def watch_changes(self) -> None:
        """Watch the providers that report record changes, for the open flights."""
        if self.flights is None:
            return
        tracker = self.flights
        self.changes = ChangeWatcher(
            self.hub.providers, tracker.store, tracker.on_changes, tracker.on_lost
        )
        self.changes.start()
        if self.metrics is not None:
            self.metrics.changes = self.changes

    async def _set_health(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in ("", CHECK_SERVICE):
            await self.health.set(service, status)

    async def _watch_audit(self, every_s: float = 0.5) -> None:
        """NOT_SERVING while a required audit trail cannot be written (no check could be
        answered), SERVING again once it can; load balancers then route around this hub.

        Checks tell the trail's state as they are recorded; without them, a probe (a write that
        adds no entry) tells it: every ``every_s`` while the trail is failing, so that health
        returns without traffic, and after :attr:`audit_idle_probe_s` without a successful
        write, so that an idle hub does not report SERVING on a trail that stopped working.
        """
        assert self.audit is not None
        audit = self.audit
        serving = True
        while True:
            await asyncio.sleep(every_s)
            if not audit.healthy or audit.idle_s >= self.audit_idle_probe_s:
                try:
                    await audit.probe()
                except Exception as exc:  # a bug in a probe must not stop the watch
                    log.error("audit_probe_crashed", error=repr(exc))
            healthy = audit.healthy
            if healthy != serving:
                serving = healthy
                await self._set_health(serving)
                log.warning("health_changed", serving=serving, reason="audit trail")

    async def reload(self, cfg: RmasConfig) -> dict[str, list[str]]:
        """Apply a new configuration without dropping a check; raise ConfigError (and change
        nothing) when it cannot be applied (what is reloadable: :mod:`rmas.server.reload`)."""
        return await reload_hub(self, cfg)

    def close_later(self, providers: Sequence[Provider], delay_s: float) -> None:
        """Close ``providers`` after ``delay_s`` (checks under way may still be asking them)."""
        task = asyncio.get_running_loop().create_task(close_later(providers, delay_s))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def note_reload(self, *, ok: bool, detail: str) -> None:
        """Keep a reload's outcome (applied, or refused and why) for ``rmas status``."""
        self.last_reload = ReloadOutcome(dt.datetime.now(dt.UTC), ok, detail)

    async def wait(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()

    async def stop(self, grace: float = 5.0) -> bool:
        """Drain: stop accepting (health NOT_SERVING), let the checks under way finish within
        ``grace`` seconds, then write what the audit trail holds, close metrics and providers.

        Returns True when every check under way was answered, False when the grace period (or a
        shorter one from a second call, e.g. a second SIGTERM) cut some off.
        """
        await self.health.enter_graceful_shutdown()
        drained = True
        # The console stops taking checks with the gRPC server, and its checks under way
        # drain with theirs (they count in service.idle / cancelled too).
        console = self.console.stop() if self.console is not None else None
        self.service.end_subscriptions()  # they never end on their own
        if self._server is not None:
            cancelled = self.service.cancelled
            await asyncio.gather(self._server.stop(grace), *([console] if console else []))
            console = None
            self._server = None
            with contextlib.suppress(TimeoutError):  # the cancelled handlers unwind
                await asyncio.wait_for(self.service.idle.wait(), 5.0)
            drained = self.service.cancelled == cancelled and not self._forced
        if console is not None:
            await console
        # Flight calls cut off inside a flight-store call unwind it before the store closes.
        still = await self.service.flight_calls_ended(5.0)
        if still:
            log.error("flight_calls_not_ended", calls=still)
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None
        if self.metrics is not None:
            await self.metrics.stop()
        if self.changes is not None:
            await self.changes.aclose()
            self.changes = None
        if self.flights is not None:
            await self.flights.aclose()
        if self.audit is not None:
            await self.audit.aclose()
        for task in list(self._closing):
            task.cancel()
        for p in self.hub.providers:
            await close_provider(p)
        log.info("hub_stopped", drained=drained)
        return drained

    async def force_stop(self) -> None:
        """Cut off the checks still under way now (a second SIGTERM during a drain)."""
        self._forced = True
        if self._server is not None:
            await self._server.stop(0)


def _tracker(
    hub: Hub, flights: FlightsConfig | None, audit: AuditTrail | None
) -> FlightTracker | None:
    if flights is None:
        return None
    keys = FlightKeys.from_file(flights.key_file)
    return FlightTracker(hub, FlightStore(flights.url), keys, flights, audit=audit)


def _can_bind(host: str, port: int) -> bool:
    """Whether ``host:port`` can be bound now (not in use, an address of this host)."""
    try:
        with socket.create_server((host, port), family=_family(host)):
            return True
    except OSError:
        return False


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
