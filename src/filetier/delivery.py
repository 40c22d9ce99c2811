"""Delivery: a file's verified bytes written to a destination inside the allowed roots.

The steps of a download: the record, the destination (refused up front when a different
file holds it), the cleanup policy, free space, then the bytes from the read path
(memory, a verified disk or primary copy) into a temp file beside the destination,
published by an atomic rename. Delivered copies in the downloads folder are removed by
:mod:`filetier.delivered`'s rules (``immediate`` at close, ``retain`` after a while).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypedDict, Unpack
from uuid import UUID

from filetier.core import Core
from filetier.delivered import remove_delivered
from filetier.digest import Progress, copy_and_hash, copy_exact
from filetier.diskcap import check_space
from filetier.errors import FiletierError, InvalidInputError
from filetier.ingest import in_stoppable_thread, translate_os_error
from filetier.models import BatchItem, CleanupPolicy, DownloadResult, FileRecord, Tier
from filetier.paths import AllowedRoots, SafeDestination, owner_folder, safe_filename
from filetier.providers.lookup import resolve_copy
from filetier.reading import CorruptCopy, Located, ReadPath, VanishedCopy, read_verified
from filetier.records import RecordCache
from filetier.usage import Usage

CLEANUP_POLICIES = (None, "immediate", "retain", "keep")


def _write_through_temp(
    target: SafeDestination,
    sha256: str,
    overwrite: bool,
    write: Callable[[int], bool],
    *,
    durable: bool,
) -> None:
    """Publish what ``write(fd)`` puts in a temp file beside ``target`` (blocking).

    ``write`` returns whether the bytes are intact; on False or any exception (a failed
    write, a cancelled caller's StoppedByCancel) the temp file goes and nothing lands.
    ``durable`` (fsync on): the bytes are synced before the name appears, so a power cut
    after the answer never leaves the final name on an empty or short file (a new link
    does not get the file system's rename safeguard)."""
    parent = target.open_parent()
    try:
        fd, temp = target.create_temp(parent)
        try:
            try:
                intact = write(fd)
                if intact and durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            target.discard(parent, temp)
            raise
        if not intact:
            target.discard(parent, temp)
            raise CorruptCopy()
        target.publish(parent, temp, overwrite=overwrite, sha256=sha256)
    finally:
        os.close(parent)


def deliver_bytes(
    target: SafeDestination, data: bytes, sha256: str, overwrite: bool, durable: bool
) -> None:
    """Write verified bytes to ``target`` through a temp file (blocking)."""

    def write(fd: int) -> bool:
        view = memoryview(data)
        written = 0
        try:
            while written < len(view):
                written += os.write(fd, view[written:])
        except OSError as exc:
            raise translate_os_error(exc, str(target.path)) from exc
        return True

    _write_through_temp(target, sha256, overwrite, write, durable=durable)


def deliver_file(
    target: SafeDestination,
    source: Located,
    record: FileRecord,
    progress: Progress | None,
    overwrite: bool,
    durable: bool,
) -> None:
    """Copy a local copy to ``target``, hashing it on the way unless it was just
    verified (blocking). Raises CorruptCopy / VanishedCopy for the read path's retry."""

    def write(fd: int) -> bool:
        try:
            if source.just_verified:
                return copy_exact(source.path, fd, record.size, progress=progress) == record.size
            digest = copy_and_hash(source.path, fd, limit=record.size, progress=progress)
        except FileNotFoundError:
            raise VanishedCopy() from None
        except OverflowError:
            raise CorruptCopy() from None
        except OSError as exc:
            raise translate_os_error(exc, str(target.path)) from exc
        return digest.sha256 == record.sha256 and digest.size == record.size

    _write_through_temp(target, record.sha256, overwrite, write, durable=durable)


class DownloadOptions(TypedDict, total=False):
    """How a download is made; every key optional (see :meth:`Delivery.download`)."""

    cleanup: CleanupPolicy | None
    downloaded_by: str | None  # recorded in the history (a link's name, a tool)
    progress: Progress | None
    overwrite: bool  # default False
    roots: AllowedRoots | None


class Delivery:
    def __init__(self, core: Core, records: RecordCache, reads: ReadPath, usage: Usage) -> None:
        self.core = core
        self._records = records
        self._reads = reads
        self._usage = usage
        # Copies delivered with cleanup="immediate": removed when the store closes.
        self._immediate: list[tuple[Path, str]] = []

    async def download(
        self,
        owner: str,
        file_id: str | UUID,
        destination: str | os.PathLike[str] | None = None,
        **options: Unpack[DownloadOptions],
    ) -> DownloadResult:
        """Deliver the owner's file and say which tier served it.

        With no ``destination`` the file goes to the owner's own folder in the first
        root (``<root>/<owner>/<name>``), so owners never collide there. An existing file
        is replaced only with ``overwrite=True``; the same bytes already there are a
        no-op success, different ones raise :class:`DestinationExistsError`.

        ``roots``: the caller's own roots when they are narrower than the store's (a
        remote caller's folders); a default destination is then the first of them.

        ``cleanup`` applies to copies delivered into the default downloads folder:
        ``"retain"`` (default there) removes them after the retention period,
        ``"immediate"`` when this store closes, ``"keep"`` never.
        """
        core = self.core
        started = time.perf_counter()
        cleanup, progress = options.get("cleanup"), options.get("progress")
        overwrite, roots = options.get("overwrite", False), options.get("roots")
        record = await self._records.get(owner, file_id)
        target = await self._destination(owner, record, destination, overwrite, roots)
        policy = self._policy_for(target.path, cleanup)
        durable = core.settings.fsync
        check_space(
            target.path.parent if target.path.parent.exists() else core.settings.home,
            record.size,
            core.settings.min_free_bytes,
        )

        async def from_copy(located: Located) -> Tier:
            if core.memory.accepts(record.size):
                data = await asyncio.to_thread(read_verified, located, record)
                core.memory.put(record.sha256, data)
                await asyncio.to_thread(
                    deliver_bytes, target, data, record.sha256, overwrite, durable
                )
                if progress:
                    progress(len(data))
            else:
                # A cancelled download stops its copy between two chunks and removes the
                # temp file before the cancellation returns: nothing lands at the target.
                await in_stoppable_thread(
                    lambda per_chunk: deliver_file(
                        target, located, record, per_chunk, overwrite, durable
                    ),
                    progress,
                )
            return located.tier

        data = core.memory.get(record.sha256)
        tier: Tier
        if data is not None:
            tier = "memory"
            await asyncio.to_thread(deliver_bytes, target, data, record.sha256, overwrite, durable)
            if progress:
                progress(len(data))
        else:
            tier = await self._reads.attempt(owner, record, from_copy)
        if policy == "immediate":
            self._immediate.append((target.path, record.sha256))
        if isinstance(file_id, str) and str(record.file_id) != file_id.strip():
            # Addressed by a provider file id: count it on the provider copy too.
            held = await resolve_copy(
                core.provider_repo,
                owner,
                operator=owner == core.operator,
                provider_file_id=file_id.strip(),
            )
            if held is not None:
                await core.provider_repo.count_download(held)
        self._usage.track(
            owner,
            record,
            tier,
            started,
            destination=target.path,
            downloaded_by=options.get("downloaded_by"),
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
        owner: str,
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
        allowed = roots or self.core.roots
        if destination is not None:
            target = allowed.resolve_destination(destination, default_name=record.filename)
            # Only the size here: hashing a same-size file is left to the publish, which
            # must compare anyway, so an identical copy is read once, not twice.
            if not overwrite and await asyncio.to_thread(target.taken_by_other, record.size, None):
                raise target.refuse()
            return target
        # Given roots are the caller's own already; the store's are shared by every owner.
        folder = "" if roots is not None else owner_folder(owner) + "/"
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
        check_policy(requested)
        downloads = self.core.settings.downloads_dir.expanduser().resolve()
        if not path.is_relative_to(downloads):
            if requested not in (None, "keep"):
                raise InvalidInputError(
                    f"cleanup={requested!r} applies only to the downloads folder {downloads}; "
                    "a destination you chose is yours to remove"
                )
            return None
        return requested or "retain"

    @asynccontextmanager
    async def delivered(
        self, owner: str, file_id: str | UUID, **options: Unpack[DownloadOptions]
    ) -> AsyncIterator[Path]:
        """A copy in the downloads folder that is removed as soon as the block exits."""
        options["cleanup"] = "immediate"
        result = await self.download(owner, file_id, None, **options)
        path = Path(result.path)
        try:
            yield path
        finally:
            downloads = self.core.settings.downloads_dir.expanduser()
            await asyncio.to_thread(remove_delivered, path, downloads, result.sha256)

    async def download_many(
        self,
        owner: str,
        file_ids: Iterable[str | UUID],
        destination_dir: str | os.PathLike[str] | None,
        *,
        concurrency: int,
        cleanup: CleanupPolicy | None,
        overwrite: bool,
    ) -> list[BatchItem]:
        """Download several files with bounded concurrency; one result per id, in order."""
        if concurrency < 1:
            raise InvalidInputError("concurrency must be at least 1")
        if isinstance(file_ids, str | UUID):
            raise InvalidInputError("download_many takes a list of file ids, not a single id")
        check_policy(cleanup)
        gate = asyncio.Semaphore(concurrency)

        async def one(fid: str | UUID) -> BatchItem:
            async with gate:
                try:
                    dest = None
                    if destination_dir is not None:
                        record = await self._records.get(owner, fid)
                        dest = Path(destination_dir) / f"{record.file_id}-{record.filename}"
                    result = await self.download(
                        owner, fid, dest, cleanup=cleanup, overwrite=overwrite
                    )
                except FiletierError as exc:
                    return BatchItem(file_id=str(fid), ok=False, error=str(exc))
                return BatchItem(file_id=str(fid), ok=True, path=result.path, tier=result.tier)

        return list(await asyncio.gather(*(one(fid) for fid in file_ids)))

    def close(self) -> None:
        """Remove this process's ``immediate`` deliveries (when the store closes)."""
        downloads = self.core.settings.downloads_dir.expanduser()
        for path, sha256 in self._immediate:
            remove_delivered(path, downloads, sha256)


def check_policy(requested: CleanupPolicy | None) -> None:
    if requested not in CLEANUP_POLICIES:
        raise InvalidInputError(
            f"cleanup must be one of immediate, retain or keep, not {requested!r}"
        )
