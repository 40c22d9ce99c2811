"""FileStore: the public facade, one method per thing a caller asks for.

Each method checks the store is open and hands the request to the one collaborator that
owns the rule (:mod:`filetier.parts` wires them). A file id, from the MCP tool down::

    interfaces.mcp.tools.transfer.download_file -> FileStore.download -> delivery.Delivery.download
      -> records.RecordCache.get(owner, id)     the owner's record (cached briefly)
      -> reading.ReadPath.attempt -> .locate    memory, disk cache, primary; verified
        -> tiers: memory.MemoryTier, disk.DiskCache, the PrimaryStore (object store)

An owner's view (:meth:`FileStore.as_owner`) is a new facade over the same parts.
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
from typing import Any, Self, Unpack
from uuid import UUID

from filetier.catalog import ListOptions, list_page, resolve_prefix, sign_url
from filetier.config import Settings
from filetier.core import open_core, storage_key
from filetier.delivery import DownloadOptions
from filetier.digest import Progress
from filetier.errors import InvalidFileIdError, InvalidInputError
from filetier.ids import parse_file_id
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
    MaintenanceReport,
    ProviderCopyInfo,
    ProviderFileId,
    StoreStats,
    SyncReport,
    UploadResult,
    VerifyReport,
)
from filetier.parts import Parts, build_parts, close_parts, require_open
from filetier.providers.asking import ProviderQuestions
from filetier.providers.sync import sync_providers
from filetier.providers.uploads import DEFAULT_PURPOSE, ProviderFiles
from filetier.quota import OwnerQuota
from filetier.reading import FileReader
from filetier.tiers.protocols import PrimaryStore


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
        # ``parts``: those of an open store, for another owner's view (see as_owner).
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
        return require_open(self._parts)

    @property
    def is_operator(self) -> bool:
        """The owner this process opened the store as: it runs whole-store maintenance
        and sees global figures; other owners' views (:meth:`as_owner`) their own."""
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
        """Call ``callback(owner)`` after each change to any owner's files (see
        :meth:`filetier.parts.Lifecycle.subscribe`); returns the unsubscribe function."""
        return self._open().life.subscribe(callback)

    # -- finding files --------------------------------------------------------------------

    async def stat(self, file_id: str | UUID) -> FileRecord:
        """The file's metadata record, always read fresh from the database."""
        records = self._open().records
        with contextlib.suppress(InvalidFileIdError):  # a provider file id resolves below
            records.forget(self.owner, parse_file_id(file_id))
        return await records.get(self.owner, file_id)

    async def resolve_file_id(self, prefix: str) -> UUID:
        """The id of this owner's one file whose id starts with ``prefix``."""
        return await resolve_prefix(self._open().core.repo, self.owner, prefix)

    async def list(self, **options: Unpack[ListOptions]) -> FilePage:
        """A page of this owner's files (see :func:`filetier.catalog.list_page`)."""
        return await list_page(self._open().core.repo, self.owner, **options)

    async def presigned_url(self, file_id: str | UUID, expires_in: int) -> tuple[str, datetime]:
        """A pre-signed object-store URL for the owner's file and when it expires
        (see :func:`filetier.catalog.sign_url`: not revocable, not verified)."""
        parts = self._open()
        record = await parts.records.get(self.owner, file_id)
        return await sign_url(self.settings, parts.core.primary, record, expires_in)

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
        Bytes already stored are not written again (``deduplicated``), but every call
        creates its own file record."""
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
        """Stream a file: ``async with store.open(fid) as r: async for chunk in r``. The
        SHA-256 is checked as the bytes pass; a mismatch raises IntegrityError at the end
        of the stream (and the bad copy is evicted or quarantined)."""
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
        **options: Unpack[DownloadOptions],
    ) -> Path:
        """Write the file to ``destination`` (inside the allowed roots) and return the path."""
        return Path((await self.download(file_id, destination, **options)).path)

    async def download(
        self,
        file_id: str | UUID,
        destination: str | os.PathLike[str] | None = None,
        **options: Unpack[DownloadOptions],
    ) -> DownloadResult:
        """Like :meth:`download_file`, returning which tier served it (destinations and
        options: :meth:`filetier.delivery.Delivery.download`)."""
        return await self._open().delivery.download(self.owner, file_id, destination, **options)

    @asynccontextmanager
    async def delivered(
        self, file_id: str | UUID, **options: Unpack[DownloadOptions]
    ) -> AsyncIterator[Path]:
        """A copy in the downloads folder that is removed as soon as the block exits."""
        async with self._open().delivery.delivered(self.owner, file_id, **options) as path:
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
        """Delete one file (see :meth:`filetier.ending.ContentEnd.delete`)."""
        parts = self._open()
        result = await parts.ending.delete(self.owner, file_id, operator=self.is_operator)
        parts.life.announce(self.owner)
        return result

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
        return await collect_garbage(parts.core, parts.ending, dry_run=dry_run, grace=grace_seconds)

    async def stats(self) -> StoreStats:
        """Counts and cache figures (see :meth:`filetier.usage.Usage.stats`)."""
        usage = self._open().usage
        copies = await self.providers.owner_copies()
        return await usage.stats(self.owner, operator=self.is_operator, provider_copies=copies)

    async def history(
        self, file_id: str | UUID | None = None, *, limit: int = 50
    ) -> Sequence[DownloadEvent]:
        return await self._open().usage.history(self.owner, file_id, limit)

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
        return await questions.ask_file(file_ids, question, provider, model)

    async def sync_providers(
        self, providers: Sequence[str] | None = None, *, dry_run: bool = True
    ) -> SyncReport:
        """Reconcile provider records with the providers' file lists (a plan by default)."""
        return await sync_providers(self._open().clients, providers, dry_run=dry_run)


UnifiedFileHandler = FileStore
"""The name of the original design, kept for its callers."""

__all__ = ["FileReader", "FileStore", "UnifiedFileHandler", "parse_file_id", "storage_key"]
