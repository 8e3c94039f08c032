"""The hub's audit trail: check results in, durable chained entries out, before any answer.

:class:`AuditTrail` joins the pieces the servicers need: the keyed hash of document keys
(:class:`~rmas.audit.entry.DocumentKeyer`), one entry per document, naming this hub
(:func:`~rmas.audit.entry.encode_entries`, the bytes of :func:`~rmas.audit.entry.entries_for`)
and the group-committing sink
(:class:`~rmas.audit.sink.AuditSink`). When the trail is *required* (the default), a check whose
entries cannot be written is not answered: :meth:`AuditTrail.record` raises AuditError and the
caller gets UNAVAILABLE. Otherwise the failure is logged and the answer goes out.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Sequence

import structlog

from rmas.audit.entry import Caller, Channel, DocumentKeyer, encode_entries
from rmas.audit.sink import LINGER_S, AuditSink
from rmas.errors import AuditError
from rmas.hub import CheckResult

__all__ = ["AuditTrail"]

log = structlog.get_logger("rmas.audit")


class AuditTrail:
    def __init__(
        self,
        sink: AuditSink,
        keyer: DocumentKeyer,
        *,
        required: bool = True,
        hub_id: str | None = None,
    ) -> None:
        self.sink = sink
        self.keyer = keyer
        self.required = required
        #: Recorded in every entry: which hub wrote it (default: the host name).
        self.hub_id = hub_id or socket.gethostname()
        #: Seconds the last record() waited for its commit (for metrics).
        self.last_wait_s = 0.0

    @classmethod
    def from_config(
        cls,
        url: str,
        key_file: str,
        *,
        required: bool,
        synchronous: str,
        linger_s: float = LINGER_S,
        hub_id: str | None = None,
    ) -> AuditTrail:
        return cls(
            AuditSink(url, synchronous=synchronous, linger_s=linger_s),
            DocumentKeyer.from_file(key_file),
            required=required,
            hub_id=hub_id,
        )

    @property
    def healthy(self) -> bool:
        return self.sink.healthy

    @property
    def idle_s(self) -> float:
        """Seconds since the trail was last known writable (a commit or a probe)."""
        return self.sink.idle_s

    async def probe(self) -> bool:
        """Whether the trail can be written now, without adding an entry (updates healthy)."""
        return await self.sink.probe()

    async def start(self) -> None:
        await self.sink.start()

    async def aclose(self) -> None:
        await self.sink.aclose()

    async def record(
        self,
        results: Sequence[CheckResult],
        caller: Caller,
        channel: Channel,
        reference: str = "",
    ) -> None:
        """Write one entry per result; returns once they are durable.

        Raises AuditError when they could not be written and the trail is required.
        """
        await self.submit(results, caller, channel, reference)

    def submit(
        self,
        results: Sequence[CheckResult],
        caller: Caller,
        channel: Channel,
        reference: str = "",
    ) -> Awaitable[None]:
        """Encode and queue the entries now; the awaitable returned completes once they are
        durable (AuditError when they were not and the trail is required). It must be awaited.

        The servicers build their answer between the two, so that building it overlaps the
        commit instead of following it (a shorter wait for the caller; no measurable change in
        throughput), and nothing leaves before the entries are durable.
        """
        start = time.monotonic()
        if not results:
            return self._wait(None, 0, start)
        body = encode_entries(
            results, caller, channel, self.keyer, hub=self.hub_id, reference=reference
        )
        try:
            future: asyncio.Future[None] | AuditError = self.sink.submit_encoded(
                len(results), body, encoded_here=True
            )
        except AuditError as exc:
            future = exc
        return self._wait(future, len(results), start)

    async def _wait(
        self, future: asyncio.Future[None] | AuditError | None, entries: int, start: float
    ) -> None:
        try:
            if isinstance(future, AuditError):
                raise future
            if future is not None:
                await future
        except AuditError as exc:
            log.error("audit_write_failed", entries=entries, error=str(exc),
                      required=self.required)  # fmt: skip
            if self.required:
                raise
        finally:
            self.last_wait_s = time.monotonic() - start
