"""Files rmas creates that hold records or secrets are its owner's alone.

- Audit trails and SQL store files (SQLite) are created with mode 0600 before SQLite opens them;
  SQLite gives their ``-wal`` and ``-shm`` side files the mode of the database file.
- Folders rmas creates for such files (``rmas certs init DIR``, the demo's work folder) are 0700.
- A file that exists already keeps its mode (the operator chose it); key files readable by group
  or others are reported at start-up (:func:`readable_by_others`).

The modes are set explicitly (``fchmod``/``chmod``), whatever the process's umask.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["PRIVATE_DIR", "PRIVATE_FILE", "create_private", "private_dir", "readable_by_others"]

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def private_dir(path: str | Path) -> None:
    """Make ``path`` and its missing parents, each folder it creates with mode 0700."""
    missing: list[Path] = []
    p = Path(path)
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, PRIVATE_DIR)
        except FileExistsError:
            continue
        os.chmod(d, PRIVATE_DIR)  # mkdir's mode goes through the umask


def create_private(path: str | Path) -> bool:
    """Create ``path`` empty with mode 0600 unless it exists; True when this call created it.

    Its folder must exist (a missing folder is the caller's error to report, as SQLite would).
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, PRIVATE_FILE)  # open's mode goes through the umask
    finally:
        os.close(fd)
    return True


def readable_by_others(path: str | Path) -> int | None:
    """The file's permission bits when group or others may read or write it; else None (also
    when it cannot be examined)."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None
    return mode if mode & 0o066 else None
