"""What must happen under the content lock, and what happens when it is not had.

Each test holds a content's lock itself (through the store's own locks, as another
upload, delete or check of the same bytes would) while filetier works on that content,
changes the stored object on disk the way that other holder would, then lets go:

- an upload or a hash-first link that cannot have the lock is refused (StoreBusyError),
  never recorded against an object a delete holding the lock is about to remove;
- an owner with no file of the content is answered at once by a hash-first link, whoever
  holds the lock (its wait would tell her someone works on those bytes);
- a read or ``verify --fix`` that found the object bad looks again under the lock, and
  never sets aside the good bytes an upload put there meanwhile.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from filetier import FileStore, Settings, StoreBusyError, UploadResult
from filetier.store import storage_key
from tests.support.damage import flip_byte


@asynccontextmanager
async def held_elsewhere(store: FileStore, sha256: str) -> AsyncIterator[None]:
    """The content lock of ``sha256`` held by another task (a task takes its own lock
    again at once) until the block ends."""
    taken, done = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with store.content_locks.hold(sha256) as locked:
            assert locked
            taken.set()
            await done.wait()

    task = asyncio.create_task(holder())
    await taken.wait()
    try:
        yield
    finally:
        done.set()
        await task


async def rotted(store: FileStore) -> tuple[UploadResult, Path, bytes]:
    """An uploaded file whose stored object then rots (one byte flipped in place; flipping
    it again is what a repairing upload would leave)."""
    data = os.urandom(50_000)
    uploaded = await store.upload_file(data, filename="ledger.bin")
    assert store.core.local is not None
    path = store.core.local.local_path(storage_key(uploaded.sha256))
    flip_byte(path, 100)
    return uploaded, path, data


async def test_an_upload_that_cannot_have_the_lock_is_refused_and_nothing_stored(
    settings: Settings,
) -> None:
    data = b"the same bytes, held by a delete"
    sha256 = hashlib.sha256(data).hexdigest()
    async with FileStore(settings.model_copy(update={"lock_timeout_seconds": 0.3})) as store:
        async with held_elsewhere(store, sha256):
            try:
                await store.upload_file(data, filename="busy.txt")
            except StoreBusyError as exc:
                assert "nothing was stored" in str(exc)
                assert "try again" in str(exc)
            else:
                raise AssertionError("an upload without the lock was stored")
        assert (await store.list(limit=10)).items == []
        stored = await store.upload_file(data, filename="later.txt")  # the lock is free now
        assert await store.read_bytes(stored.file_id) == data


async def test_a_hash_first_link_answers_a_stranger_at_once_and_waits_for_the_owner(
    settings: Settings,
) -> None:
    data = os.urandom(5000)
    sha256 = hashlib.sha256(data).hexdigest()
    async with FileStore(settings.model_copy(update={"lock_timeout_seconds": 1.0})) as shared:
        alice, mallory = shared.as_owner("alice"), shared.as_owner("mallory")
        await alice.upload_file(data, filename="contract.pdf")
        async with held_elsewhere(shared, sha256):
            started = time.monotonic()
            link = await mallory.link_existing(sha256=sha256, size=len(data), filename="x")
            assert link is None
            assert time.monotonic() - started < 0.5, "the stranger waited for the lock"
            started = time.monotonic()
            try:
                await alice.link_existing(sha256=sha256, size=len(data), filename="again.pdf")
            except StoreBusyError:
                assert time.monotonic() - started >= 0.9  # she waited her turn, then was told
            else:
                raise AssertionError("linked without the lock")
        linked = await alice.link_existing(sha256=sha256, size=len(data), filename="again.pdf")
        assert linked is not None and linked.deduplicated


async def test_a_read_that_finds_a_bad_object_does_not_set_aside_the_bytes_repaired_meanwhile(
    store: FileStore,
) -> None:
    uploaded, path, data = await rotted(store)
    store.memory.clear()
    async with held_elsewhere(store, uploaded.sha256):
        reading = asyncio.create_task(store.read_bytes(uploaded.file_id))
        await asyncio.sleep(0.3)  # the read found the bad bytes and waits for the lock
        assert not reading.done()
        flip_byte(path, 100)  # what an upload holding the lock would do: good bytes again
    assert await reading == data
    assert path.read_bytes() == data
    assert (await store.verify()).clean


async def test_verify_fix_does_not_set_aside_the_bytes_an_upload_repaired_meanwhile(
    store: FileStore,
) -> None:
    uploaded, path, data = await rotted(store)
    async with held_elsewhere(store, uploaded.sha256):
        verifying = asyncio.create_task(store.verify(fix=True))
        await asyncio.sleep(0.3)  # verify found the bad bytes and waits for the lock
        assert not verifying.done()
        flip_byte(path, 100)
    report = await verifying
    assert [(f.kind, f.fixed) for f in report.findings] == [("corrupt_object", True)]
    assert "good again" in report.findings[0].detail
    assert path.read_bytes() == data
    store.memory.clear()
    assert await store.read_bytes(uploaded.file_id) == data
    assert (await store.verify()).clean
