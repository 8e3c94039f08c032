"""Plug-in loading: a provider kind's factory from its entry point, run on its configuration.

The contract a provider implements is :mod:`rmas.providers`; this module assembles configured
providers from it: :func:`build_providers` finds each kind's factory (:func:`load_factory`), runs
it (:func:`build_one`, which refuses every option the factory did not read) and puts the provider
behind its circuit breaker and bulkhead (:func:`rmas.resilience.guarded`).
"""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Sequence
from dataclasses import replace
from importlib.metadata import entry_points

from rmas.confkeys import unknown_key
from rmas.errors import ConfigError
from rmas.providers import (
    COMMON_KEYS,
    ENTRY_POINT_GROUP,
    CardProvider,
    Options,
    Provider,
    ProviderConfig,
    ProviderFactory,
)
from rmas.resilience import guarded

__all__ = ["build_one", "build_providers", "load_factory"]


def load_factory(kind: str) -> ProviderFactory:
    """The factory registered for ``kind`` under the ``rmas.providers`` entry-point group."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == kind:
            factory: ProviderFactory = ep.load()
            return factory
    known = sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
    raise LookupError(f"no provider kind {kind!r} (installed kinds: {', '.join(known) or 'none'})")


def build_providers(configs: Sequence[ProviderConfig]) -> list[Provider]:
    """Instantiate every configured provider through its kind's registered factory, behind its
    circuit breaker and bulkhead (:func:`rmas.resilience.guarded`, ``cfg.guard``).

    Raises ConfigError naming ``providers[i].kind`` for an unknown kind; factories raise their own
    ConfigErrors for their options; an option the factory did not read is an unknown key.
    """
    out: list[Provider] = []
    for cfg in configs:
        try:
            factory = load_factory(cfg.kind)
        except LookupError as exc:
            raise ConfigError(f"providers[{cfg.index}].kind", str(exc)) from None
        provider = build_one(factory, cfg)
        if cfg.abtc is True and not isinstance(provider, CardProvider):
            raise ConfigError(
                f"providers[{cfg.index}].abtc", f"kind {cfg.kind!r} does not answer ABTC lookups"
            )
        out.append(guarded(provider, cfg.guard))
    return out


def build_one(factory: ProviderFactory, cfg: ProviderConfig) -> Provider:
    """Run ``factory`` on ``cfg``, then refuse every option it did not read."""
    assert isinstance(cfg.options, Options)
    options = cfg.options.tracking()
    prefix = f"providers[{cfg.index}]"
    try:
        provider = factory(replace(cfg, options=options))
    except ConfigError as exc:
        # A required option "missing" because it was mistyped: name the typo, not the absence.
        # A mistyped common key (``contcat``) likewise, whatever else the factory stopped on.
        known = options.asked | COMMON_KEYS
        for name in options.unasked():
            if difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6):
                raise unknown_key(prefix, name, known) from exc
        raise
    unasked = options.unasked()
    if unasked:
        _discard(provider)
        raise unknown_key(prefix, unasked[0], options.asked | COMMON_KEYS)
    return provider


_discarded: set[asyncio.Task[None]] = set()


def _discard(provider: Provider) -> None:
    """Close a provider built for nothing (factories should open nothing; some may)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    task = loop.create_task(provider.aclose())
    _discarded.add(task)
    task.add_done_callback(_discarded.discard)
