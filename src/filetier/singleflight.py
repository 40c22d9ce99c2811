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
async def process_lock(path: Path, wait_seconds: float) -> AsyncIterator[bool]:
    """Hold an exclusive ``flock`` on ``path``; yields False when it timed out (proceed
    unlocked). The kernel drops the lock with its holder's last descriptor, so a killed
    process never leaves it held.

    A plain non-blocking ``flock`` on the loop thread costs microseconds; the generic
    file-lock libraries' machinery around the same call cost most of a millisecond,
    which every small upload paid. Each call opens its own descriptor, so two tasks of
    one process exclude each other as two processes do. Waiting polls.
    """
    fd = _open_lock_file(path)
    try:
        deadline = time.monotonic() + wait_seconds
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    log.warning(
                        "lock %s not acquired within %.0fs; continuing without it",
                        path.name,
                        wait_seconds,
                    )
                    os.close(fd)
                    fd = -1
                    break
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.05)
        yield fd >= 0
    finally:
        if fd >= 0:
            os.close(fd)  # closing the only descriptor releases the lock


def _open_lock_file(path: Path) -> int:
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        return os.open(path, flags, FILE_MODE)
    except FileNotFoundError:
        make_dirs(path.parent)
        return os.open(path, flags, FILE_MODE)
