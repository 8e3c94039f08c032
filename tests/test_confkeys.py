"""Unknown keys never pass silently: every table of the hub's file, and every provider kind's
options (checked once its factory has run), name the key and the closest known one."""

from __future__ import annotations

from typing import Any

import pytest

from rmas.config import parse_config
from rmas.errors import ConfigError
from rmas.plugins import build_one, build_providers
from rmas.providers import Provider, ProviderConfig, Scope, snapshot_of
from rmas.testing import FakeProvider


@pytest.mark.parametrize(
    ("text", "key", "suggested"),
    [
        ("[hbu]\n", "hbu", "hub"),
        ("[[provider]]\n", "provider", "providers"),
        ("[hub]\nlisten_on = '127.0.0.1:1'\n", "hub.listen_on", "listen"),
        ("[hub]\ndeadline = 100\n", "hub.deadline", "deadline_ms"),
        ("[iapi]\nhub_di = 'X'\n", "iapi.hub_di", "hub_id"),
        ("[limits]\nburts = 3\n", "limits.burts", "burst"),
        ("[audit]\nurl = 'sqlite+aiosqlite:///a.db'\nkey_file = 'k'\nrequird = false\n",
         "audit.requird", "required"),
        ("[[callers]]\nidentity = 'rmas://airline/QF'\nrole = 'airline'\nburst_ = 1\n",
         "callers[0].burst_", "burst"),
        ("[tls]\ncert = 'a'\nkye = 'b'\nca = 'c'\n", "tls.kye", "key"),
    ],
)  # fmt: skip
def test_an_unknown_key_in_any_table_names_the_closest_known_one(
    text: str, key: str, suggested: str
) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    assert err.value.key == key
    assert f'did you mean "{suggested}"?' in err.value.message


def test_a_key_like_no_known_one_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config("[limits]\nzzzzzz = 1\n")
    assert err.value.key == "limits.zzzzzz"
    assert "known keys: burst, documents_per_s" in err.value.message


# -- every provider kind, through its registered factory -----------------------------------------

KINDS = {
    "sql": "url = 'sqlite+aiosqlite:///{dir}/nzl.db'\nregistry = 'complete'\n",
    "jsonl": "path = 'nzl.jsonl'\nregistry = 'complete'\n",
    "grpc": "target = '127.0.0.1:50061'\nretries = 2\n",
    "fake": "records = { 'NZL:LA000002' = 'STOLEN' }\nlatency_ms = 1\n",
    "sltd": "url = 'http://127.0.0.1:8080'\ntoken = 'secret'\n",
}
#: One typo per kind: an optional key (silently ignored before) or a required one (reported as
#: the typo, not as a missing key).
TYPOS = {
    "sql": ("registry", "registy"),
    "jsonl": ("registry", "regsitry"),
    "grpc": ("retries", "retires"),
    "fake": ("latency_ms", "latencyms"),
    "sltd": ("token", "tokn"),
}


def provider_toml(kind: str, options: str, contact: str = "contact") -> str:
    scope = "scope = 'global'\n" if kind == "sltd" else "issuing_states = ['NZL']\n"
    return f"[[providers]]\nid = 'P'\nkind = '{kind}'\n{scope}{contact} = 'NZ 24/7 desk'\n{options}"


async def build(text: str) -> list[Provider]:
    cfg = parse_config(text)
    providers = build_providers(cfg.providers)
    for p in providers:
        await p.aclose()
    return providers


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_every_kind_builds_from_its_documented_options(kind: str, tmp_path: Any) -> None:
    """The control for the tests below: the same tables without typos are accepted."""
    (tmp_path / "nzl.db").touch()  # serving never creates a store: it must exist
    (provider,) = await build(provider_toml(kind, KINDS[kind].replace("{dir}", str(tmp_path))))
    assert provider.info.contact == "NZ 24/7 desk"


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_a_mistyped_option_of_every_kind_is_refused_naming_the_right_one(
    kind: str, tmp_path: Any
) -> None:
    (tmp_path / "nzl.db").touch()  # serving never creates a store: it must exist
    right, wrong = TYPOS[kind]
    options = KINDS[kind].replace("{dir}", str(tmp_path)).replace(f"{right} =", f"{wrong} =")
    with pytest.raises(ConfigError) as err:
        await build(provider_toml(kind, options))
    assert err.value.key == f"providers[0].{wrong}"
    assert f'unknown key (did you mean "{right}"?)' in err.value.message


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_a_mistyped_contact_of_every_kind_is_refused(kind: str, tmp_path: Any) -> None:
    """The 24/7 desk is a common key: its typo lands among the kind's options, and is refused."""
    (tmp_path / "nzl.db").touch()  # serving never creates a store: it must exist
    options = KINDS[kind].replace("{dir}", str(tmp_path))
    with pytest.raises(ConfigError) as err:
        await build(provider_toml(kind, options, contact="contcat"))
    assert err.value.key == "providers[0].contcat"
    assert 'did you mean "contact"?' in err.value.message


def _plugin_config(**options: Any) -> ProviderConfig:
    return ProviderConfig(id="X", kind="plugin", issuing_states=frozenset({"NZL"}),
                          scope=Scope.ISSUER, required=True, contact="", max_batch=0,
                          timeout_s=0.0, options=options)  # fmt: skip


def test_a_third_party_kind_that_declares_nothing_is_still_checked() -> None:
    """A plug-in reads its options however it likes (``.get``, ``[]``, ``in``); whatever it did
    not read is refused, with what it did read as the suggestions."""

    def factory(cfg: ProviderConfig) -> Provider:
        colour = cfg.options.get("colour", "blue")
        if "shade" in cfg.options:
            colour += cfg.options["shade"]
        return FakeProvider.issuer(cfg.id, ["NZL"], latency_s=0.0 if colour else 1.0)

    assert build_one(factory, _plugin_config(colour="red", shade="dark")).info.id == "X"
    with pytest.raises(ConfigError) as err:
        build_one(factory, _plugin_config(colour="red", shaed="dark"))
    assert (err.value.key, err.value.message) == (
        "providers[0].shaed",
        'unknown key (did you mean "shade"?)',
    )


def test_reading_an_option_in_one_build_does_not_excuse_it_in_the_next() -> None:
    """Each factory run starts with nothing read (a reload builds the provider again)."""
    cfg = _plugin_config(colour="red")
    assert build_one(lambda c: FakeProvider.issuer("X", ["NZL"], failure=c.options["colour"]), cfg)
    with pytest.raises(ConfigError, match="colour: unknown key"):
        build_one(lambda c: FakeProvider.issuer("X", ["NZL"]), cfg)


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_the_breaker_keys_are_common_to_every_kind_and_their_typos_refused(
    kind: str, tmp_path: Any
) -> None:
    """Every kind gets a breaker and a bulkhead (rmas.resilience): the keys are common keys,
    read for every kind, and a mistyped one is refused like any other."""
    (tmp_path / "nzl.db").touch()
    options = KINDS[kind].replace("{dir}", str(tmp_path))
    (provider,) = await build(provider_toml(kind, options + "breaker_failures = 3\n"))
    snapshot = snapshot_of(provider)
    assert snapshot is not None and snapshot["breaker"] == "closed"
    with pytest.raises(ConfigError) as err:
        await build(provider_toml(kind, options + "breaker_failurs = 3\n"))
    assert err.value.key == "providers[0].breaker_failurs"
    assert 'did you mean "breaker_failures"?' in err.value.message
    with pytest.raises(ConfigError) as err:
        await build(provider_toml(kind, options + "breaker_reset_ms = 1\n"))
    assert (err.value.key, err.value.message) == (
        "providers[0].breaker_reset_ms",
        "must be at least 10",
    )
