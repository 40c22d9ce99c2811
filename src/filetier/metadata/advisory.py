"""PostgreSQL advisory-lock keys, shared by every host on the database.

They live beside the queries because both the repository (the per-owner quota lock taken
inside an insert's transaction) and :mod:`filetier.content_locks` need the same keys, and
the repository sits below them. :class:`LockSession` is the one session a process holds
its session advisory locks on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from filetier.metadata.spare import driver_error, pinged_driver

# First key of the two-int advisory lock form: keeps filetier's locks apart from any
# other application's on the same database ("ft" + 1).
ADVISORY_CLASS = 0x6674_0001


def lock_digest(key: str) -> str:
    """The hex SHA-256 naming a lock: ``key`` itself when it already is one (a content
    hash), else the hash of the name (``provider:kimi:...``)."""
    if len(key) == 64 and all(c in "0123456789abcdef" for c in key):
        return key
    return hashlib.sha256(key.encode()).hexdigest()


def advisory_key(key: str) -> int:
    """A signed 32-bit key from the name (the second int of the two-int form)."""
    value = int(lock_digest(key)[:8], 16)
    return value - (1 << 32) if value >= 1 << 31 else value


# One round trip for a whole batch: the unlocks first, then the tries, in array order.
# Sent on the asyncpg connection itself: through SQLAlchemy each batch paid its
# statement compilation, result wrapping and greenlet hops, on a path every upload takes
# twice (lock, unlock).
_BATCH = (
    "SELECT CASE WHEN t.op THEN pg_try_advisory_lock($1, t.k) "
    "ELSE pg_advisory_unlock($1, t.k) END "
    "FROM unnest($2::integer[], $3::boolean[]) "
    "WITH ORDINALITY AS t(k, op, n) ORDER BY t.n"
)


class LockSession:
    """Every session advisory lock of this process, on ONE PostgreSQL session.

    A lock costs no connection of its own: its holders only ask. Requests that arrive
    while a round trip is out go in the next one (tries and unlocks together, one
    statement). Within the process a key has a queue (an ``asyncio.Lock``), so only the
    task at its head ever asks PostgreSQL for it; the others wait here, not in retries.
    Only tries are sent (``pg_try_advisory_lock``): the session never blocks, so a lock
    held across a long S3 put delays nobody else's requests.

    The session dying (connection lost, server restarted) releases every lock it held,
    server side. The session's *generation* then moves on: the next request opens a new
    one, and a holder whose lock was taken on a dead generation is told when it lets go
    (:class:`filetier.content_locks.AdvisoryContentLocks` raises), as a holder whose own
    lock connection died was before. A holder is not told earlier, in the middle of its
    work: no more than before either.
    """

    def __init__(
        self,
        engine: AsyncEngine | None,
        translate: Callable[[BaseException], Exception] = lambda exc: RuntimeError(str(exc)),
    ) -> None:
        self._engine = engine
        # A driver's error -> the filetier error its waiters get (Database.unavailable).
        self._translate = translate
        self._conn: AsyncConnection | None = None
        self._driver: Any = None  # the asyncpg connection of _conn
        self._loop: asyncio.AbstractEventLoop | None = None
        self.generation = 0
        self._queues: dict[int, tuple[asyncio.Lock, int]] = {}
        self._tries: list[tuple[int, asyncio.Future[bool]]] = []
        self._unlocks: list[int] = []
        self._pump: asyncio.Task[None] | None = None

    def _here(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # A new event loop (asyncio.run again): nothing of the old one's is usable.
            self._loop, self._conn, self._driver, self._pump = loop, None, None, None
            self._queues, self._tries, self._unlocks = {}, [], []
            self.generation += 1

    @contextlib.asynccontextmanager
    async def queue(self, key: int, wait: float) -> AsyncIterator[bool]:
        """This process's turn for ``key`` (True), or False after ``wait`` seconds."""
        self._here()
        gate, users = self._queues.get(key, (asyncio.Lock(), 0))
        self._queues[key] = (gate, users + 1)
        try:
            if gate.locked() or users:
                try:
                    await asyncio.wait_for(gate.acquire(), timeout=max(wait, 0.0))
                except TimeoutError:
                    yield False
                    return
            else:
                # Free, and nobody queued: acquire() returns at once. (wait_for would
                # wrap it in a task of its own, for every upload, to time out nothing.)
                await gate.acquire()
            try:
                yield True
            finally:
                gate.release()
        finally:
            gate, users = self._queues[key]
            if users <= 1:
                del self._queues[key]
            else:
                self._queues[key] = (gate, users - 1)

    async def try_lock(self, key: int) -> bool:
        """One ``pg_try_advisory_lock`` for ``key``, batched with others' requests."""
        self._here()
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._tries.append((key, future))
        self._start()
        return await future

    def unlock(self, key: int) -> None:
        """Queue the unlock; a later try of the same key goes after it (same order)."""
        self._unlocks.append(key)
        self._start()

    def _start(self) -> None:
        if self._pump is None or self._pump.done():
            self._pump = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._tries or self._unlocks:
            unlocks, self._unlocks = self._unlocks, []
            tries, self._tries = self._tries, []
            keys = unlocks + [key for key, _ in tries]
            ops = [False] * len(unlocks) + [True] * len(tries)
            try:
                if self._driver is None:
                    await self._open()
                rows = await self._driver.fetch(_BATCH, ADVISORY_CLASS, keys, ops)
            except BaseException as exc:
                # Whatever the session held is gone with it (or will be once it closes).
                await self._lose()
                error = self._translate(exc) if driver_error(exc) else exc
                for _, future in tries:
                    if not future.done():
                        future.set_exception(error)
                if not isinstance(exc, Exception):
                    raise
                continue
            for (key, future), (got,) in zip(tries, rows[len(unlocks) :], strict=True):
                if future.done():  # the asker was cancelled meanwhile: give it back
                    if got:
                        self._unlocks.append(key)
                else:
                    future.set_result(bool(got))

    async def _open(self) -> None:
        """A new session. Its engine does not ping (the session lives for the process),
        so it is pinged here once: a connection the pool kept may have died meanwhile."""
        assert self._engine is not None
        self._conn = await self._engine.connect()
        self._driver = await pinged_driver(self._conn)

    async def _lose(self) -> None:
        self._driver = None
        conn, self._conn = self._conn, None
        if conn is not None:  # (no session, no holder: a failed connect loses nothing)
            self.generation += 1
            with contextlib.suppress(Exception):
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()

    async def close(self) -> None:
        """Send the queued unlocks, then close the session (which drops any lock left)."""
        if self._pump is not None and self._loop is asyncio.get_running_loop():
            with contextlib.suppress(Exception):
                await asyncio.shield(self._pump)
        conn, self._conn, self._driver = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()
