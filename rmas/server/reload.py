"""Reloading a running hub's configuration (SIGHUP, ``HubAdmin.Reload``) without dropping a
check; and what the hub's lifecycle shares with it: its policies built from a config, and
providers closed (at once, or once the checks that may still ask them are over).

Reloadable: providers (added, removed, changed: an unchanged provider keeps its connections,
breaker and statistics), callers and limits, deadlines and policy, the manifest and in-flight
limits, the airline channel's settings. Only a restart changes the listening addresses, TLS
material, message size limit, the audit trail, metrics and ``[flights]``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

import structlog

from rmas.config import HubConfig, RmasConfig, require_providers
from rmas.errors import ConfigError
from rmas.hub import HubPolicy
from rmas.plugins import build_providers
from rmas.providers import Provider, start_provider
from rmas.security.access import AccessPolicy

if TYPE_CHECKING:
    from rmas.server.app import HubServer

__all__ = ["access_policy", "close_later", "close_provider", "hub_policy", "reload_hub"]

log = structlog.get_logger("rmas.server")


def hub_policy(hub: HubConfig) -> HubPolicy:
    """The hub's verdict policy from ``[hub]``."""
    return HubPolicy(
        on_incomplete=hub.on_incomplete,
        max_deadline_s=hub.deadline_ms / 1000.0,
        economy=hub.economy,
    )


def access_policy(cfg: RmasConfig) -> AccessPolicy | None:
    """The callers and their limits; None without ``[tls]`` (development mode)."""
    if cfg.tls is None:
        return None
    return AccessPolicy(
        cfg.callers, documents_per_s=cfg.limits.documents_per_s, burst=cfg.limits.burst
    )


async def reload_hub(server: HubServer, cfg: RmasConfig) -> dict[str, list[str]]:
    """Apply ``cfg`` to ``server``; raise ConfigError (and change nothing) when it cannot be
    applied. Returns the provider ids added, replaced and removed."""
    old = server.source
    if old is None:
        raise ConfigError("config", "this hub was not started from a config file")
    require_providers(cfg)
    fixed = {
        "hub.listen": (old.hub.listen, cfg.hub.listen),
        "hub.max_message_bytes": (old.hub.max_message_bytes, cfg.hub.max_message_bytes),
        "hub.metrics_listen": (old.hub.metrics_listen, cfg.hub.metrics_listen),
        "hub.console_listen": (old.hub.console_listen, cfg.hub.console_listen),
        "hub.log_level": (old.hub.log_level, cfg.hub.log_level),
        "tls": (old.tls, cfg.tls),
        "audit": (old.audit, cfg.audit),
        "flights": (old.flights, cfg.flights),
    }
    for key, (before, after) in fixed.items():
        if before != after:
            raise ConfigError(key, "changes only with a restart; nothing was reloaded")
    current = dict(zip((pc.id for pc in old.providers), server.hub.providers, strict=True))
    previous = {pc.id: pc for pc in old.providers}
    providers: list[Provider] = []
    fresh: list[Provider] = []
    try:
        for pc in cfg.providers:
            if previous.get(pc.id) == pc:
                providers.append(current[pc.id])
                continue
            (provider,) = build_providers([pc])
            fresh.append(provider)
            providers.append(provider)
            await start_provider(provider)
    except Exception:
        for p in fresh:
            await close_provider(p)
        raise
    removed = [p for pid, p in current.items() if p not in providers]
    policy = access_policy(cfg)
    server.hub.reconfigure(providers, hub_policy(cfg.hub))
    if policy is not None and server.policy is not None:
        policy.carry_over(server.policy)  # no fresh burst for anyone from a reload
    server.policy = policy
    server.access.policy = policy
    server.service.reconfigure(
        max_manifest=cfg.hub.max_manifest,
        max_in_flight=cfg.hub.max_in_flight,
        policy=policy,
        coalesce_s=cfg.hub.coalesce_ms / 1000.0,
    )
    server.iapi.config = cfg.iapi
    if server.changes is not None:  # the watcher follows the providers now configured
        await server.changes.aclose()
        server.watch_changes()
    server.config = cfg.hub
    server.source = cfg
    if removed:
        # Checks that started before the reload may still be asking them: close them once
        # the longest deadline either configuration allows has passed.
        linger = max(old.hub.deadline_ms, cfg.hub.deadline_ms) / 1000.0 + 1.0
        server.close_later(removed, linger)
    changes = {
        "added": [p.info.id for p in fresh if p.info.id not in current],
        "replaced": [p.info.id for p in fresh if p.info.id in current],
        "removed": [p.info.id for p in removed if p.info.id not in {q.info.id for q in fresh}],
    }
    log.info("config_reloaded", **changes, callers=len(cfg.callers))
    return changes


async def close_provider(p: Provider) -> None:
    try:
        await p.aclose()
    except Exception as exc:
        log.warning("provider_close_failed", provider=p.info.id, error=type(exc).__name__)


async def close_later(providers: Sequence[Provider], delay_s: float) -> None:
    await asyncio.sleep(delay_s)
    for p in providers:
        await close_provider(p)
