"""Putting an upload to a remote primary (an S3 bucket), and this host's disk-cache copy.

With a remote primary the durable copy is the one the store confirmed; the disk-cache
copy made beside it only spares a read right after the upload a trip to the store. It
is an optimisation: when there is no room, or it fails, the upload goes on without it.
Three shapes, by where the hashed bytes are:

- in memory (:meth:`RemotePuts.put_bytes`): sent from memory in one request, with no
  staging file written and read back; the cache copy is written by a worker thread
  meanwhile, off the event loop;
- the caller's own file, hashed in place (:meth:`RemotePuts.put_from_source`): sent from
  the file itself, the cache copy made by a kernel copy beside the put, and the file's
  identity checked once both are done;
- a staged temp file (:meth:`RemotePuts.keep_staged`): after its put, the temp file
  itself becomes the cache copy.

Free space for the cache copies is checked at most once a second
(:class:`filetier.diskcap.FreeSpace`), not by a ``statvfs`` per upload.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from filetier.core import Core
from filetier.digest import copy_exact
from filetier.finishing import finished
from filetier.ingest import Staged, file_identity, source_changed
from filetier.modes import open_new, write_all
from filetier.tiers.protocols import PutBytes


class RemotePuts:
    def __init__(self, core: Core) -> None:
        self.core = core
        primary = core.primary
        # Only a remote primary that can be sent bytes; a local one publishes by link(2).
        self._bytes_to: PutBytes | None = (
            primary if core.local is None and isinstance(primary, PutBytes) else None
        )

    def takes_bytes(self, staged: Staged) -> bool:
        """Whether ``staged``'s in-memory bytes go to the primary as they are."""
        return self._bytes_to is not None and staged.data is not None

    async def put_bytes(self, key: str, staged: Staged) -> bool:
        """Put ``staged.data`` under ``key`` if absent (one request, under the content
        lock); True if written."""
        assert self._bytes_to is not None and staged.data is not None
        data = staged.data
        caching = (
            asyncio.ensure_future(asyncio.to_thread(self._cache_bytes, staged.sha256, data))
            if self._room_for(staged.size)
            else None
        )
        try:
            wrote = await self._bytes_to.put_bytes(key, data)
        except BaseException:
            if caching is not None and await _landed(caching) is not None:
                # Not stored after all: no copy of it either (the lock orders us against
                # other uploads of the content, so the copy is ours).
                self.core.disk.evict(staged.sha256)
            raise
        if caching is not None and await _landed(caching) is not None:
            self.core.diskcap.added(staged.sha256, staged.size)
        return wrote

    def _room_for(self, size: int) -> bool:
        return size <= self.core.diskcap.cap_bytes and self.core.diskcap.free.take(size)

    def _cache_bytes(self, sha256: str, data: bytes) -> Path | None:
        """Write ``data`` as the disk-cache copy of ``sha256`` (in a worker thread)."""
        disk = self.core.disk
        temp = disk.new_temp()
        try:
            fd = open_new(temp)
            try:
                write_all(fd, data)
            finally:
                os.close(fd)
            return disk.adopt(sha256, temp)
        except OSError:
            temp.unlink(missing_ok=True)
            return None

    async def put_from_source(self, key: str, staged: Staged) -> bool:
        """Put the caller's file itself (under the content lock); True if written.

        If the file changed after it was hashed, what was sent may not be the bytes the
        key names: the object is removed again (nothing references it yet, and the lock
        keeps other uploads of this content waiting) and the caller is told.
        """
        source = staged.source_path
        assert source is not None
        # The disk-cache copy is made by a kernel copy beside the (slower) network put,
        # so a read right after the upload needs no primary read.
        caching = (
            asyncio.ensure_future(asyncio.to_thread(self._copy_for_cache, source, staged.size))
            if self._room_for(staged.size)
            else None
        )
        try:
            wrote = await self.core.primary.put_file(key, source)
        except BaseException:
            if caching is not None and (landed := await _landed(caching)) is not None:
                landed.unlink(missing_ok=True)
            raise
        # The copy read the source too: its identity is checked only once both are done.
        cache_temp = await _landed(caching) if caching is not None else None
        if not _source_unchanged(staged):
            if cache_temp is not None:
                cache_temp.unlink(missing_ok=True)
            if wrote:
                await finished(self.core.primary.delete(key))  # before the lock goes
            raise source_changed(staged.filename)
        if cache_temp is not None:
            self._adopt(staged, cache_temp)
        return wrote

    def _adopt(self, staged: Staged, temp: Path) -> None:
        """Make ``temp`` (a verified copy) the disk-cache copy of ``staged``; on failure
        there is none, which never fails the upload (the store has the file)."""
        try:
            self.core.disk.adopt(staged.sha256, temp)
        except OSError:
            temp.unlink(missing_ok=True)
            return
        self.core.diskcap.added(staged.sha256, staged.size)

    def _copy_for_cache(self, source: Path, size: int) -> Path | None:
        """A disk-cache temp copy of ``source``, or None when it failed."""
        temp = self.core.disk.new_temp()
        try:
            fd = open_new(temp)
            try:
                copied = copy_exact(source, fd, size)
            finally:
                os.close(fd)
        except OSError:
            temp.unlink(missing_ok=True)
            return None
        if copied != size:
            temp.unlink(missing_ok=True)
            return None
        return temp

    async def cache_deduplicated(self, staged: Staged) -> None:
        """Leave the disk-cache copy a stored upload leaves, for one that was deduplicated:
        whether an upload was new must not show in where its first read comes from (the
        tier a download reports, and its time), nor should the first read of it cost a
        primary read the uploader already paid for in bytes."""
        core = self.core
        if core.local is not None or core.disk.lookup(staged.sha256) is not None:
            return
        if staged.temp is not None:
            self.keep_staged(staged)
            return
        if not self._room_for(staged.size):
            return
        if staged.data is not None:
            work = asyncio.to_thread(self._cache_bytes, staged.sha256, staged.data)
            if await _landed(asyncio.ensure_future(work)) is not None:
                core.diskcap.added(staged.sha256, staged.size)
            return
        source = staged.source_path
        if source is None:
            return
        temp = await asyncio.to_thread(self._copy_for_cache, source, staged.size)
        if temp is None:
            return
        if not _source_unchanged(staged):  # not the bytes hashed: no copy
            temp.unlink(missing_ok=True)
            return
        self._adopt(staged, temp)

    def keep_staged(self, staged: Staged) -> None:
        """After its put, the verified temp file becomes the disk-cache copy."""
        if self.core.local is not None or staged.temp is None:
            return
        if staged.size <= self.core.diskcap.cap_bytes:
            self.core.disk.adopt(staged.sha256, staged.temp)
            staged.temp = None
            self.core.diskcap.added(staged.sha256, staged.size)


def _source_unchanged(staged: Staged) -> bool:
    """Whether the caller's file is still the one that was hashed (by its identity)."""
    assert staged.source_path is not None
    try:
        return file_identity(staged.source_path) == staged.source_identity
    except OSError:
        return False


async def _landed(caching: asyncio.Future[Path | None]) -> Path | None:
    """Where a cache copy landed; None when it did not (a cache copy never fails an
    upload)."""
    landed = (await asyncio.gather(caching, return_exceptions=True))[0]
    return landed if isinstance(landed, Path) else None
