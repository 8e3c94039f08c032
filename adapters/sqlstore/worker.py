"""Parsing a large CSV in a worker process while this one writes (the other core does the
parsing). The worker is a plain interpreter started with :data:`WORKER_CODE`; it sends
length-prefixed chunks of validated rows on its stdout."""

from __future__ import annotations

import asyncio
import contextlib
import marshal
import os
import pickle
import stat
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TextIO

from adapters.sqlstore import csvrows
from adapters.sqlstore.csvrows import CsvChunks, Row, open_csv
from rmas.errors import StoreError

__all__ = ["CHUNK_BYTES", "WORKER_CODE", "WORKER_MIN_BYTES", "CsvSource", "worker_main"]

# Read buffer for a worker's chunks (about 2 MB each): fewer pauses of the pipe's transport.
CHUNK_BYTES = 4 << 20

#: Files at least this large are parsed in a worker process. Starting one costs about 0.5 s
#: (a fresh interpreter importing this module); parsing 400,000 rows here costs more than that.
WORKER_MIN_BYTES = 16 << 20

# The worker is a plain interpreter running this module's worker_main: not multiprocessing,
# whose "spawn" re-runs the caller's __main__ script in the child (and "fork" would copy a
# process that runs threads).
WORKER_CODE = "from adapters.sqlstore.worker import worker_main; worker_main()"


class CsvSource:
    """The validated chunks of a CSV file, parsed on this thread or, for a large file, in a worker
    process, so that parsing (CSV, validation) runs on the other core while this process binds
    and writes. The worker sends whole chunks through a pipe, in marshal format for SQLite's
    text-only rows (cheaper to unpack than pickle) and pickle for PostgreSQL's rows with dates. A
    chunk in the pipe, one parsed ahead and one being written are all that is ever held in
    memory. (Figures: docs/benchmarks.md, "Economy stores at national scale".)
    """

    def __init__(self, path: Path, *, every_column: bool, iso_dates: bool) -> None:
        self.path, self.every_column, self.iso_dates = path, every_column, iso_dates
        self.rejected: list[tuple[int, str]] = []
        self.duplicates = 0
        self.loaded = 0
        self._worker: asyncio.subprocess.Process | None = None
        try:
            self._file: TextIO | None = open_csv(path)
        except OSError as exc:
            raise StoreError(f"{path}: cannot read: {exc.strerror}") from None
        try:
            info = os.fstat(self._file.fileno())
            # The header is checked here, before the store is touched, whoever parses the rest.
            self._parser = CsvChunks(self._file, every_column=every_column, iso_dates=iso_dates)
        except BaseException:
            self._file.close()
            raise
        self.columns = self._parser.columns
        # Only a regular file can be read again from the start by the worker.
        self.in_worker = stat.S_ISREG(info.st_mode) and info.st_size >= WORKER_MIN_BYTES

    async def chunks(self) -> AsyncIterator[list[Row]]:
        if not self.in_worker:
            parser = self._parser
            try:
                for chunk in parser:
                    yield chunk
            finally:
                self.rejected, self.duplicates = parser.rejected, parser.duplicates
                self.loaded = parser.loaded
            return
        self._close_file()
        self._worker = worker = await asyncio.create_subprocess_exec(
            sys.executable, "-c", WORKER_CODE, str(self.path), str(csvrows.CHUNK_ROWS),
            "every" if self.every_column else "present", "iso" if self.iso_dates else "date",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, limit=CHUNK_BYTES,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
        )  # fmt: skip
        assert worker.stdout is not None
        decode: Callable[[bytes], Any] = marshal.loads if self.iso_dates else pickle.loads
        while True:
            try:
                size = int.from_bytes(await worker.stdout.readexactly(8), "little")
                message = decode(await worker.stdout.readexactly(size))
            except asyncio.IncompleteReadError:
                code = await worker.wait()
                raise StoreError(f"the CSV parser process stopped (exit code {code})") from None
            if message[0] == "error":
                raise StoreError(message[1])
            self.rejected.extend(message[-1])
            if message[0] == "end":
                self.loaded, self.duplicates = message[1], message[2]
                return
            yield message[1]

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    async def aclose(self) -> None:
        self._close_file()
        worker, self._worker = self._worker, None
        if worker is not None:
            if worker.returncode is None:
                worker.kill()  # still parsing for an import that has failed or been cancelled
            await worker.wait()


def worker_main() -> None:
    """The worker process of ``CsvSource``: parse ``argv[1]``, and write length-prefixed chunks
    (with the rejects found so far) to stdout, then the totals."""
    path, chunk_rows, columns, dates = sys.argv[1:5]
    # The frames own stdout: anything else printed in this process goes to stderr instead.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    iso = dates == "iso"
    encode: Callable[[Any], bytes] = (
        marshal.dumps if iso else lambda obj: pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
    )

    def send(message: tuple[Any, ...]) -> None:
        data = encode(message)
        out.write(len(data).to_bytes(8, "little"))
        out.write(data)
        out.flush()

    try:
        with open_csv(Path(path)) as source:
            parser = CsvChunks(
                source, int(chunk_rows), every_column=columns == "every", iso_dates=iso
            )
            sent = 0
            for chunk in parser:
                send(("rows", chunk, parser.rejected[sent:]))
                sent = len(parser.rejected)
            send(("end", parser.loaded, parser.duplicates, parser.rejected[sent:]))
    except BrokenPipeError:
        pass  # the parent stopped reading: it has given up on this import
    except (StoreError, OSError) as exc:
        reason = str(exc) if isinstance(exc, StoreError) else f"{path}: cannot read: {exc}"
        with contextlib.suppress(OSError):
            send(("error", reason))
