"""Per-content locks that order uploads, deletes and gc of the same bytes.

- embedded (SQLite): a file lock in the disk cache's ``locks/`` directory, shared by the
  processes of one host — the only processes that can reach that SQLite file;
- PostgreSQL: a session advisory lock, shared by every host on the database. It dies with
  its connection, so a crashed holder never blocks the others for longer than the server
  takes to notice the connection is gone.

Both wait at most ``wait_seconds`` and then yield False: callers proceed without the
lock where that is safe (the object write is put-if-absent and hash-checked) and skip
destructive steps where it is not.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from filetier.errors import FiletierError, MetadataUnavailableError
from filetier.metadata.advisory import advisory_key, lock_digest
from filetier.metadata.database import Database
from filetier.singleflight import process_lock

log = logging.getLogger(__name__)


class ContentLocks(Protocol):
    def hold(self, key: str) -> AbstractAsyncContextManager[bool]:
        """Hold the lock named ``key``: a content hash, or any string naming a resource
        (``provider:kimi:...``)."""
        ...


class FileContentLocks:
    def __init__(self, directory: Path, wait_seconds: float) -> None:
        self._dir = directory
        self._wait = wait_seconds

    def hold(self, key: str) -> AbstractAsyncContextManager[bool]:
        return process_lock(self._dir / f"{lock_digest(key)}.blob.lock", self._wait)


class AdvisoryContentLocks:
    """Session advisory locks, all on the process's one lock session
    (:class:`filetier.metadata.advisory.LockSession`)."""

    def __init__(self, db: Database, wait_seconds: float) -> None:
        self._db = db
        self._wait = wait_seconds

    @asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[bool]:
        session = self._db.lock_session
        key = advisory_key(name)
        deadline = time.monotonic() + self._wait
        try:
            async with session.queue(key, self._wait) as turn:
                got = False
                delay = 0.005
                while turn:
                    got = await session.try_lock(key)
                    left = deadline - time.monotonic()
                    if got or left <= 0:
                        break
                    await asyncio.sleep(min(delay, left))
                    delay = min(delay * 2, 0.2)
                if not got:
                    log.warning("lock %s not acquired in %.0fs", name[:24], self._wait)
                generation = session.generation
                try:
                    yield got
                finally:
                    if got:
                        if session.generation != generation:
                            # The session died while the lock was held: the lock went
                            # with it, and the holder is told (as before, when its own
                            # lock connection died and the unlock failed).
                            raise MetadataUnavailableError(
                                f"metadata database unavailable: the lock {name[:24]} was "
                                "lost with its session while it was held"
                            )
                        session.unlock(key)
        except FiletierError:
            raise  # from the body the lock guarded, or already translated
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            raise self._db.unavailable(exc) from exc


def build_content_locks(db: Database, lock_dir: Path, wait_seconds: float) -> ContentLocks:
    if db.dialect == "postgresql":
        return AdvisoryContentLocks(db, wait_seconds)
    return FileContentLocks(lock_dir, wait_seconds)
