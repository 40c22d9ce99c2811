"""The one write path: staging, quota, deduplication, and the commit under the content lock.

Order of side effects (the invariants the crash tests check): temp file -> hash -> object
published (atomic, put-if-absent) -> rows committed. A crash leaves at worst an object
no row names (``gc`` collects it), never a row that names nothing.

Deduplication: bytes already stored are not written again, but every call creates its
own file record. A stored object is trusted as a dedup target only once vouched for
(:meth:`filetier.vouching.Voucher.vouch`) under the content lock, which orders this upload against a delete
of the same content: either the delete sees the new row and keeps the object, or the
upload sees the object gone and writes it again.

Hash-first linking (:meth:`Writer.link_existing`): a client sends ``{sha256, size,
filename}`` before the body; when **this owner** already stores the content, the record
is created and no byte travels. Only the owner's own content counts: deduplicating
against another owner's files would let anyone who knows (or guesses) a hash learn that
the content exists and then read it, the classic cross-user deduplication leak.

Stream and path hashing, and the staging files themselves, live in :mod:`filetier.ingest`;
the puts to a remote primary, with this host's disk-cache copy, in :mod:`filetier.remote_puts`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterable
from pathlib import Path
from typing import Any

from filetier.core import Core, storage_key
from filetier.digest import Progress, sniff_mime
from filetier.diskcap import check_space
from filetier.ending import ContentEnd
from filetier.errors import (
    FiletierError,
    InvalidInputError,
    QuotaExceededError,
    StoreBusyError,
)
from filetier.finishing import finished
from filetier.ingest import (
    Staged,
    UploadSource,
    check_filename,
    check_limits,
    effective_mime,
    file_identity,
    hash_path,
    iterate_file_object,
    name_of_path,
    read_head,
    source_changed,
    source_path,
    stage_bytes,
    stage_path,
    stage_stream,
    translate_os_error,
    validate_metadata,
    write_staged_bytes,
)
from filetier.metadata.inserts import DurableObjects
from filetier.models import FileRecord, UploadResult
from filetier.quota import OwnerQuota
from filetier.records import RecordCache
from filetier.remote_puts import RemotePuts
from filetier.vouching import Voucher

log = logging.getLogger(__name__)

# Uploads held in memory up to this size are written to their staging file on the loop.
INLINE_WRITE_MAX = 256 * 1024
# Content up to this size on a primary honouring put-if-absent is put first, with
# no dedup lookup before and no HEAD after: "already exists" (same key, same bytes) is
# the dedup check, and that object is then vouched for as any other.
PUT_FIRST_MAX = 64 * 1024


class Writer:
    def __init__(self, core: Core, records: RecordCache, ending: ContentEnd) -> None:
        self.core = core
        self._records = records
        self._ending = ending
        self._voucher = Voucher(core)
        self._remote = RemotePuts(core)
        self._durable = self._durable_in()

    async def upload(
        self,
        owner: str,
        source: UploadSource,
        *,
        operator: bool,
        filename: str | None = None,
        mime_type: str | None = None,
        metadata: dict[str, Any] | None = None,
        progress: Progress | None = None,
    ) -> UploadResult:
        """Store a file from a path, bytes, a binary file object or an async iterator.

        Bytes already stored are not written again (``deduplicated`` in the result),
        but every call creates its own file record.
        """
        meta = validate_metadata(metadata)
        if filename is not None:
            check_filename(filename)
        if isinstance(source, bytes | bytearray | memoryview):
            await self.check_quota(owner, len(source))
        elif isinstance(source, str | os.PathLike):
            await self.check_quota(owner, source_path(source)[1])
        else:
            await self.check_quota(owner, 0)
        if isinstance(source, str | os.PathLike):
            staged, dedup = await self._stage_path(source, filename, mime_type, progress)
        elif isinstance(source, bytes | bytearray | memoryview):
            data = bytes(source)
            staged = (
                await asyncio.to_thread(
                    stage_bytes,
                    data,
                    filename=filename or "upload.bin",
                    declared_mime=mime_type,
                    settings=self.core.settings,
                )
                if len(data) > 1024 * 1024
                else stage_bytes(
                    data,
                    filename=filename or "upload.bin",
                    declared_mime=mime_type,
                    settings=self.core.settings,
                )
            )
            dedup = await self._dedup_hint(staged.sha256, staged.size)
            if progress:
                progress(len(data))
        elif hasattr(source, "read"):
            stream = iterate_file_object(source)  # type: ignore[arg-type]
            name = filename or Path(str(getattr(source, "name", "upload.bin"))).name
            staged = await stage_stream(
                stream,
                filename=name,
                declared_mime=mime_type,
                settings=self.core.settings,
                staging=self.core.staging_dir(),
                progress=progress,
                fsync=False,  # made durable by its row's batch: _durable_in
            )
            dedup = await self._dedup_hint(staged.sha256, staged.size)
        elif isinstance(source, AsyncIterable):
            staged = await stage_stream(
                source,
                filename=filename or "upload.bin",
                declared_mime=mime_type,
                settings=self.core.settings,
                staging=self.core.staging_dir(),
                progress=progress,
                fsync=False,  # made durable by its row's batch: _durable_in
            )
            dedup = await self._dedup_hint(staged.sha256, staged.size)
        else:
            raise InvalidInputError(
                "upload source must be a path, bytes, a binary file object or an async "
                f"iterator of bytes, not {type(source).__name__}"
            )
        try:
            if not isinstance(source, bytes | bytearray | memoryview | str | os.PathLike):
                await self.check_quota(owner, staged.size)  # a stream's size is known only now
            return await self._commit(owner, staged, dedup, meta, operator=operator)
        finally:
            staged.discard()

    def quota(self, owner: str) -> OwnerQuota:
        settings = self.core.settings
        return OwnerQuota(owner, settings.owner_quota_files, settings.owner_quota_bytes)

    async def check_quota(self, owner: str, incoming: int) -> None:
        """Refuse early an upload that would take this owner over its quota. Only a fast
        first answer: the binding check is made again where the row is inserted."""
        quota = self.quota(owner)
        if not quota.limited:
            return
        files, used = await self.core.repo.owner_usage(owner)
        quota.check(files, used, incoming)

    def _put_first(self, size: int) -> bool:
        """Whether content of this size is put (if absent) before anything is asked."""
        # A local primary publishes by link(2), put-if-absent by nature.
        return size <= PUT_FIRST_MAX and (
            self.core.local is not None or bool(getattr(self.core.primary, "puts_if_absent", 0))
        )

    async def _dedup_hint(self, sha256: str, size: int) -> bool:
        return False if self._put_first(size) else await self._already_stored(sha256)

    async def _already_stored(self, sha256: str) -> bool:
        """A hint for dedup, confirmed under the content lock before it is relied on."""
        if self.core.local is not None:
            # A stat of the object costs microseconds; a database read a thread hop.
            return self.core.local.local_path(storage_key(sha256)).exists()
        blob = await self.core.repo.get_blob(sha256)
        return blob is not None and blob.status == "ok"

    async def _stage_path(
        self,
        source: str | os.PathLike[str],
        filename: str | None,
        declared_mime: str | None,
        progress: Progress | None,
    ) -> tuple[Staged, bool]:
        path, size = source_path(source)
        name = filename or name_of_path(path)
        try:
            head = read_head(path)
        except OSError as exc:
            raise InvalidInputError(f"cannot read {path}: {exc.strerror}") from None
        mime = effective_mime(sniff_mime(head, name), declared_mime)
        check_limits(self.core.settings, mime, size)
        if self.core.local is None:
            # A remote primary is sent the caller's file as it is: one read-only hash
            # pass here, the put from the same file later, and its identity checked after
            # each, instead of writing and reading a staged copy of it.
            try:
                before = file_identity(path)
                digest = await hash_path(path, progress)
                unchanged = file_identity(path) == before and digest.size == before[2]
            except OSError as exc:
                raise translate_os_error(exc, name) from exc
            if not unchanged:
                raise source_changed(name)
            check_limits(self.core.settings, mime, digest.size)
            staged = Staged(
                digest.sha256,
                digest.size,
                mime,
                name,
                source_path=path,
                source_identity=before,
            )
            return staged, await self._dedup_hint(digest.sha256, digest.size)
        # Only content of a size already stored can be a duplicate. For such files a
        # read-only hash pass decides; when it matches, nothing is written at all.
        if await self.core.repo.blob_of_size_exists(size):
            digest = await hash_path(path, progress)
            if await self._already_stored(digest.sha256):
                return Staged(digest.sha256, digest.size, mime, name, source_path=path), True
            progress = None  # the bar already reached 100% once
        staged = await stage_path(
            path,
            size=size,
            mime_type=mime,
            filename=name,
            settings=self.core.settings,
            staging=self.core.staging_dir(),
            progress=progress,
            fsync=False,  # made durable by its row's batch: _durable_in
        )
        return staged, await self._already_stored(staged.sha256)

    async def _commit(
        self, owner: str, staged: Staged, dedup: bool, meta: dict[str, Any], *, operator: bool
    ) -> UploadResult:
        key = storage_key(staged.sha256)
        bytes_written = 0
        wrote_object = False
        # The hash lock orders this upload against a delete of the same content: either
        # the delete sees our new row and keeps the object, or we see the object gone
        # and write it again.
        async with self.core.content_locks.hold(staged.sha256) as locked:
            if not locked:
                # Unlocked, a delete of this content that holds the lock could remove the
                # object this upload is about to find stored and record: refused instead.
                raise self._busy()
            if dedup and not await self._voucher.vouch(staged.sha256, staged.size):
                dedup = False  # missing or damaged (and set aside): written again below
            if not dedup:
                wrote_object = await self._write_object(key, staged)
                if not wrote_object and not await self._voucher.vouch(staged.sha256, staged.size):
                    # An object was there after all (an interrupted upload's) and failed
                    # its check: it is set aside now, so this put writes.
                    wrote_object = await self._write_object(key, staged)
                bytes_written = staged.size if wrote_object else 0
            # What the object's time is now that it holds bytes just hashed: the mark
            # later deduplications check it against.
            # Not for content put first: a later dedup hashes the small object once.
            head = wrote_object and not self._put_first(staged.size)
            written = await self.core.primary.head(key) if head else None
            try:
                # To its end even if this task is cancelled: a batch that took the insert
                # commits it anyway, and the lock must be held until then, or a delete of
                # the content could end it first and leave this row naming nothing.
                record = await finished(
                    self.core.repo.insert_file(
                        owner=owner,
                        filename=staged.filename,
                        size=staged.size,
                        mime_type=staged.mime_type,
                        sha256=staged.sha256,
                        storage_key=key,
                        metadata=meta,
                        local_cache_path=None,
                        quota=self.quota(owner),
                        wrote_object=wrote_object,
                        object_modified_at=written.modified if written is not None else None,
                        durable_in=self._durable,
                    )
                )
            except QuotaExceededError:
                if wrote_object:
                    # Still under the lock: nothing else can have started using it.
                    await self._ending.end_content(staged.sha256, lock_held=True)
                raise
        if not wrote_object:
            await self._remote.cache_deduplicated(staged)
        if staged.data is not None:
            self.core.memory.put(staged.sha256, staged.data)
        self._records.remember(owner, record)
        deduplicated = not wrote_object
        if deduplicated and not operator:
            # In a shared server, "already stored" must not reveal that another owner
            # holds these bytes: report it only when this owner had them.
            deduplicated = await self.core.repo.owner_has_content(
                owner, staged.sha256, exclude=record.file_id
            )
        return UploadResult(
            file_id=record.file_id,
            sha256=staged.sha256,
            size=staged.size,
            mime_type=staged.mime_type,
            filename=staged.filename,
            deduplicated=deduplicated,
            bytes_written=bytes_written if deduplicated or wrote_object else staged.size,
        )

    def _busy(self) -> StoreBusyError:
        return StoreBusyError(
            "nothing was stored: the lock that orders an upload against deletes of the "
            f"same content was not had within {self.core.settings.lock_timeout_seconds:g}s; "
            "try again"
        )

    def _durable_in(self) -> DurableObjects | None:
        """With fsync on, where a local object must be durable before its row commits:
        its batch makes all its objects durable in one call (group commit). Deduplicated
        ones too: their writer may still wait for its batch, or have been killed before
        it. A primary on this host's disk (the embedded one, or ``file://``) is synced
        here; a remote one's durable copy is the one the store confirmed."""
        if not self.core.settings.fsync:
            return None
        if self.core.local is not None:
            return self.core.local
        primary = self.core.primary
        return primary if isinstance(primary, DurableObjects) else None

    async def _write_object(self, key: str, staged: Staged) -> bool:
        """Put the staged bytes under ``key`` if absent, under the content lock; True when
        this call wrote the object."""
        # The caller's file is sent as it is (the lock keeps other uploads of the content
        # waiting should it change while it is read and the object have to go again).
        if staged.source_identity is not None:
            return await self._remote.put_from_source(key, staged)
        if self._remote.takes_bytes(staged):
            return await self._remote.put_bytes(key, staged)
        if staged.temp is None:
            if staged.data is not None:
                # Not fsynced here: a local object is made durable by its row's batch
                # (_durable_in). A small write without an fsync costs less than the
                # hop to a worker thread, so it is made on the loop.
                local, data = self.core.local, staged.data
                if local is not None and staged.size <= INLINE_WRITE_MAX:
                    check_space(local.staging_dir(), staged.size, self.core.settings.min_free_bytes)
                    try:
                        return local.publish_bytes(key, data)
                    except FiletierError:
                        raise
                    except OSError as exc:
                        raise translate_os_error(exc, staged.filename) from exc
                await asyncio.to_thread(
                    write_staged_bytes,
                    staged,
                    self.core.staging_dir(),
                    self.core.settings,
                    fsync=False,
                )
            else:
                assert staged.source_path is not None
                restaged = await stage_path(
                    staged.source_path,
                    size=staged.size,
                    mime_type=staged.mime_type,
                    filename=staged.filename,
                    settings=self.core.settings,
                    staging=self.core.staging_dir(),
                    progress=None,
                    fsync=False,  # made durable by its row's batch: _durable_in
                )
                # Staged from the caller's file again: it must still be the bytes hashed.
                if restaged.sha256 != staged.sha256 or restaged.size != staged.size:
                    restaged.discard()
                    raise source_changed(staged.filename)
                staged.temp = restaged.temp
        assert staged.temp is not None
        wrote = await self.core.primary.put_file(key, staged.temp)
        self._remote.keep_staged(staged)
        return wrote

    async def link_existing(
        self,
        owner: str,
        *,
        sha256: str,
        size: int,
        filename: str,
        mime_type: str | None,
        metadata: dict[str, Any] | None,
    ) -> UploadResult | None:
        """A new file record for content ``owner`` already stores, or None (send the bytes).

        Under the content lock, in the order uploads use: a delete of the same content
        either sees the new row and keeps the object, or has removed the object already
        and this call answers "send the bytes"."""
        meta = validate_metadata(metadata)
        check_filename(filename)
        repo = self.core.repo

        async def owned() -> FileRecord | None:
            page, _total = await repo.list_files(
                owner, name_contains=None, mime_type=None, sha256=sha256, limit=1, offset=0
            )
            return page[0] if page and page[0].size == size else None

        # Asked first without the lock: an owner with no such file is answered at once,
        # so waiting for the lock never tells her that someone is working on the content.
        if await owned() is None:
            return None
        async with self.core.content_locks.hold(sha256) as locked:
            if not locked:
                raise self._busy()
            existing = await owned()
            if existing is None:
                return None
            # The stored copy must be one filetier can vouch for; a missing or damaged
            # one is set aside and the client told to send the bytes, which repair it.
            if not await self._voucher.vouch(sha256, size):
                return None
            mime = effective_mime(existing.mime_type, mime_type)
            check_limits(self.core.settings, mime, size)
            record = await finished(  # held to the end, as in _commit
                repo.insert_file(
                    owner=owner,
                    filename=filename,
                    size=size,
                    mime_type=mime,
                    sha256=sha256,
                    storage_key=storage_key(sha256),
                    metadata=meta,
                    local_cache_path=None,
                    quota=self.quota(owner),
                    durable_in=self._durable,
                )
            )
        return UploadResult(
            file_id=record.file_id,
            sha256=sha256,
            size=size,
            mime_type=mime,
            filename=filename,
            deduplicated=True,
            bytes_written=0,
        )
