"""The disk cache: content-addressed copies of primary objects on this host.

On-disk layout (owned by this module; shared by every filetier process on the host)::

    cache/
    ├── sha256/ab/cd/abcdef…     verified copies; mtime = last access (LRU order)
    ├── tmp/<random>.tmp          fills in progress (process-unique names)
    └── locks/fetch-0123.lock     cross-process single-flight locks: 1,024 stripes, chosen
                                  by the content hash (and the content locks' stripes)

A copy appears only by ``os.replace`` of a temp file whose SHA-256 was checked, so a
reader never sees a partial file. Nothing correct depends on this cache: any entry may be
evicted at any time by any process, and a corrupt one is found by the hash check on read.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from filetier.modes import make_dirs

FETCH_STRIPES = 1024


@dataclass(frozen=True, slots=True)
class CacheEntry:
    sha256: str
    path: Path
    size: int
    last_access: float


class DiskCache:
    def __init__(self, root: Path) -> None:
        self.root = root.expanduser()
        self.objects = self.root / "sha256"
        self.tmp = self.root / "tmp"
        self.locks = self.root / "locks"
        for directory in (self.objects, self.tmp, self.locks):
            make_dirs(directory)

    def path_for(self, sha256: str) -> Path:
        return self.objects / sha256[:2] / sha256[2:4] / sha256

    def lock_path(self, sha256: str) -> Path:
        """The fill lock for ``sha256``: one of a fixed set, so the directory stays small;
        two contents on one stripe (1 in 1,024) fill one after the other."""
        return self.locks / f"fetch-{int(sha256[:8], 16) % FETCH_STRIPES:04d}.lock"

    def lookup(self, sha256: str) -> Path | None:
        """The cached copy, with its access time bumped for LRU; None when absent."""
        path = self.path_for(sha256)
        try:
            os.utime(path)
        except FileNotFoundError:
            return None
        return path

    def temp_dir(self) -> Path:
        """The temp directory, made again if it was removed (a cache cleared by hand):
        nothing in it must survive, and its absence must not fail a read or an upload."""
        make_dirs(self.tmp)
        return self.tmp

    def new_temp(self) -> Path:
        return self.tmp / f"{os.getpid()}-{secrets.token_hex(8)}.tmp"

    def adopt(self, sha256: str, temp: Path) -> Path:
        """Publish a verified temp file (same filesystem) as the copy of ``sha256``."""
        final = self.path_for(sha256)
        make_dirs(final.parent)
        temp.replace(final)
        return final

    def evict(self, sha256: str) -> bool:
        try:
            self.path_for(sha256).unlink()
        except FileNotFoundError:
            return False
        return True

    def entries(self) -> list[CacheEntry]:
        found: list[CacheEntry] = []
        for dirpath, _dirnames, filenames in os.walk(self.objects):
            for name in filenames:
                path = Path(dirpath) / name
                with contextlib.suppress(FileNotFoundError):
                    st = path.stat()
                    found.append(CacheEntry(name, path, st.st_size, st.st_mtime))
        return found

    def size_bytes(self) -> int:
        return sum(entry.size for entry in self.entries())

    def sweep_temps(self, older_than_seconds: float = 3600) -> int:
        """Remove temp files left by crashed processes; returns how many."""
        removed = 0
        cutoff = time.time() - older_than_seconds
        for path in self.tmp.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        return removed
