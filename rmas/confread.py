"""The one reader of a config section: typed keys, checks, defaults, unknown keys refused.

A section (:class:`Section`) is declared as its keys (:class:`Key`: TOML type, a check that may
convert the value, the message when it is required) and a build function that turns the values
read into the section's object and checks what spans its keys (raising :class:`Bad`). The reader
refuses unknown keys (:mod:`rmas.confkeys`), and every error names its dotted key
(``hub.deadline_ms: must be between 10 and 60000``). :mod:`rmas.config` declares the hub's
sections with it; a provider kind declares its typed options the same way
(:meth:`rmas.providers.ProviderConfig.read_options`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rmas.confkeys import refuse_unknown
from rmas.errors import ConfigError
from rmas.net import parse_listen

__all__ = [
    "UNSET",
    "At",
    "Bad",
    "Check",
    "Key",
    "Section",
    "at_least",
    "between",
    "choice",
    "listen",
    "nonblank",
    "of",
    "one_of",
    "read_keys",
]


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: "Not given": a key absent from its table, a default not declared.
UNSET: Any = _Unset()

#: A key's check: the value read (of the key's TOML type) in, the value kept out; raises
#: ValueError with the message for the key (or ConfigError naming a key itself).
Check = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Key:
    """One key of a section: its TOML type, an optional check, and whether it is required."""

    name: str
    typ: type[Any]
    check: Check | None = None
    #: The message when the key is absent or "" (empty: the key is optional).
    required: str = ""
    #: The value kept when absent (UNSET: the dataclass field's own default).
    default: Any = UNSET

    def read(self, table: Mapping[str, Any], prefix: str) -> Any:
        """This key's value in ``table`` (typed and checked; UNSET when absent without a
        default); ConfigError naming ``prefix.name`` otherwise."""
        name = f"{prefix}.{self.name}"
        value = table.get(self.name, UNSET)
        if value is UNSET or (self.required and value == ""):
            if self.required:
                raise ConfigError(name, self.required)
            return self.default
        value = _typed(value, self.typ, name)
        try:
            return self.check(value) if self.check is not None else value
        except ValueError as exc:
            raise ConfigError(name, str(exc)) from None


@dataclass(frozen=True, slots=True)
class At:
    """Where a section's table is read: its key, index (``[[name]]`` tables), raw table, the
    config file's folder (relative paths) and the sections read before it."""

    prefix: str
    index: int
    table: Mapping[str, Any]
    base_dir: str
    before: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Section:
    """One section: ``[name]`` (or ``[[name]]`` tables when ``many``) of the config file."""

    name: str
    keys: tuple[Key, ...]
    #: The values read (absent keys left out) to the section's object.
    build: Callable[[dict[str, Any], At], Any]
    many: bool = False
    #: The value when the section is absent (None: the result of reading an empty table).
    absent: Any = UNSET
    #: Keys kept for someone else to check (a provider kind's options): not refused here.
    open: bool = False

    def read(
        self, table: Any, prefix: str, index: int, base_dir: str, before: Mapping[str, Any]
    ) -> Any:
        """The one section reader: types, checks and unknown keys, each error naming its key."""
        if not isinstance(table, dict):
            raise ConfigError(prefix, "must be a table")
        if not self.open:
            refuse_unknown(table, prefix, [k.name for k in self.keys])
        values = read_keys(self.keys, table, prefix)
        try:
            return self.build(values, At(prefix, index, table, base_dir, before))
        except Bad as exc:
            raise ConfigError(f"{prefix}.{exc.key}", exc.message) from None


def read_keys(keys: Sequence[Key], table: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Every key's value in ``table``, by name (absent keys without a default left out)."""
    values: dict[str, Any] = {}
    for key in keys:
        value = key.read(table, prefix)
        if value is not UNSET:
            values[key.name] = value
    return values


class Bad(Exception):
    """A check across a section's keys failed: the key (in the section) and the message."""

    def __init__(self, key: str, message: str) -> None:
        self.key, self.message = key, message


def _typed(value: Any, typ: type[Any], key: str) -> Any:
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, typ) or (typ in (int, float) and isinstance(value, bool)):
        raise ConfigError(key, f"must be {typ.__name__}, got {type(value).__name__}")
    return value


def between(low: float, high: float, message: str) -> Check:
    def check(value: Any) -> Any:
        if not low <= value <= high:
            raise ValueError(message)
        return value

    return check


def at_least(low: float, message: str) -> Check:
    return between(low, float("inf"), message)


def one_of(convert: Callable[[Any], Any], message: str) -> Check:
    def check(value: Any) -> Any:
        try:
            return convert(value)
        except ValueError:
            raise ValueError(message) from None

    return check


def listen(key: str) -> Check:
    def check(value: str) -> str:
        if value:
            parse_listen(value, key)
        return value

    return check


def of(cls: type[Any]) -> Callable[[dict[str, Any], At], Any]:
    """A section whose keys are its dataclass's fields."""
    return lambda values, _at: cls(**values)


def choice(*names: str, upper: bool = False) -> Callable[[str], str]:
    def convert(value: str) -> str:
        value = value.upper() if upper else value
        if value not in names:
            raise ValueError(value)
        return value

    return convert


def nonblank(message: str) -> Check:
    def check(value: str) -> str:
        if not value.strip():
            raise ValueError(message)
        return value

    return check
