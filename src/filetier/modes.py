"""File modes: what filetier creates on disk is readable by its own user only.

Objects, the SQLite database, caches and delivered copies hold every owner's bytes, so
they must not depend on the umask of whoever starts the process (``umask 000`` in a
container entrypoint is common). Modes given at creation can only lose bits to the
umask, never gain them, so creating files ``0600`` and directories ``0700`` is enough:
no ``chmod`` after the fact, and no window in which a file is briefly open to others.

SQLite creates its ``-wal`` and ``-shm`` files with the mode of the database file, so
creating that file ``0600`` first covers all three.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

#: Files filetier creates: objects, temps, cache copies, deliveries, the database.
FILE_MODE = 0o600
#: Directories filetier creates, including every missing parent on the way.
DIR_MODE = 0o700


def make_dirs(path: Path) -> Path:
    """``mkdir -p path``, each directory it creates ``0700`` (``Path.mkdir(parents=True)``
    would create the parents with the umask's mode). Existing ones are left as they are."""
    missing: list[Path] = []
    current = path
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # created meanwhile: fine
            directory.mkdir(DIR_MODE)
    return path


def create_file(path: Path) -> None:
    """Create ``path`` empty and ``0600`` if it does not exist yet."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE))


def open_new(path: Path) -> int:
    """A new file, ``O_EXCL``, ``0600``; returns the write fd."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """Write all of ``data`` (``os.write`` may write less than it is given)."""
    view = memoryview(data)
    written = 0
    while written < len(view):
        written += os.write(fd, view[written:])
