"""rmas: a document-check gateway for the Regional Movement Alert System pattern.

The hub routes each document query to the providers that must answer (the issuing economy's own
provider and every global, SLTD-style provider), asks them under one deadline, and merges their
answers into one verdict and boarding directive. It stores none of the economies' records.
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

__all__ = [
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
