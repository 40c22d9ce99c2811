"""Core: what every part of a store shares, built once when it opens and never replaced.

The settings, the database and its repository, the three tiers, the content locks, the
disk-cache cap, the download recorder and the background removals. Everything above
(records, reading, writing, ending, delivery, providers, maintenance, the ``FileStore``
facade) takes the Core, or the one collaborator it needs, never the facade.

Storage keys name content (``sha256/ab/cd/abcd…``) in every primary store; the function
that makes them lives here because every layer above names objects by it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filetier.bookkeeping import AccessRecorder
from filetier.config import Settings
from filetier.content_locks import ContentLocks, build_content_locks
from filetier.diskcap import DiskCap
from filetier.errors import FiletierError
from filetier.metadata.database import Database
from filetier.metadata.provider_repository import ProviderRepository
from filetier.metadata.repository import Repository
from filetier.modes import make_dirs
from filetier.paths import AllowedRoots
from filetier.tiers.disk import DiskCache
from filetier.tiers.factory import open_primary
from filetier.tiers.memory import MemoryTier
from filetier.tiers.protocols import LocalPath, PrimaryStore

log = logging.getLogger(__name__)


def storage_key(sha256: str) -> str:
    return f"sha256/{sha256[:2]}/{sha256[2:4]}/{sha256}"


@dataclass(slots=True)
class Counters:
    """Process-wide figures that are not per owner."""

    primary_reads: int = 0


@dataclass(slots=True)
class Background:
    """Work left to run after the caller has its answer; ``settle`` and close wait for it."""

    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def run(self, work: Coroutine[Any, Any, object]) -> None:
        task = asyncio.get_running_loop().create_task(self._quietly(work))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    @staticmethod
    async def _quietly(work: Coroutine[Any, Any, object]) -> None:
        try:
            await work
        except FiletierError as exc:
            # Nothing is lost: what was not removed now, `gc` removes later.
            log.warning("background removal did not finish (%s); gc will", exc)

    async def settle(self) -> None:
        while self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)


@dataclass(frozen=True, slots=True)
class Core:
    settings: Settings
    db: Database
    repo: Repository
    provider_repo: ProviderRepository
    primary: PrimaryStore
    # The primary when it is a local directory: its files are read in place, so it is
    # this host's disk tier and there is no disk-cache copy.
    local: LocalPath | None
    memory: MemoryTier
    disk: DiskCache
    diskcap: DiskCap
    content_locks: ContentLocks
    roots: AllowedRoots
    recorder: AccessRecorder
    counters: Counters
    background: Background

    @property
    def operator(self) -> str:
        """The owner this process runs as: whole-store maintenance and global figures."""
        return self.settings.owner

    def staging_dir(self) -> Path:
        """Where uploads are staged: beside the local primary (same filesystem, so
        publishing is a rename), else in the disk cache's temp directory."""
        return self.local.staging_dir() if self.local is not None else self.disk.temp_dir()


async def open_core(settings: Settings, primary: PrimaryStore | None = None) -> Core:
    """Connect, migrate a new database, open the tiers and start bookkeeping."""
    make_dirs(settings.home.expanduser())
    db = Database(
        settings.database_url,
        timeout_seconds=settings.database_timeout_seconds,
        schema=settings.database_schema,
        durable_commits=settings.fsync,
    )
    try:
        # A generic DATABASE_URL may be another app's: adopted only if empty or ours.
        await db.upgrade(lock_dir=settings.home.expanduser(), adopt=not settings.database_is_shared)
        opened: PrimaryStore = primary or await open_primary(settings)
    except BaseException:
        await db.close()
        raise
    repo = Repository(db)
    disk = DiskCache(settings.cache_dir)
    recorder = AccessRecorder(repo, flush_seconds=settings.bookkeeping_flush_seconds)
    recorder.start()
    return Core(
        settings=settings,
        db=db,
        repo=repo,
        provider_repo=ProviderRepository(db),
        primary=opened,
        local=opened if isinstance(opened, LocalPath) else None,
        memory=MemoryTier(settings.max_memory_cache_size, settings.memory_item_max_bytes),
        disk=disk,
        diskcap=DiskCap(disk, settings.max_cache_size_mb * 1_000_000, settings.min_free_bytes),
        content_locks=build_content_locks(db, disk.locks, settings.lock_timeout_seconds),
        roots=AllowedRoots(settings.allowed_roots),
        recorder=recorder,
        counters=Counters(),
        background=Background(),
    )
