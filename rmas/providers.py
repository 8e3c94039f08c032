"""The provider contract: what an economy's adapter, a remote node or the SLTD adapter implements.

A provider answers many documents in one call::

    class Provider(Protocol):
        info: ProviderInfo
        async def lookup_many(self, queries, deadline) -> list[Record]
        async def aclose(self) -> None

``lookup_many`` returns one :class:`~rmas.verdict.Record` per query, in order. ``deadline`` is an
absolute ``time.monotonic()`` instant; a provider should stop work when it passes (the fan-out
cancels the call then anyway). Failures are raised as :class:`~rmas.errors.ProviderError`
subclasses (or any exception); the fan-out turns them into TIMEOUT / UNAVAILABLE / ERROR outcomes.

Optional capabilities, each a runtime-checkable Protocol the hub tests with ``isinstance``:
:class:`CardProvider` (ABTC cards), :class:`rmas.changes.ChangeFeed` (record changes),
:class:`Countable` (``rmas status`` and Describe show the record count), :class:`Startable` (opened
at hub start-up), :class:`Observable` (a :class:`ProviderSnapshot` for status and metrics),
:class:`KnowsRegistry` (a national node's Describe names the registry kind). The hub puts every
configured provider behind a circuit breaker and a bulkhead (:mod:`rmas.resilience`), which keeps
these capabilities.

Plug-ins register a factory under the entry-point group ``rmas.providers``; the config's ``kind``
selects it. A factory takes the provider's :class:`ProviderConfig` and returns a Provider.

A factory reads its kind's options (``cfg.option(name, type, default)``, or the ``cfg.options``
mapping) before it returns; every option it did not ask for is an unknown key, refused by
:func:`rmas.plugins.build_providers` after the factory ran, naming the closest option it did ask for
(``providers[0].registy: unknown key (did you mean "registry"?)``). A plug-in declares nothing:
what it reads is what it knows.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, runtime_checkable

from rmas.confread import Key, read_keys
from rmas.documents import DocumentQuery
from rmas.errors import ConfigError
from rmas.verdict import Record

if TYPE_CHECKING:  # the core names the type; only the edges that open connections use it
    from rmas.abtc import CardQuery, CardRecord
    from rmas.security.tls import TlsConfig

__all__ = [
    "COMMON_KEYS",
    "ENTRY_POINT_GROUP",
    "CardProvider",
    "Countable",
    "GuardConfig",
    "KnowsRegistry",
    "Observable",
    "Options",
    "Provider",
    "ProviderConfig",
    "ProviderFactory",
    "ProviderInfo",
    "ProviderSnapshot",
    "Registry",
    "Scope",
    "Startable",
    "card_capable",
    "record_count",
    "registry_of",
    "snapshot_of",
    "start_provider",
]

ENTRY_POINT_GROUP = "rmas.providers"

#: The keys of a ``[[providers]]`` table that rmas reads itself, whatever the kind; every other
#: key is an option of the kind, for its factory.
COMMON_KEYS = frozenset(
    {"id", "kind", "issuing_states", "scope", "required", "contact", "max_batch", "timeout_ms",
     "abtc", "max_in_flight", "breaker_failures", "breaker_reset_ms", "breaker_min_budget_ms"}
)  # fmt: skip


class Scope(enum.StrEnum):
    """Whom a provider answers for."""

    ISSUER = "issuer"  # the economies that issued the documents (RMAS)
    GLOBAL = "global"  # every document, whoever issued it (SLTD-style)


class Registry(enum.StrEnum):
    """What an issuer's store holds, which decides what an unknown number means."""

    ALERTS = "alerts"  # only alerts: unknown -> NO_RECORD
    COMPLETE = "complete"  # every document issued: unknown -> NOT_ISSUED


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    """What the hub knows of a provider: routing, policy and the contact shown to officers."""

    id: str
    issuing_states: frozenset[str] = frozenset()
    scope: Scope = Scope.ISSUER
    #: Must answer for a document to be CLEAR. Issuer providers always are.
    required: bool = True
    #: The 24/7 operations desk officers call after a hit.
    contact: str = ""
    #: Most documents in one lookup_many call; larger batches are split. 0 = no limit.
    max_batch: int = 0
    #: Own time budget per call, in seconds, inside the query's deadline. 0 = the whole deadline.
    timeout_s: float = 0.0
    #: Asked about ABTC cards when the provider implements CardProvider (config ``abtc = false``
    #: keeps a card-capable provider out of card checks).
    abtc: bool = True


class Options(Mapping[str, Any]):
    """A provider kind's options, remembering every name its factory asked for.

    Any read counts, present or not: ``option()``, ``options[name]``, ``.get(name)``,
    ``name in options``, ``items()``/``values()``. Equality compares the values only (and reads
    nothing).
    """

    __slots__ = ("_data", "asked")

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data: dict[str, Any] = dict(data or {})
        #: Names the factory asked for since this view was made.
        self.asked: set[str] = set()

    def tracking(self) -> Options:
        """A fresh view of the same options, with nothing asked yet (one per factory run)."""
        return Options(self._data)

    def unasked(self) -> list[str]:
        """The options present that nobody asked for, sorted."""
        return sorted(k for k in self._data if k not in self.asked)

    def __getitem__(self, name: str) -> Any:
        self.asked.add(name)
        return self._data[name]

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self.asked.add(name)
        return name in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Options):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like dict

    def __repr__(self) -> str:
        return f"Options({self._data!r})"


@dataclass(frozen=True, slots=True)
class GuardConfig:
    """The circuit breaker and bulkhead around one provider's calls (:mod:`rmas.resilience`)."""

    #: Most calls in flight; None (absent): the kind's default (64 for a national node, else no
    #: bound).
    max_in_flight: int | None = None
    #: Consecutive failures that open the breaker.
    breaker_failures: int = 5
    #: How long the breaker stays open before it lets one probe through, in seconds.
    breaker_reset_s: float = 5.0
    #: A call given less than this (seconds) that times out is not counted against the provider.
    breaker_min_budget_s: float = 0.25


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """One ``[[providers]]`` table of the hub's config, as parsed.

    ``options`` holds the keys only this kind understands (``url``, ``registry``...); factories read
    them with :meth:`option` so that errors name the key. Whatever the factory does not read is
    refused as an unknown key (see the module docstring).
    """

    id: str
    kind: str
    issuing_states: frozenset[str]
    scope: Scope
    required: bool
    contact: str
    max_batch: int
    timeout_s: float
    options: Mapping[str, Any] = field(default_factory=Options)
    #: Where relative paths in options are resolved from (the config file's folder).
    base_dir: str = "."
    #: Index of this provider in the config file, for error messages.
    index: int = 0
    #: The hub's TLS settings, for kinds that reach their store over the network (None: plain,
    #: allowed to loopback addresses only).
    tls: TlsConfig | None = None
    #: ``abtc``: None (absent) = asked about ABTC cards if the kind can answer them (CardProvider);
    #: False = never; True = required to (a kind that cannot is a configuration error).
    abtc: bool | None = None
    #: The breaker and bulkhead the hub puts around the provider.
    guard: GuardConfig = field(default_factory=GuardConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.options, Options):
            object.__setattr__(self, "options", Options(self.options))

    @property
    def info(self) -> ProviderInfo:
        return ProviderInfo(
            id=self.id,
            issuing_states=self.issuing_states,
            scope=self.scope,
            required=self.required,
            contact=self.contact,
            max_batch=self.max_batch,
            timeout_s=self.timeout_s,
            abtc=self.abtc is not False,
        )

    def read_options(self, *keys: Key) -> dict[str, Any]:
        """This kind's options declared as :class:`rmas.confread.Key` (type, check, default,
        required message), read, typed and checked, by name; an absent option without a default
        is left out. Errors name ``providers[i].name``; an option not declared is refused
        (:func:`rmas.plugins.build_providers`)."""
        return read_keys(keys, self.options, f"providers[{self.index}]")

    def option(self, name: str, typ: type[Any], default: Any = ...) -> Any:
        """Read a kind-specific option, raising ConfigError naming ``providers[i].name``."""
        key = f"providers[{self.index}].{name}"
        if name not in self.options:
            if default is ...:
                raise ConfigError(key, f"required for kind {self.kind!r}")
            return default
        value = self.options[name]
        if typ is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            raise ConfigError(key, f"must be {typ.__name__}, got {type(value).__name__}")
        return value


@runtime_checkable
class Provider(Protocol):
    """Answers document lookups. See the module docstring for the contract."""

    @property
    def info(self) -> ProviderInfo: ...

    async def lookup_many(self, queries: Sequence[DocumentQuery], deadline: float) -> list[Record]:
        """One Record per query, in order; raise ProviderError when it cannot answer."""
        ...

    async def aclose(self) -> None:
        """Release connections and threads."""
        ...


@runtime_checkable
class CardProvider(Protocol):
    """The optional ABTC capability: answers APEC Business Travel Card lookups (rmas.abtc).

    ``lookup_cards`` returns one :class:`~rmas.abtc.CardRecord` per query, in order, under the
    same deadline and failure rules as ``lookup_many``. A card store is a complete registry of
    the cards its economy issued: an unknown number answers NOT_ISSUED, so a provider that holds
    no cards at all must raise ProviderUnavailable rather than call every card a counterfeit. The
    hub routes a card to the providers of its home economy, and to global providers, that have
    this capability and are not configured ``abtc = false`` (:func:`card_capable`).
    """

    @property
    def info(self) -> ProviderInfo: ...

    async def lookup_cards(
        self, queries: Sequence[CardQuery], deadline: float
    ) -> list[CardRecord]: ...


def card_capable(provider: object) -> bool:
    """Whether the hub asks ``provider`` about ABTC cards: it implements CardProvider and its
    configuration does not say ``abtc = false``."""
    return isinstance(provider, CardProvider) and provider.info.abtc


@runtime_checkable
class Countable(Protocol):
    """The optional capability of saying how many records a provider holds (``rmas status``, a
    node's Describe). None: it cannot say."""

    async def record_count(self) -> int | None: ...


@runtime_checkable
class Startable(Protocol):
    """The optional capability of opening early: ``start()`` runs at hub start-up (and for a
    provider a reload adds), so a store on an outdated schema stops the hub there. Raising
    :class:`~rmas.errors.ProviderError` means "not reachable yet": the hub starts all the same."""

    async def start(self) -> None: ...


class ProviderSnapshot(TypedDict, total=False):
    """What a provider tells ``rmas status`` and the metrics endpoint of its own state."""

    provider: str
    #: Where it is reached (a national node's host:port).
    target: str
    #: The circuit breaker's state: "closed", "open" or "half_open".
    breaker: str
    consecutive_failures: int
    times_opened: int
    #: Calls in flight, and calls the bulkhead refused since start.
    in_flight: int
    rejected_by_bulkhead: int
    #: A national node's batch limit, from its Describe.
    max_batch: int
    #: The states a national node's last Describe named, and why it is not asked ("" if it is).
    described_states: list[str]
    describe_problem: str
    #: Record changes a national node streamed that the hub dropped (rmas.remote.changefeed).
    changes_dropped: int
    #: Whether a national node's Describe offers its record changes (WatchChanges).
    watch_changes: bool


@runtime_checkable
class Observable(Protocol):
    """The optional capability of reporting a :class:`ProviderSnapshot`."""

    def snapshot(self) -> ProviderSnapshot: ...


@runtime_checkable
class KnowsRegistry(Protocol):
    """The optional capability of saying what an issuer's store holds (a node's Describe)."""

    @property
    def registry(self) -> Registry | None: ...


ProviderFactory = Callable[[ProviderConfig], Provider]


async def record_count(provider: object, timeout_s: float = 2.0) -> int | None:
    """How many records a provider holds, when it can say (:class:`Countable`; remote nodes
    report their Describe figure). None when it cannot say in time."""
    if not isinstance(provider, Countable):
        return None
    try:
        async with asyncio.timeout(timeout_s):
            n = await provider.record_count()
    except Exception:  # a count is a courtesy: never let it fail a Describe or a status
        return None
    return int(n) if n is not None else None


def snapshot_of(provider: object) -> ProviderSnapshot | None:
    """The provider's :class:`ProviderSnapshot` (:class:`Observable`); None when it has none."""
    return provider.snapshot() if isinstance(provider, Observable) else None


def registry_of(provider: object) -> Registry | None:
    """What the provider's store holds (:class:`KnowsRegistry`); None when it does not say."""
    if not isinstance(provider, KnowsRegistry):
        return None
    registry = provider.registry
    return registry if isinstance(registry, Registry) else None


async def start_provider(provider: object) -> None:
    """Open ``provider`` early when it can (:class:`Startable`); nothing otherwise."""
    if isinstance(provider, Startable):
        await provider.start()
