"""The hub's configuration: TOML in, frozen dataclasses out, every error naming its key.

Example (every section and key: docs/operations.md)::

    [hub]
    listen = "127.0.0.1:50051"
    deadline_ms = 1500
    on_incomplete = "contact"   # or "board"

    [[providers]]
    id = "NZL"
    kind = "sql"
    url = "sqlite+aiosqlite:///var/nzl.db"
    issuing_states = ["NZL"]
    contact = "NZ 24/7 desk +64 4 000 0000"

    [tls]                       # absent: development mode, loopback only
    cert = "certs/hub.pem"
    key = "certs/hub.key"
    ca = "certs/ca.pem"         # peers' certificates must chain to this

    [[callers]]                 # identity (URI SAN of the client certificate) -> role
    identity = "rmas://airline/*"
    role = "airline"            # airline, officer, operator, node

``[limits]``, ``[audit]`` and ``[iapi]`` complete it. Keys a provider kind understands beyond the
common ones (``url``, ``registry``...) are kept in :attr:`ProviderConfig.options` for its factory.
A key no table knows is an error naming it and the closest known key (:mod:`rmas.confkeys`); for
a provider's options that is checked when its factory has run
(:func:`rmas.plugins.build_providers`). A hub needs at least one provider
(:func:`require_providers`). Relative paths are resolved from the config file's folder. The hub's
TLS settings also serve its links to national nodes and to the SLTD-style service.

Every section is declared in :data:`SECTIONS` (keys, checks, the object it builds) and read by
the one section reader of :mod:`rmas.confread`. A new section is a dataclass, a ``Section(...)``
entry and a field of :class:`RmasConfig` of the same name.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rmas.audit.sink import LINGER_S
from rmas.confkeys import refuse_unknown
from rmas.confread import (
    UNSET,
    At,
    Bad,
    Key,
    Section,
    at_least,
    between,
    choice,
    listen,
    nonblank,
    of,
    one_of,
)
from rmas.errors import ConfigError
from rmas.flights.config import FLIGHTS_KEYS, FlightsConfig, build_flights
from rmas.iapiconfig import CODE_KEYS as _CODE_KEYS
from rmas.iapiconfig import CusresCodes, IapiConfig
from rmas.net import parse_listen, require_loopback_unless_tls
from rmas.providers import COMMON_KEYS, GuardConfig, ProviderConfig, Scope
from rmas.security.access import CallerRule, Role
from rmas.security.certs import identity_problem
from rmas.security.tls import TlsConfig
from rmas.states import canonical_economy, to_alpha3
from rmas.verdict import IncompletePolicy

__all__ = [
    "SECTIONS",
    "AuditConfig",
    "HubConfig",
    "LimitsConfig",
    "RmasConfig",
    "load_config",
    "parse_config",
    "parse_tables",
    "read_toml",
    "require_providers",
]


@dataclass(frozen=True, slots=True)
class HubConfig:
    """The ``[hub]`` table."""

    #: host:port the gRPC server binds. Without TLS only loopback addresses are allowed.
    listen: str = "127.0.0.1:50051"
    #: Longest a check may take, whatever deadline the caller sends.
    deadline_ms: int = 1500
    #: What INCOMPLETE tells the airline: "contact" (fail-closed) or "board" (fail-open).
    on_incomplete: IncompletePolicy = IncompletePolicy.CONTACT
    #: Most travellers in one CheckManifest call.
    max_manifest: int = 1000
    #: Largest gRPC message accepted or sent, in bytes.
    max_message_bytes: int = 16 * 1024 * 1024
    #: structlog level: debug, info, warning, error.
    log_level: str = "info"
    #: host:port of the Prometheus endpoint (``GET /metrics``, plain HTTP, unauthenticated);
    #: "" for none. Without TLS only loopback addresses are allowed.
    metrics_listen: str = ""
    #: Documents being checked at once, all callers together; past it a request is refused at
    #: once with RESOURCE_EXHAUSTED rather than queued until its deadline passes.
    max_in_flight: int = 20_000
    #: On SIGTERM: how long in-flight checks may take to finish before they are cut off.
    drain_grace_ms: int = 10_000
    #: The hub's own economy (alpha-3): the checking economy of ABTC checks whose request names
    #: none ("" for none: such requests must name it).
    economy: str = ""
    #: host:port of the officer and operator web console (:mod:`rmas.console`); "" for none.
    #: HTTPS with client certificates under [tls]; without it, loopback only.
    console_listen: str = ""
    #: While the event loop is saturated, single-check answers are held this long at most and
    #: sent together (:mod:`rmas.server.coalesce`); 0: each leaves as soon as it is ready.
    coalesce_ms: float = 2.0


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """The ``[limits]`` table: defaults for callers whose ``[[callers]]`` table sets none."""

    #: Documents a second one caller may check (0: unlimited).
    documents_per_s: float = 0.0
    #: Documents one caller may check at once (0: one second's worth).
    burst: int = 0


@dataclass(frozen=True, slots=True)
class AuditConfig:
    """The ``[audit]`` table."""

    #: ``sqlite+aiosqlite:///file.db`` or ``postgresql+asyncpg://...``.
    url: str
    #: File holding the HMAC key for document keys (16 bytes or more, raw or hex).
    key_file: Path
    #: When true, a check whose entries cannot be written is not answered (UNAVAILABLE).
    required: bool = True
    #: SQLite's synchronous pragma for the audit file: FULL (default) or NORMAL.
    synchronous: str = "FULL"
    #: How long a tiny group commit (under 64 entries) may wait to grow while commits follow
    #: each other (0: never); see rmas.audit.sink.
    linger_ms: float = LINGER_S * 1000.0
    #: Recorded in every entry as the hub that wrote it; "" (absent): the host name.
    hub_id: str = ""


@dataclass(frozen=True, slots=True)
class RmasConfig:
    """A whole config file: one field per section of :data:`SECTIONS`, of the same name."""

    hub: HubConfig
    providers: tuple[ProviderConfig, ...]
    iapi: IapiConfig = field(default_factory=IapiConfig)
    #: The file it came from (None when parsed from a string).
    path: Path | None = None
    #: This hub's certificate, key and trusted CA; None: development mode (loopback, no TLS).
    tls: TlsConfig | None = None
    callers: tuple[CallerRule, ...] = ()
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    audit: AuditConfig | None = None
    #: Open flights and status changes (rmas.flights); None: each PAXLST is answered once.
    flights: FlightsConfig | None = None


def _economy(value: str) -> str:
    code = to_alpha3(value) if value else ""
    if code is None:
        raise ValueError(f"unknown economy code {value[:8]!r}")
    return canonical_economy(code) if code else ""


def _visa_issuer(value: str) -> str:
    code = to_alpha3(value) if value else ""
    if code is None:
        raise ValueError(f"unknown state code {value!r} ('' to not check)")
    return code


# -- sections -----------------------------------------------------------------------------------


def _hub(v: dict[str, Any], _at: At) -> HubConfig:
    hub = HubConfig(**v)
    if hub.metrics_listen:
        m_host, m_port = parse_listen(hub.metrics_listen, "hub.metrics_listen")
        if m_port != 0 and (m_host, m_port) == parse_listen(hub.listen):
            raise Bad("metrics_listen", "must differ from hub.listen")
    if hub.max_in_flight < hub.max_manifest:
        raise Bad("max_in_flight", f"must be at least hub.max_manifest ({hub.max_manifest})")
    return hub


def _code(value: str) -> str:
    if not (1 <= len(value) <= 3 and value.isalnum()):
        raise ValueError("must be 1-3 letters or digits")
    return value


def _iapi(v: dict[str, Any], _at: At) -> IapiConfig:
    """``<key>_code`` / ``<key>_text`` for each entry of the code table (rmas.iapiconfig)."""
    codes = CusresCodes()
    overrides = {}
    for key in _CODE_KEYS:
        code, text = getattr(codes, key)
        overrides[key] = (v.pop(f"{key}_code", code), v.pop(f"{key}_text", text))
    return IapiConfig(codes=CusresCodes(**overrides), **v)


def _tls(v: dict[str, Any], at: At) -> TlsConfig:
    return TlsConfig.load(v["cert"], v["key"], v["ca"], base_dir=at.base_dir)


def _identity(value: str) -> str:
    if "*" in value[:-1]:
        raise ValueError(_IDENTITY)
    problem = identity_problem(value)
    if problem is not None:
        raise ValueError(f"{value!r} {problem}")
    return value


def _caller(v: dict[str, Any], _at: At) -> CallerRule:
    if v.get("documents_per_s", 0.0) < 0 or v.get("burst", 0) < 0:
        raise Bad("documents_per_s", "rate and burst must be 0 or more")
    senders = v.get("senders", [])
    if not all(isinstance(x, str) and x.strip() for x in senders):
        raise Bad("senders", "must be a list of UNB/UNG sender ids")
    v["senders"] = tuple(x.strip() for x in senders)
    return CallerRule(**v)


def _audit_url(url: str) -> str:
    if not url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise ValueError(_AUDIT_URL)
    return url


def _hub_id(value: str) -> str:
    """``[audit] hub_id``: printable text, at most 64 characters ("" for the host name)."""
    if len(value) > 64 or not value.isprintable() or value != value.strip():
        raise ValueError("must be printable text of at most 64 characters, no outer spaces")
    return value


def _audit(v: dict[str, Any], at: At) -> AuditConfig:
    url = v["url"]
    if url.startswith("sqlite+aiosqlite:///") and not url.startswith("sqlite+aiosqlite:////"):
        rel = url.removeprefix("sqlite+aiosqlite:///")
        if rel and not rel.startswith(":memory:"):
            v["url"] = f"sqlite+aiosqlite:///{Path(at.base_dir) / rel}"
    v["key_file"] = Path(at.base_dir) / v["key_file"]
    return AuditConfig(**v)


def _states(raw: list[Any]) -> frozenset[str]:
    states: set[str] = set()
    for j, s in enumerate(raw):
        code = to_alpha3(s) if isinstance(s, str) else None
        if code is None:
            raise Bad(f"issuing_states[{j}]", f"unknown state code {s!r}")
        states.add(canonical_economy(code))
    return frozenset(states)


def _provider(v: dict[str, Any], at: At) -> ProviderConfig:
    scope, states = v["scope"], _states(v["issuing_states"])
    if scope is Scope.ISSUER and not states:
        raise Bad("issuing_states", "an issuer provider must name its states")
    if scope is Scope.GLOBAL and states:
        raise Bad("issuing_states", "a global provider answers for every state")
    if scope is Scope.ISSUER and not v["required"]:
        raise Bad("required", "the issuing economy's provider is always required")
    return ProviderConfig(
        id=v["id"],
        kind=v["kind"],
        issuing_states=states,
        scope=scope,
        required=v["required"],
        contact=v["contact"],
        max_batch=v["max_batch"],
        timeout_s=v["timeout_ms"] / 1000.0,
        options={k: val for k, val in at.table.items() if k not in COMMON_KEYS},
        base_dir=at.base_dir,
        index=at.index,
        tls=at.before.get("tls"),
        abtc=v["abtc"],
        guard=GuardConfig(
            max_in_flight=v["max_in_flight"],
            breaker_failures=v["breaker_failures"],
            breaker_reset_s=v["breaker_reset_ms"] / 1000,
            breaker_min_budget_s=v["breaker_min_budget_ms"] / 1000,
        ),
    )


_IDENTITY = "required: an identity, or a prefix ending in * (rmas://airline/*)"
_AUDIT_URL = "must be sqlite+aiosqlite:///FILE or postgresql+asyncpg://…"
_KIND = "required (e.g. sql, grpc, sltd)"
_ROLES = f"must be one of {', '.join(r.value for r in Role)}"

#: Every section of a config file, in the order they are read (a build may use those before it).
SECTIONS: tuple[Section, ...] = (
    Section("hub", (
        Key("listen", str, listen("hub.listen")),
        Key("deadline_ms", int, between(10, 60_000, "must be between 10 and 60000")),
        Key("on_incomplete", str, one_of(IncompletePolicy, 'must be "contact" or "board"')),
        Key("max_manifest", int, between(1, 100_000, "must be between 1 and 100000")),
        Key("max_message_bytes", int,
            between(1024, 256 * 1024 * 1024, "must be between 1 KiB and 256 MiB")),
        Key("log_level", str, one_of(choice("debug", "info", "warning", "error"),
                                     "must be debug, info, warning or error")),
        Key("metrics_listen", str, listen("hub.metrics_listen")),
        Key("max_in_flight", int,
            between(1, 10_000_000, "must be between 1 and 10000000 (documents)")),
        Key("drain_grace_ms", int, between(0, 600_000, "must be between 0 and 600000")),
        Key("economy", str, _economy),
        Key("console_listen", str, listen("hub.console_listen")),
        Key("coalesce_ms", float, between(0.0, 20.0, "must be from 0 to 20 milliseconds")),
    ), _hub),
    Section("iapi", (
        Key("hub_id", str),
        *(Key(f"{k}_code", str, _code) for k in _CODE_KEYS),
        *(Key(f"{k}_text", str) for k in _CODE_KEYS),
        Key("max_bytes", int, between(1024, 64 * 1024 * 1024, "must be between 1 KiB and 64 MiB")),
        Key("remember", int, at_least(0, "must be 0 or more")),
        Key("resend_window_s", float, between(0, 3600, "must be between 0 and 3600 seconds")),
        Key("visa_issuer", str, _visa_issuer),
    ), _iapi),
    Section("tls", tuple(Key(n, str, required="required (a PEM file)")
                         for n in ("cert", "key", "ca")), _tls, absent=None),
    Section("callers", (
        Key("identity", str, _identity, required=_IDENTITY),
        Key("role", str, one_of(Role, _ROLES), required=_ROLES),
        Key("documents_per_s", float),
        Key("burst", int),
        Key("senders", list),
    ), _caller, many=True),
    Section("limits", (
        Key("documents_per_s", float, at_least(0, "must be 0 (unlimited) or more")),
        Key("burst", int, at_least(0, "must be 0 or more")),
    ), of(LimitsConfig)),
    Section("audit", (
        Key("url", str, _audit_url, required=_AUDIT_URL),
        Key("key_file", str, required="required: a file holding the HMAC key"),
        Key("required", bool),
        Key("synchronous", str, one_of(choice("FULL", "NORMAL", upper=True),
                                       'must be "FULL" or "NORMAL"')),
        Key("linger_ms", float, between(0.0, 50.0, "must be from 0 to 50 milliseconds")),
        Key("hub_id", str, _hub_id),
    ), _audit, absent=None),
    Section("flights", FLIGHTS_KEYS, build_flights, absent=None),
    Section("providers", (
        Key("id", str, nonblank("required"), required="required"),
        Key("kind", str, nonblank(_KIND), required=_KIND),
        Key("scope", str, one_of(Scope, 'must be "issuer" or "global"'), default=Scope.ISSUER),
        Key("issuing_states", list, default=[]),
        Key("required", bool, default=True),
        Key("contact", str, default=""),
        Key("max_batch", int, at_least(0, "must be 0 (no limit) or more"), default=0),
        Key("timeout_ms", int, at_least(0, "must be 0 (the whole deadline) or more"), default=0),
        Key("abtc", bool, default=None),
        Key("max_in_flight", int, at_least(1, "must be at least 1"), default=None),
        Key("breaker_failures", int, at_least(1, "must be at least 1"), default=5),
        Key("breaker_reset_ms", int, at_least(10, "must be at least 10"), default=5000),
        Key("breaker_min_budget_ms", int, at_least(0, "must be at least 0"), default=250),
    ), _provider, many=True, open=True),
)  # fmt: skip


# -- the file -----------------------------------------------------------------------------------


def load_config(path: str | Path, *, node: bool = False) -> RmasConfig:
    """Read and check a config file; raise ConfigError naming the key at fault.

    ``node``: the file of a national node (``rmas provider serve``), whose callers are the hubs
    its CA certified (``--allow`` narrows them): ``[[callers]]`` is a hub's table and not needed.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(str(p), "not a text file (UTF-8 TOML expected)") from None
    return parse_config(text, base_dir=p.resolve().parent, path=p, node=node)


def parse_config(
    text: str, *, base_dir: Path | None = None, path: Path | None = None, node: bool = False
) -> RmasConfig:
    return parse_tables(read_toml(text, path), base_dir=base_dir, path=path, node=node)


def read_toml(text: str, path: Path | None = None) -> dict[str, Any]:
    """The file's tables; ConfigError when it is not TOML."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path or "<config>"), f"not valid TOML: {exc}") from None


def parse_tables(
    data: Mapping[str, Any],
    *,
    base_dir: Path | None = None,
    path: Path | None = None,
    node: bool = False,
) -> RmasConfig:
    """:func:`parse_config` on tables already read (``node``: see :func:`load_config`)."""
    refuse_unknown(data, "", [s.name for s in SECTIONS], what="section")
    base = str(base_dir or Path.cwd())
    read: dict[str, Any] = {}
    for s in SECTIONS:
        raw = data.get(s.name, UNSET)
        if s.many:
            raw = [] if raw is UNSET else raw
            if not isinstance(raw, list):
                raise ConfigError(s.name, f"must be an array of tables: [[{s.name}]]")
            read[s.name] = tuple(
                s.read(t, f"{s.name}[{i}]", i, base, read) for i, t in enumerate(raw)
            )
        elif raw is UNSET and s.absent is not UNSET:
            read[s.name] = s.absent
        else:
            read[s.name] = s.read({} if raw is UNSET else raw, s.name, 0, base, read)
    _across(read, node)
    return RmasConfig(path=path, **read)


def _across(read: Mapping[str, Any], node: bool) -> None:
    """The checks that span sections."""
    hub: HubConfig = read["hub"]
    tls = read["tls"] is not None
    if hub.metrics_listen:
        host, _port = parse_listen(hub.metrics_listen, "hub.metrics_listen")
        require_loopback_unless_tls(
            host,
            tls=tls,
            key="hub.metrics_listen",
            message=f"{host} is not a loopback address; "
            "without [tls] metrics bind to loopback only",
        )
    if tls and not read["callers"] and not node:
        raise ConfigError(
            "callers",
            "with [tls], a hub names its callers and their roles in [[callers]] tables "
            "(identity, role); a national node's file needs none (rmas provider serve; "
            "rmas config check --node)",
        )
    require_loopback_unless_tls(
        parse_listen(hub.listen)[0],
        tls=tls,
        key="hub.listen",
        message="without [tls] the hub binds to loopback addresses only (development)",
    )
    seen: dict[str, int] = {}
    for pc in read["providers"]:
        if pc.id in seen:
            raise ConfigError(
                f"providers[{pc.index}].id",
                f"duplicate id {pc.id!r} (see providers[{seen[pc.id]}])",
            )
        seen[pc.id] = pc.index


def require_providers(cfg: RmasConfig) -> None:
    """A hub answers nothing useful without providers: refuse such a config (at start, on
    reload, in ``rmas config check``) rather than answer every check INCOMPLETE."""
    if not cfg.providers:
        where = f" in {cfg.path}" if cfg.path is not None else ""
        raise ConfigError(
            "providers",
            f"no [[providers]] table{where}: every check would be INCOMPLETE "
            "(a truncated file?); name at least one provider",
        )
