"""The content-lock contract, against both implementations.

filetier orders uploads, deletes and gc of the same bytes with a per-content lock: a file
lock in the disk cache (embedded, one host) or a PostgreSQL session advisory lock (shared
by every host on the database). Both must: exclude a second holder of the same key (in
this process and in another), leave other keys free, give up after their wait and say so
(``False``, with a warning naming the lock), and let go when the holder leaves its block,
raises, or its process dies.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

import pytest

from filetier import Settings
from filetier.content_locks import (
    AdvisoryContentLocks,
    ContentLocks,
    FileContentLocks,
    stripe_name,
)
from filetier.metadata.database import Database
from testbed.services import create_database, drop_database
from tests.support.procs import Child

KEY = "ab" * 32  # a content hash
WAIT = 0.5


@dataclass
class Family:
    kind: str  # "file" | "postgresql"
    target: str  # the lock directory, or the database URL the child opens

    def locks(self, db: Database | None, wait: float = WAIT) -> ContentLocks:
        if db is not None:
            return AdvisoryContentLocks(db, wait)
        return FileContentLocks(Path(self.target), wait)


@pytest.fixture(params=["file", "postgresql"])
async def family(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Family, Database | None]]:
    if request.param == "file":
        directory = tmp_path / "locks"
        directory.mkdir()
        yield Family("file", str(directory)), None
        return
    # A fresh database (created from a thread: the helper runs its own event loop).
    pg_url = await asyncio.to_thread(create_database)
    url = Settings(home=tmp_path / "home", database_url=pg_url).database_url
    db = Database(url)
    try:
        yield Family("postgresql", url), db
    finally:
        await db.close()
        await asyncio.to_thread(drop_database, pg_url)


def hold(locks: ContentLocks, key: str = KEY) -> AbstractAsyncContextManager[bool]:
    return locks.hold(key)


@pytest.fixture
def child_holding(
    family: tuple[Family, Database | None], tmp_path: Path
) -> Iterator[tuple[Child, Path]]:
    """A child process holding KEY; create the returned go file to make it let go."""
    fam, _ = family
    go = tmp_path / "go"
    with Child("hold_lock", fam.kind, fam.target, KEY, go, env=_env(), cwd=tmp_path) as child:
        assert child.expect("held")["got"] is True
        yield child, go


def _env() -> dict[str, str]:
    return dict(os.environ)


async def test_a_second_holder_in_the_same_process_waits_then_gets_false(
    family: tuple[Family, Database | None], caplog: pytest.LogCaptureFixture
) -> None:
    fam, db = family
    first, second = fam.locks(db), fam.locks(db)
    async with hold(first) as got:
        assert got is True
        started = time.monotonic()
        with caplog.at_level(logging.WARNING):
            async with hold(second) as also:
                waited = time.monotonic() - started
                assert also is False
        assert WAIT * 0.8 <= waited < WAIT + 5
        assert any("not acquired" in r.getMessage() for r in caplog.records), caplog.text


async def test_other_keys_are_not_blocked(family: tuple[Family, Database | None]) -> None:
    fam, db = family
    locks = fam.locks(db)
    async with hold(locks) as got, hold(fam.locks(db), "cd" * 32) as other:
        assert got is True and other is True


async def test_released_on_exit_and_on_an_exception(
    family: tuple[Family, Database | None],
) -> None:
    fam, db = family
    locks = fam.locks(db)
    async with hold(locks) as got:
        assert got is True
    async with hold(locks) as again:
        assert again is True
    with pytest.raises(RuntimeError):
        async with hold(locks):
            raise RuntimeError("the guarded work failed")
    async with hold(locks) as after_error:
        assert after_error is True


async def test_a_waiter_gets_the_lock_once_the_holder_lets_go(
    family: tuple[Family, Database | None],
) -> None:
    fam, db = family
    release = asyncio.Event()
    held = asyncio.Event()

    async def holder() -> None:
        async with hold(fam.locks(db)) as got:
            assert got is True
            held.set()
            await release.wait()

    task = asyncio.create_task(holder())
    await held.wait()
    asyncio.get_running_loop().call_later(0.2, release.set)
    async with hold(fam.locks(db, wait=10)) as got:
        assert got is True and release.is_set()
    await task


async def test_another_process_holding_the_key_excludes_this_one_until_it_lets_go(
    family: tuple[Family, Database | None], child_holding: tuple[Child, Path]
) -> None:
    fam, db = family
    child, go = child_holding
    async with hold(fam.locks(db)) as got:
        assert got is False
    go.touch()
    child.expect("released")
    async with hold(fam.locks(db, wait=10)) as got:
        assert got is True


async def test_a_killed_holder_process_releases_the_lock(
    family: tuple[Family, Database | None], child_holding: tuple[Child, Path]
) -> None:
    fam, db = family
    child, _ = child_holding
    async with hold(fam.locks(db)) as got:
        assert got is False
    child.kill()  # SIGKILL: no cleanup code runs in the holder
    # The file lock goes with the descriptor at once; PostgreSQL ends the session when it
    # notices the connection closed (well within the wait).
    async with hold(fam.locks(db, wait=15)) as got:
        assert got is True


async def test_many_holders_of_different_keys_at_once_all_get_their_lock(
    family: tuple[Family, Database | None],
) -> None:
    """More uploads in flight than a pool has connections (64): every one holds its own
    content's lock at the same time, none is turned away."""
    fam, db = family
    locks = fam.locks(db, wait=10)
    inside = 0
    peak = 0
    release = asyncio.Event()
    # 64 contents on 64 different stripes: the file lock guards 1,024 stripes, and two
    # contents on one stripe wait for each other by design (test_striped_locks.py).
    keys = list(
        {
            stripe_name(key): key
            for key in (hashlib.sha256(b"%d" % i).hexdigest() for i in range(200))
        }.values()
    )[:64]
    assert len(keys) == 64

    async def one(i: int) -> bool:
        nonlocal inside, peak
        async with hold(locks, keys[i]) as got:
            inside += 1
            peak = max(peak, inside)
            if inside == 64:
                release.set()
            await asyncio.wait_for(release.wait(), 20)
            inside -= 1
            return got

    assert all(await asyncio.gather(*(one(i) for i in range(64))))
    assert peak == 64


async def test_a_lock_lost_with_its_session_is_reported_and_the_next_one_works(
    family: tuple[Family, Database | None],
) -> None:
    """PostgreSQL: should the server end the session holding this process's locks, the
    locks are gone; their holder is told when it lets go (instead of believing it held
    the lock all along), and the next holder gets the lock on a new session."""
    fam, db = family
    if db is None:
        pytest.skip("a file lock has no session to lose")

    from filetier.errors import MetadataUnavailableError

    locks = fam.locks(db)
    with pytest.raises(MetadataUnavailableError, match="lost"):
        async with hold(locks) as got:
            assert got is True
            await _end_lock_session(db)
            # The next statement on the dead session finds out.
            with pytest.raises(MetadataUnavailableError):
                async with hold(locks, "cd" * 32):
                    pass
    async with hold(locks) as again:
        assert again is True


async def test_a_session_reopened_on_a_connection_that_died_while_pooled_works(
    family: tuple[Family, Database | None],
) -> None:
    """PostgreSQL: the lock session's connection is not pinged before each batch, only
    once when a session opens; a pooled connection the server ended meanwhile is then
    replaced, and the first lock on the new session is granted, not failed."""
    fam, db = family
    if db is None:
        pytest.skip("a file lock has no session to lose")

    locks = fam.locks(db)
    async with hold(locks) as got:
        assert got is True
    await db.lock_session.close()  # its connection goes back to the pool, idle
    await _end_lock_session(db)
    async with hold(locks) as again:
        assert again is True


async def _end_lock_session(db: Database) -> None:
    """The server ends this store's lock session (as a restart or an admin would)."""
    import sqlalchemy as sa

    async with db.engine.connect() as conn:
        ended = await conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'filetier-locks' AND datname = current_database()"
            )
        )
        assert ended.scalars().all() == [True]
