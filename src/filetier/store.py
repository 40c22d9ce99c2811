"""FileStore: the public facade, one method per thing a caller asks for.

Each method checks the store is open and hands the request to the one collaborator
that owns the rule (see :mod:`filetier.parts` for how they are wired). Following a file
id from any interface down to the object store::

    FileStore.download(file_id)
      -> records.RecordCache.get(owner, id)        the owner's record (cached briefly)
      -> delivery.Delivery.download                destination, policy, free space
        -> reading.ReadPath.attempt / locate       memory, disk cache, primary (verified)
          -> tiers (memory, disk, primary store)

An owner's view (:meth:`FileStore.as_owner`) is a new facade over the same parts: the
same core, caches and clients, with every record and query scoped to that owner.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Self
from uuid import UUID

from filetier import catalog
from filetier.config import Settings
from filetier.core import open_core, parse_file_id, storage_key
from filetier.digest import Progress
from filetier.errors import InvalidFileIdError, InvalidInputError, StoreClosedError
from filetier.ingest import UploadSource
from filetier.maintenance.cleanup import cleanup_store
from filetier.maintenance.gc import collect_garbage
from filetier.maintenance.verify import verify_store
from filetier.models import (
    AskResult,
    BatchItem,
    CleanupPolicy,
    DeleteResult,
    DownloadEvent,
    DownloadResult,
    ExtractedText,
    FilePage,
    FileRecord,
    FileSort,
    MaintenanceReport,
    ProviderCopyInfo,
    ProviderFileId,
    StoreStats,
    SyncReport,
    UploadResult,
    VerifyReport,
)
from filetier.parts import Parts, build_parts, close_parts
from filetier.paths import AllowedRoots
from filetier.providers.asking import ProviderQuestions
from filetier.providers.manager import DEFAULT_PURPOSE, ProviderFiles
from filetier.providers.sync import sync_providers
from filetier.quota import OwnerQuota
from filetier.reading import FileReader
from filetier.tiers.protocols import PrimaryStore

LIST_OFFSET_MAX = catalog.LIST_OFFSET_MAX
MIN_ID_PREFIX = catalog.MIN_ID_PREFIX


class FileStore:
    """A content-addressed, three-tier file store. Use as ``async with FileStore() as s``."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        owner: str | None = None,
        primary: PrimaryStore | None = None,
        parts: Parts | None = None,
    ) -> None:
        """``parts``: those of an open store, to build another owner's view over them
        (callers use :meth:`as_owner`)."""
        self.settings = settings if settings is not None else Settings()
        self.owner = owner or self.settings.owner
        self._primary_given = primary
        self._parts = parts
        if parts is not None:
            self._wire(parts)

    def _wire(self, parts: Parts) -> None:
        core = self.core = parts.core
        self.db, self.repo, self.primary = core.db, core.repo, core.primary
        self.memory, self.disk, self.roots = core.memory, core.disk, core.roots
        self.content_locks = core.content_locks
        self.records, self.reads, self.usage = parts.records, parts.reads, parts.usage
        self.providers = ProviderFiles(
            parts.clients, self.owner, parts.records, parts.reads, core.content_locks
        )

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect, migrate a new database, start bookkeeping (``async with`` calls it)."""
        self._parts = build_parts(await open_core(self.settings, self._primary_given), self.owner)
        self._wire(self._parts)

    async def close(self) -> None:
        parts = self._parts
        if parts is None or not self.is_operator or parts.life.state != "open":
            return  # views close with the store they came from
        await close_parts(parts)

    def as_owner(self, owner: str) -> FileStore:
        """This store as seen by another owner: the same tiers, database and caches, but
        every record and query scoped to ``owner``. Views close with their store."""
        parts = self._open()
        if not owner or len(owner) > 255 or "\x00" in owner:
            raise InvalidInputError("owner must be 1-255 characters without NUL")
        return FileStore(self.settings, owner=owner, parts=parts)

    def _open(self) -> Parts:
        parts = self._parts
        if parts is None or parts.life.state != "open":
            raise StoreClosedError(
                "this FileStore is closed; open a new one with `async with FileStore(...)`"
                if parts is not None
                else "this FileStore is not open yet: use `async with FileStore(...) as store`"
            )
        return parts

    @property
    def is_operator(self) -> bool:
        """The store this process opened, as opposed to a view for another owner
        (:meth:`as_owner`): the operator runs whole-store maintenance and sees global
        figures; other owners see only their own."""
        return self._parts is None or self.owner == self._parts.operator

    @property
    def primary_reads(self) -> int:
        """Primary-store reads made by this process."""
        return self._open().core.counters.primary_reads

    async def flush(self) -> None:
        """Write batched download bookkeeping now (it is also written on close)."""
        await self._open().core.recorder.flush()

    async def settle(self) -> None:
        """Wait for removals this process left to the background (tests, shutdown)."""
        await self._open().core.background.settle()

    def on_files_changed(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call ``callback(owner)`` after each commit that adds or removes a file, with
        the file's owner (every owner's: the subscriber filters). It runs on the event
        loop and must neither block nor raise. Returns the function that unsubscribes."""
        listeners, token = self._open().life.listeners, object()
        listeners[token] = callback
        return lambda: listeners.pop(token, None) and None

    # -- finding files --------------------------------------------------------------------

    async def stat(self, file_id: str | UUID) -> FileRecord:
        """The file's metadata record, always read fresh from the database."""
        records = self._open().records
        with contextlib.suppress(InvalidFileIdError):  # a provider file id resolves below
            records.forget(self.owner, parse_file_id(file_id))
        return await records.get(self.owner, file_id)

    async def resolve_file_id(self, prefix: str) -> UUID:
        """The id of this owner's one file whose id starts with ``prefix`` (at least
        :data:`MIN_ID_PREFIX` hex digits, dashes optional); a whole id as it is."""
        return await catalog.resolve_prefix(self._open().core.repo, self.owner, prefix)

    async def list(
        self,
        *,
        name_contains: str | None = None,
        mime_type: str | None = None,
        sha256: str | None = None,
        limit: int = 100,
        offset: int = 0,
        sort: FileSort = "-uploaded",
    ) -> FilePage:
        """A page of this owner's files, newest first unless ``sort`` names another key
        (``name``, ``size``, ``type``, ``uploaded``, ``accessed``; ``-`` for descending)."""
        repo = self._open().core.repo
        return await catalog.list_page(
            repo,
            self.owner,
            name_contains=name_contains,
            mime_type=mime_type,
            sha256=sha256,
            limit=limit,
            offset=offset,
            sort=sort,
        )

    async def presigned_url(self, file_id: str | UUID, expires_in: int) -> tuple[str, datetime]:
        """A pre-signed object-store URL for the owner's file and when it expires.

        The bytes go straight from the object store: filetier cannot revoke the URL before
        it expires, records no download history and does not verify what is served.
        Only for a primary that can sign (S3-compatible, GCS, Azure)."""
        parts = self._open()
        record = await parts.records.get(self.owner, file_id)
        return await catalog.presigned_url(self.settings, parts.core.primary, record, expires_in)

    # -- writing --------------------------------------------------------------------------

    async def upload_file(
        self,
        source: UploadSource,
        *,
        filename: str | None = None,
        mime_type: str | None = None,
        metadata: dict[str, Any] | None = None,
        progress: Progress | None = None,
    ) -> UploadResult:
        """Store a file from a path, bytes, a binary file object or an async iterator.

        Bytes already stored are not written again (``deduplicated`` in the result),
        but every call creates its own file record.
        """
        parts = self._open()
        result = await parts.writer.upload(
            self.owner,
            source,
            operator=self.is_operator,
            filename=filename,
            mime_type=mime_type,
            metadata=metadata,
            progress=progress,
        )
        parts.life.announce(self.owner)
        return result

    async def link_existing(
        self,
        *,
        sha256: str,
        size: int,
        filename: str,
        mime_type: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> UploadResult | None:
        """Hash-first upload: a new file of content this owner already stores, with no
        byte sent; None when the owner does not store it (send the bytes then)."""
        parts = self._open()
        result = await parts.writer.link_existing(
            self.owner,
            sha256=sha256,
            size=size,
            filename=filename,
            mime_type=mime_type,
            metadata=metadata,
        )
        if result is not None:
            parts.life.announce(self.owner)
        return result

    @property
    def quota(self) -> OwnerQuota:
        return self._open().writer.quota(self.owner)

    async def check_quota(self, incoming: int) -> None:
        """Refuse early an upload of ``incoming`` bytes that would exceed the quota."""
        await self._open().writer.check_quota(self.owner, incoming)

    async def vouch(self, sha256: str, size: int) -> bool:
        """Whether the stored object of this content can be trusted as a dedup target."""
        return await self._open().writer.vouch(sha256, size)

    # -- reading --------------------------------------------------------------------------

    async def read_bytes(self, file_id: str | UUID) -> bytes:
        """The whole file in memory, verified. For large files prefer :meth:`open`."""
        started = time.perf_counter()
        parts = self._open()
        record = await parts.records.get(self.owner, file_id)
        data = parts.core.memory.get(record.sha256)
        if data is None:
            data, tier = await parts.reads.read(self.owner, record)
            parts.usage.hit(self.owner, record, tier, started)
        else:
            parts.usage.hit(self.owner, record, "memory", started)
        return data

    @asynccontextmanager
    async def open(
        self, file_id: str | UUID, *, chunk_size: int = 1024 * 1024
    ) -> AsyncIterator[FileReader]:
        """Stream a file: ``async with store.open(fid) as r: async for chunk in r``.

        The SHA-256 is checked as the bytes pass; a mismatch raises IntegrityError at the
        end of the stream (and the bad copy is evicted or quarantined).
        """
        started = time.perf_counter()
        parts = self._open()
        record = await parts.records.get(self.owner, file_id)
        reader = await parts.reads.open(self.owner, record, chunk_size=chunk_size)
        try:
            yield reader
        finally:
            reader.close()
        if reader.completed:
            parts.usage.track(self.owner, record, reader.tier, started)

    async def download_file(
        self,
        file_id: str | UUID,
        destination: str | os.PathLike[str] | None = None,
        *,
        cleanup: CleanupPolicy | None = None,
        downloaded_by: str | None = None,
        progress: Progress | None = None,
        overwrite: bool = False,
    ) -> Path:
        """Write the file to ``destination`` (inside the allowed roots) and return the path."""
        result = await self.download(
            file_id,
            destination,
            cleanup=cleanup,
            downloaded_by=downloaded_by,
            progress=progress,
            overwrite=overwrite,
        )
        return Path(result.path)

    async def download(
        self,
        file_id: str | UUID,
        destination: str | os.PathLike[str] | None = None,
        *,
        cleanup: CleanupPolicy | None = None,
        downloaded_by: str | None = None,
        progress: Progress | None = None,
        overwrite: bool = False,
        roots: AllowedRoots | None = None,
    ) -> DownloadResult:
        """Like :meth:`download_file`, returning which tier served it.

        With no ``destination`` the file goes to this owner's own folder in the first
        root (``<root>/<owner>/<name>``), so owners never collide there. An existing file
        is replaced only with ``overwrite=True``; the same bytes already there are a
        no-op success, different ones raise :class:`DestinationExistsError`.

        ``roots``: the caller's own roots when they are narrower than the store's (a
        remote caller's folders); a default destination is then the first of them.

        ``cleanup`` applies to copies delivered into the default downloads folder:
        ``"retain"`` (default there) removes them after the retention period,
        ``"immediate"`` when this store closes, ``"keep"`` never.
        """
        return await self._open().delivery.download(
            self.owner,
            file_id,
            destination,
            cleanup=cleanup,
            downloaded_by=downloaded_by,
            progress=progress,
            overwrite=overwrite,
            roots=roots,
        )

    @asynccontextmanager
    async def delivered(self, file_id: str | UUID, **kwargs: Any) -> AsyncIterator[Path]:
        """A copy in the downloads folder that is removed as soon as the block exits."""
        async with self._open().delivery.delivered(self.owner, file_id, **kwargs) as path:
            yield path

    async def download_many(
        self,
        file_ids: Iterable[str | UUID],
        destination_dir: str | os.PathLike[str] | None = None,
        *,
        concurrency: int = 4,
        cleanup: CleanupPolicy | None = None,
        overwrite: bool = False,
    ) -> builtins.list[BatchItem]:
        """Download several files with bounded concurrency; one result per id, in order."""
        return await self._open().delivery.download_many(
            self.owner,
            file_ids,
            destination_dir,
            concurrency=concurrency,
            cleanup=cleanup,
            overwrite=overwrite,
        )

    # -- ending ---------------------------------------------------------------------------

    async def delete(self, file_id: str | UUID) -> DeleteResult:
        """Delete one file. ``blob_deleted``: no other file of yours has these bytes
        (see :meth:`filetier.ending.ContentEnd.delete` for when the content goes)."""
        parts = self._open()
        result = await parts.ending.delete(self.owner, file_id, operator=self.is_operator)
        parts.life.announce(self.owner)
        return result

    async def end_content(self, sha256: str) -> bool:
        """End this content everywhere if no file references it (see :mod:`filetier.ending`)."""
        return await self._open().ending.end_content(sha256)

    # -- maintenance and figures ----------------------------------------------------------

    async def verify(self, *, fix: bool = False) -> VerifyReport:
        parts = self._open()
        return await verify_store(parts.core, parts.ending, fix=fix)

    async def cleanup_cache(
        self,
        max_age_days: float | None = None,
        max_size_mb: float | None = None,
        *,
        dry_run: bool = False,
    ) -> MaintenanceReport:
        return await cleanup_store(
            self._open().core, max_age_days=max_age_days, max_size_mb=max_size_mb, dry_run=dry_run
        )

    async def gc(
        self, *, dry_run: bool = False, grace_seconds: float | None = None
    ) -> MaintenanceReport:
        parts = self._open()
        grace = self.settings.gc_grace_seconds if grace_seconds is None else grace_seconds
        return await collect_garbage(parts.core, parts.ending, dry_run=dry_run, grace_seconds=grace)

    async def stats(self) -> StoreStats:
        """Counts and cache figures: the whole store's for the operator; another owner
        gets only its own (see :meth:`filetier.usage.Usage.stats`)."""
        usage = self._open().usage
        copies = await self.providers.owner_copies()
        return await usage.stats(self.owner, operator=self.is_operator, provider_copies=copies)

    async def history(
        self, file_id: str | UUID | None = None, *, limit: int = 50
    ) -> Sequence[DownloadEvent]:
        fid = parse_file_id(file_id) if file_id is not None else None
        return await self._open().usage.history(self.owner, fid, limit)

    # -- providers ------------------------------------------------------------------------

    async def get_provider_file_id(
        self,
        file_id: str | UUID,
        provider: str,
        purpose: str = DEFAULT_PURPOSE,
        *,
        verify: bool = False,
    ) -> ProviderFileId:
        """The provider's id for this file, uploading its bytes there at most once."""
        self._open()
        return await self.providers.get_provider_file_id(file_id, provider, purpose, verify=verify)

    async def provider_copies(self, file_id: str | UUID) -> Sequence[ProviderCopyInfo]:
        """This file's copies at providers, each with the life it has left there."""
        self._open()
        return await self.providers.copies_of(file_id)

    async def get_file_text(self, file_id: str | UUID, provider: str) -> ExtractedText:
        """The provider's text extraction of the file (cached): not the original bytes."""
        questions = ProviderQuestions(self.providers, self._open().records)
        return await questions.get_file_text(file_id, provider)

    async def ask_file(
        self,
        file_ids: Sequence[str | UUID] | str | UUID,
        question: str,
        provider: str,
        model: str | None = None,
    ) -> AskResult:
        """Ask the provider a question about one or more files."""
        questions = ProviderQuestions(self.providers, self._open().records)
        ids = [file_ids] if isinstance(file_ids, str | UUID) else list(file_ids)
        return await questions.ask_file(ids, question, provider, model)

    async def sync_providers(
        self, providers: Sequence[str] | None = None, *, dry_run: bool = True
    ) -> SyncReport:
        """Reconcile provider records with the providers' file lists (a plan by default)."""
        clients = self._open().clients
        return await sync_providers(
            clients, list(providers) if providers else None, dry_run=dry_run
        )


UnifiedFileHandler = FileStore
"""The name of the original design, kept for its callers."""

__all__ = ["FileReader", "FileStore", "UnifiedFileHandler", "parse_file_id", "storage_key"]
