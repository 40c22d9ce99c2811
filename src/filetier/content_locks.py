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

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from filetier.errors import FiletierError
from filetier.metadata.advisory import ADVISORY_CLASS, advisory_key, lock_digest
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
    def __init__(self, db: Database, wait_seconds: float) -> None:
        self._db = db
        self._wait = wait_seconds

    @asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[bool]:
        key = {"c": ADVISORY_CLASS, "k": advisory_key(name)}
        engine = self._db.lock_engine
        assert engine is not None
        try:
            conn = engine.connect()
            try:
                await conn.start()
            except sa.exc.TimeoutError:
                # Every lock connection is in use: as with a lock not had in time, go on
                # without it (writes are put-if-absent; destructive steps are skipped).
                log.warning("no connection free for lock %s; continuing without it", name[:24])
                yield False
                return
            try:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                deadline = time.monotonic() + self._wait
                delay = 0.005
                while True:
                    got = (
                        await conn.execute(sa.text("SELECT pg_try_advisory_lock(:c, :k)"), key)
                    ).scalar_one()
                    if got or time.monotonic() >= deadline:
                        break
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 0.2)
                if not got:
                    log.warning("lock %s not acquired in %.0fs", name[:24], self._wait)
                try:
                    yield bool(got)
                finally:
                    if got:
                        try:
                            await conn.execute(sa.text("SELECT pg_advisory_unlock(:c, :k)"), key)
                        except BaseException:
                            # Still holding the lock: never back into the pool with it.
                            await asyncio.shield(conn.invalidate())
                            raise
            finally:
                # Shielded: a cancelled caller must not leave the connection unclosed.
                await asyncio.shield(conn.close())
        except FiletierError:
            raise  # from the body the lock guarded, or already translated
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            raise self._db.unavailable(exc) from exc


def build_content_locks(db: Database, lock_dir: Path, wait_seconds: float) -> ContentLocks:
    if db.dialect == "postgresql":
        return AdvisoryContentLocks(db, wait_seconds)
    return FileContentLocks(lock_dir, wait_seconds)
