"""The disk rules: the disk cache's size cap, and the free space every write leaves.

One owner for the cap: copies that arrive (fills, uploads) are counted here and the
least recently used evicted past it; ``cleanup`` evicts by its own plan and then tells
this module to count again (:meth:`DiskCap.recount`).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from filetier.errors import InsufficientSpaceError
from filetier.tiers.disk import DiskCache


def check_space(directory: Path, needed: int, reserve: int) -> None:
    """Refuse a write of ``needed`` bytes that would leave less than ``reserve`` free."""
    free = shutil.disk_usage(directory).free
    if free - needed < reserve:
        raise InsufficientSpaceError(
            f"not enough free space in {directory}: need {needed:,} bytes plus a reserve of "
            f"{reserve:,}, {free:,} available"
        )


class FreeSpace:
    """Room above ``reserve`` in ``directory``'s filesystem, measured at most once per
    ``interval`` seconds: between two measurements each write's bytes are subtracted from
    the last one, so a check costs an addition, not a ``statvfs``. It errs only towards
    "no room" (space others freed is seen at the next measurement); space others took
    meanwhile is not seen, as it would not be a moment after any measurement."""

    # A write this large measures afresh: a statvfs is nothing beside its copy.
    FRESH_ABOVE = 16 * 1024 * 1024

    def __init__(self, directory: Path, reserve: int, interval: float = 1.0) -> None:
        self._dir = directory
        self._reserve = reserve
        self._interval = interval
        self._measured_at = -interval
        self._free = 0

    def take(self, needed: int) -> bool:
        """Whether ``needed`` bytes fit above the reserve; if so they count as used. A
        directory that cannot be measured (gone, unreadable) has no room: the copies
        this serves are optional, and their absence must never fail the write they
        accompany."""
        now = time.monotonic()
        if now - self._measured_at >= self._interval or needed >= self.FRESH_ABOVE:
            try:
                self._free = shutil.disk_usage(self._dir).free
            except OSError:
                return False
            self._measured_at = now
        if self._free - needed < self._reserve:
            return False
        self._free -= needed
        return True


class DiskCap:
    """Keeps the disk cache under ``cap_bytes`` (LRU by last access)."""

    def __init__(self, disk: DiskCache, cap_bytes: int, reserve: int = 0) -> None:
        self.disk = disk
        self.cap_bytes = cap_bytes
        # The cache's size as this process last knew it; None: walk the cache to know.
        self._estimate: int | None = None
        # Free space for copies that are optional (an upload's cache copy): checked by
        # the second, not by the write.
        self.free = FreeSpace(disk.tmp, reserve)

    def fits(self, size: int) -> bool:
        return size <= self.cap_bytes

    def added(self, sha256: str, size: int) -> None:
        """A copy of ``size`` bytes arrived; evict the least recently used past the cap.

        The copy just added is never the one evicted: its reader is about to open it. A
        file larger than the whole cap therefore stays until the next copy arrives or
        ``cleanup`` runs.
        """
        if self._estimate is None:
            self._estimate = self.disk.size_bytes()
        else:
            self._estimate += size
        if self._estimate > self.cap_bytes:
            entries = sorted(self.disk.entries(), key=lambda e: e.last_access)
            total = sum(e.size for e in entries)
            for entry in entries:
                if total <= self.cap_bytes:
                    break
                if entry.sha256 != sha256 and self.disk.evict(entry.sha256):
                    total -= entry.size
            self._estimate = total

    def recount(self) -> None:
        """The cache changed behind this process's back (cleanup): walk it next time."""
        self._estimate = None
