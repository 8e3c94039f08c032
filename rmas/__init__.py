"""rmas: a document-check gateway for the Regional Movement Alert System pattern.

The hub routes each document query to the providers that must answer (the issuing economy's own
provider and every global, SLTD-style provider), asks them under one deadline, and merges their
answers into one verdict and boarding directive. It stores none of the economies' records.

Adapters (the ``adapters/`` packages, and third-party plug-ins) import only rmas's public face,
the modules in :data:`PUBLIC_MODULES`: the provider contract and its capabilities
(:mod:`rmas.providers`, :mod:`rmas.changes`, :mod:`rmas.resilience`), the values it speaks
(:mod:`rmas.documents`, :mod:`rmas.verdict`, :mod:`rmas.abtc`, :mod:`rmas.states`,
:mod:`rmas.errors`), the rules an adapter's own configuration and files follow
(:mod:`rmas.confkeys`, :mod:`rmas.confread` for typed options, :mod:`rmas.net`,
:mod:`rmas.fileperm`, :mod:`rmas.security.tls`), the shell helpers for its commands
(:mod:`rmas.runtime`, :mod:`rmas.logs`, :mod:`rmas.cli`'s ``main``) and the kit for its tests
(:mod:`rmas.testing`). Everything else may change without notice
(tests/adapters/test_public_face.py checks the adapters).
"""

from rmas.documents import DocumentQuery, DocumentType, Holder
from rmas.errors import (
    ConfigError,
    FieldViolation,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RmasError,
    StoreError,
    ValidationError,
)
from rmas.providers import Provider, ProviderConfig, ProviderInfo, Registry, Scope
from rmas.verdict import (
    Directive,
    HolderMatch,
    IncompletePolicy,
    Outcome,
    Record,
    RecordStatus,
    SourceAnswer,
    Verdict,
)

__version__ = "0.1.0"

#: The modules adapters may import (see the module docstring).
PUBLIC_MODULES: tuple[str, ...] = (
    "rmas",
    "rmas.abtc",
    "rmas.changes",
    "rmas.cli",
    "rmas.confkeys",
    "rmas.confread",
    "rmas.documents",
    "rmas.errors",
    "rmas.fileperm",
    "rmas.logs",
    "rmas.net",
    "rmas.providers",
    "rmas.resilience",
    "rmas.runtime",
    "rmas.security.tls",
    "rmas.states",
    "rmas.testing",
    "rmas.verdict",
)

__all__ = [
    "PUBLIC_MODULES",
    "ConfigError",
    "Directive",
    "DocumentQuery",
    "DocumentType",
    "FieldViolation",
    "Holder",
    "HolderMatch",
    "IncompletePolicy",
    "Outcome",
    "Provider",
    "ProviderConfig",
    "ProviderError",
    "ProviderInfo",
    "ProviderTimeout",
    "ProviderUnavailable",
    "Record",
    "RecordStatus",
    "Registry",
    "RmasError",
    "Scope",
    "SourceAnswer",
    "StoreError",
    "ValidationError",
    "Verdict",
    "__version__",
]
