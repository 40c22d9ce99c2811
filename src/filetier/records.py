"""The record cache: file records by (owner, id), reused for a short while.

File records are immutable but for counters, so a read need not ask the database each
time. Every owner's records are kept apart by the key: one owner's lookup can never be
answered with another owner's record. A record in the last quarter of its life is still
served, and re-read in the background (batched, one query per owner): a hot record is
then never waited for, where a busy server would queue every reader of it behind one
database round trip each time it expired. A delete or update in this process wins over a
re-read in flight: a forgotten or replaced record is never brought back.
"""

from __future__ import annotations

import asyncio
import random
import time
from uuid import UUID

from filetier.config import Settings
from filetier.errors import FiletierError, InvalidFileIdError
from filetier.ids import PROVIDER_FILE_ID_RE, no_such_file, parse_file_id
from filetier.metadata.provider_repository import ProviderRepository
from filetier.metadata.repository import Repository
from filetier.models import FileRecord
from filetier.providers.lookup import resolve_copy

# A cached record in this last fraction of its life is served and re-read in the background.
REFRESH_AHEAD = 0.25
# Records due for a re-read are gathered this long and re-read in one query per owner
# (at most REFRESH_BATCH_MAX ids each): one query per record, for hundreds of hot records
# every few seconds, kept a busy server's event loop and database connection queueing.
REFRESH_BATCH_DELAY = 0.05
REFRESH_BATCH_MAX = 500
RECORD_CACHE_MAX = 10_000  # entries per owner (a record is kept under its UUID and its text)

_Entry = tuple[float, FileRecord]


def unknown_provider_file_id(text: str) -> InvalidFileIdError:
    return InvalidFileIdError(
        f"{text[:64]!r} is not a file id (expected a UUID such as "
        "0192b5e0-7c1a-7d3e-9f00-1a2b3c4d5e6f) nor a provider file id filetier knows"
    )


class RecordCache:
    def __init__(
        self, settings: Settings, repo: Repository, provider_repo: ProviderRepository
    ) -> None:
        self._settings = settings
        self._repo = repo
        self._provider_repo = provider_repo
        # By owner, then by the UUID and by its text (callers pass either): one owner's
        # lookup can only ever find that owner's records.
        self._owners: dict[str, dict[UUID | str, _Entry]] = {}
        # Records due for a background re-read, and the one task that re-reads them in
        # batches; _refreshing holds the batch in flight.
        self._due: dict[tuple[str, UUID], _Entry] = {}
        self._refreshing: set[tuple[str, UUID]] = set()
        self._refresher: asyncio.Task[None] | None = None

    @property
    def idle(self) -> bool:
        """No background re-read is due or in flight."""
        return not self._due and not self._refreshing

    async def get(self, owner: str, file_id: str | UUID) -> FileRecord:
        """The owner's record of ``file_id`` (a UUID, its text, or a provider file id)."""
        if type(file_id) is str:
            # The same id string asked again: skip parsing it (a third of a memory hit).
            known = self._cached(owner, file_id)
            if known is not None:
                return known
        try:
            fid = parse_file_id(file_id)
        except InvalidFileIdError:
            # Downloads may name a provider's file id (``file-…``) instead of ours.
            if isinstance(file_id, str) and PROVIDER_FILE_ID_RE.match(file_id.strip()):
                return await self._for_provider_file_id(owner, file_id.strip())
            raise
        known = self._cached(owner, fid)
        if known is not None:
            return known
        record = await self._repo.get_file(owner, fid)
        if record is None:
            self.forget(owner, fid)
            raise no_such_file(fid)
        self.remember(owner, record)
        return record

    async def _for_provider_file_id(self, owner: str, provider_file_id: str) -> FileRecord:
        held = await resolve_copy(
            self._provider_repo,
            owner,
            # Provider accounts are the operator's: only it may name files filetier
            # never uploaded there.
            operator=owner == self._settings.owner,
            provider_file_id=provider_file_id,
        )
        if held is None or held.file_hash is None:
            raise unknown_provider_file_id(provider_file_id)
        page, _total = await self._repo.list_files(
            owner, name_contains=None, mime_type=None, sha256=held.file_hash, limit=1, offset=0
        )
        if not page:
            # Same answer as an unknown id: another owner's copy must stay invisible.
            raise unknown_provider_file_id(provider_file_id)
        return page[0]

    def _cached(self, owner: str, key: UUID | str) -> FileRecord | None:
        entries = self._owners.get(owner)
        entry = entries.get(key) if entries is not None else None
        if entry is None:
            return None
        left = entry[0] - time.monotonic()
        if left <= 0:
            return None
        if left < self._settings.record_cache_ttl_seconds * REFRESH_AHEAD:
            self._refresh(owner, entry)
        return entry[1]

    def _refresh(self, owner: str, entry: _Entry) -> None:
        key = (owner, entry[1].file_id)
        if key in self._due or key in self._refreshing:
            return
        self._due[key] = entry
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_batches())

    async def _refresh_batches(self) -> None:
        """Re-read the records that came due, a batch per owner, until none are left."""
        while self._due:
            await asyncio.sleep(REFRESH_BATCH_DELAY)  # let the batch fill
            due, self._due = self._due, {}
            self._refreshing = set(due)
            by_owner: dict[str, list[_Entry]] = {}
            for (owner, _fid), entry in due.items():
                by_owner.setdefault(owner, []).append(entry)
            try:
                for owner, entries in by_owner.items():
                    for start in range(0, len(entries), REFRESH_BATCH_MAX):
                        await self._reread(owner, entries[start : start + REFRESH_BATCH_MAX])
            finally:
                self._refreshing = set()

    async def _reread(self, owner: str, entries: list[_Entry]) -> None:
        """Re-read cached records of one owner in one query, then keep each fresh one,
        unless it was forgotten or replaced meanwhile (a delete or update here wins)."""
        try:
            records = await self._repo.get_files(owner, [entry[1].file_id for entry in entries])
        except FiletierError:
            return  # served until they expire; the next reader then asks the database
        for entry in entries:
            fid = entry[1].file_id
            if self._owners.get(owner, {}).get(fid) is not entry:
                continue
            record = records.get(fid)
            if record is None:
                self.forget(owner, fid)  # deleted by another process
            else:
                self.remember(owner, record)

    def forget(self, owner: str, file_id: UUID) -> None:
        entries = self._owners.get(owner)
        if entries is not None:
            entries.pop(file_id, None)
            entries.pop(str(file_id), None)

    def forget_content(self, sha256: str) -> None:
        """Drop every owner's cached records of this content (their provider ids changed)."""
        for entries in self._owners.values():
            stale = [key for key, (_t, r) in entries.items() if r.sha256 == sha256]
            for key in stale:
                entries.pop(key, None)

    def remember(self, owner: str, record: FileRecord) -> None:
        entries = self._owners.get(owner)
        if entries is None:
            entries = self._owners[owner] = {}
        if len(entries) >= RECORD_CACHE_MAX:
            # Drop the oldest insertion: dicts keep insertion order.
            entries.pop(next(iter(entries)))
        # Jittered, so records loaded together do not all expire (and reload) together.
        ttl = self._settings.record_cache_ttl_seconds * (0.75 + random.random() / 2)  # noqa: S311
        entry = (time.monotonic() + ttl, record)
        entries[record.file_id] = entry
        entries[str(record.file_id)] = entry

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
