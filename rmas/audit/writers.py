"""The hub's end of the audit writers: the SQLite writer process, and PostgreSQL in process.

- **SQLite** (:class:`SqliteWriter`): a process of its own (:mod:`rmas.audit.writer`), fed
  over a pipe. A commit is one frame out (the entry count and the entries' bytes, in the
  format of new blocks, as :func:`rmas.audit.entry.encode_entries` or
  :func:`rmas.audit.format.encode` made them) and one back (the new head). A writer that dies
  fails the commit it held (AuditError: those checks get no answer) and a new one is started
  for the next commit; it reopens the file only if it still exists (a lost database is an
  error, never a fresh chain). The writer ends when its input closes: after ``close()``, or
  when the hub process dies, however it dies.
- **PostgreSQL** (:class:`PgWriter`): one asyncpg connection in the hub, which seals the block
  (:func:`rmas.audit.format.seal`) and inserts it under an advisory lock. asyncpg does its I/O
  on the event loop without a thread, and the server does the storing, so a process of its own
  would save the hub little.

Both append to the same table (:data:`rmas.audit.format.TABLE`) under an exclusive lock, so
that hub processes sharing a database form one chain.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final, Protocol, cast

from rmas.audit import writer as _w
from rmas.audit.format import GENESIS, OLD_TABLES, TABLE, TAIL_SQL, seal, table_ddl
from rmas.audit.target import Target, reason
from rmas.errors import AuditError
from rmas.fileperm import create_private

__all__ = ["PG_LOCK_KEY", "PgWriter", "SqliteWriter", "Writer"]

#: PostgreSQL advisory lock serialising chain appends (and table creation) in one database.
PG_LOCK_KEY: Final = int.from_bytes(
    hashlib.sha256(b"rmas.audit.chain").digest()[:8], "big", signed=True
)
_PG_INSERT = f"INSERT INTO {TABLE} VALUES ($1, $2, $3, $4, $5, $6, $7)"

#: The writer process's program, run by path (it imports nothing from rmas).
WRITER_SCRIPT: Final = str(Path(_w.__file__ or "writer.py").resolve())
#: After a writer failed to start, commits and probes fail at once for this long.
RESTART_BACKOFF_S: Final = 1.0
#: Capacity asked for the pipe to the writer (Linux's default limit for unprivileged users).
_PIPE_BYTES: Final = 1 << 20


class Writer(Protocol):
    async def open(self) -> None: ...
    async def commit(self, count: int, body: bytes) -> None: ...
    async def probe(self) -> None: ...
    async def close(self) -> None: ...


class WriterProcess(asyncio.SubprocessProtocol):
    """The hub's end of one writer process: requests go out on a pipe to its stdin, replies come
    back on its stdout in the same order, each resolving the oldest waiting future.

    Requests are written with ``os.writev`` straight from their parts (the group is the
    largest: 100-250 KB for a manifest) into a pipe enlarged to 1 MiB where Linux allows, so a
    group usually leaves in one system call and is copied once, by the kernel; a transport's
    write would first join the parts, and a 64 KiB pipe takes a manifest in three rounds.
    What the pipe does not take now is written when it becomes writable.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, write_fd: int) -> None:
        self._loop = loop
        self._transport: asyncio.SubprocessTransport | None = None
        self._fd = write_fd  # -1 once closed
        self._unsent: collections.deque[memoryview] = collections.deque()
        self._close_when_sent = False
        self._buf = bytearray()
        self._waiting: collections.deque[asyncio.Future[bytes]] = collections.deque()
        self._stderr = b""
        self._killed = False
        self.exited: asyncio.Future[None] = loop.create_future()

    @property
    def alive(self) -> bool:
        """Running, taking requests, and not being stopped (a killed process, or one whose
        input is closed, may not have exited yet)."""
        return not self.exited.done() and not self._killed and self._fd >= 0

    @property
    def pid(self) -> int | None:
        return self._transport.get_pid() if self._transport is not None else None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # cast, not isinstance: uvloop's transports do not derive from asyncio's classes.
        self._transport = cast(asyncio.SubprocessTransport, transport)

    def _send(self, parts: list[bytes]) -> None:
        if self._fd < 0:
            raise AuditError("audit writer process stopped")
        if not self._unsent:
            try:
                sent = os.writev(self._fd, parts)
            except BlockingIOError:
                sent = 0
            except OSError:  # the writer is gone; process_exited tells the callers why
                self._close_input()
                raise AuditError("audit writer process stopped") from None
            for part in parts:
                if sent >= len(part):
                    sent -= len(part)
                    continue
                self._unsent.append(memoryview(part)[sent:])
                sent = 0
            if self._unsent:
                self._loop.add_writer(self._fd, self._flush)
        else:
            self._unsent.extend(memoryview(p) for p in parts)

    def _flush(self) -> None:
        """The pipe can take more: write what waits."""
        unsent = self._unsent
        try:
            sent = os.writev(self._fd, list(unsent)[:64])
        except BlockingIOError:
            return
        except OSError:  # a frame cut short must never be followed by another: stop it
            self.kill()  # its callers learn it from process_exited
            return
        while unsent and sent >= len(unsent[0]):
            sent -= len(unsent.popleft())
        if unsent and sent:
            unsent[0] = unsent[0][sent:]
        if not unsent:
            self._loop.remove_writer(self._fd)
            if self._close_when_sent:
                self._close_input()

    def _close_input(self) -> None:
        """End the writer's input (it finishes what it has, then exits)."""
        if self._fd < 0:
            return
        if self._unsent:
            self._loop.remove_writer(self._fd)
            self._unsent.clear()
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = -1

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        assert isinstance(data, bytes)
        if fd == 2:  # a crash's traceback: kept short, for the message when the process ends
            self._stderr = (self._stderr + data)[-2000:]
            return
        buf = self._buf
        buf += data
        while len(buf) >= _w.HEADER.size:
            size, kind = _w.HEADER.unpack_from(buf)
            end = _w.HEADER.size + size
            if len(buf) < end:
                break
            payload = bytes(buf[_w.HEADER.size : end])
            del buf[:end]
            if not self._waiting:  # a reply to nothing: the writer is confused, stop it
                self.kill()
                return
            future = self._waiting.popleft()
            if future.done():  # its caller was cancelled
                continue
            if kind == ord("K"):
                future.set_result(payload)
            else:
                future.set_exception(AuditError(payload.decode("utf-8", "replace")))

    def process_exited(self) -> None:
        assert self._transport is not None
        code = self._transport.get_returncode()
        detail = self._stderr.decode("utf-8", "replace").strip().splitlines()
        why = f"audit writer process stopped (exit code {code})" + (
            f": {detail[-1]}" if detail else ""
        )
        self._close_input()
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(AuditError(why))
        if not self.exited.done():
            self.exited.set_result(None)

    async def request(self, kind: bytes, *payload: bytes, timeout_s: float) -> bytes:
        """Send one frame; its reply's payload, or AuditError (the writer's, or its death).

        A writer that has not replied within ``timeout_s`` (a disk that hangs) is killed: its
        callers get an AuditError rather than waiting for ever.
        """
        if not self.alive or self._fd < 0:
            raise AuditError("audit writer process stopped")
        self._send([_w.HEADER.pack(sum(map(len, payload)), kind[0]), *payload])
        future: asyncio.Future[bytes] = self._loop.create_future()
        self._waiting.append(future)
        timer = self._loop.call_later(timeout_s, self._stuck, future, timeout_s)
        try:
            reply = await future
        except asyncio.CancelledError:
            # The frame is sent: the writer must still answer it in time (it may hold the
            # database's write lock), so the timer stays and _stuck checks for its reply.
            raise
        except BaseException:
            timer.cancel()
            raise
        timer.cancel()
        return reply

    def _stuck(self, future: asyncio.Future[bytes], timeout_s: float) -> None:
        if future in self._waiting:  # no reply yet (a reply removes its future)
            if not future.done():
                future.set_exception(
                    AuditError(f"no reply from the audit writer in {timeout_s:g} s")
                )
            self.kill()  # its other callers learn it from process_exited

    async def close(self, timeout_s: float) -> None:
        """Close its input (it finishes what it has, then exits); kill it if it does not."""
        if self._unsent:
            self._close_when_sent = True
        else:
            self._close_input()
        try:
            await asyncio.wait_for(asyncio.shield(self.exited), timeout_s)
        except TimeoutError:
            self.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.exited), 5.0)
        finally:  # cancelled too: the transport's pipes must not outlive it
            if self._transport is not None:
                self._transport.close()

    def kill(self) -> None:
        if self._transport is not None and not self.exited.done() and not self._killed:
            self._killed = True
            with contextlib.suppress(ProcessLookupError):
                self._transport.kill()
        self._close_input()


class SqliteWriter:
    """SQLite through a writer process (:mod:`rmas.audit.writer`): a commit is one frame out and
    one back. A dead writer fails the commit it held and is started again for the next one,
    which opens the file only if it still exists."""

    def __init__(self, path: str, synchronous: str, timeout_s: float) -> None:
        self.path = path
        self.synchronous = synchronous
        self.timeout_s = timeout_s
        #: The pragmas the writer reported at its last start (journal_mode, synchronous).
        self.pragmas: dict[str, Any] = {}
        #: Longest wait for a reply: the lock's wait, then time for a slow disk.
        self.reply_timeout_s = timeout_s + max(5.0, timeout_s)
        self._proc: WriterProcess | None = None
        #: After a failed restart: until when (loop time) to fail at once, and why.
        self._start_failed: tuple[float, str] | None = None

    @property
    def pid(self) -> int | None:
        """The writer process's id, while there is one."""
        return self._proc.pid if self._proc is not None and self._proc.alive else None

    async def _start(self, create: bool) -> None:
        loop = asyncio.get_running_loop()
        read_fd, write_fd = os.pipe()
        made: list[WriterProcess] = []  # the protocol, once made, owns write_fd

        def protocol() -> WriterProcess:
            made.append(WriterProcess(loop, write_fd))
            return made[0]

        try:
            with contextlib.suppress(AttributeError, OSError):  # Linux only; a hint
                import fcntl

                fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
            os.set_blocking(write_fd, False)
            _transport, proc = await loop.subprocess_exec(
                protocol, sys.executable, "-I", WRITER_SCRIPT,
                stdin=read_fd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
        except BaseException as exc:  # cancelled too: no descriptor may leak, none close twice
            if made:
                made[0].kill()
            else:
                os.close(write_fd)
            if isinstance(exc, OSError):
                raise AuditError(f"audit writer process cannot start: {reason(exc)}") from exc
            raise
        finally:
            os.close(read_fd)  # the child has its copy
        options = {
            "path": self.path,
            "synchronous": self.synchronous,
            "timeout_s": self.timeout_s,
            "create": create,
        }
        try:
            reply = await proc.request(
                b"O", json.dumps(options).encode(), timeout_s=self.reply_timeout_s
            )
        except BaseException:
            await proc.close(1.0)
            raise
        self.pragmas = json.loads(reply)
        self._proc = proc

    async def open(self) -> None:
        with contextlib.suppress(OSError):  # 0600 from the start; the writer reports what fails
            create_private(self.path)
        await self._start(True)

    async def _ready(self) -> WriterProcess:
        """The running writer, started again if it died; after a failed start, the same
        failure again for :data:`RESTART_BACKOFF_S` without trying (commits and health probes
        would otherwise start an interpreter each, on a database that is not there)."""
        proc = self._proc
        if proc is not None and proc.alive:
            return proc
        loop = asyncio.get_running_loop()
        if self._start_failed is not None and loop.time() < self._start_failed[0]:
            raise AuditError(self._start_failed[1])
        if proc is not None:
            self._proc = None
            await proc.close(1.0)
        try:
            await self._start(False)
        except AuditError as exc:
            self._start_failed = (loop.time() + RESTART_BACKOFF_S, str(exc))
            raise
        self._start_failed = None
        proc = self._proc
        assert proc is not None
        return proc

    async def commit(self, count: int, body: bytes) -> None:
        proc = await self._ready()
        reply = await proc.request(
            b"C", _w.COMMIT_HEAD.pack(count), body, timeout_s=self.reply_timeout_s
        )
        if len(reply) != _w.HEAD_SEQ.size + 64:  # never seen: the replies would be out of step
            proc.kill()
            raise AuditError("the audit writer's reply does not answer a commit")

    async def probe(self) -> None:
        proc = await self._ready()
        if await proc.request(b"P", timeout_s=self.reply_timeout_s) != b"":
            proc.kill()
            raise AuditError("the audit writer's reply does not answer a probe")

    async def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            await proc.close(self.timeout_s + 10.0)


class PgWriter:
    """One asyncpg connection in the hub's process; a commit is four round trips under the
    advisory lock: BEGIN and the lock, the tail, the block, COMMIT."""

    def __init__(self, target: Target, timeout_s: float) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self._conn: Any = None

    async def _connect(self) -> Any:
        import asyncpg

        try:
            return await asyncpg.connect(
                self.target.location,
                timeout=self.timeout_s,
                server_settings={"application_name": "rmas-audit"},
            )
        except Exception as exc:
            raise AuditError(
                f"audit database {self.target.shown} unreachable: {reason(exc)}"
            ) from exc

    async def open(self) -> None:
        conn = await self._connect()
        try:
            async with asyncio.timeout(self.timeout_s):
                if await conn.fetchval(f"SELECT to_regclass('{OLD_TABLES[0]}')") is not None:
                    raise AuditError(
                        f"audit database {self.target.shown} has the layout of an earlier rmas: "
                        "with no hub writing to it, run `rmas audit migrate --url URL` once"
                    )
                if await conn.fetchval(f"SELECT to_regclass('{TABLE}')") is None:
                    async with conn.transaction():
                        await conn.execute(f"SELECT pg_advisory_xact_lock({PG_LOCK_KEY})")
                        await conn.execute(table_ddl("postgresql"))
                await conn.fetchrow(TAIL_SQL)  # fails now if the table is foreign
        except AuditError:
            conn.terminate()
            raise
        except Exception as exc:
            conn.terminate()
            raise AuditError(f"audit database {self.target.shown} unusable: {reason(exc)}") from exc
        self._conn = conn

    async def commit(self, count: int, body: bytes) -> None:
        async with self._session("commit") as conn:
            # BEGIN and the lock in one round trip (simple query protocol); the tail must be
            # read by a later statement, whose snapshot sees the previous holder's commit.
            await conn.execute(f"BEGIN; SELECT pg_advisory_xact_lock({PG_LOCK_KEY})")
            tail = await conn.fetchrow(TAIL_SQL)
            seq, prev = (tail[0], tail[1]) if tail else (0, GENESIS)
            try:
                block = seal(prev, seq, count, body)
            except ValueError as exc:
                raise AuditError(f"malformed entries: {exc}") from None
            await conn.execute(_PG_INSERT, *block.row())
            await conn.execute("COMMIT")

    async def probe(self) -> None:
        """What a commit needs, without adding an entry: the connection, the advisory lock,
        the table's insert lock, a transaction id (refused by a read-only standby) and a
        commit (a WAL record)."""
        async with self._session("probe") as conn:
            await conn.execute(
                f"BEGIN; SELECT pg_advisory_xact_lock({PG_LOCK_KEY}); "
                f"LOCK TABLE {TABLE} IN ROW EXCLUSIVE MODE; SELECT txid_current(); COMMIT"
            )

    @contextlib.asynccontextmanager
    async def _session(self, what: str) -> AsyncIterator[Any]:
        """The connection (reconnected if lost) for one transaction, within ``timeout_s``.
        On any failure the connection is dropped, whatever state the transaction is in: a
        fresh one is simplest and safe (the server rolls back what this one left open)."""
        conn = self._conn
        if conn is None or conn.is_closed():
            self._conn = conn = await self._connect()
        try:
            async with asyncio.timeout(self.timeout_s):
                yield conn
        except BaseException as exc:
            self._conn = None
            conn.terminate()
            if isinstance(exc, TimeoutError):
                raise AuditError(
                    f"no {what} within {self.timeout_s:g} s (database locked, slow or gone)"
                ) from exc
            raise

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), self.timeout_s)
            except Exception:
                conn.terminate()
