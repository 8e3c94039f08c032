"""The exception tree of rmas: one root, so callers can catch everything rmas raises.

    RmasError
    ├── ConfigError              configuration file or value at fault (names the key)
    ├── ValidationError          document data at fault (carries field violations)
    ├── ProviderError            a provider could not answer
    │   ├── ProviderTimeout      ... in time
    │   └── ProviderUnavailable  ... at all (down, refused, breaker open, bulkhead full)
    ├── StoreError               an SQL store could not be read or written
    ├── Overloaded               the hub has as many documents in flight as it may take
    └── AuditError               the audit trail could not be written or read

Provider failures never reach a caller as a failed RPC: the fan-out turns them into outcomes
(TIMEOUT, UNAVAILABLE, ERROR) inside the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AuditError",
    "ConfigError",
    "FieldViolation",
    "Overloaded",
    "ProviderError",
    "ProviderTimeout",
    "ProviderUnavailable",
    "RmasError",
    "StoreError",
    "ValidationError",
]


class RmasError(Exception):
    """Root of every exception rmas raises on purpose."""


class ConfigError(RmasError):
    """A configuration value is missing or wrong; ``key`` is the dotted path of the culprit."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field: ``field`` is a dotted path such as ``document.issuing_state``."""

    field: str
    description: str


class ValidationError(RmasError):
    """Document data failed validation; ``violations`` names every bad field."""

    def __init__(self, violations: list[FieldViolation]) -> None:
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))
        self.violations = violations


class ProviderError(RmasError):
    """A provider failed to answer a lookup."""


class ProviderTimeout(ProviderError):
    """A provider did not answer before its deadline."""


class ProviderUnavailable(ProviderError):
    """A provider cannot be reached or refuses work right now."""


class StoreError(RmasError):
    """An SQL store could not be read, written or migrated."""


class AuditError(RmasError):
    """The audit trail could not be written (so no answer may leave the hub) or read."""


class Overloaded(RmasError):
    """The hub is checking as many documents as it may; the caller should retry shortly."""

    retry_after_s = 0.1
