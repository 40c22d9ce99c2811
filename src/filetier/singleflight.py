"""One in-flight fetch per key: across tasks (a shared future) and processes (a file lock).

Note: the locks are best-effort, to avoid fetching the same content twice. Correctness
does not depend on them: every fetch writes a process-unique temp file that is verified
and atomically renamed into place. A lock that cannot be had within its timeout is
skipped with a warning, never waited on forever.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Generic, TypeVar

from filetier.modes import FILE_MODE, make_dirs

log = logging.getLogger(__name__)

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Concurrent callers of ``run(key, fn)`` with the same key share one ``fn()``."""

    def __init__(self) -> None:
        self._inflight: dict[str, asyncio.Future[T]] = {}

    def __len__(self) -> int:
        return len(self._inflight)

    async def run(self, key: str, fn: Callable[[], Awaitable[T]]) -> T:
        future = self._inflight.get(key)
        if future is None:
            future = asyncio.ensure_future(fn())
            self._inflight[key] = future
            future.add_done_callback(lambda _f: self._inflight.pop(key, None))
        # shield: one caller giving up must not cancel the fetch the others wait on.
        return await asyncio.shield(future)


@asynccontextmanager
async def process_lock(
    path: Path, wait_seconds: float, files: LockFiles | None = None
) -> AsyncIterator[bool]:
    """Hold an exclusive ``flock`` on ``path``; yields False when it timed out (proceed
    unlocked). The kernel drops the lock with its holder's last descriptor, so a killed
    process never leaves it held.

    A plain non-blocking ``flock`` on the loop thread costs microseconds; the generic
    file-lock libraries' machinery around the same call cost most of a millisecond,
    which every small upload paid. Each hold has a descriptor of its own while it holds,
    so two tasks of one process exclude each other as two processes do: a new one, or
    with ``files`` an idle one kept from an earlier hold. Waiting polls.
    """
    fd = files.take(path) if files is not None else _open_lock_file(path)
    locked = False
    try:
        deadline = time.monotonic() + wait_seconds
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    log.warning(
                        "lock %s not acquired within %.0fs; continuing without it",
                        path.name,
                        wait_seconds,
                    )
                    break
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.05)
        yield locked
    finally:
        if files is None:
            os.close(fd)  # closing the only descriptor releases the lock
        else:
            if locked:
                fcntl.flock(fd, fcntl.LOCK_UN)
            files.give_back(path, fd)


class LockFiles:
    """Idle descriptors of lock files, kept open for the next hold of the same file.

    Opening a lock file (``O_CREAT`` takes its directory's lock even when the file
    exists) cost more than the ``flock`` itself, on every upload. A descriptor is here
    only while nobody holds a lock through it; at most ``keep`` stay open, the least
    recently used closed first.
    """

    def __init__(self, keep: int = 64) -> None:
        self._keep = keep
        self._idle: dict[Path, int] = {}  # insertion order: least recently used first

    def take(self, path: Path) -> int:
        fd = self._idle.pop(path, None)
        if fd is not None and os.fstat(fd).st_nlink == 0:
            # Its file was removed (the cache directory wiped): a lock on it would
            # exclude nobody who opens the path now.
            os.close(fd)
            fd = None
        return fd if fd is not None else _open_lock_file(path)

    def give_back(self, path: Path, fd: int) -> None:
        old = self._idle.pop(path, None)
        if old is not None:  # two holds of one file ended: keep one descriptor
            os.close(old)
        self._idle[path] = fd
        while len(self._idle) > self._keep:
            os.close(self._idle.pop(next(iter(self._idle))))

    def close(self) -> None:
        for fd in self._idle.values():
            os.close(fd)
        self._idle.clear()


def _open_lock_file(path: Path) -> int:
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        return os.open(path, flags, FILE_MODE)
    except FileNotFoundError:
        make_dirs(path.parent)
        return os.open(path, flags, FILE_MODE)
