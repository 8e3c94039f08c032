"""The one section reader (rmas.confread): a section declared in a few lines is read, typed,
checked and refused like every section of the hub's file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from rmas.confread import At, Bad, Key, Section, between, of
from rmas.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Flights:
    hold_minutes: int = 90
    airline: str = ""


def _flights(values: dict[str, Any], at: At) -> Flights:
    flights = Flights(**values)
    if flights.hold_minutes > 60 and not flights.airline:
        raise Bad("airline", "required when flights are held over an hour")
    return flights


FLIGHTS = Section("flights", (
    Key("hold_minutes", int, between(1, 1440, "must be between 1 and 1440")),
    Key("airline", str),
), _flights)  # fmt: skip


def read(table: object) -> Any:
    return FLIGHTS.read(table, "flights", 0, ".", {})


def test_a_declared_section_is_read_with_its_dataclass_defaults() -> None:
    assert read({"airline": "QF"}) == Flights(90, "QF")
    assert read({"hold_minutes": 30}) == Flights(30, "")
    assert Section("x", (Key("hold_minutes", int),), of(Flights)).read({}, "x", 0, ".", {}) == (
        Flights()
    )


@pytest.mark.parametrize(
    ("table", "key", "message"),
    [
        ({"hold_minutes": "90"}, "flights.hold_minutes", "must be int, got str"),
        ({"hold_minutes": True}, "flights.hold_minutes", "must be int, got bool"),
        ({"hold_minutes": 0}, "flights.hold_minutes", "must be between 1 and 1440"),
        ({"hold_minutse": 5}, "flights.hold_minutse", 'unknown key (did you mean "hold_minutes"?)'),
        ({}, "flights.airline", "required when flights are held over an hour"),
    ],
)
def test_every_error_names_its_key(table: dict[str, Any], key: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        read(table)
    assert (err.value.key, err.value.message) == (key, message)


def test_a_section_that_is_not_a_table_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        read(["x"])
    assert (err.value.key, err.value.message) == ("flights", "must be a table")


def test_a_required_key_is_refused_when_absent_or_empty() -> None:
    section = Section("tls", (Key("cert", str, required="required (a PEM file)"),), of(dict))
    for table in ({}, {"cert": ""}):
        with pytest.raises(ConfigError) as err:
            section.read(table, "tls", 0, ".", {})
        assert (err.value.key, err.value.message) == ("tls.cert", "required (a PEM file)")


def test_a_provider_kind_declares_its_typed_options_with_the_same_keys() -> None:
    from rmas.plugins import build_one
    from rmas.providers import ProviderConfig, Scope
    from rmas.testing import FakeProvider

    def config(**options: Any) -> ProviderConfig:
        return ProviderConfig(id="X", kind="plugin", issuing_states=frozenset({"NZL"}),
                              scope=Scope.ISSUER, required=True, contact="", max_batch=0,
                              timeout_s=0.0, options=options, index=2)  # fmt: skip

    seen: list[dict[str, Any]] = []

    def factory(cfg: ProviderConfig) -> Any:
        seen.append(cfg.read_options(
            Key("url", str, required="required for kind 'plugin'"),
            Key("pool", int, between(1, 8, "must be between 1 and 8"), default=2),
        ))  # fmt: skip
        return FakeProvider.issuer("X", ["NZL"])

    build_one(factory, config(url="db://x"))
    assert seen == [{"url": "db://x", "pool": 2}]
    for options, key, message in [
        ({}, "providers[2].url", "required for kind 'plugin'"),
        ({"url": "db://x", "pool": 9}, "providers[2].pool", "must be between 1 and 8"),
        ({"url": "db://x", "pool": "9"}, "providers[2].pool", "must be int, got str"),
        ({"url": "db://x", "pol": 3}, "providers[2].pol", 'unknown key (did you mean "pool"?)'),
    ]:
        with pytest.raises(ConfigError) as err:
            build_one(factory, config(**options))
        assert (err.value.key, err.value.message) == (key, message)
