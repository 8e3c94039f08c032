"""Test helpers that ship with rmas, for its own tests and for adapter authors' tests.

- :class:`FakeProvider`: a provider that answers through a handler function (``handler(queries,
  deadline) -> records``) and records every call it gets (so a test can assert "one batch call
  per provider"); without a handler it answers from scripted records, latency and failures.
- :func:`check_provider`: the conformance checks, in-process, for a Python plug-in
  (:mod:`rmas.conformance`).
- :func:`compose`: a machine-readable zone with correct check digits, for fixtures.
- :class:`ChangingProvider`: a FakeProvider that reports its record changes (a ChangeFeed).
- :func:`running_hub`: a real hub gRPC server on an ephemeral loopback port, in-process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from rmas.changes import DocumentChange
from rmas.conformance import CheckResult, check_provider
from rmas.documents import DocumentQuery
from rmas.errors import ConfigError, ProviderError, ProviderTimeout, ProviderUnavailable
from rmas.mrz import Layout, check_digit
from rmas.providers import ProviderConfig, ProviderInfo, Scope
from rmas.verdict import NO_RECORD, Record, RecordStatus

if TYPE_CHECKING:
    from rmas.audit.trail import AuditTrail
    from rmas.flights.config import FlightsConfig
    from rmas.iapiconfig import IapiConfig
    from rmas.security.access import CallerRule
    from rmas.security.tls import TlsConfig
    from rmas.server.app import HubServer

__all__ = [
    "ChangingProvider",
    "CheckResult",
    "FakeProvider",
    "Handler",
    "HubHandle",
    "check_provider",
    "compose",
    "running_hub",
]

_FAILURES = ("", "hang", "timeout", "unavailable", "error", "garbage")

#: How a :class:`FakeProvider` answers: the queries of one ``lookup_many`` call and its deadline
#: in, one Record per query out (or a raised ProviderError, or never: whatever the test needs).
Handler = Callable[[Sequence[DocumentQuery], float], Awaitable[list[Record]]]


@dataclass(slots=True)
class FakeProvider:
    """A provider that answers through ``handler`` and records every call it gets.

    Without a handler it answers from a script the test may change at any time: ``records``
    maps (economy, number) to a Record; anything else answers ``default``, after ``latency_s``.
    ``failure`` is one of: "" (answer), "hang" (never answer), "timeout" / "unavailable" / "error"
    (raise the matching exception), "garbage" (return the wrong number of records).
    """

    info: ProviderInfo
    records: dict[tuple[str, str], Record] = field(default_factory=dict)
    default: Record = NO_RECORD
    latency_s: float = 0.0
    failure: str = ""
    calls: list[list[DocumentQuery]] = field(default_factory=list)
    closed: bool = False
    handler: Handler | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.handler is None:
            self.handler = self.scripted

    @classmethod
    def answering(
        cls, info: ProviderInfo | str, handler: Handler, *, states: Iterable[str] = ()
    ) -> FakeProvider:
        """A provider that answers through ``handler``: an issuer of ``states``, or a global
        provider when none are named (``info``: a ProviderInfo, or the id)."""
        if isinstance(info, str):
            states = frozenset(states)
            info = ProviderInfo(info, states, Scope.ISSUER if states else Scope.GLOBAL)
        return cls(info=info, handler=handler)

    @classmethod
    def issuer(
        cls,
        provider_id: str,
        states: Iterable[str],
        records: Mapping[tuple[str, str], Record | RecordStatus] | None = None,
        **kwargs: object,
    ) -> FakeProvider:
        info = ProviderInfo(id=provider_id, issuing_states=frozenset(states), scope=Scope.ISSUER)
        return cls._make(info, records, kwargs)

    @classmethod
    def global_(
        cls,
        provider_id: str,
        records: Mapping[tuple[str, str], Record | RecordStatus] | None = None,
        *,
        required: bool = True,
        **kwargs: object,
    ) -> FakeProvider:
        info = ProviderInfo(id=provider_id, scope=Scope.GLOBAL, required=required)
        return cls._make(info, records, kwargs)

    @classmethod
    def _make(
        cls,
        info: ProviderInfo,
        records: Mapping[tuple[str, str], Record | RecordStatus] | None,
        kwargs: Mapping[str, object],
    ) -> FakeProvider:
        recs = {k: (v if isinstance(v, Record) else Record(v)) for k, v in (records or {}).items()}
        p = cls(info=info, records=recs)
        for k, v in kwargs.items():
            setattr(p, k, v)
        return p

    @classmethod
    def from_config(cls, cfg: ProviderConfig) -> FakeProvider:
        """``kind = "fake"``: ``records = {"NZL:LA000001" = "STOLEN"}``, ``latency_ms``,
        ``failure``."""
        raw = cfg.option("records", dict, {})
        recs: dict[tuple[str, str], Record] = {}
        for key, status in raw.items():
            state, _, number = str(key).partition(":")
            try:
                recs[(state, number)] = Record(RecordStatus(status))
            except ValueError:
                raise ConfigError(
                    f"providers[{cfg.index}].records.{key}", f"unknown status {status!r}"
                ) from None
        failure = cfg.option("failure", str, "")
        if failure not in _FAILURES:
            raise ConfigError(f"providers[{cfg.index}].failure", f"one of {_FAILURES}")
        return cls(
            info=cfg.info,
            records=recs,
            latency_s=cfg.option("latency_ms", float, 0.0) / 1000.0,
            failure=failure,
        )

    async def lookup_many(self, queries: Sequence[DocumentQuery], deadline: float) -> list[Record]:
        self.calls.append(list(queries))
        if len(self.calls) > 10_000:  # a fake node under a long benchmark must not grow forever
            del self.calls[:5_000]
        assert self.handler is not None
        return await self.handler(queries, deadline)

    async def scripted(self, queries: Sequence[DocumentQuery], deadline: float) -> list[Record]:
        """The handler of a FakeProvider made without one: its script (see the class)."""
        if self.failure == "hang":
            await asyncio.Event().wait()
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if self.failure == "timeout":
            raise ProviderTimeout("scripted timeout")
        if self.failure == "unavailable":
            raise ProviderUnavailable("scripted outage")
        if self.failure == "error":
            raise ProviderError("scripted failure")
        out = [self.records.get(q.key, self.default) for q in queries]
        if self.failure == "garbage":
            return out[:-1]
        if time.monotonic() > deadline:
            raise ProviderTimeout("deadline passed")
        return out

    async def aclose(self) -> None:
        self.closed = True


@dataclass(slots=True)
class ChangingProvider(FakeProvider):
    """A :class:`FakeProvider` that reports its record changes (:class:`rmas.changes.ChangeFeed`):
    :meth:`change` sets (or, with None, withdraws) a record and logs the change; positions are
    the log's length. For tests of the hub's open flights and for adapter authors' tests of a
    feed's consumer."""

    log: list[DocumentChange] = field(default_factory=list)
    _news: asyncio.Event | None = None
    _watched: asyncio.Event | None = None

    def mark_watched(self) -> None:
        """Tell :meth:`watched` that the feed is followed (a subclass's own watch_changes)."""
        if self._watched is None:
            self._watched = asyncio.Event()
        self._watched.set()

    async def watched(self) -> None:
        """Return once someone (the hub's change watcher) follows this feed: a change made
        before that would be history, which a first watch does not replay."""
        if self._watched is None:
            self._watched = asyncio.Event()
        await self._watched.wait()

    def change(self, economy: str, number: str, status: Record | RecordStatus | None) -> None:
        if status is None:
            self.records.pop((economy, number), None)
        else:
            self.records[(economy, number)] = (
                status if isinstance(status, Record) else Record(status)
            )
        self.log.append(DocumentChange(economy, number, str(len(self.log) + 1)))
        if self._news is not None:
            self._news.set()

    async def current_position(self) -> str:
        return str(len(self.log))

    async def watch_changes(self, since: str) -> AsyncIterator[Sequence[DocumentChange]]:
        at = int(since or "0")
        if self._news is None:
            self._news = asyncio.Event()
        self.mark_watched()
        while True:
            self._news.clear()
            if len(self.log) > at:
                batch = self.log[at:]
                at = len(self.log)
                yield batch
                continue
            await self._news.wait()


@dataclass(frozen=True, slots=True)
class HubHandle:
    """A hub running in-process: ``target`` is its ``host:port``."""

    target: str
    port: int
    #: Port of its ``GET /metrics`` endpoint on 127.0.0.1 (0: metrics off).
    metrics_port: int = 0
    #: Port of its web console on 127.0.0.1 (0: console off).
    console_port: int = 0
    #: The server itself, for tests that look inside (its coalescer, its service).
    server: HubServer | None = None


@asynccontextmanager
async def running_hub(
    providers: Sequence[object],
    *,
    deadline_ms: int = 1500,
    on_incomplete: str = "contact",
    max_manifest: int = 1000,
    tls: TlsConfig | None = None,
    callers: Sequence[CallerRule] = (),
    documents_per_s: float = 0.0,
    burst: int = 0,
    audit: AuditTrail | None = None,
    metrics_listen: str = "",
    iapi: IapiConfig | None = None,
    max_message_bytes: int = 16 * 1024 * 1024,
    economy: str = "",
    console_listen: str = "",
    flights: FlightsConfig | None = None,
    coalesce_ms: float | None = None,
) -> AsyncIterator[HubHandle]:
    """Serve a hub over real gRPC on an ephemeral loopback port for the duration of the block.

    With ``tls`` the hub requires client certificates and admits ``callers``
    (:class:`~rmas.security.access.CallerRule`); ``audit`` is opened and flushed with the hub.
    ``metrics_listen`` (e.g. ``"127.0.0.1:0"``) serves Prometheus metrics; the bound port is
    ``HubHandle.metrics_port``. ``iapi`` configures the airline channel; ``console_listen``
    serves the web console (the bound port is ``HubHandle.console_port``); ``flights`` keeps
    open flights and serves their status changes (rmas.flights). ``economy`` is the
    hub's own (the default checking economy of ABTC checks). ``coalesce_ms``: the hub's
    ``[hub] coalesce_ms`` (None: its default).
    """
    from rmas.config import HubConfig
    from rmas.providers import Provider
    from rmas.security.access import AccessPolicy
    from rmas.server.app import HubServer
    from rmas.verdict import IncompletePolicy

    provs: list[Provider] = []
    for p in providers:
        if not isinstance(p, Provider):
            raise TypeError(f"{p!r} is not a Provider")
        provs.append(p)
    cfg = HubConfig(
        listen="127.0.0.1:0",
        deadline_ms=deadline_ms,
        on_incomplete=IncompletePolicy(on_incomplete),
        max_manifest=max_manifest,
        metrics_listen=metrics_listen,
        max_message_bytes=max_message_bytes,
        economy=economy,
        console_listen=console_listen,
    )
    if coalesce_ms is not None:
        cfg = replace(cfg, coalesce_ms=coalesce_ms)
    policy = None
    if tls is not None:
        policy = AccessPolicy(callers, documents_per_s=documents_per_s, burst=burst)
    server = HubServer(cfg, provs, iapi, tls=tls, policy=policy, audit=audit, flights=flights)
    port = await server.start()
    try:
        metrics_port = server.metrics.port if server.metrics is not None else 0
        console_port = server.console.port if server.console is not None else 0
        yield HubHandle(f"127.0.0.1:{port}", port, metrics_port, console_port, server)
    finally:
        await server.stop(grace=0.5)


# -- machine-readable zones for fixtures ----------------------------------------------------------


def _pad(s: str, n: int) -> str:
    return (s + "<" * n)[:n]


def _name_field(surname: str, given: str, n: int) -> str:
    primary = "<".join(surname.upper().split())
    secondary = "<".join(given.upper().split())
    return _pad(f"{primary}<<{secondary}" if secondary else primary, n)


def compose(
    layout: Layout,
    *,
    document_code: str,
    issuing_state: str,
    surname: str,
    given_names: str,
    document_number: str,
    nationality: str,
    birth_date: str,
    sex: str,
    expiry_date: str,
    optional_data: str = "",
    optional_data_2: str = "",
) -> list[str]:
    """Write a zone with correct check digits. Dates are YYMMDD; ``D`` becomes ``D<<``.

    TD1 and TD2 numbers longer than 9 characters use the long-number scheme.
    """
    code = _pad(document_code, 2)
    state = _pad(issuing_state, 3)
    nat = _pad(nationality, 3)
    number = document_number
    if layout in (Layout.TD3, Layout.MRV_A, Layout.TD2, Layout.MRV_B):
        width = 44 if layout in (Layout.TD3, Layout.MRV_A) else 36
        line1 = code + state + _name_field(surname, given_names, width - 5)
        if len(number) > 9 and layout is Layout.TD2:
            num_field = number[:9] + "<"
            opt = _pad(number[9:] + check_digit(number) + "<" + optional_data, 7)
        else:
            num_field = _pad(number, 9) + check_digit(_pad(number, 9))
            opt = optional_data
        head = num_field + nat + birth_date + check_digit(birth_date) + sex
        head += expiry_date + check_digit(expiry_date)
        if layout is Layout.TD3:
            opt14 = _pad(opt, 14)
            digit = "<" if not opt.strip("<") else check_digit(opt14)
            body = head + opt14 + digit
            line2 = body + check_digit(body[0:10] + body[13:20] + body[21:43])
        elif layout is Layout.TD2:
            body = head + _pad(opt, 7)
            line2 = body + check_digit(body[0:10] + body[13:20] + body[21:35])
        else:
            line2 = head + _pad(opt, width - 28)
        return [line1, line2]
    # TD1
    if len(number) > 9:
        num_field = number[:9] + "<"
        opt1 = _pad(number[9:] + check_digit(number) + "<" + optional_data, 15)
    else:
        num_field = _pad(number, 9) + check_digit(_pad(number, 9))
        opt1 = _pad(optional_data, 15)
    line1 = code + state + num_field + opt1
    l2 = birth_date + check_digit(birth_date) + sex + expiry_date + check_digit(expiry_date)
    l2 += nat + _pad(optional_data_2, 11)
    line2 = l2 + check_digit(line1[5:30] + l2[0:7] + l2[8:15] + l2[18:29])
    return [line1, line2, _name_field(surname, given_names, 30)]
