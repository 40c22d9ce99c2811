"""FileStore: the orchestration of tiers, metadata and delivery.

Reads look in memory, then the disk cache, then the primary store, and every byte that
leaves a tier is checked against its SHA-256 on the way out. When the primary store is a
local directory (the embedded default) its files are read in place, so there is no disk
cache copy: the primary *is* this host's disk tier.

Order of side effects (the invariants the crash tests check):

- upload: temp file -> hash -> object published (atomic) -> rows committed;
- delete: rows committed -> object deleted, only if nothing references it any more;
- fetch into a cache: temp file -> hash checked -> atomic rename.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import copy
import functools
import hashlib
import logging
import os
import random
import re
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Coroutine,
    Iterable,
    Sequence,
)
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, Literal, Self, get_args
from uuid import UUID

from filetier.config import Settings
from filetier.coordination import build_content_locks
from filetier.delivery import remove_delivered
from filetier.digest import Progress, StreamDigest, copy_and_hash, copy_exact, sniff_mime
from filetier.errors import (
    FiletierError,
    IntegrityError,
    InvalidFileIdError,
    InvalidInputError,
    NotFoundError,
    ObjectMissing,
    QuotaExceededError,
    StorageUnavailableError,
    StoreClosedError,
)
from filetier.ingest import (
    Staged,
    UploadSource,
    check_filename,
    check_limits,
    check_space,
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
from filetier.metadata.database import Database
from filetier.metadata.repository import AccessEvent, Repository, utcnow
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
    Tier,
    TierStats,
    UploadResult,
    VerifyReport,
)
from filetier.modes import make_dirs, open_new
from filetier.paths import AllowedRoots, SafeDestination, owner_folder, safe_filename
from filetier.providers.manager import DEFAULT_PURPOSE, ProviderFiles
from filetier.quota import OwnerQuota
from filetier.singleflight import SingleFlight, process_lock
from filetier.tiers.disk import DiskCache
from filetier.tiers.factory import open_primary
from filetier.tiers.hashing import hash_object
from filetier.tiers.memory import MemoryTier
from filetier.tiers.protocols import LocalPath, PrimaryStore

log = logging.getLogger(__name__)

# Immediate deliveries are removed by their own process when it closes; should it crash,
# `cleanup` removes them after this long.
IMMEDIATE_SAFETY_NET = timedelta(hours=1)
# File records are immutable but for counters; this many are reused from memory.
# A cached record in this last fraction of its life is served and re-read in the background.
REFRESH_AHEAD = 0.25
# Records due for a re-read are gathered this long and re-read in one query per owner
# (at most REFRESH_BATCH_MAX ids each): one query per record, for hundreds of hot records
# every few seconds, kept a busy server's event loop and database connection queueing.
REFRESH_BATCH_DELAY = 0.05
REFRESH_BATCH_MAX = 500
RECORD_CACHE_MAX = 10_000
LIST_OFFSET_MAX = 10**12  # the largest ``offset`` a listing takes (every interface)
# An object's modification time is compared with the one recorded when filetier last
# wrote or hashed it; stores keep it to the microsecond (S3: the second), so any rewrite
# but one within this much of filetier's own write shows.
MTIME_TOLERANCE = timedelta(milliseconds=1)
CLEANUP_POLICIES = (None, "immediate", "retain", "keep")
# Provider file ids look like ``file-abc123`` (OpenAI, Kimi) or other short tokens (GLM).
#: Fewest hex digits ``resolve_file_id`` accepts as an id prefix.
MIN_ID_PREFIX = 4
# Uploads held in memory up to this size are written to their staging file on the loop.
_INLINE_WRITE_MAX = 256 * 1024
_HEX_RE = re.compile(r"[0-9a-f]+")
PROVIDER_FILE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{2,254}$")


def _unknown_provider_file_id(text: str) -> InvalidFileIdError:
    return InvalidFileIdError(
        f"{text[:64]!r} is not a file id (expected a UUID such as "
        "0192b5e0-7c1a-7d3e-9f00-1a2b3c4d5e6f) nor a provider file id filetier knows"
    )


def storage_key(sha256: str) -> str:
    return f"sha256/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def parse_file_id(file_id: str | UUID) -> UUID:
    if isinstance(file_id, UUID):
        return file_id
    try:
        return UUID(str(file_id).strip())
    except (ValueError, AttributeError):
        shown = str(file_id)[:64]
        raise InvalidFileIdError(
            f"{shown!r} is not a file id (expected a UUID such as 0192b5e0-7c1a-7d3e-9f00-1a2b3c4d5e6f)"
        ) from None


@dataclass(slots=True)
class _SharedCounters:
    """Mutable state shared by a store and its owner views."""

    primary_reads: int = 0
    disk_estimate: int | None = None


class _CorruptCopy(Exception):
    """A copy failed its hash check (internal: handled by falling back a tier)."""


class _VanishedCopy(Exception):
    """A cache copy was evicted between lookup and read (internal: fetch again)."""


@dataclass(frozen=True, slots=True)
class _Located:
    """A local file holding a file's content, and what kind of copy it is."""

    tier: Tier
    path: Path
    cache_copy: bool  # True: a disk-cache copy (evict if bad); False: the local primary
    # True: this process fetched it from the primary and hashed it in full just now, so
    # delivering it again needs a copy, not a second SHA-256 pass.
    just_verified: bool = False


# A read retries after evicting a bad or vanished cache copy; the primary is read last.
READ_ATTEMPTS = 3


class FileStore:
    """A content-addressed, three-tier file store. Use as ``async with FileStore() as s``."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        owner: str | None = None,
        primary: PrimaryStore | None = None,
    ) -> None:
        self.settings = settings if settings is not None else Settings()
        self.owner = owner or self.settings.owner
        self._primary_given = primary
        self._state: Literal["new", "open", "closed"] = "new"
        self._root: FileStore = self
        self._views: dict[str, FileStore] = {}

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect, migrate a new database, start bookkeeping (``async with`` calls it)."""
        from filetier.bookkeeping import AccessRecorder

        settings = self.settings
        make_dirs(settings.home.expanduser())
        self.db = Database(
            settings.database_url,
            timeout_seconds=settings.database_timeout_seconds,
            schema=settings.database_schema,
            durable_commits=settings.fsync,
        )
        try:
            # A generic DATABASE_URL may be another app's: adopted only if empty or ours.
            await self.db.upgrade(
                lock_dir=settings.home.expanduser(), adopt=not settings.database_is_shared
            )
        except BaseException:
            await self.db.close()
            raise
        self.repo = Repository(self.db)
        try:
            self.primary: PrimaryStore = self._primary_given or await open_primary(settings)
        except BaseException:
            await self.db.close()
            raise
        self._local = self.primary if isinstance(self.primary, LocalPath) else None
        self.memory = MemoryTier(settings.max_memory_cache_size, settings.memory_item_max_bytes)
        self.disk = DiskCache(settings.cache_dir)
        self.content_locks = build_content_locks(
            self.db, self.disk.locks, settings.lock_timeout_seconds
        )
        self.roots = AllowedRoots(settings.allowed_roots)
        self._recorder = AccessRecorder(self.repo, flush_seconds=settings.bookkeeping_flush_seconds)
        self._recorder.start()
        self._fetches: SingleFlight[tuple[Path, bool]] = SingleFlight()
        # Keyed by the UUID and by its text: callers pass either.
        self._records: dict[UUID | str, tuple[float, FileRecord]] = {}
        self._session: dict[str, list[int]] = {"memory": [0, 0], "disk": [0, 0], "primary": [0, 0]}
        self._shared = _SharedCounters()
        # Records due for a background re-read, by (owner, file id), and the one task
        # that re-reads them in batches; _refreshing holds the batch in flight.
        self._refresh_due: dict[tuple[str, UUID], tuple[FileStore, tuple[float, FileRecord]]] = {}
        self._refreshing: set[tuple[str, UUID]] = set()
        self._refresher: asyncio.Task[None] | None = None
        self._immediate: list[tuple[Path, str]] = []
        self._background: set[asyncio.Task[None]] = set()
        self.providers = ProviderFiles(self)
        self._state = "open"

    async def close(self) -> None:
        if self._root is not self or self._state != "open":
            return  # views close with the store they came from
        if self._background:
            await self.settle()
        self._state = "closed"
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
        try:
            await self.repo.settle()
            await self._recorder.close()
        finally:
            downloads = self.settings.downloads_dir.expanduser()
            for path, sha256 in self._immediate:
                remove_delivered(path, downloads, sha256)
            await self.providers.close()
            await self.primary.close()
            await self.db.close()

    def as_owner(self, owner: str) -> FileStore:
        """This store as seen by another owner: the same tiers, database and caches, but
        every record and query scoped to ``owner``. Views close with their store."""
        self._require_open()
        if not owner or len(owner) > 255 or "\x00" in owner:
            raise InvalidInputError("owner must be 1-255 characters without NUL")
        root = self._root
        if owner == root.owner:
            return root
        view = root._views.get(owner)
        if view is None:
            view = copy.copy(root)
            view.owner = owner
            view._records = {}  # records are owner-scoped: never shared between owners
            # Per owner too: which tier served whom is not another owner's business.
            view._session = {"memory": [0, 0], "disk": [0, 0], "primary": [0, 0]}
            view.providers = root.providers.bind(view)
            root._views[owner] = view
        return view

    @property
    def primary_reads(self) -> int:
        """Primary-store reads made by this process."""
        return self._shared.primary_reads

    def _require_open(self) -> None:
        if self._root._state != "open":
            raise StoreClosedError(
                "this FileStore is closed; open a new one with `async with FileStore(...)`"
                if self._root._state == "closed"
                else "this FileStore is not open yet: use `async with FileStore(...) as store`"
            )

    async def flush(self) -> None:
        """Write batched download bookkeeping now (it is also written on close)."""
        self._require_open()
        await self._recorder.flush()

    # -- records --------------------------------------------------------------------------

    async def _record(self, file_id: str | UUID) -> FileRecord:
        self._require_open()
        if type(file_id) is str:
            # The same id string asked again: skip parsing it (a third of a memory hit).
            known = self._cached_record(file_id)
            if known is not None:
                return known
        try:
            fid = parse_file_id(file_id)
        except InvalidFileIdError:
            # Downloads may name a provider's file id (``file-…``) instead of ours.
            if isinstance(file_id, str) and PROVIDER_FILE_ID_RE.match(file_id.strip()):
                return await self._record_for_provider_file_id(file_id.strip())
            raise
        known = self._cached_record(fid)
        if known is not None:
            return known
        record = await self.repo.get_file(self.owner, fid)
        if record is None:
            self._forget_record(fid)
            raise NotFoundError(f"no file with id {fid}")
        self._remember(record)
        return record

    async def _record_for_provider_file_id(self, provider_file_id: str) -> FileRecord:
        held = await self.providers.resolve(provider_file_id)
        if held is None or held.file_hash is None:
            raise _unknown_provider_file_id(provider_file_id)
        page, _total = await self.repo.list_files(
            self.owner, name_contains=None, mime_type=None, sha256=held.file_hash, limit=1, offset=0
        )
        if not page:
            # Same answer as an unknown id: another owner's copy must stay invisible.
            raise _unknown_provider_file_id(provider_file_id)
        return page[0]

    def _cached_record(self, key: UUID | str) -> FileRecord | None:
        """A record from the cache while it is fresh. In the last quarter of its life it
        is still served, and re-read in the background: a hot record is then never
        waited for, where a busy server would queue every reader of it behind one
        database round trip each time it expired."""
        entry = self._records.get(key)
        if entry is None:
            return None
        left = entry[0] - time.monotonic()
        if left <= 0:
            return None
        if left < self.settings.record_cache_ttl_seconds * REFRESH_AHEAD:
            self._refresh_record(entry)
        return entry[1]

    def _refresh_record(self, entry: tuple[float, FileRecord]) -> None:
        root = self._root
        key = (self.owner, entry[1].file_id)
        if key in root._refresh_due or key in root._refreshing:
            return
        root._refresh_due[key] = (self, entry)
        if root._refresher is None or root._refresher.done():
            root._refresher = asyncio.get_running_loop().create_task(root._refresh_batches())

    async def _refresh_batches(self) -> None:
        """Re-read the records that came due, a batch per owner, until none are left."""
        while self._refresh_due:
            await asyncio.sleep(REFRESH_BATCH_DELAY)  # let the batch fill
            due, self._refresh_due = self._refresh_due, {}
            self._refreshing = set(due)
            by_owner: dict[str, list[tuple[FileStore, tuple[float, FileRecord]]]] = {}
            for (owner, _fid), item in due.items():
                by_owner.setdefault(owner, []).append(item)
            try:
                for items in by_owner.values():
                    for start in range(0, len(items), REFRESH_BATCH_MAX):
                        await _reread_records(items[start : start + REFRESH_BATCH_MAX])
            finally:
                self._refreshing = set()

    def _forget_record(self, file_id: UUID) -> None:
        self._records.pop(file_id, None)
        self._records.pop(str(file_id), None)

    def _forget_records_with(self, sha256: str) -> None:
        """Drop cached records of this content (their provider ids changed), in every
        owner view."""
        root = self._root
        for store in (root, *root._views.values()):
            stale = [fid for fid, (_t, r) in store._records.items() if r.sha256 == sha256]
            for fid in stale:
                store._records.pop(fid, None)

    def _remember(self, record: FileRecord) -> None:
        if len(self._records) >= RECORD_CACHE_MAX:
            # Drop the oldest insertion: dicts keep insertion order.
            self._records.pop(next(iter(self._records)))
        # Jittered, so records loaded together do not all expire (and reload) together.
        ttl = self.settings.record_cache_ttl_seconds * (0.75 + random.random() / 2)  # noqa: S311
        entry = (time.monotonic() + ttl, record)
        self._records[record.file_id] = entry
        self._records[str(record.file_id)] = entry

    async def presigned_url(self, file_id: str | UUID, expires_in: int) -> tuple[str, datetime]:
        """A pre-signed object-store URL for the owner's file and when it expires.

        The bytes go straight from the object store: filetier cannot revoke the URL before
        it expires, records no download history and does not verify what is served.
        Only for a primary that can sign (S3-compatible, GCS, Azure)."""
        record = await self._record(file_id)
        longest = self.settings.link_max_seconds
        if not 1 <= expires_in <= longest:
            raise InvalidInputError(
                f"expires_in must be between 1 and {longest} seconds "
                f"(FILETIER_LINK_MAX_SECONDS), not {expires_in}"
            )
        sign = getattr(self.primary, "sign_get", None)
        url = await sign(record.storage_key, timedelta(seconds=expires_in)) if sign else None
        if url is None:
            raise InvalidInputError(
                "direct object-store URLs need an S3-compatible primary store; ask for a "
                "filetier link instead"
            )
        return str(url), utcnow() + timedelta(seconds=expires_in)

    async def stat(self, file_id: str | UUID) -> FileRecord:
        """The file's metadata record, always read fresh from the database."""
        with contextlib.suppress(InvalidFileIdError):  # a provider file id resolves below
            self._forget_record(parse_file_id(file_id))
        return await self._record(file_id)

    async def resolve_file_id(self, prefix: str) -> UUID:
        """The id of this owner's one file whose id starts with ``prefix``, as git takes
        a unique commit prefix: hex digits (dashes optional), at least
        :data:`MIN_ID_PREFIX` of them. Only this owner's ids are searched, so another
        owner's files can neither match nor make a prefix ambiguous. A whole id is
        returned as it is, found or not (``stat`` says which)."""
        self._require_open()
        text = prefix.strip().lower()
        digits = text.replace("-", "")
        if not _HEX_RE.fullmatch(digits) or len(digits) > 32:
            raise InvalidFileIdError(
                f"{prefix[:64]!r} is not a file id or id prefix (hex digits, e.g. 0192b5e0)"
            )
        if len(digits) == 32:
            return UUID(digits)
        if len(digits) < MIN_ID_PREFIX:
            raise InvalidInputError(
                f"id prefix {text!r} is too short: give at least {MIN_ID_PREFIX} characters"
            )
        low, high = UUID(digits.ljust(32, "0")), UUID(digits.ljust(32, "f"))
        ids, count = await self.repo.file_ids_between(self.owner, low, high, limit=2)
        if count == 0:
            raise NotFoundError(f"no file whose id starts with {text}")
        if count > 1:
            raise InvalidInputError(
                f"id prefix {text} is ambiguous: {count} files match; give more characters"
            )
        return ids[0]

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
        self._require_open()
        if not 1 <= limit <= 1000:
            raise InvalidInputError(f"limit must be between 1 and 1000, not {limit}")
        if offset < 0:
            raise InvalidInputError(f"offset cannot be negative ({offset})")
        if sort not in get_args(FileSort):
            raise InvalidInputError(
                f"sort must be one of {', '.join(get_args(FileSort))}, not {sort!r}"
            )
        if offset > LIST_OFFSET_MAX:
            # SQLite and PostgreSQL take 64-bit offsets: a larger one is an overflow in
            # the driver, not an empty page; no owner has this many files anyway.
            raise InvalidInputError(f"offset must be at most {LIST_OFFSET_MAX}, not {offset}")
        items, total = await self.repo.list_files(
            self.owner,
            name_contains=name_contains,
            mime_type=mime_type,
            sha256=sha256.lower() if sha256 else None,
            limit=limit,
            offset=offset,
            sort=sort,
        )
        next_offset = offset + len(items) if offset + len(items) < total else None
        return FilePage(
            items=items, total=total, offset=offset, limit=limit, next_offset=next_offset
        )

    # -- upload ---------------------------------------------------------------------------

    def _staging_dir(self) -> Path:
        return self._local.staging_dir() if self._local is not None else self.disk.tmp

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
        self._require_open()
        meta = validate_metadata(metadata)
        if filename is not None:
            check_filename(filename)
        if isinstance(source, bytes | bytearray | memoryview):
            await self._check_quota(len(source))
        elif isinstance(source, str | os.PathLike):
            await self._check_quota(source_path(source)[1])
        else:
            await self._check_quota(0)
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
                    settings=self.settings,
                )
                if len(data) > 1024 * 1024
                else stage_bytes(
                    data,
                    filename=filename or "upload.bin",
                    declared_mime=mime_type,
                    settings=self.settings,
                )
            )
            dedup = await self._already_stored(staged.sha256)
            if progress:
                progress(len(data))
        elif hasattr(source, "read"):
            stream = iterate_file_object(source)  # type: ignore[arg-type]
            name = filename or Path(str(getattr(source, "name", "upload.bin"))).name
            staged = await stage_stream(
                stream,
                filename=name,
                declared_mime=mime_type,
                settings=self.settings,
                staging=self._staging_dir(),
                progress=progress,
                fsync=False,  # made durable by its row's batch: _durable_first
            )
            dedup = await self._already_stored(staged.sha256)
        elif isinstance(source, AsyncIterable):
            staged = await stage_stream(
                source,
                filename=filename or "upload.bin",
                declared_mime=mime_type,
                settings=self.settings,
                staging=self._staging_dir(),
                progress=progress,
                fsync=False,  # made durable by its row's batch: _durable_first
            )
            dedup = await self._already_stored(staged.sha256)
        else:
            raise InvalidInputError(
                "upload source must be a path, bytes, a binary file object or an async "
                f"iterator of bytes, not {type(source).__name__}"
            )
        try:
            if not isinstance(source, bytes | bytearray | memoryview | str | os.PathLike):
                await self._check_quota(staged.size)  # a stream's size is known only now
            return await self._commit_upload(staged, dedup, meta)
        finally:
            staged.discard()

    @property
    def quota(self) -> OwnerQuota:
        settings = self.settings
        return OwnerQuota(self.owner, settings.owner_quota_files, settings.owner_quota_bytes)

    async def _check_quota(self, incoming: int) -> None:
        """Refuse early an upload that would take this owner over its quota. Only a fast
        first answer: the binding check is made again where the row is inserted."""
        quota = self.quota
        if not quota.limited:
            return
        files, used = await self.repo.owner_usage(self.owner)
        quota.check(files, used, incoming)

    async def _already_stored(self, sha256: str) -> bool:
        """A hint for dedup, confirmed under the content lock before it is relied on."""
        if self._local is not None:
            # A stat of the object costs microseconds; a database read a thread hop.
            return self._local.local_path(storage_key(sha256)).exists()
        blob = await self.repo.get_blob(sha256)
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
        check_limits(self.settings, mime, size)
        if self._local is None:
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
            check_limits(self.settings, mime, digest.size)
            staged = Staged(
                digest.sha256,
                digest.size,
                mime,
                name,
                source_path=path,
                source_identity=before,
            )
            return staged, await self._already_stored(digest.sha256)
        # Only content of a size already stored can be a duplicate. For such files a
        # read-only hash pass decides; when it matches, nothing is written at all.
        if await self.repo.blob_of_size_exists(size):
            digest = await hash_path(path, progress)
            if await self._already_stored(digest.sha256):
                return Staged(digest.sha256, digest.size, mime, name, source_path=path), True
            progress = None  # the bar already reached 100% once
        staged = await stage_path(
            path,
            size=size,
            mime_type=mime,
            filename=name,
            settings=self.settings,
            staging=self._staging_dir(),
            progress=progress,
            fsync=False,  # made durable by its row's batch: _durable_first
        )
        return staged, await self._already_stored(staged.sha256)

    async def _commit_upload(
        self, staged: Staged, dedup: bool, meta: dict[str, Any]
    ) -> UploadResult:
        key = storage_key(staged.sha256)
        bytes_written = 0
        wrote_object = False
        # The hash lock orders this upload against a delete of the same content: either
        # the delete sees our new row and keeps the object, or we see the object gone
        # and write it again.
        async with self.content_locks.hold(staged.sha256) as locked:
            if dedup and not await self.vouch(staged.sha256, staged.size):
                dedup = False  # missing or damaged (and set aside): written again below
            if not dedup:
                wrote_object = await self._write_object(key, staged, locked=locked)
                if not wrote_object and not await self.vouch(staged.sha256, staged.size):
                    # An object was there after all (an interrupted upload's) and failed
                    # its check: it is set aside now, so this put writes.
                    wrote_object = await self._write_object(key, staged, locked=locked)
                bytes_written = staged.size if wrote_object else 0
            # What the object's time is now that it holds bytes just hashed: the mark
            # later deduplications check it against.
            written = await self.primary.head(key) if wrote_object else None
            try:
                record = await self.repo.insert_file(
                    owner=self.owner,
                    filename=staged.filename,
                    size=staged.size,
                    mime_type=staged.mime_type,
                    sha256=staged.sha256,
                    storage_key=key,
                    metadata=meta,
                    local_cache_path=None,
                    quota=self.quota,
                    wrote_object=wrote_object,
                    object_modified_at=written.modified if written is not None else None,
                    durable_first=self._durable_first(key),
                )
            except QuotaExceededError:
                if wrote_object:
                    # Still under the lock: nothing else can have started using it.
                    await self.end_content(staged.sha256, lock_held=True)
                raise
        if staged.data is not None:
            self.memory.put(staged.sha256, staged.data)
        self._remember(record)
        deduplicated = not wrote_object
        if deduplicated and not self.is_operator:
            # In a shared server, "already stored" must not reveal that another owner
            # holds these bytes: report it only when this owner had them.
            deduplicated = await self.repo.owner_has_content(
                self.owner, staged.sha256, exclude=record.file_id
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

    def _durable_first(self, key: str) -> Callable[[], None] | None:
        """With fsync on, a local object (its bytes and its directory entries) must be
        on disk before a row naming it commits. Staged files are not fsynced one by one:
        the row's batch runs this for all its objects in one go (group commit), where
        the first fsync commits the file system's journal for all of them. A deduplicated
        object is synced too: the upload that wrote it may still be waiting for its own
        batch. For a remote primary the durable copy is the one the store confirmed."""
        if self._local is None or not self.settings.fsync:
            return None
        local = self._local
        return lambda: local.make_durable(key)

    async def _write_object(self, key: str, staged: Staged, *, locked: bool) -> bool:
        """Put the staged bytes under ``key`` if absent; True when this call wrote the
        object. ``locked``: whether the content lock is held (it may time out)."""
        # The caller's file is sent as it is only under the lock: it may change while it is
        # read, and on a store that ignores put-if-absent (Supabase Storage) an unlocked
        # write could then replace another upload's good object with it. Without the lock
        # only a copy hashed as it was written is sent (staged again below).
        if staged.source_identity is not None and locked:
            return await self._put_from_source(key, staged)
        if staged.temp is None:
            if staged.data is not None:
                # Not fsynced here: a local object is made durable by its row's batch
                # (_durable_first). A small write without an fsync costs less than the
                # hop to a worker thread, so it is made on the loop.
                write = functools.partial(
                    write_staged_bytes, staged, self._staging_dir(), self.settings, fsync=False
                )
                if staged.size <= _INLINE_WRITE_MAX:
                    write()
                else:
                    await asyncio.to_thread(write)
            else:
                assert staged.source_path is not None
                restaged = await stage_path(
                    staged.source_path,
                    size=staged.size,
                    mime_type=staged.mime_type,
                    filename=staged.filename,
                    settings=self.settings,
                    staging=self._staging_dir(),
                    progress=None,
                    fsync=False,  # made durable by its row's batch: _durable_first
                )
                # Staged from the caller's file again: it must still be the bytes hashed.
                if restaged.sha256 != staged.sha256 or restaged.size != staged.size:
                    restaged.discard()
                    raise source_changed(staged.filename)
                staged.temp = restaged.temp
        assert staged.temp is not None
        wrote = await self.primary.put_file(key, staged.temp)
        self._keep_upload_in_caches(staged)
        return wrote

    async def vouch(self, sha256: str, size: int) -> bool:
        """Whether the stored object of this content can be trusted as a dedup target,
        cheaply: call it under the content lock.

        Trusted when its blob row is ``ok``, the object is there with the right size,
        and its modification time is the one recorded when filetier last wrote or
        hashed it (the store's own clock on both sides: no skew to allow for). Otherwise the object is hashed (an interrupted upload's object, a
        quarantined blob's, or one touched since); one that fails is set aside
        (quarantined) so the caller writes the incoming bytes in its place. A copy silently rotted in
        place (same size, same mtime) is not caught here: reads, which hash every byte,
        and ``verify`` catch it and quarantine it, and the next upload then repairs it.
        """
        key = storage_key(sha256)
        blob = await self.repo.get_blob(sha256)
        info = await self.primary.head(key)
        if info is None:
            return False
        if (
            blob is not None
            and blob.status == "ok"
            and info.size == size
            and blob.object_modified_at is not None
            and abs(info.modified - blob.object_modified_at) <= MTIME_TOLERANCE
        ):
            return True
        if info.size == size:
            digest = await hash_object(self.primary, key)
            if digest is not None and digest.sha256 == sha256 and digest.size == size:
                if blob is not None:
                    await self.repo.set_blob_status(
                        sha256, "ok", verified=True, object_modified_at=info.modified
                    )
                return True
        where = await self.primary.quarantine(key)
        log.warning(
            "stored object %s failed its check before deduplication (set aside at %s); "
            "it is replaced by the uploaded bytes",
            sha256,
            where,
        )
        self.disk.evict(sha256)
        self.memory.evict(sha256)
        return False

    async def _put_from_source(self, key: str, staged: Staged) -> bool:
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
            if staged.size <= self._disk_cap()
            else None
        )
        try:
            wrote = await self.primary.put_file(key, source)
        except BaseException:
            if caching is not None:
                landed = (await asyncio.gather(caching, return_exceptions=True))[0]
                if isinstance(landed, Path):
                    landed.unlink(missing_ok=True)
            raise
        # The copy read the source too: its identity is checked only once both are done.
        cache_temp = None
        if caching is not None:
            cache_temp = (await asyncio.gather(caching, return_exceptions=True))[0]
        try:
            unchanged = file_identity(source) == staged.source_identity
        except OSError:
            unchanged = False
        if not unchanged:
            if isinstance(cache_temp, Path):
                cache_temp.unlink(missing_ok=True)
            if wrote:
                await self.primary.delete(key)
            raise source_changed(staged.filename)
        if isinstance(cache_temp, Path):
            self.disk.adopt(staged.sha256, cache_temp)
            self._disk_added(staged.sha256, staged.size)
        return wrote

    def _copy_for_cache(self, source: Path, size: int) -> Path | None:
        """A disk-cache temp copy of ``source``, or None when there is no room or it
        failed (the cache is an optimisation: the upload goes on without it)."""
        try:
            check_space(self.disk.tmp, size, self.settings.min_free_bytes)
        except FiletierError:
            return None
        temp = self.disk.new_temp()
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
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

    def _keep_upload_in_caches(self, staged: Staged) -> None:
        """With a remote primary, the verified temp file becomes the disk-cache copy."""
        if self._local is not None or staged.temp is None:
            return
        if staged.size <= self._disk_cap():
            self.disk.adopt(staged.sha256, staged.temp)
            staged.temp = None
            self._disk_added(staged.sha256, staged.size)

    # -- reading --------------------------------------------------------------------------

    def _count_served(self, tier: Tier, size: int) -> None:
        """This session's counters: the owner's own, and the process's (the operator's)."""
        for store in {id(self): self, id(self._root): self._root}.values():
            counters = store._session[tier]
            counters[0] += 1
            counters[1] += size

    def _track(
        self,
        record: FileRecord,
        tier: Tier,
        started: float,
        *,
        destination: Path | None = None,
        downloaded_by: str | None = None,
        cleanup: CleanupPolicy | None = None,
    ) -> None:
        self._count_served(tier, record.size)
        now = utcnow()
        expires = None
        if cleanup == "retain":
            expires = now + timedelta(hours=self.settings.delivery_retention_hours)
        elif cleanup == "immediate":
            expires = now + IMMEDIATE_SAFETY_NET
        self._recorder.record(
            AccessEvent(
                file_id=record.file_id,
                owner=self.owner,
                at=now,
                tier=tier,
                bytes=record.size,
                duration_ms=(time.perf_counter() - started) * 1000,
                verified=True,
                destination_path=str(destination) if destination else None,
                downloaded_by=downloaded_by,
                cleanup_policy=cleanup,
                expires_at=expires,
            )
        )

    async def read_bytes(self, file_id: str | UUID) -> bytes:
        """The whole file in memory, verified. For large files prefer :meth:`open`."""
        started = time.perf_counter()
        record = await self._record(file_id)
        data = self.memory.get(record.sha256)
        tier: Tier = "memory"
        if data is None:
            data, tier = await self._read_from_tiers(record)
        self._count_served(tier, record.size)
        self._recorder.record_hit(
            record.file_id, self.owner, tier, record.size, (time.perf_counter() - started) * 1000
        )
        return data

    async def _content_bytes(self, record: FileRecord) -> bytes:
        """Verified bytes for internal use (provider uploads): not counted as a download."""
        data = self.memory.get(record.sha256)
        if data is None:
            data, _tier = await self._read_from_tiers(record)
        return data

    @asynccontextmanager
    async def _content_file(self, record: FileRecord) -> AsyncIterator[Path]:
        """A local file holding the content, for provider uploads that read it in pieces
        (bounded memory): the local primary, or this host's disk-cache copy. The adapter
        checks what the provider received against the SHA-256 where the provider tells."""
        data = self.memory.get(record.sha256)
        if data is not None and self._local is None and self.disk.lookup(record.sha256) is None:
            # Only in memory: hand it over through a private temporary file.
            temp = self.disk.new_temp()
            try:
                await asyncio.to_thread(temp.write_bytes, data)
                yield temp
            finally:
                temp.unlink(missing_ok=True)
            return
        located = await self._locate_file(record)
        yield located.path

    async def _read_from_tiers(self, record: FileRecord) -> tuple[bytes, Tier]:
        for _attempt in range(READ_ATTEMPTS):
            located = await self._locate_file(record)
            try:
                data = await asyncio.to_thread(self._read_verified, located, record)
            except (_CorruptCopy, _VanishedCopy) as exc:
                await self._handle_bad_copy(record, located, exc)
                continue
            self.memory.put(record.sha256, data)
            return data, located.tier
        raise self._unreadable(record)

    def _read_verified(self, located: _Located, record: FileRecord) -> bytes:
        try:
            data = located.path.read_bytes()
        except FileNotFoundError:
            raise _VanishedCopy() from None
        if hashlib.sha256(data).hexdigest() != record.sha256:
            raise _CorruptCopy()
        return data

    async def _locate_file(self, record: FileRecord) -> _Located:
        """A local file holding the content: the local primary, or a disk-cache copy."""
        if self._local is not None:
            path = self._local.local_path(record.storage_key)
            if not path.exists():
                raise await self._missing(record)
            return _Located("primary", path, cache_copy=False)
        cached = self.disk.lookup(record.sha256)
        if cached is not None:
            return _Located("disk", cached, cache_copy=True)
        # Fetched from the primary just now (verified on the way in), unless another
        # process filled the cache while this one waited for the lock.
        path, fetched = await self._fetches.run(
            record.sha256, lambda: self._fill_disk_cache(record)
        )
        return _Located(
            "primary" if fetched else "disk", path, cache_copy=True, just_verified=fetched
        )

    async def _fill_disk_cache(self, record: FileRecord) -> tuple[Path, bool]:
        """Copy one object from the primary into this host's disk cache, verified."""
        async with process_lock(
            self.disk.lock_path(record.sha256), self.settings.lock_timeout_seconds
        ):
            cached = self.disk.lookup(record.sha256)
            if cached is not None:
                return cached, False  # another process filled it while we waited
            check_space(self.disk.tmp, record.size, self.settings.min_free_bytes)
            temp = self.disk.new_temp()
            digest = StreamDigest()
            self._shared.primary_reads += 1
            try:
                with os.fdopen(open_new(temp), "wb") as out:
                    # Pipelined: a worker hashes and writes chunk N while the loop
                    # receives chunk N+1 (hashlib and file writes release the GIL).
                    received = 0
                    absorbing: asyncio.Future[None] | None = None
                    try:
                        async for chunk in self.primary.get_stream(record.storage_key):
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
                raise await self._missing(record) from None
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
                await self._quarantine_primary(record)
                raise self._integrity_error(record)
            path = self.disk.adopt(record.sha256, temp)
        self._disk_added(record.sha256, record.size)
        return path, True

    async def _missing(self, record: FileRecord) -> FiletierError:
        """The error for content that is gone: usually another process deleted the file
        after this one cached its record; otherwise the store lost the bytes."""
        self._forget_record(record.file_id)
        if await self.repo.get_file(self.owner, record.file_id) is None:
            return NotFoundError(f"no file with id {record.file_id}")
        blob = await self.repo.get_blob(record.sha256)
        if blob is not None and blob.status == "quarantined":
            return IntegrityError(
                f"file {record.file_id} ({record.filename}) failed its SHA-256 check earlier and "
                "its bytes were quarantined; upload the original again to repair it"
            )
        return StorageUnavailableError(
            f"the stored bytes of file {record.file_id} ({record.filename}) are missing from "
            f"the primary store; run `filetier verify` to see what else is affected"
        )

    def _integrity_error(self, record: FileRecord) -> IntegrityError:
        return IntegrityError(
            f"file {record.file_id} ({record.filename}) failed its SHA-256 check in the primary "
            f"store; the corrupt copy was quarantined. Upload the original again to repair it"
        )

    async def _quarantine_primary(self, record: FileRecord) -> None:
        where = await self.primary.quarantine(record.storage_key)
        await self.repo.set_blob_status(record.sha256, "quarantined")
        log.error(
            "quarantined corrupt object %s of file %s at %s", record.sha256, record.file_id, where
        )

    async def _handle_bad_copy(
        self, record: FileRecord, located: _Located, problem: Exception
    ) -> None:
        """A copy failed verification or vanished: drop a cache copy and let the caller
        fetch again; quarantine a bad local primary object and raise."""
        self.memory.evict(record.sha256)
        if isinstance(problem, _VanishedCopy):
            if located.cache_copy:
                return
            raise await self._missing(record)
        if located.cache_copy:
            log.warning("disk cache copy of %s was corrupt; evicted, fetching again", record.sha256)
            self.disk.evict(record.sha256)
            return
        await self._quarantine_primary(record)
        raise self._integrity_error(record)

    def _unreadable(self, record: FileRecord) -> IntegrityError:
        return IntegrityError(
            f"file {record.file_id} ({record.filename}) could not be read intact after "
            f"{READ_ATTEMPTS} attempts: its cache copies keep changing; try again"
        )

    @asynccontextmanager
    async def open(
        self, file_id: str | UUID, *, chunk_size: int = 1024 * 1024
    ) -> AsyncIterator[FileReader]:
        """Stream a file: ``async with store.open(fid) as r: async for chunk in r``.

        The SHA-256 is checked as the bytes pass; a mismatch raises IntegrityError at the
        end of the stream (and the bad copy is evicted or quarantined).
        """
        started = time.perf_counter()
        record = await self._record(file_id)
        data = self.memory.get(record.sha256)
        if data is not None:
            reader = FileReader(self, record, None, data=data, chunk_size=chunk_size)
        else:
            located = await self._locate_file(record)
            try:
                handle = located.path.open("rb")
            except FileNotFoundError:
                # Evicted between lookup and open: fetch it once more.
                self.disk.evict(record.sha256)
                located = await self._locate_file(record)
                handle = located.path.open("rb")
            reader = FileReader(self, record, located, handle=handle, chunk_size=chunk_size)
        try:
            yield reader
        finally:
            reader.close()
        if reader.completed:
            self._track(record, reader.tier, started)

    # -- download -------------------------------------------------------------------------

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
        started = time.perf_counter()
        record = await self._record(file_id)
        target = await self._destination(record, destination, overwrite, roots)
        policy = self._policy_for(target.path, cleanup)
        check_space(
            target.path.parent if target.path.parent.exists() else self.settings.home,
            record.size,
            self.settings.min_free_bytes,
        )
        tier: Tier
        for _attempt in range(READ_ATTEMPTS):
            data = self.memory.get(record.sha256)
            if data is not None:
                tier = "memory"
                await asyncio.to_thread(_deliver_bytes, target, data, record.sha256, overwrite)
                if progress:
                    progress(len(data))
                break
            located = await self._locate_file(record)
            tier = located.tier
            try:
                if self.memory.accepts(record.size):
                    data = await asyncio.to_thread(self._read_verified, located, record)
                    self.memory.put(record.sha256, data)
                    await asyncio.to_thread(_deliver_bytes, target, data, record.sha256, overwrite)
                    if progress:
                        progress(len(data))
                else:
                    await asyncio.to_thread(
                        _deliver_file, target, located, record, progress, overwrite
                    )
            except (_CorruptCopy, _VanishedCopy) as exc:
                await self._handle_bad_copy(record, located, exc)
                continue
            break
        else:
            raise self._unreadable(record)
        if policy == "immediate":
            self._immediate.append((target.path, record.sha256))
        if isinstance(file_id, str) and str(record.file_id) != file_id.strip():
            # Addressed by a provider file id: count it on the provider copy too.
            held = await self.providers.resolve(file_id.strip())
            if held is not None:
                await self.providers.repo.count_download(held)
        self._track(
            record,
            tier,
            started,
            destination=target.path,
            downloaded_by=downloaded_by,
            cleanup=policy,
        )
        return DownloadResult(
            file_id=record.file_id,
            path=str(target.path),
            sha256=record.sha256,
            size=record.size,
            mime_type=record.mime_type,
            tier=tier,
            verified=True,
            cleanup=policy,
        )

    async def _destination(
        self,
        record: FileRecord,
        destination: str | os.PathLike[str] | None,
        overwrite: bool,
        roots: AllowedRoots | None,
    ) -> SafeDestination:
        """Where a delivery goes; a different file already there is refused up front.

        The default is ``<first root>/<owner folder>/<name>``. When another file already
        holds that name, the default becomes ``<stem> (<sha256[:12]>)<suffix>``: a name of
        this content, so delivering it again is the same no-op and nothing is replaced.
        """
        allowed = roots or self.roots
        if destination is not None:
            target = allowed.resolve_destination(destination, default_name=record.filename)
            # Only the size here: hashing a same-size file is left to the publish, which
            # must compare anyway, so an identical copy is read once, not twice.
            if not overwrite and await asyncio.to_thread(target.taken_by_other, record.size, None):
                raise target.refuse()
            return target
        # Given roots are the caller's own already; the store's are shared by every owner.
        folder = "" if roots is not None else owner_folder(self.owner) + "/"
        name = safe_filename(record.filename)
        target = allowed.resolve_destination(f"{folder}{name}", default_name=name)
        if overwrite or not await asyncio.to_thread(
            target.taken_by_other, record.size, record.sha256
        ):
            return target
        stem, dot, suffix = name.rpartition(".")
        named = (
            f"{stem} ({record.sha256[:12]}).{suffix}"
            if dot and stem
            else f"{name} ({record.sha256[:12]})"
        )
        target = allowed.resolve_destination(f"{folder}{named}", default_name=name)
        if await asyncio.to_thread(target.taken_by_other, record.size, record.sha256):
            raise target.refuse()
        return target

    def _policy_for(self, path: Path, requested: CleanupPolicy | None) -> CleanupPolicy | None:
        if requested not in CLEANUP_POLICIES:
            raise InvalidInputError(
                f"cleanup must be one of immediate, retain or keep, not {requested!r}"
            )
        downloads = self.settings.downloads_dir.expanduser().resolve()
        if not path.is_relative_to(downloads):
            if requested not in (None, "keep"):
                raise InvalidInputError(
                    f"cleanup={requested!r} applies only to the downloads folder {downloads}; "
                    "a destination you chose is yours to remove"
                )
            return None
        return requested or "retain"

    @asynccontextmanager
    async def delivered(self, file_id: str | UUID, **kwargs: Any) -> AsyncIterator[Path]:
        """A copy in the downloads folder that is removed as soon as the block exits."""
        result = await self.download(file_id, None, cleanup="immediate", **kwargs)
        path = Path(result.path)
        try:
            yield path
        finally:
            downloads = self.settings.downloads_dir.expanduser()
            await asyncio.to_thread(remove_delivered, path, downloads, result.sha256)

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
        self._require_open()
        if concurrency < 1:
            raise InvalidInputError("concurrency must be at least 1")
        if isinstance(file_ids, str | UUID):
            raise InvalidInputError("download_many takes a list of file ids, not a single id")
        if cleanup not in CLEANUP_POLICIES:
            raise InvalidInputError(
                f"cleanup must be one of immediate, retain or keep, not {cleanup!r}"
            )
        gate = asyncio.Semaphore(concurrency)

        async def one(fid: str | UUID) -> BatchItem:
            async with gate:
                try:
                    dest = None
                    if destination_dir is not None:
                        record = await self._record(fid)
                        dest = Path(destination_dir) / f"{record.file_id}-{record.filename}"
                    result = await self.download(fid, dest, cleanup=cleanup, overwrite=overwrite)
                except FiletierError as exc:
                    return BatchItem(file_id=str(fid), ok=False, error=str(exc))
                return BatchItem(file_id=str(fid), ok=True, path=result.path, tier=result.tier)

        return list(await asyncio.gather(*(one(fid) for fid in file_ids)))

    # -- delete ---------------------------------------------------------------------------

    @property
    def is_operator(self) -> bool:
        """The store this process opened, as opposed to a view for another owner
        (:meth:`as_owner`): the operator runs whole-store maintenance and sees global
        figures; other owners see only their own."""
        return self._root is self

    async def delete(self, file_id: str | UUID) -> DeleteResult:
        """Delete one file. ``blob_deleted``: no other file of yours has these bytes.

        The operator's delete removes content nothing references any more before it
        answers. Another owner's delete answers once its row is gone and leaves that
        step to the background: whether other owners hold the same bytes must change
        neither its answer nor the work it does, so it cannot be read from the time it
        takes (a crash before the step leaves an orphan that ``gc`` collects).
        """
        self._require_open()
        fid = parse_file_id(file_id)
        self._forget_record(fid)
        record = await self.repo.delete_file_row(self.owner, fid)
        if record is None:
            raise NotFoundError(f"no file with id {fid}")
        if self.is_operator:
            ended = await self.end_content(record.sha256)
        else:
            ended = not await self.repo.owner_has_content(
                self.owner, record.sha256, exclude=record.file_id
            )
            self._root._in_background(self.end_content(record.sha256))
        return DeleteResult(file_id=fid, sha256=record.sha256, blob_deleted=ended)

    async def end_content(self, sha256: str, *, lock_held: bool = False) -> bool:
        """The one place content ends; delete, gc, verify(fix) and a refused upload call it.

        When no file references ``sha256``: the blob row goes (committed first), then
        the object, this host's disk and memory copies. In every case, the provider
        copies of owners who no longer have a file with this content go too (all of
        them once none does), and their extracted text. Returns True when the content
        itself ended; False while files reference it, or when its lock was not had in
        time (nothing is removed then; ``gc`` decides later).
        """
        if lock_held:
            ended = await self._release_content(sha256)
        else:
            async with self.content_locks.hold(sha256) as locked:
                if not locked:
                    return False
                ended = await self._release_content(sha256)
        if ended:
            self.disk.evict(sha256)
            self.memory.evict(sha256)
        # Outside the lock: provider calls are slow, and uploads of this content wait on
        # it. Copies are per owner, so they can end while the content itself lives on.
        await self.providers.forget_content(sha256)
        return ended

    async def _release_content(self, sha256: str) -> bool:
        """Under the content lock: drop the blob row and object if nothing references them."""
        if not await self.repo.release_blob(sha256):
            return False
        await self.primary.delete(storage_key(sha256))
        return True

    def _in_background(self, work: Coroutine[Any, Any, object]) -> None:
        """Run ``work`` after the caller has its answer; ``settle`` and ``close`` wait."""
        task = asyncio.get_running_loop().create_task(self._quietly(work))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @staticmethod
    async def _quietly(work: Coroutine[Any, Any, object]) -> None:
        try:
            await work
        except FiletierError as exc:
            # Nothing is lost: what was not removed now, `gc` removes later.
            log.warning("background removal did not finish (%s); gc will", exc)

    async def settle(self) -> None:
        """Wait for removals this process left to the background (tests, shutdown)."""
        root = self._root
        while root._background:
            await asyncio.gather(*root._background, return_exceptions=True)

    # -- maintenance ----------------------------------------------------------------------

    async def verify(self, *, fix: bool = False) -> VerifyReport:
        self._require_open()
        from filetier.maintenance.verify import verify_store

        return await verify_store(self, fix=fix)

    async def cleanup_cache(
        self,
        max_age_days: float | None = None,
        max_size_mb: float | None = None,
        *,
        dry_run: bool = False,
    ) -> MaintenanceReport:
        self._require_open()
        from filetier.maintenance.cleanup import cleanup_store

        return await cleanup_store(
            self, max_age_days=max_age_days, max_size_mb=max_size_mb, dry_run=dry_run
        )

    async def gc(
        self, *, dry_run: bool = False, grace_seconds: float | None = None
    ) -> MaintenanceReport:
        self._require_open()
        from filetier.maintenance.gc import collect_garbage

        grace = self.settings.gc_grace_seconds if grace_seconds is None else grace_seconds
        return await collect_garbage(self, dry_run=dry_run, grace_seconds=grace)

    def _disk_cap(self) -> int:
        return self.settings.max_cache_size_mb * 1_000_000

    def _disk_added(self, sha256: str, size: int) -> None:
        """Keep the disk cache under its cap as copies arrive (LRU by last access).

        The copy just added is never the one evicted: its reader is about to open it. A
        file larger than the whole cap therefore stays until the next copy arrives or
        ``cleanup`` runs.
        """
        if self._shared.disk_estimate is None:
            self._shared.disk_estimate = self.disk.size_bytes()
        else:
            self._shared.disk_estimate += size
        if self._shared.disk_estimate > self._disk_cap():
            entries = sorted(self.disk.entries(), key=lambda e: e.last_access)
            total = sum(e.size for e in entries)
            for entry in entries:
                if total <= self._disk_cap():
                    break
                if entry.sha256 != sha256 and self.disk.evict(entry.sha256):
                    total -= entry.size
            self._shared.disk_estimate = total

    async def stats(self) -> StoreStats:
        """Counts and cache figures: the whole store's for the operator. Another owner
        gets only its own files, the distinct contents among them and its own downloads;
        the host's caches are shared (which contents they hold moves with every owner's
        reads), so their figures are the operator's and read 0 here."""
        self._require_open()
        await self.flush()
        files, logical, blob_count, unique, downloads, tiers = await self.repo.totals(self.owner)
        entries = await asyncio.to_thread(self.disk.entries) if self._local is None else []
        memory_entries, memory_bytes = len(self.memory), self.memory.size_bytes
        primary_reads = self.primary_reads
        if not self.is_operator:
            mine = await self.repo.owner_contents(self.owner)
            blob_count, unique = len(mine), sum(mine.values())
            entries, memory_entries, memory_bytes = [], 0, 0
            primary_reads = self._session["primary"][0]
        return StoreStats(
            files=files,
            blobs=blob_count,
            unique_bytes=unique,
            logical_bytes=logical,
            memory_entries=memory_entries,
            memory_bytes=memory_bytes,
            memory_max_bytes=self.memory.max_bytes,
            disk_cache_entries=len(entries),
            disk_cache_bytes=sum(e.size for e in entries),
            disk_cache_max_bytes=self._disk_cap(),
            downloads=downloads,
            tiers={name: tiers.get(name, TierStats()) for name in ("memory", "disk", "primary")},
            session={k: TierStats(hits=v[0], bytes_served=v[1]) for k, v in self._session.items()},
            primary_reads=primary_reads,
            provider_copies=await self.providers.owner_copies(),
        )

    async def history(
        self, file_id: str | UUID | None = None, *, limit: int = 50
    ) -> Sequence[DownloadEvent]:
        self._require_open()
        await self.flush()
        fid = parse_file_id(file_id) if file_id is not None else None
        return await self.repo.history(self.owner, fid, limit)

    # -- providers --------------------------------------------------------------------

    async def get_provider_file_id(
        self,
        file_id: str | UUID,
        provider: str,
        purpose: str = DEFAULT_PURPOSE,
        *,
        verify: bool = False,
    ) -> ProviderFileId:
        """The provider's id for this file, uploading its bytes there at most once."""
        self._require_open()
        return await self.providers.get_provider_file_id(file_id, provider, purpose, verify=verify)

    async def provider_copies(self, file_id: str | UUID) -> Sequence[ProviderCopyInfo]:
        """This file's copies at providers, each with the life it has left there."""
        self._require_open()
        return await self.providers.copies_of(file_id)

    async def get_file_text(self, file_id: str | UUID, provider: str) -> ExtractedText:
        """The provider's text extraction of the file (cached): not the original bytes."""
        self._require_open()
        return await self.providers.get_file_text(file_id, provider)

    async def ask_file(
        self,
        file_ids: Sequence[str | UUID] | str | UUID,
        question: str,
        provider: str,
        model: str | None = None,
    ) -> AskResult:
        """Ask the provider a question about one or more files."""
        self._require_open()
        ids = [file_ids] if isinstance(file_ids, str | UUID) else list(file_ids)
        return await self.providers.ask_file(ids, question, provider, model)

    async def sync_providers(
        self, providers: Sequence[str] | None = None, *, dry_run: bool = True
    ) -> SyncReport:
        """Reconcile provider records with the providers' file lists (a plan by default)."""
        self._require_open()
        return await self.providers.sync(list(providers) if providers else None, dry_run=dry_run)


UnifiedFileHandler = FileStore
"""The name of the original design, kept for its callers."""


class FileReader:
    """Chunks of one file, verified against its SHA-256 as they pass."""

    def __init__(
        self,
        store: FileStore,
        record: FileRecord,
        located: _Located | None,
        *,
        data: bytes | None = None,
        handle: IO[bytes] | None = None,
        chunk_size: int,
    ) -> None:
        self.record = record
        self.tier: Tier = located.tier if located is not None else "memory"
        self._located = located
        self._store = store
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

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (all that remain when ``n`` < 0); b"" at the end."""
        if self._data is not None:
            end = len(self._data) if n < 0 else min(len(self._data), self._offset + n)
            chunk = self._data[self._offset : end]
        elif self._handle is not None:
            chunk = await asyncio.to_thread(self._handle.read, n)
        else:
            chunk = b""
        self._offset += len(chunk)
        if chunk:
            self._digest.update(chunk)
        elif not self.completed:
            await self._finish()
        return chunk

    async def _finish(self) -> None:
        if self._located is not None and (
            self._digest.sha256 != self.record.sha256 or self._digest.size != self.record.size
        ):
            # Raises IntegrityError itself (after quarantine) when the primary was bad.
            await self._store._handle_bad_copy(self.record, self._located, _CorruptCopy())
            raise IntegrityError(
                f"file {self.record.file_id} ({self.record.filename}) changed on disk while it "
                "was read; the bad copy was removed, read it again"
            )
        self.completed = True

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


async def _reread_records(items: list[tuple[FileStore, tuple[float, FileRecord]]]) -> None:
    """Re-read cached records of one owner in one query, then keep each fresh one, unless
    it was forgotten or replaced meanwhile (a delete or update in this process wins)."""
    view = items[0][0]
    try:
        records = await view.repo.get_files(view.owner, [entry[1].file_id for _, entry in items])
    except FiletierError:
        return  # served until they expire; the next reader then asks the database
    for store, entry in items:
        fid = entry[1].file_id
        if store._records.get(fid) is not entry:
            continue
        record = records.get(fid)
        if record is None:
            store._forget_record(fid)  # deleted by another process
        else:
            store._remember(record)


def _hash_and_write(digest: StreamDigest, out: IO[bytes], chunk: bytes | memoryview) -> None:
    digest.update(chunk)
    out.write(chunk)


def _deliver_bytes(target: SafeDestination, data: bytes, sha256: str, overwrite: bool) -> None:
    parent = target.open_parent()
    try:
        fd, temp = target.create_temp(parent)
        try:
            view = memoryview(data)
            written = 0
            while written < len(view):
                written += os.write(fd, view[written:])
        except OSError as exc:
            os.close(fd)
            target.discard(parent, temp)
            raise translate_os_error(exc, str(target.path)) from exc
        os.close(fd)
        target.publish(parent, temp, overwrite=overwrite, sha256=sha256)
    finally:
        os.close(parent)


def _deliver_file(
    target: SafeDestination,
    source: _Located,
    record: FileRecord,
    progress: Progress | None,
    overwrite: bool,
) -> None:
    parent = target.open_parent()
    try:
        fd, temp = target.create_temp(parent)
        try:
            if source.just_verified:
                intact = copy_exact(source.path, fd, record.size, progress=progress) == record.size
            else:
                digest = copy_and_hash(source.path, fd, limit=record.size, progress=progress)
                intact = digest.sha256 == record.sha256 and digest.size == record.size
        except FileNotFoundError:
            os.close(fd)
            target.discard(parent, temp)
            raise _VanishedCopy() from None
        except OverflowError:
            os.close(fd)
            target.discard(parent, temp)
            raise _CorruptCopy() from None
        except OSError as exc:
            os.close(fd)
            target.discard(parent, temp)
            raise translate_os_error(exc, str(target.path)) from exc
        os.close(fd)
        if not intact:
            target.discard(parent, temp)
            raise _CorruptCopy()
        target.publish(parent, temp, overwrite=overwrite, sha256=record.sha256)
    finally:
        os.close(parent)


__all__ = ["FileReader", "FileStore", "UnifiedFileHandler", "parse_file_id", "storage_key"]
