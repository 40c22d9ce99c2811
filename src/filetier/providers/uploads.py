"""Upload each content at most once per provider account, for one owner.

``get_provider_file_id`` answers from ``provider_file_uploads`` with no network call when
a usable copy of the asking owner's is recorded. Copies are per owner: one owner's upload
never answers, or changes the rows of, another owner with the same content (a shared copy
was an oracle for what others store). Otherwise one upload happens: one in-flight task
per (owner, content, provider, account, purpose) in a process, and a lock of that name across
processes (file lock) and hosts (PostgreSQL advisory lock); whoever gets the lock second
finds the row the first one wrote. Limits are checked before any byte is sent; near the
count or byte quota, the least recently used copies are deleted at the provider first.

Every copy records when the provider deletes it (Gemini: 48 hours; OpenAI: the
configured ``expires_after``; whatever else a provider states). A recorded copy is reused
only while it has more than ``provider_reuse_margin_seconds`` left, so whoever gets an id
can still use it for the length of a request; otherwise it is uploaded again, once. A copy
the provider answers 404 for (or Gemini's 403: unknown or expired) is re-uploaded exactly
once per request. Extracted text and questions are in :mod:`filetier.providers.asking`; reconciling with
the providers' own lists in :mod:`filetier.providers.sync`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta
from uuid import UUID

from filetier.clock import utcnow
from filetier.content_locks import ContentLocks
from filetier.errors import (
    ProviderLimitError,
    StoreBusyError,
    UnsupportedPurposeError,
)
from filetier.metadata.provider_repository import ProviderCopy
from filetier.models import (
    FileRecord,
    ProviderCopyInfo,
    ProviderFileId,
)
from filetier.providers.base import (
    LocalContent,
    Provider,
    ProviderFile,
    UploadsFromDisk,
)
from filetier.providers.clients import ProviderClients
from filetier.reading import ReadPath
from filetier.records import RecordCache

log = logging.getLogger(__name__)

DEFAULT_PURPOSE = "file-extract"
# last_used_at is an LRU hint: a hit rewrites it at most this often.
TOUCH_INTERVAL_SECONDS = 60.0


def _infos(copies: Iterable[ProviderCopy]) -> list[ProviderCopyInfo]:
    now = utcnow()
    found = [
        ProviderCopyInfo(
            provider=c.provider,
            purpose=c.purpose,
            provider_file_id=c.provider_file_id,
            status="expired" if c.status == "active" and not c.usable(now) else c.status,
            uploaded_at=c.uploaded_at,
            expires_at=c.expires_at,
            remaining_seconds=(
                max(0.0, (c.expires_at - now).total_seconds()) if c.expires_at else None
            ),
        )
        for c in copies
    ]
    # Soonest to expire first; copies with no expiry last.
    found.sort(key=lambda i: (i.remaining_seconds is None, i.remaining_seconds or 0.0))
    return found


class ProviderFiles:
    """One owner's provider copies: every copy belongs to one owner (see the repository)."""

    def __init__(
        self,
        clients: ProviderClients,
        owner: str,
        records: RecordCache,
        reads: ReadPath,
        locks: ContentLocks,
    ) -> None:
        self.clients = clients
        self.repo = clients.repo
        self.owner = owner
        self._owner = owner
        self._records = records
        self._reads = reads
        self._locks = locks
        self._uploads = clients.uploads

    def provider(self, name: str) -> Provider:
        return self.clients.provider(name)

    def configured(self) -> list[str]:
        return self.clients.configured()

    def _reusable(self, copy: ProviderCopy) -> bool:
        """Active, and with more life left than a request needs: the configured margin,
        or half the copy's whole lifetime when that is shorter (an OpenAI copy made to
        live one hour would otherwise never be reused under a one-hour margin)."""
        now = utcnow()
        if not copy.usable(now):
            return False
        if copy.expires_at is None:
            return True
        lifetime = (copy.expires_at - copy.uploaded_at).total_seconds()
        margin = min(self.clients.settings.provider_reuse_margin_seconds, max(0.0, lifetime) / 2)
        return copy.expires_at > now + timedelta(seconds=margin)

    # -- provider file ids --------------------------------------------------------------

    def _check_limits(self, client: Provider, record: FileRecord, purpose: str) -> None:
        limits = client.limits
        if purpose not in limits.purposes:
            raise UnsupportedPurposeError(
                f"{client.name} does not accept files for purpose {purpose!r}; "
                f"use one of {', '.join(sorted(limits.purposes))}"
            )
        per_file = limits.file_limit(purpose)
        if per_file is not None and record.size > per_file:
            raise ProviderLimitError(
                f"file {record.file_id} ({record.filename}) is {record.size:,} bytes; "
                f"{client.name} accepts at most {per_file:,} bytes for {purpose}"
            )
        if limits.max_total_bytes is not None and record.size > limits.max_total_bytes:
            raise ProviderLimitError(
                f"file {record.file_id} is larger than {client.name}'s whole storage quota"
            )

    async def get_provider_file_id(
        self,
        file_id: str | UUID,
        provider: str,
        purpose: str = DEFAULT_PURPOSE,
        *,
        verify: bool = False,
    ) -> ProviderFileId:
        """The provider's id for this file's content, uploading it at most once.

        With ``verify=True`` a stored id is checked with the provider first (one call),
        and re-uploaded once if the provider no longer has it.
        """
        record = await self._records.get(self._owner, file_id)
        client = self.provider(provider)
        purpose = client.limits.canonical(purpose)
        self._check_limits(client, record, purpose)
        copy = await self.repo.get(self._owner, record.sha256, client.name, client.account, purpose)
        uploaded = False
        if copy is not None and self._reusable(copy):
            if verify and await client.retrieve(copy.provider_file_id) is None:
                copy, uploaded = await self.reupload(record, client, purpose, copy), True
            else:
                await self._note_use(record, copy)
        else:
            copy, uploaded = await self._upload(record, client, purpose, stale=copy)
        return ProviderFileId(
            file_id=record.file_id,
            sha256=record.sha256,
            provider=client.name,
            purpose=purpose,
            provider_file_id=copy.provider_file_id,
            uploaded=uploaded,
            expires_at=copy.expires_at,
        )

    async def _note_use(self, record: FileRecord, copy: ProviderCopy) -> None:
        last = copy.last_used_at or copy.uploaded_at
        if (utcnow() - last).total_seconds() > TOUCH_INTERVAL_SECONDS:
            await self.repo.touch(copy)
        key = (
            copy.provider if copy.purpose == DEFAULT_PURPOSE else f"{copy.provider}:{copy.purpose}"
        )
        if record.provider_file_ids.get(key) != copy.provider_file_id:
            await self.repo.ensure_mirrored(record.file_id, copy)

    async def _upload(
        self, record: FileRecord, client: Provider, purpose: str, stale: ProviderCopy | None
    ) -> tuple[ProviderCopy, bool]:
        name = f"provider:{client.name}:{client.account}:{purpose}:{self._owner}:{record.sha256}"
        uploaded = False

        async def upload_once() -> ProviderCopy:
            nonlocal uploaded
            async with self._locks.hold(name) as locked:
                if not locked:
                    # Unlocked, an upload by whoever holds it may be under way: a second
                    # one would leave a provider copy that nothing records.
                    raise StoreBusyError(
                        f"nothing was sent to {client.name}: the lock that keeps its uploads "
                        "to one per file was busy for too long; try again"
                    )
                # Whoever held the lock before us may have uploaded it already.
                current = await self.repo.get(
                    self._owner, record.sha256, client.name, client.account, purpose
                )
                if (
                    current is not None
                    and self._reusable(current)
                    and (stale is None or current.provider_file_id != stale.provider_file_id)
                ):
                    return current
                if current is not None and current.status == "pending_delete":
                    # The content is wanted again before its delete went through: keep the
                    # copy if the provider still has it, never leave it behind unrecorded.
                    if await client.retrieve(current.provider_file_id) is not None:
                        await self.repo.set_status(current, "active", sha256=record.sha256)
                        self._records.forget_content(record.sha256)
                        revived = await self.repo.get(
                            self._owner, record.sha256, client.name, client.account, purpose
                        )
                        assert revived is not None
                        return revived
                    await self.repo.remove(current)
                await self._make_room(client, record)
                await self._make_room(client, record, purpose)
                result = await self._send(record, client, purpose)
                uploaded = True
                await self.repo.record_upload(
                    owner=self._owner,
                    sha256=record.sha256,
                    provider=client.name,
                    account=client.account,
                    purpose=purpose,
                    provider_file_id=result.id,
                    size=record.size,
                    filename=record.filename,
                    expires_at=result.expires_at,
                )
                self._records.forget_content(record.sha256)
                fresh = await self.repo.get(
                    self._owner, record.sha256, client.name, client.account, purpose
                )
                assert fresh is not None
                return fresh

        copy = await self._uploads.run(name, upload_once)
        return copy, uploaded

    async def _send(self, record: FileRecord, client: Provider, purpose: str) -> ProviderFile:
        """One upload: from disk in pieces where the adapter can, else from memory."""
        if isinstance(client, UploadsFromDisk) and client.reads_from_disk(record.size):
            async with self._reads.local_file(self._owner, record) as path:
                return await client.upload_from_disk(
                    LocalContent(
                        path=path,
                        filename=record.filename,
                        size=record.size,
                        sha256=record.sha256,
                        mime_type=record.mime_type or "application/octet-stream",
                    ),
                    purpose,
                )
        data, _tier = await self._reads.read(self._owner, record)
        return await client.upload(record.filename, data, purpose)

    async def copies_of(self, file_id: str | UUID) -> list[ProviderCopyInfo]:
        """This file's provider copies and the life each has left (no provider call)."""
        record = await self._records.get(self._owner, file_id)
        return _infos(
            c
            for c in await self.repo.for_hash(record.sha256)
            if c.owner == self._owner and c.status in ("active", "pending_delete")
        )

    async def owner_copies(self) -> list[ProviderCopyInfo]:
        """Every live copy of this owner's content, soonest to expire first."""
        return _infos(await self.repo.for_owner(self._owner))

    async def reupload(
        self, record: FileRecord, client: Provider, purpose: str, gone: ProviderCopy
    ) -> ProviderCopy:
        """The provider lost ``gone``: record that, then upload once more."""
        await self.repo.set_status(gone, "deleted")
        copy, _ = await self._upload(record, client, purpose, stale=gone)
        return copy

    async def _make_room(
        self, client: Provider, record: FileRecord, purpose: str | None = None
    ) -> None:
        """Evict least recently used copies until ``record`` fits the account's quota
        (or, with ``purpose``, that purpose's own file count)."""
        limits = client.limits
        max_files = (
            limits.max_files if purpose is None else limits.max_files_per_purpose.get(purpose)
        )
        max_total = limits.max_total_bytes if purpose is None else None
        if max_files is None and max_total is None:
            return
        count, total = await self.repo.usage(client.name, client.account, purpose)

        def over(count: int, total: int) -> bool:
            return (max_files is not None and count + 1 > max_files) or (
                max_total is not None and total + record.size > max_total
            )

        scope = f"{client.name}'s" if purpose is None else f"{client.name}'s {purpose}"
        while over(count, total):
            victims = [
                c
                for c in await self.repo.least_recently_used(
                    client.name, client.account, 16, purpose
                )
                if c.file_hash != record.sha256
            ]
            if not victims:
                # The account's figures are every owner's: logged for the operator, not
                # told to whichever owner asked.
                log.warning("%s quota is full: %d files, %d bytes", scope, count, total)
                raise ProviderLimitError(
                    f"{scope} quota is full and filetier holds no copy there it could remove "
                    "to make room"
                )
            for victim in victims:
                if not over(count, total):
                    break
                log.info("evicting %s copy %s to make room", client.name, victim.provider_file_id)
                await client.delete(victim.provider_file_id)
                await self.repo.set_status(victim, "deleted")
                count, total = count - 1, total - victim.bytes
