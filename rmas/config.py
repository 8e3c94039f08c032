"""The hub's configuration: TOML in, frozen dataclasses out, every error naming its key.

Example::

    [hub]
    listen = "127.0.0.1:50051"
    deadline_ms = 1500
    on_incomplete = "contact"   # or "board"
    metrics_listen = "127.0.0.1:9464"   # Prometheus GET /metrics; absent or "": off
    economy = "NZL"             # this hub's economy: where ABTC cards are checked for
    console_listen = "127.0.0.1:8443"   # web console (docs/console.md); absent or "": off

    [[providers]]
    id = "NZL"
    kind = "sql"
    url = "sqlite+aiosqlite:///var/nzl.db"
    issuing_states = ["NZL"]
    contact = "NZ 24/7 desk +64 4 000 0000"
    abtc = true                 # ABTC card lookups: absent = if the kind can, false = never
                                # (docs/abtc.md)

Keys a provider kind understands beyond the common ones (``url``, ``registry``...) are kept in
:attr:`ProviderConfig.options` for its factory, which reports its own errors the same way.

A key no table knows is an error naming it and the closest known key (:mod:`rmas.confkeys`);
for a provider's options that is checked when its factory has run (:func:`build_providers`).
A hub needs at least one provider (:func:`require_providers`).

Security (docs/operations.md)::

    [tls]                       # absent: development mode, loopback only
    cert = "certs/hub.pem"
    key = "certs/hub.key"
    ca = "certs/ca.pem"         # peers' certificates must chain to this

    [[callers]]                 # identity (URI SAN of the client certificate) -> role
    identity = "rmas://airline/*"
    role = "airline"            # airline, officer, operator, node
    documents_per_s = 200       # optional, else [limits]
    burst = 1000
    senders = ["QF", "QANTAS"]  # optional: the UNB/UNG sender ids its PAXLSTs may carry

    [limits]
    documents_per_s = 0         # per caller; 0: unlimited
    burst = 0

    [audit]                     # absent: no audit trail (development)
    url = "sqlite+aiosqlite:///var/audit.db"
    key_file = "secrets/audit.key"   # HMAC key for document keys, 16+ bytes (raw or hex)
    required = true             # no answer leaves the hub unless its entries are written
    hub_id = "hub-akl-1"        # recorded in every entry; default: the host name

Relative paths are resolved from the config file's folder. The hub's TLS settings also serve its
links to national nodes and to the SLTD-style service.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rmas.confkeys import refuse_unknown
from rmas.errors import ConfigError
from rmas.flights.config import FlightsConfig, parse_flights
from rmas.iapiconfig import CODE_KEYS as _CODE_KEYS
from rmas.iapiconfig import CusresCodes, IapiConfig
from rmas.net import parse_listen, require_loopback_unless_tls
from rmas.providers import COMMON_KEYS, ProviderConfig, Scope
from rmas.security.access import CallerRule, Role
from rmas.security.certs import identity_problem
from rmas.security.tls import TlsConfig
from rmas.states import canonical_economy, to_alpha3
from rmas.verdict import IncompletePolicy

__all__ = [
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

_HUB_KEYS = {
    "listen",
    "deadline_ms",
    "on_incomplete",
    "max_manifest",
    "max_message_bytes",
    "log_level",
    "metrics_listen",
    "max_in_flight",
    "drain_grace_ms",
    "economy",
    "console_listen",
}
_SECTIONS = ("hub", "providers", "iapi", "tls", "callers", "limits", "audit", "flights")


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


_HUB_DEFAULTS = HubConfig()


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
    linger_ms: float = 4.0
    #: Recorded in every entry as the hub that wrote it; "" (absent): the host name.
    hub_id: str = ""


@dataclass(frozen=True, slots=True)
class RmasConfig:
    """A whole config file."""

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
    refuse_unknown(data, "", _SECTIONS, what="section")
    hub = _hub(_table(data.get("hub", {}), "hub"))
    iapi = _iapi(_table(data.get("iapi", {}), "iapi"))
    base = str(base_dir or Path.cwd())
    tls = _tls(_table(data["tls"], "tls"), base) if "tls" in data else None
    if hub.metrics_listen:
        host, _port = parse_listen(hub.metrics_listen, "hub.metrics_listen")
        require_loopback_unless_tls(
            host,
            tls=tls is not None,
            key="hub.metrics_listen",
            message=f"{host} is not a loopback address; "
            "without [tls] metrics bind to loopback only",
        )
    callers = tuple(
        _caller(_table(raw, f"callers[{i}]"), i)
        for i, raw in enumerate(_array(data.get("callers", []), "callers"))
    )
    if tls is not None and not callers and not node:
        raise ConfigError(
            "callers",
            "with [tls], a hub names its callers and their roles in [[callers]] tables "
            "(identity, role); a national node's file needs none (rmas provider serve; "
            "rmas config check --node)",
        )
    require_loopback_unless_tls(
        parse_listen(hub.listen)[0],
        tls=tls is not None,
        key="hub.listen",
        message="without [tls] the hub binds to loopback addresses only (development)",
    )
    limits = _limits(_table(data.get("limits", {}), "limits"))
    audit = _audit(_table(data["audit"], "audit"), base) if "audit" in data else None
    flights = None
    if "flights" in data:
        flights = parse_flights(
            _table(data["flights"], "flights"), base, audit.key_file if audit else None
        )
    raw_providers = _array(data.get("providers", []), "providers")
    providers = tuple(
        _provider(_table(raw, f"providers[{i}]"), i, base, tls)
        for i, raw in enumerate(raw_providers)
    )
    seen: dict[str, int] = {}
    for pc in providers:
        if pc.id in seen:
            raise ConfigError(
                f"providers[{pc.index}].id",
                f"duplicate id {pc.id!r} (see providers[{seen[pc.id]}])",
            )
        seen[pc.id] = pc.index
    return RmasConfig(
        hub=hub,
        providers=providers,
        iapi=iapi,
        path=path,
        tls=tls,
        callers=callers,
        limits=limits,
        audit=audit,
        flights=flights,
    )


def _table(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(key, "must be a table")
    return value


def _array(value: Any, key: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(key, f"must be an array of tables: [[{key}]]")
    return value


def _only(t: Mapping[str, Any], prefix: str, allowed: set[str]) -> None:
    refuse_unknown(t, prefix, allowed)


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


def _tls(t: Mapping[str, Any], base_dir: str) -> TlsConfig:
    _only(t, "tls", {"cert", "key", "ca"})
    files = {}
    for name in ("cert", "key", "ca"):
        value = _get(t, name, "tls", str, "")
        if not value:
            raise ConfigError(f"tls.{name}", "required (a PEM file)")
        files[name] = value
    return TlsConfig.load(files["cert"], files["key"], files["ca"], base_dir=base_dir)


def _caller(t: Mapping[str, Any], i: int) -> CallerRule:
    prefix = f"callers[{i}]"
    _only(t, prefix, {"identity", "role", "documents_per_s", "burst", "senders"})
    identity = _get(t, "identity", prefix, str, "")
    if not identity or "*" in identity[:-1]:
        raise ConfigError(
            f"{prefix}.identity",
            "required: an identity, or a prefix ending in * (rmas://airline/*)",
        )
    problem = identity_problem(identity)
    if problem is not None:
        raise ConfigError(f"{prefix}.identity", f"{identity!r} {problem}")
    role_raw = _get(t, "role", prefix, str, "")
    try:
        role = Role(role_raw)
    except ValueError:
        raise ConfigError(
            f"{prefix}.role", f"must be one of {', '.join(r.value for r in Role)}"
        ) from None
    rate = _get(t, "documents_per_s", prefix, float, 0.0)
    burst = _get(t, "burst", prefix, int, 0)
    if rate < 0 or burst < 0:
        raise ConfigError(f"{prefix}.documents_per_s", "rate and burst must be 0 or more")
    senders = _get(t, "senders", prefix, list, [])
    if not all(isinstance(x, str) and x.strip() for x in senders):
        raise ConfigError(f"{prefix}.senders", "must be a list of UNB/UNG sender ids")
    return CallerRule(identity, role, rate, burst, tuple(x.strip() for x in senders))


def _limits(t: Mapping[str, Any]) -> LimitsConfig:
    _only(t, "limits", {"documents_per_s", "burst"})
    rate = _get(t, "documents_per_s", "limits", float, 0.0)
    burst = _get(t, "burst", "limits", int, 0)
    if rate < 0:
        raise ConfigError("limits.documents_per_s", "must be 0 (unlimited) or more")
    if burst < 0:
        raise ConfigError("limits.burst", "must be 0 or more")
    return LimitsConfig(rate, burst)


def _audit(t: Mapping[str, Any], base_dir: str) -> AuditConfig:
    _only(t, "audit", {"url", "key_file", "required", "synchronous", "linger_ms", "hub_id"})
    url = _get(t, "url", "audit", str, "")
    if not url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise ConfigError("audit.url", "must be sqlite+aiosqlite:///FILE or postgresql+asyncpg://…")
    if url.startswith("sqlite+aiosqlite:///") and not url.startswith("sqlite+aiosqlite:////"):
        rel = url.removeprefix("sqlite+aiosqlite:///")
        if rel and not rel.startswith(":memory:"):
            url = f"sqlite+aiosqlite:///{Path(base_dir) / rel}"
    key_file = _get(t, "key_file", "audit", str, "")
    if not key_file:
        raise ConfigError("audit.key_file", "required: a file holding the HMAC key")
    sync = _get(t, "synchronous", "audit", str, "FULL").upper()
    if sync not in ("FULL", "NORMAL"):
        raise ConfigError("audit.synchronous", 'must be "FULL" or "NORMAL"')
    linger_ms = _get(t, "linger_ms", "audit", float, 4.0)
    if not 0.0 <= linger_ms <= 50.0:
        raise ConfigError("audit.linger_ms", "must be from 0 to 50 milliseconds")
    return AuditConfig(
        url=url,
        key_file=Path(base_dir) / key_file,
        required=_get(t, "required", "audit", bool, True),
        synchronous=sync,
        linger_ms=linger_ms,
        hub_id=_hub_id(_get(t, "hub_id", "audit", str, "")),
    )


def _hub_id(value: str) -> str:
    """``[audit] hub_id``: printable text, at most 64 characters ("" for the host name)."""
    if len(value) > 64 or not value.isprintable() or value != value.strip():
        raise ConfigError(
            "audit.hub_id", "must be printable text of at most 64 characters, no outer spaces"
        )
    return value


def _get(table: Mapping[str, Any], key: str, prefix: str, typ: type[Any], default: Any) -> Any:
    if key not in table:
        return default
    value = table[key]
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, typ) or (typ in (int, float) and isinstance(value, bool)):
        raise ConfigError(f"{prefix}.{key}", f"must be {typ.__name__}, got {type(value).__name__}")
    return value


def _hub(t: Mapping[str, Any]) -> HubConfig:
    _only(t, "hub", _HUB_KEYS)
    listen = _get(t, "listen", "hub", str, _HUB_DEFAULTS.listen)
    parse_listen(listen)
    deadline_ms = _get(t, "deadline_ms", "hub", int, _HUB_DEFAULTS.deadline_ms)
    if not 10 <= deadline_ms <= 60_000:
        raise ConfigError("hub.deadline_ms", "must be between 10 and 60000")
    policy_raw = _get(t, "on_incomplete", "hub", str, _HUB_DEFAULTS.on_incomplete.value)
    try:
        policy = IncompletePolicy(policy_raw)
    except ValueError:
        raise ConfigError("hub.on_incomplete", 'must be "contact" or "board"') from None
    max_manifest = _get(t, "max_manifest", "hub", int, _HUB_DEFAULTS.max_manifest)
    if not 1 <= max_manifest <= 100_000:
        raise ConfigError("hub.max_manifest", "must be between 1 and 100000")
    max_bytes = _get(t, "max_message_bytes", "hub", int, _HUB_DEFAULTS.max_message_bytes)
    if not 1024 <= max_bytes <= 256 * 1024 * 1024:
        raise ConfigError("hub.max_message_bytes", "must be between 1 KiB and 256 MiB")
    level = _get(t, "log_level", "hub", str, _HUB_DEFAULTS.log_level)
    if level not in ("debug", "info", "warning", "error"):
        raise ConfigError("hub.log_level", "must be debug, info, warning or error")
    metrics_listen = _get(t, "metrics_listen", "hub", str, _HUB_DEFAULTS.metrics_listen)
    if metrics_listen:
        m_host, m_port = parse_listen(metrics_listen, "hub.metrics_listen")
        if m_port != 0 and (m_host, m_port) == parse_listen(listen):
            raise ConfigError("hub.metrics_listen", "must differ from hub.listen")
    max_in_flight = _get(t, "max_in_flight", "hub", int, _HUB_DEFAULTS.max_in_flight)
    if not 1 <= max_in_flight <= 10_000_000:
        raise ConfigError("hub.max_in_flight", "must be between 1 and 10000000 (documents)")
    if max_in_flight < max_manifest:
        raise ConfigError(
            "hub.max_in_flight", f"must be at least hub.max_manifest ({max_manifest})"
        )
    grace = _get(t, "drain_grace_ms", "hub", int, _HUB_DEFAULTS.drain_grace_ms)
    if not 0 <= grace <= 600_000:
        raise ConfigError("hub.drain_grace_ms", "must be between 0 and 600000")
    economy_raw = _get(t, "economy", "hub", str, "")
    economy = ""
    if economy_raw:
        code = to_alpha3(economy_raw)
        if code is None:
            raise ConfigError("hub.economy", f"unknown economy code {economy_raw[:8]!r}")
        economy = canonical_economy(code)
    console_listen = _get(t, "console_listen", "hub", str, _HUB_DEFAULTS.console_listen)
    if console_listen:
        parse_listen(console_listen, "hub.console_listen")
    return HubConfig(
        listen,
        deadline_ms,
        policy,
        max_manifest,
        max_bytes,
        level,
        metrics_listen=metrics_listen,
        max_in_flight=max_in_flight,
        drain_grace_ms=grace,
        economy=economy,
        console_listen=console_listen,
    )


def _iapi(t: Mapping[str, Any]) -> IapiConfig:
    """``[iapi]``: hub_id, max_bytes, remember, resend_window_s, visa_issuer, and
    ``<key>_code`` / ``<key>_text`` for each entry of the code table (rmas.iapiconfig)."""
    allowed = {"hub_id", "max_bytes", "remember", "resend_window_s", "visa_issuer"} | {
        f"{k}_{part}" for k in _CODE_KEYS for part in ("code", "text")
    }
    _only(t, "iapi", allowed)
    defaults = IapiConfig()
    codes = CusresCodes()
    overrides: dict[str, tuple[str, str]] = {}
    for key in _CODE_KEYS:
        code, text = getattr(codes, key)
        code = _get(t, f"{key}_code", "iapi", str, code)
        text = _get(t, f"{key}_text", "iapi", str, text)
        if not (1 <= len(code) <= 3 and code.isalnum()):
            raise ConfigError(f"iapi.{key}_code", "must be 1-3 letters or digits")
        overrides[key] = (code, text)
    max_bytes = _get(t, "max_bytes", "iapi", int, defaults.max_bytes)
    if not 1024 <= max_bytes <= 64 * 1024 * 1024:
        raise ConfigError("iapi.max_bytes", "must be between 1 KiB and 64 MiB")
    remember = _get(t, "remember", "iapi", int, defaults.remember)
    if remember < 0:
        raise ConfigError("iapi.remember", "must be 0 or more")
    window = _get(t, "resend_window_s", "iapi", float, defaults.resend_window_s)
    if not 0 <= window <= 3600:
        raise ConfigError("iapi.resend_window_s", "must be between 0 and 3600 seconds")
    visa = _get(t, "visa_issuer", "iapi", str, defaults.visa_issuer)
    visa_state = to_alpha3(visa) if visa else ""
    if visa_state is None:
        raise ConfigError("iapi.visa_issuer", f"unknown state code {visa!r} ('' to not check)")
    return IapiConfig(
        hub_id=_get(t, "hub_id", "iapi", str, defaults.hub_id),
        codes=CusresCodes(**overrides),
        max_bytes=max_bytes,
        remember=remember,
        resend_window_s=window,
        visa_issuer=visa_state,
    )


def _provider(
    t: Mapping[str, Any], i: int, base_dir: str, tls: TlsConfig | None = None
) -> ProviderConfig:
    prefix = f"providers[{i}]"
    pid = _get(t, "id", prefix, str, "")
    if not pid.strip():
        raise ConfigError(f"{prefix}.id", "required")
    kind = _get(t, "kind", prefix, str, "")
    if not kind.strip():
        raise ConfigError(f"{prefix}.kind", "required (e.g. sql, grpc, sltd)")
    scope_raw = _get(t, "scope", prefix, str, Scope.ISSUER.value)
    try:
        scope = Scope(scope_raw)
    except ValueError:
        raise ConfigError(f"{prefix}.scope", 'must be "issuer" or "global"') from None
    states_raw = _get(t, "issuing_states", prefix, list, [])
    states: set[str] = set()
    for j, s in enumerate(states_raw):
        code = to_alpha3(s) if isinstance(s, str) else None
        if code is None:
            raise ConfigError(f"{prefix}.issuing_states[{j}]", f"unknown state code {s!r}")
        states.add(canonical_economy(code))
    if scope is Scope.ISSUER and not states:
        raise ConfigError(f"{prefix}.issuing_states", "an issuer provider must name its states")
    if scope is Scope.GLOBAL and states:
        raise ConfigError(f"{prefix}.issuing_states", "a global provider answers for every state")
    required = _get(t, "required", prefix, bool, True)
    if scope is Scope.ISSUER and not required:
        raise ConfigError(f"{prefix}.required", "the issuing economy's provider is always required")
    max_batch = _get(t, "max_batch", prefix, int, 0)
    if max_batch < 0:
        raise ConfigError(f"{prefix}.max_batch", "must be 0 (no limit) or more")
    timeout_ms = _get(t, "timeout_ms", prefix, int, 0)
    if timeout_ms < 0:
        raise ConfigError(f"{prefix}.timeout_ms", "must be 0 (the whole deadline) or more")
    return ProviderConfig(
        id=pid,
        kind=kind,
        issuing_states=frozenset(states),
        scope=scope,
        required=required,
        contact=_get(t, "contact", prefix, str, ""),
        max_batch=max_batch,
        timeout_s=timeout_ms / 1000.0,
        options={k: v for k, v in t.items() if k not in COMMON_KEYS},
        base_dir=base_dir,
        index=i,
        tls=tls,
        abtc=_get(t, "abtc", prefix, bool, None),
    )
