"""Where audit entries go: a group-committing sink in front of the writers.

:class:`AuditSink` makes entries durable before the hub answers, cheaply:

- **Group commit.** ``record()`` queues its entries and waits. One writer task per sink takes
  everything queued (whole ``record()`` calls, up to ``max_batch`` entries), commits it as one
  block (:mod:`rmas.audit.format`) in one transaction, then wakes those callers. Whatever
  queued while a commit ran forms the next one, so under load a commit carries many checks and
  when idle a check waits for one.
- **Linger, only for tiny groups.** When fewer than :data:`LINGER_BELOW` entries wait and the
  previous commit started less than ``linger_s`` (:data:`LINGER_S`) ago, the next one waits for
  that moment, so that single checks arriving together share a commit (each has a fixed cost,
  mostly the kernel's ``fsync``). An idle hub never waits: the previous commit is long past.
  Manifests are never held. ``[audit] linger_ms`` sets it (0: never).
- **One chain per database**, however many hub processes share it: each commit holds an
  exclusive lock, reads the tail, seals its block onto it and inserts it
  (:mod:`rmas.audit.writers`: SQLite through a writer process, PostgreSQL in process).
- **Durability.** SQLite runs in WAL mode with ``synchronous=FULL`` by default: the commit has
  reached the disk when ``record()`` returns. PostgreSQL uses the server's synchronous commit.
- **Failures.** A failed commit is rolled back, its callers get :class:`~rmas.errors.AuditError`
  and ``healthy`` is false until a commit or a :meth:`AuditSink.probe` succeeds; the connection
  is dropped and reopened (SQLite: the writer process restarted) for the next commit.

Reading (``verify``, ``find``, ``head``) is :mod:`rmas.audit.reader`.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import structlog

from rmas.audit.format import FIELDS, FORMAT, AuditEntry, clean, encode, pieces, well_formed
from rmas.audit.target import reason, target
from rmas.audit.writers import PgWriter, SqliteWriter, Writer
from rmas.errors import AuditError, ConfigError

__all__ = ["LINGER_BELOW", "LINGER_S", "SYNCHRONOUS_MODES", "AuditSink", "encode_group"]

log = structlog.get_logger("rmas.audit")

#: SQLite ``synchronous`` settings accepted (OFF is not: it would give up durability).
SYNCHRONOUS_MODES: Final = frozenset({"NORMAL", "FULL", "EXTRA"})

#: A commit of fewer entries than this waits until LINGER_S after the previous one started.
LINGER_BELOW: Final = 64
#: ``[audit] linger_ms``'s default. 8 ms since session 10: with single-check answers held and
#: sent together (``[hub] coalesce_ms``), 4 ms commits carried half as many checks, and the hub
#: with mTLS and the trail gave 0.71x of a plain hub's checks a second at 64 in flight against
#: 0.89x at 8 ms (docs/benchmarks.md). A quiet hub never lingers.
LINGER_S: Final = 0.008


def encode_group(entries: Sequence[AuditEntry]) -> bytes:
    """Entries in the byte format of new blocks (:func:`rmas.audit.format.encode`); free text
    made storable (:func:`rmas.audit.format.clean`). AuditError if a field is not text."""
    try:
        return encode([tuple(clean(getattr(e, f)) for f in FIELDS) for e in entries])
    except (TypeError, AttributeError, ValueError) as exc:
        raise AuditError(f"audit entry cannot be stored: {exc}") from None


@dataclass(slots=True)
class _Waiting:
    #: Entries, and their bytes.
    count: int
    body: bytes
    future: asyncio.Future[None]


class AuditSink:
    """Durable, chained, group-committed audit entries. See the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        max_batch: int = 5000,
        synchronous: str = "FULL",
        timeout_s: float = 5.0,
        linger_s: float = LINGER_S,
    ) -> None:
        """``url``: ``sqlite+aiosqlite:///FILE`` (relative to the working directory) or
        ``postgresql+asyncpg://...``. ``synchronous``: SQLite's pragma, NORMAL, FULL or EXTRA
        (PostgreSQL follows the server's ``synchronous_commit``). ``timeout_s``: longest wait for
        a lock or a connection (SQLite's busy timeout; PostgreSQL's whole commit) before the
        commit fails. ``linger_s``: see the module docstring (0: never linger)."""
        self._target = target(url)
        if max_batch < 1:
            raise ConfigError("audit.max_batch", "must be 1 or more")
        sync = synchronous.strip().upper()
        if sync not in SYNCHRONOUS_MODES:
            raise ConfigError("audit.synchronous", 'must be "FULL" (default), "NORMAL" or "EXTRA"')
        if timeout_s <= 0:
            raise ConfigError("audit.timeout", "must be more than 0 seconds")
        self.url = url
        self.max_batch = max_batch
        self.linger_s = max(0.0, linger_s)
        self._writer: Writer = (
            SqliteWriter(self._target.location, sync, timeout_s)
            if self._target.kind == "sqlite"
            else PgWriter(self._target, timeout_s)
        )
        self._queue: collections.deque[_Waiting] = collections.deque()
        self._drainer: asyncio.Task[None] | None = None
        self._state: Literal["new", "open", "closing", "closed"] = "new"
        self._last_start = -1e9  # loop time the last commit started
        #: Serialises the writer's use: commits (the writer task) and probes.
        self._io = asyncio.Lock()
        self._last_ok = time.monotonic()  # the last successful commit or probe
        #: Entries queued or being committed, not yet committed.
        self.backlog = 0
        #: Commits that succeeded, entries they wrote, and commits that failed.
        self.commits = 0
        self.entries_written = 0
        self.failures = 0
        #: Duration of the last group commit (milliseconds).
        self.last_commit_ms = 0.0
        #: False after a failed commit (or start) until a commit succeeds again.
        self.healthy = True

    @property
    def engine(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._target.kind

    @property
    def location(self) -> str:
        """The database, for status pages and logs (file path, or URL without password)."""
        return self._target.shown

    async def start(self) -> None:
        """Create the schema if absent and open the writer; AuditError if that fails."""
        if self._state == "open":
            return
        if self._state != "new":
            raise AuditError("audit sink is closed")
        try:
            await self._writer.open()
        except AuditError as exc:
            self.healthy = False
            log.error("audit_unavailable", database=self._target.shown, error=str(exc))
            raise
        self._state = "open"
        self.healthy = True
        log.info("audit_started", database=self._target.shown)

    async def record(self, entries: Sequence[AuditEntry]) -> None:
        """Return once ``entries`` are committed durably; AuditError when they were not."""
        if entries:
            self._check_open()
            await self._enqueue(len(entries), encode_group(entries))

    def submit_encoded(
        self, count: int, body: bytes, *, encoded_here: bool = False
    ) -> asyncio.Future[None]:
        """Queue ``count`` entries already in the byte format
        (:func:`rmas.audit.entry.encode_entries`) now; the future is done once they are durable
        (AuditError when they were not). The servicers queue first and build their answer
        while the commit runs. The separators are counted here (C-speed scans), so that a
        malformed call fails alone and not the calls it would share a commit with; the writers
        check each record in full. Each call's bytes start a group (a call record), so calls
        are joined as they are into one block.

        ``encoded_here``: the bytes come straight from
        :func:`~rmas.audit.entry.encode_entries` (:class:`rmas.audit.trail.AuditTrail`), whose
        output is well formed whatever its input (tests hold it to that), so the scans are
        skipped (0.2 µs a document on the hub's core). The writers still check every entry."""
        self._check_open()
        if not encoded_here and not well_formed(count, body):
            raise AuditError(f"audit entries not written: malformed entries ({count})")
        return self._enqueue(count, body)

    async def record_encoded(self, count: int, body: bytes) -> None:
        """:meth:`submit_encoded`, awaited, for bytes made elsewhere than
        :func:`rmas.audit.entry.encode_entries`: every entry is checked first, so that a
        malformed one fails this call alone."""
        if count:
            try:
                if sum(pieces(FORMAT, body)[1]) != count:
                    raise ValueError(f"not {count} entries")
            except ValueError as exc:
                raise AuditError(f"audit entries not written: malformed entries: {exc}") from None
            await self.submit_encoded(count, body)

    def _check_open(self) -> None:
        if self._state not in ("open", "closing"):
            raise AuditError(
                "audit sink is closed" if self._state == "closed" else "audit sink not started"
            )

    def _enqueue(self, count: int, body: bytes) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue.append(_Waiting(count, body, future))
        self.backlog += count
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain(), name="rmas-audit-writer")
            self._drainer.add_done_callback(self._drained)
        return future

    def _drained(self, task: asyncio.Task[None]) -> None:
        """A writer task cancelled before it ran fails what is queued. (Once running, it
        fails what it holds itself and clears ``_drainer``; the queue may then belong to a
        newer writer task, which this must not touch.)"""
        if self._drainer is task:
            self._drainer = None
            if task.cancelled() or task.exception() is not None:
                self._fail_queued()

    def _fail_queued(self, *more: _Waiting) -> None:
        for w in (*more, *self._queue):
            self.backlog -= w.count
            if not w.future.done():
                w.future.set_exception(AuditError("audit sink stopped"))
        self._queue.clear()

    async def _drain(self) -> None:
        """Commit everything queued, batch after batch, until the queue is empty."""
        queue = self._queue
        batch: list[_Waiting] = []
        loop = asyncio.get_running_loop()
        try:
            while queue:
                if self.backlog < LINGER_BELOW and self._state == "open":
                    wait = self._last_start + self.linger_s - loop.time()
                    if wait > 0:  # a tiny group while commits follow each other: let it grow
                        await asyncio.sleep(wait)
                self._last_start = loop.time()
                first = queue.popleft()
                batch = [first]
                size = first.count
                while queue and size + queue[0].count <= self.max_batch:
                    w = queue.popleft()
                    batch.append(w)
                    size += w.count
                body = first.body if len(batch) == 1 else b"".join([w.body for w in batch])
                started = time.perf_counter()
                try:
                    async with self._io:
                        await self._writer.commit(size, body)
                except Exception as exc:
                    self.backlog -= size
                    self.failures += 1
                    self.healthy = False
                    why = exc if isinstance(exc, AuditError) else reason(exc)
                    log.error("audit_commit_failed", database=self._target.shown,
                              entries=size, error=str(why))  # fmt: skip
                    for w in batch:
                        if not w.future.done():
                            w.future.set_exception(AuditError(f"audit entries not written: {why}"))
                    batch = []
                    continue
                self.last_commit_ms = (time.perf_counter() - started) * 1000.0
                self._last_ok = time.monotonic()
                self.backlog -= size
                self.commits += 1
                self.entries_written += size
                if not self.healthy:
                    self.healthy = True
                    log.info("audit_recovered", database=self._target.shown)
                for w in batch:
                    if not w.future.done():
                        w.future.set_result(None)
                batch = []
        except BaseException:  # cancelled: nobody may believe these entries were written
            self._fail_queued(*batch)
            raise
        finally:
            # Now, not in the done callback: a record() arriving before that callback runs must
            # start a new writer.
            self._drainer = None

    @property
    def idle_s(self) -> float:
        """Seconds since the last commit or probe that succeeded."""
        return time.monotonic() - self._last_ok

    async def probe(self) -> bool:
        """Whether the trail can be written now, found without adding an entry (see the
        writers' ``probe``); sets :attr:`healthy` accordingly. For health checks: a hub whose
        trail failed learns it works again without waiting for a check, and an idle hub learns
        that it stopped working before a check fails. While commits are running, they answer
        instead (the current :attr:`healthy`)."""
        if self._state != "open":
            return False
        if self._drainer is not None:
            return self.healthy
        async with self._io:
            try:
                await self._writer.probe()
            except Exception as exc:
                why = exc if isinstance(exc, AuditError) else reason(exc)
                if self.healthy:
                    log.error("audit_probe_failed", database=self._target.shown,
                              error=str(why))  # fmt: skip
                self.healthy = False
                return False
        self._last_ok = time.monotonic()
        if not self.healthy:
            self.healthy = True
            log.info("audit_recovered", database=self._target.shown, by="probe")
        return True

    async def aclose(self) -> None:
        """Commit what is queued, then close. Entries recorded while closing are still written."""
        if self._state == "closed":
            return
        if self._state == "new":
            self._state = "closed"
            await self._writer.close()
            return
        self._state = "closing"
        while (drainer := self._drainer) is not None:
            await asyncio.wait([drainer])  # neither cancels it nor raises what ended it
            if self._drainer is drainer:
                self._drainer = None
        self._state = "closed"
        await self._writer.close()
        log.info("audit_closed", database=self._target.shown, entries=self.entries_written)
