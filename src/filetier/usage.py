"""What was served, to whom: this session's counters, download tracking, stats, history.

Every verified read that reaches a caller is counted here once: per owner, and for the
process (the operator's figures). Events go to the batched recorder
(:mod:`filetier.bookkeeping`), which writes them without slowing a cache hit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from uuid import UUID

from filetier.clock import utcnow
from filetier.core import Core
from filetier.ids import parse_file_id
from filetier.metadata.repository import AccessEvent
from filetier.models import (
    CleanupPolicy,
    DownloadEvent,
    FileRecord,
    ProviderCopyInfo,
    StoreStats,
    Tier,
    TierStats,
)

# Immediate deliveries are removed by their own process when it closes; should it crash,
# `cleanup` removes them after this long.
IMMEDIATE_SAFETY_NET = timedelta(hours=1)

_Session = dict[str, list[int]]


def _new_session() -> _Session:
    return {"memory": [0, 0], "disk": [0, 0], "primary": [0, 0]}


class Usage:
    def __init__(self, core: Core, operator: str) -> None:
        self.core = core
        self._operator = operator
        # Per owner: which tier served whom is not another owner's business.
        self._sessions: dict[str, _Session] = {operator: _new_session()}

    def session(self, owner: str) -> _Session:
        """This owner's [hits, bytes] by tier in this process (the operator's: all)."""
        found = self._sessions.get(owner)
        if found is None:
            found = self._sessions[owner] = _new_session()
        return found

    def count_served(self, owner: str, tier: Tier, size: int) -> None:
        """This session's counters: the owner's own, and the process's (the operator's)."""
        counters = self.session(owner)[tier]
        counters[0] += 1
        counters[1] += size
        if owner != self._operator:
            counters = self._sessions[self._operator][tier]
            counters[0] += 1
            counters[1] += size

    def hit(self, owner: str, record: FileRecord, tier: Tier, started: float) -> None:
        """A whole read served to a caller in memory (``read_bytes``)."""
        self.count_served(owner, tier, record.size)
        self.core.recorder.record_hit(
            record.file_id, owner, tier, record.size, (time.perf_counter() - started) * 1000
        )

    def track(
        self,
        owner: str,
        record: FileRecord,
        tier: Tier,
        started: float,
        *,
        destination: Path | None = None,
        downloaded_by: str | None = None,
        cleanup: CleanupPolicy | None = None,
    ) -> None:
        """A download (or a streamed read) served: counted, and kept in the history."""
        self.count_served(owner, tier, record.size)
        now = utcnow()
        expires = None
        if cleanup == "retain":
            expires = now + timedelta(hours=self.core.settings.delivery_retention_hours)
        elif cleanup == "immediate":
            expires = now + IMMEDIATE_SAFETY_NET
        self.core.recorder.record(
            AccessEvent(
                file_id=record.file_id,
                owner=owner,
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

    async def stats(
        self, owner: str, *, operator: bool, provider_copies: Sequence[ProviderCopyInfo]
    ) -> StoreStats:
        """Counts and cache figures: the whole store's for the operator. Another owner
        gets only its own files, the distinct contents among them and its own downloads;
        the host's caches are shared (which contents they hold moves with every owner's
        reads), so their figures are the operator's and read 0 here."""
        core = self.core
        await core.recorder.flush()
        files, logical, blob_count, unique, downloads, tiers = await core.repo.totals(owner)
        entries = await asyncio.to_thread(core.disk.entries) if core.local is None else []
        memory_entries, memory_bytes = len(core.memory), core.memory.size_bytes
        primary_reads = core.counters.primary_reads
        session = self.session(owner)
        if not operator:
            mine = await core.repo.owner_contents(owner)
            blob_count, unique = len(mine), sum(mine.values())
            entries, memory_entries, memory_bytes = [], 0, 0
            primary_reads = session["primary"][0]
        return StoreStats(
            files=files,
            blobs=blob_count,
            unique_bytes=unique,
            logical_bytes=logical,
            memory_entries=memory_entries,
            memory_bytes=memory_bytes,
            memory_max_bytes=core.memory.max_bytes,
            disk_cache_entries=len(entries),
            disk_cache_bytes=sum(e.size for e in entries),
            disk_cache_max_bytes=core.diskcap.cap_bytes,
            downloads=downloads,
            tiers={name: tiers.get(name, TierStats()) for name in ("memory", "disk", "primary")},
            session={k: TierStats(hits=v[0], bytes_served=v[1]) for k, v in session.items()},
            primary_reads=primary_reads,
            provider_copies=list(provider_copies),
        )

    async def history(
        self, owner: str, file_id: str | UUID | None, limit: int
    ) -> Sequence[DownloadEvent]:
        fid = parse_file_id(file_id) if file_id is not None else None
        await self.core.recorder.flush()
        return await self.core.repo.history(owner, fid, limit)
