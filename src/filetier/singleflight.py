"""One in-flight fetch per key: across tasks (a shared future) and processes (a file lock).

Note: the locks are best-effort, to avoid fetching the same content twice. Correctness
does not depend on them: every fetch writes a process-unique temp file that is verified
and atomically renamed into place. A lock that cannot be had within its timeout is
skipped with a warning, never waited on forever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Generic, TypeVar

from filelock import AsyncFileLock
from filelock import Timeout as FileLockTimeout

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
    """Hold an exclusive file lock; yields False when it timed out (proceed unlocked)."""
    # The flock attempt is a non-blocking syscall: made on the loop thread it costs
    # microseconds, where a worker-thread hop would cost hundreds; waiting polls.
    lock = AsyncFileLock(
        str(path), timeout=wait_seconds, run_in_executor=False, poll_interval=0.005, mode=0o600
    )
    try:
        await lock.acquire()
    except FileLockTimeout:
        log.warning(
            "lock %s not acquired within %.0fs; continuing without it", path.name, wait_seconds
        )
        yield False
        return
    try:
        yield True
    finally:
        await lock.release()
