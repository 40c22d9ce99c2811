"""Per-content locks that order uploads, deletes and gc of the same bytes.

- embedded (SQLite): a file lock in the disk cache's ``locks/`` directory, shared by the
  processes of one host — the only processes that can reach that SQLite file. The files
  are a fixed set of stripes (1,024 for content hashes, 256 for named locks), so the
  directory never grows past 1,280 files and an upload of new content creates none once
  its stripe exists. Two keys on one stripe exclude each other (rarely: 1 in 1,024); a
  task that already holds a stripe takes it again at once (re-entrant), so one task can
  never deadlock itself on two keys;
- PostgreSQL: a session advisory lock, shared by every host on the database. It dies with
  its connection, so a crashed holder never blocks the others for longer than the server
  takes to notice the connection is gone.

Both wait at most ``wait_seconds`` and then yield False. Nothing that records a file or
changes a stored object proceeds without the lock: an upload or a hash-first link is
refused (``StoreBusyError``), an end of content, a quarantine or a repair is skipped (gc
and verify look again later).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from filetier.errors import FiletierError, MetadataUnavailableError
from filetier.metadata.advisory import advisory_key
from filetier.metadata.database import Database
from filetier.singleflight import process_lock

log = logging.getLogger(__name__)


class ContentLocks(Protocol):
    def hold(self, key: str) -> AbstractAsyncContextManager[bool]:
        """Hold the lock named ``key``: a content hash, or any string naming a resource
        (``provider:kimi:...``)."""
        ...


# Lock files: a fixed set, whatever the number of contents stored.
CONTENT_STRIPES = 1024
NAMED_STRIPES = 256
_HEX = "0123456789abcdef"


def stripe_name(key: str) -> str:
    """The lock file (in the lock directory) that guards ``key``."""
    if len(key) == 64 and not key.strip(_HEX):  # a content hash: its bits are random
        return f"content-{int(key[:8], 16) % CONTENT_STRIPES:04d}.lock"
    digest = hashlib.sha256(key.encode()).digest()
    return f"named-{int.from_bytes(digest[:4], 'big') % NAMED_STRIPES:03d}.lock"


class _Stripe:
    """This process's hold on one stripe: the task holding it (and how deep), the tasks
    waiting for it."""

    __slots__ = ("depth", "file_locked", "gate", "owner", "waiting")

    def __init__(self) -> None:
        self.gate = asyncio.Lock()
        self.owner: asyncio.Task[object] | None = None
        self.depth = 0
        self.file_locked = False
        self.waiting = 0


class FileContentLocks:
    """Striped file locks: tasks of this process queue on the stripe's in-process gate
    (a free one is taken without yielding to the loop), and the task that passes it takes
    the stripe's ``flock`` for the process. Only stripes in use are kept in memory."""

    def __init__(self, directory: Path, wait_seconds: float) -> None:
        self._dir = directory
        self._wait = wait_seconds
        self._stripes: dict[str, _Stripe] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[bool]:
        name = stripe_name(key)
        task = asyncio.current_task()
        stripe = self._stripes.get(name)
        if stripe is not None and task is not None and stripe.owner is task:
            # This task holds the stripe already (another key on it, or the same key).
            stripe.depth += 1
            try:
                yield stripe.file_locked
            finally:
                stripe.depth -= 1
            return
        if stripe is None:
            stripe = self._stripes[name] = _Stripe()
        deadline = time.monotonic() + self._wait
        if not await self._pass_gate(stripe, name):
            yield False
            return
        try:
            stripe.owner, stripe.depth = task, 1
            async with process_lock(
                self._dir / name, max(0.0, deadline - time.monotonic())
            ) as locked:
                stripe.file_locked = locked
                yield locked
        finally:
            stripe.owner, stripe.depth, stripe.file_locked = None, 0, False
            stripe.gate.release()
            self._forget_if_idle(name, stripe)

    async def _pass_gate(self, stripe: _Stripe, name: str) -> bool:
        if not stripe.gate.locked() and stripe.waiting == 0:
            # Free, and nobody queued: acquire() returns without suspending.
            await stripe.gate.acquire()
            return True
        stripe.waiting += 1
        try:
            await asyncio.wait_for(stripe.gate.acquire(), self._wait)
        except TimeoutError:
            log.warning(
                "lock %s not acquired within %.0fs; continuing without it", name, self._wait
            )
            return False
        finally:
            stripe.waiting -= 1
            self._forget_if_idle(name, stripe)  # the last waiter may have given up
        return True

    def _forget_if_idle(self, name: str, stripe: _Stripe) -> None:
        if stripe.waiting == 0 and not stripe.gate.locked() and self._stripes.get(name) is stripe:
            del self._stripes[name]


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
