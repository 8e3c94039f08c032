"""Structured JSON logs (structlog) that never carry a document number or a name in clear.

Every event goes through :func:`redact`: values under keys that can hold personal data
(``number``, ``surname``, ``mrz``...) are replaced by a short keyed hash, so two log lines about
the same document can still be correlated without revealing it. Tracebacks are rendered without
local variables.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

__all__ = ["SENSITIVE_KEYS", "configure_logging", "redact"]

SENSITIVE_KEYS = frozenset(
    {
        "number",
        "document_number",
        "surname",
        "given_names",
        "name",
        "names",
        "birth_date",
        "mrz",
        "mrz_lines",
        "holder",
    }
)

# Process-local key: hashes correlate lines within one run and reveal nothing across runs. The
# audit trail uses its own configured key (rmas.audit); logs must not be joinable with it.
_KEY = os.urandom(16)


def _hash(value: object) -> str:
    digest = hmac.new(_KEY, str(value).encode("utf-8"), hashlib.sha256).hexdigest()
    return f"h:{digest[:16]}"


def redact(
    _logger: object, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in SENSITIVE_KEYS.intersection(event):
        event[key] = _hash(event[key])
    return event


def configure_logging(level: str = "info", stream: Any = None) -> None:
    """JSON lines to ``stream`` (stderr by default), at ``level`` and above.

    Libraries' standard-library logging (grpc, asyncio, aiohttp) goes through the same redaction
    and JSON rendering, so no line reaches the stream by another road.
    """
    render: list[structlog.typing.Processor] = [
        redact,
        structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        ),
        structlog.processors.JSONRenderer(),
    ]
    stamp: list[structlog.typing.Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *stamp],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *render],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.getLevelNamesMapping()[level.upper()])
    # Alembic announces each of its plug-ins at info level whenever it is imported.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *stamp, *render],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=True,
    )
