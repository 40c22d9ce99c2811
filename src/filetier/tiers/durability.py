"""Making many local files durable at once: parallel fsyncs, or one ``syncfs(2)``.

A batch of uploads (group commit, :mod:`filetier.metadata.batching`) must have every
object it publishes on disk before its rows commit. One by one, that is an fsync of each
object and of its directory: three or more writes per upload, each waited for. Two ways
make a batch cheaper:

- **parallel fsyncs** (a thread per file): on a journalling file system concurrent fsyncs
  share the journal's commits;
- **one ``syncfs``** of the objects' file system: every dirty page and inode on it is
  written and waited for in one call, whatever the batch's size. Linux documents that it
  gives "the same guarantees as fsync() called on every file in the ... filesystem", and
  since 5.8 it reports a writeback error of any file on it to every descriptor opened
  before the error (``errseq``), once per descriptor: after a failed syncfs, a store
  fsyncs each file instead, for good, so a failed write is never taken for durable. Its cost
  is that it also writes what others left dirty on that file system (seen here: 900 MB
  left by another program made every batch wait seconds), so it is used only for a
  batch big enough to be worth it, and only while the machine has little dirty data.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# A batch of at least this many objects is synced with one syncfs instead of 2-4 fsyncs
# each (measured: bench/bench_core.py row 5b).
SYNCFS_FROM = 4
# ... and only while the machine's dirty page cache (/proc/meminfo, all file systems:
# an upper bound for ours) is below this: what a syncfs may write besides the batch.
SYNCFS_DIRTY_MAX = 16 * 1024 * 1024
# syncfs reports writeback errors only since Linux 5.8 (5.11 on overlayfs, which containers
# run on, once it passed its upper file system's errors on); before, it could return 0
# after a failed write, so older kernels keep the per-file fsyncs, which do report them.
_SYNCFS_KERNEL = (5, 11)

_POOL: list[ThreadPoolExecutor] = []


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def in_parallel(work: Callable[[str], OSError | None], keys: list[str]) -> list[OSError | None]:
    """``work`` for every key, in threads apart from the default pool (that one is sized
    for the CPUs, too few to have a batch's fsyncs in flight together)."""
    if len(keys) == 1:
        return [work(keys[0])]
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(max_workers=32, thread_name_prefix="filetier-fsync"))
    return list(_POOL[0].map(work, keys))


def _kernel_at_least(wanted: tuple[int, int]) -> bool:
    if platform.system() != "Linux":
        return False
    try:
        major, minor = (int(part) for part in platform.release().split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= wanted


def little_dirty_data(limit: int = SYNCFS_DIRTY_MAX) -> bool:
    """Whether the machine's dirty page cache is below ``limit`` bytes."""
    try:
        with open("/proc/meminfo", "rb") as meminfo:
            for line in meminfo:
                if line.startswith(b"Dirty:"):
                    return int(line.split()[1]) * 1024 < limit
    except (OSError, ValueError, IndexError):
        pass
    return False


def file_system_syncer() -> Callable[[int], None] | None:
    """``syncfs(fd)`` raising OSError, or None where it cannot be trusted or is missing."""
    if not _kernel_at_least(_SYNCFS_KERNEL):
        return None
    import ctypes  # only here: a store that never syncs a batch never loads it

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        call = libc.syncfs
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int]
    call.restype = ctypes.c_int

    def syncfs(fd: int) -> None:
        # A CDLL call releases the GIL while the kernel writes.
        if call(fd) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))

    return syncfs
