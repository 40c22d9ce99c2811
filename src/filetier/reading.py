"""The one verified read path: memory, then the disk cache, then the primary store.

Every reader of a file's bytes comes through here: the library's ``read_bytes`` and
``open``, delivery to a destination, provider uploads, the HTTP content route and the
MCP ``verify_file`` tool. The rules it owns:

- where a copy is: memory, a disk-cache copy, or the local primary read in place (when
  the primary is a local directory it *is* this host's disk tier: no cache copy);
- one fill per content at a time (single-flight in the process, a file lock across
  processes), fetched into a temp file, hashed on the way in, renamed into place;
- every byte that leaves a tier is checked against its SHA-256 (:meth:`ReadPath.attempt`
  is the one retry loop around a use of a copy);
- a bad copy is rejected in one place (:meth:`ReadPath.reject`): a cache copy is evicted
  and fetched again, a bad primary object is quarantined and the read fails.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

from filetier.core import Core
from filetier.digest import StreamDigest
from filetier.diskcap import check_space
from filetier.errors import (
    FiletierError,
    IntegrityError,
    ObjectMissing,
    StorageUnavailableError,
)
from filetier.finishing import finished
from filetier.ids import no_such_file
from filetier.ingest import translate_os_error
from filetier.models import FileRecord, Tier
from filetier.modes import open_new
from filetier.records import RecordCache
from filetier.singleflight import SingleFlight, process_lock
from filetier.tiers.hashing import hash_object

log = logging.getLogger(__name__)

T = TypeVar("T")

# A read retries after evicting a bad or vanished cache copy; the primary is read last.
READ_ATTEMPTS = 3


class CorruptCopy(Exception):
    """A copy failed its hash check: raised inside a use of a copy, handled by a retry."""


class VanishedCopy(Exception):
    """A cache copy was evicted between lookup and read: fetch it again."""


@dataclass(frozen=True, slots=True)
class Located:
    """A local file holding a file's content, and what kind of copy it is."""

    tier: Tier
    path: Path
    cache_copy: bool  # True: a disk-cache copy (evict if bad); False: the local primary
    # True: this process fetched it from the primary and hashed it in full just now, so
    # delivering it again needs a copy, not a second SHA-256 pass.
    just_verified: bool = False


def _hash_and_write(digest: StreamDigest, out: IO[bytes], chunk: bytes | memoryview) -> None:
    digest.update(chunk)
    out.write(chunk)


def read_verified(located: Located, record: FileRecord) -> bytes:
    """The whole copy, checked against the record (blocking: run it in a thread)."""
    try:
        data = located.path.read_bytes()
    except FileNotFoundError:
        raise VanishedCopy() from None
    if hashlib.sha256(data).hexdigest() != record.sha256:
        raise CorruptCopy()
    return data


def changed_while_read(record: FileRecord) -> IntegrityError:
    return IntegrityError(
        f"file {record.file_id} ({record.filename}) changed while it was read (a bad copy "
        "was dropped, or the stored bytes were repaired meanwhile); read it again"
    )


class ReadPath:
    def __init__(self, core: Core, records: RecordCache) -> None:
        self.core = core
        self._records = records
        self._fetches: SingleFlight[tuple[Path, bool]] = SingleFlight()

    async def read(self, owner: str, record: FileRecord) -> tuple[bytes, Tier]:
        """The whole content, verified, kept in memory (not counted as a download)."""
        data = self.core.memory.get(record.sha256)
        if data is not None:
            return data, "memory"

        async def whole(located: Located) -> tuple[bytes, Tier]:
            data = await asyncio.to_thread(read_verified, located, record)
            self.core.memory.put(record.sha256, data)
            return data, located.tier

        return await self.attempt(owner, record, whole)

    async def attempt(
        self, owner: str, record: FileRecord, use: Callable[[Located], Awaitable[T]]
    ) -> T:
        """Run ``use`` on a local copy; a copy it finds bad (:class:`CorruptCopy`) or gone
        (:class:`VanishedCopy`) is rejected and ``use`` runs again on a fresh one."""
        for _attempt in range(READ_ATTEMPTS):
            located = await self.locate(owner, record)
            try:
                return await use(located)
            except (CorruptCopy, VanishedCopy) as exc:
                await self.reject(owner, record, located, exc)
        raise self.unreadable(record)

    @asynccontextmanager
    async def local_file(self, owner: str, record: FileRecord) -> AsyncIterator[Path]:
        """A local file holding the content, for provider uploads that read it in pieces
        (bounded memory): the local primary, or this host's disk-cache copy. The adapter
        checks what the provider received against the SHA-256 where the provider tells."""
        core = self.core
        data = core.memory.get(record.sha256)
        if data is not None and core.local is None and core.disk.lookup(record.sha256) is None:
            # Only in memory: hand it over through a private temporary file.
            temp = core.disk.new_temp()
            try:
                await asyncio.to_thread(temp.write_bytes, data)
                yield temp
            finally:
                temp.unlink(missing_ok=True)
            return
        located = await self.locate(owner, record)
        yield located.path

    async def locate(self, owner: str, record: FileRecord) -> Located:
        """A local file holding the content: the local primary, or a disk-cache copy."""
        core = self.core
        if core.local is not None:
            path = core.local.local_path(record.storage_key)
            if not path.exists():
                raise await self.missing(owner, record)
            return Located("primary", path, cache_copy=False)
        cached = core.disk.lookup(record.sha256)
        if cached is not None:
            return Located("disk", cached, cache_copy=True)
        # Fetched from the primary just now (verified on the way in), unless another
        # process filled the cache while this one waited for the lock.
        path, fetched = await self._fetches.run(
            record.sha256, lambda: self._fill_disk_cache(owner, record)
        )
        return Located(
            "primary" if fetched else "disk", path, cache_copy=True, just_verified=fetched
        )

    async def _fill_disk_cache(self, owner: str, record: FileRecord) -> tuple[Path, bool]:
        """Copy one object from the primary into this host's disk cache, verified."""
        core = self.core
        async with process_lock(
            core.disk.lock_path(record.sha256), core.settings.lock_timeout_seconds
        ):
            cached = core.disk.lookup(record.sha256)
            if cached is not None:
                return cached, False  # another process filled it while we waited
            check_space(core.disk.temp_dir(), record.size, core.settings.min_free_bytes)
            temp = core.disk.new_temp()
            digest = StreamDigest()
            core.counters.primary_reads += 1
            try:
                with os.fdopen(open_new(temp), "wb") as out:
                    # Pipelined: a worker hashes and writes chunk N while the loop
                    # receives chunk N+1 (hashlib and file writes release the GIL).
                    received = 0
                    absorbing: asyncio.Future[None] | None = None
                    try:
                        async for chunk in core.primary.get_stream(record.storage_key):
                            received += len(chunk)
                            if absorbing is not None:
                                await absorbing
                            if received > record.size:
                                break
                            absorbing = asyncio.ensure_future(
                                asyncio.to_thread(_hash_and_write, digest, out, chunk)
                            )
                    finally:
                        # Never close the file under a write still in flight.
                        if absorbing is not None:
                            await asyncio.gather(absorbing, return_exceptions=True)
                    if absorbing is not None:
                        absorbing.result()  # re-raise a failed write
            except ObjectMissing:
                temp.unlink(missing_ok=True)
                raise await self.missing(owner, record) from None
            except OSError as exc:
                temp.unlink(missing_ok=True)
                if isinstance(exc, FiletierError):
                    raise
                raise translate_os_error(exc, f"cache copy of {record.file_id}") from exc
            except BaseException:
                temp.unlink(missing_ok=True)
                raise
            if digest.sha256 != record.sha256 or digest.size != record.size:
                temp.unlink(missing_ok=True)
                if await self._quarantine_primary(record):
                    raise self._integrity_error(record)
                raise changed_while_read(record)
            path = core.disk.adopt(record.sha256, temp)
        core.diskcap.added(record.sha256, record.size)
        return path, True

    async def missing(self, owner: str, record: FileRecord) -> FiletierError:
        """The error for content that is gone: usually another process deleted the file
        after this one cached its record; otherwise the store lost the bytes."""
        repo = self.core.repo
        self._records.forget(owner, record.file_id)
        if await repo.get_file(owner, record.file_id) is None:
            return no_such_file(record.file_id)
        blob = await repo.get_blob(record.sha256)
        if blob is not None and blob.status == "quarantined":
            return IntegrityError(
                f"file {record.file_id} ({record.filename}) failed its SHA-256 check earlier and "
                "its bytes were quarantined; upload the original again to repair it"
            )
        return StorageUnavailableError(
            f"the stored bytes of file {record.file_id} ({record.filename}) are missing from "
            f"the primary store; run `filetier verify` to see what else is affected"
        )

    @staticmethod
    def _integrity_error(record: FileRecord) -> IntegrityError:
        return IntegrityError(
            f"file {record.file_id} ({record.filename}) failed its SHA-256 check in the primary "
            f"store; the corrupt copy was quarantined. Upload the original again to repair it"
        )

    async def _quarantine_primary(self, record: FileRecord) -> bool:
        """Set the primary's object aside if it is still bad; True when set aside.

        Under the content lock, and looked at again there: between this read and now an
        upload of the same content may have replaced the bad object with good bytes and
        been acknowledged, and those must not be set aside. Without the lock nothing is
        set aside (the read fails; the next one looks again)."""
        core = self.core
        async with core.content_locks.hold(record.sha256) as locked:
            if not locked:
                return False
            digest = await hash_object(core.primary, record.storage_key)
            if digest is None or (digest.sha256, digest.size) == (record.sha256, record.size):
                return False  # gone, or good again
            where = await finished(self._set_aside(record))
        log.error(
            "quarantined corrupt object %s of file %s at %s", record.sha256, record.file_id, where
        )
        return True

    async def _set_aside(self, record: FileRecord) -> str | None:
        where = await self.core.primary.quarantine(record.storage_key)
        await self.core.repo.set_blob_status(record.sha256, "quarantined")
        return where

    async def reject(
        self, owner: str, record: FileRecord, located: Located, problem: Exception
    ) -> None:
        """A copy failed verification (or vanished): drop a cache copy and let the caller
        fetch again; quarantine a bad local primary object and raise IntegrityError."""
        core = self.core
        core.memory.evict(record.sha256)
        if isinstance(problem, VanishedCopy):
            if located.cache_copy:
                return
            raise await self.missing(owner, record)
        if located.cache_copy:
            log.warning("disk cache copy of %s was corrupt; evicted, fetching again", record.sha256)
            core.disk.evict(record.sha256)
            return
        if await self._quarantine_primary(record):
            raise self._integrity_error(record)
        # Not set aside: good again (repaired meanwhile), gone, or its lock busy; the
        # caller reads again and finds out which.

    @staticmethod
    def unreadable(record: FileRecord) -> IntegrityError:
        return IntegrityError(
            f"file {record.file_id} ({record.filename}) could not be read intact after "
            f"{READ_ATTEMPTS} attempts: its cache copies keep changing; try again"
        )

    async def open(self, owner: str, record: FileRecord, *, chunk_size: int) -> FileReader:
        """A reader of the content that verifies it as it streams (see :class:`FileReader`)."""
        data = self.core.memory.get(record.sha256)
        if data is not None:
            return FileReader(self, owner, record, None, data=data, chunk_size=chunk_size)

        async def opened(located: Located) -> FileReader:
            try:
                handle = located.path.open("rb")
            except FileNotFoundError:
                raise VanishedCopy() from None  # evicted between lookup and open
            return FileReader(self, owner, record, located, handle=handle, chunk_size=chunk_size)

        return await self.attempt(owner, record, opened)


class FileReader:
    """Chunks of one file, verified against its SHA-256 as they pass."""

    def __init__(
        self,
        path: ReadPath,
        owner: str,
        record: FileRecord,
        located: Located | None,
        *,
        data: bytes | None = None,
        handle: IO[bytes] | None = None,
        chunk_size: int,
    ) -> None:
        self.record = record
        self.tier: Tier = located.tier if located is not None else "memory"
        self._located = located
        self._path = path
        self._owner = owner
        self._data = data
        self._handle = handle
        self._chunk_size = chunk_size
        self._digest = StreamDigest()
        self._offset = 0
        self.completed = False

    @property
    def size(self) -> int:
        return self.record.size

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        while chunk := await self.read(self._chunk_size):
            yield chunk

    def _read_and_hash(self, n: int) -> bytes:
        # One worker-thread hop per chunk does both the read and the hash: hashing on
        # the loop held it for as long as the read took.
        assert self._handle is not None
        chunk = self._handle.read(n)
        if chunk:
            self._digest.update(chunk)
        return chunk

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (all that remain when ``n`` < 0); b"" at the end."""
        if self._data is not None:
            end = len(self._data) if n < 0 else min(len(self._data), self._offset + n)
            # Bytes in memory were verified when they were kept there: not hashed again.
            chunk = self._data[self._offset : end]
        elif self._handle is not None:
            chunk = await asyncio.to_thread(self._read_and_hash, n)
        else:
            chunk = b""
        self._offset += len(chunk)
        if not chunk and not self.completed:
            await self._finish()
        return chunk

    async def _finish(self) -> None:
        if self._located is not None and (
            self._digest.sha256 != self.record.sha256 or self._digest.size != self.record.size
        ):
            # Raises IntegrityError itself (after quarantine) when the primary was bad.
            await self._path.reject(self._owner, self.record, self._located, CorruptCopy())
            raise changed_while_read(self.record)
        self.completed = True

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
