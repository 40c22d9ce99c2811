"""A failed ``syncfs`` is not trusted again: the kernel reports a writeback error to each
descriptor once, so a second syncfs could return 0 for an object whose bytes that error
lost. The store fsyncs each object from then on, and judges the failed batch object by
object.

A kernel writeback error cannot be caused here (no faulty disk), so the one stub is the
``syncfs`` call itself, raising what the kernel would; every fsync is real.
"""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

from filetier.store import storage_key
from filetier.tiers.local import LocalPrimary


def test_after_a_failed_syncfs_every_batch_fsyncs_each_object(tmp_path: Path) -> None:
    primary = LocalPrimary(tmp_path / "objects")
    contents = [os.urandom(4096) for _ in range(6)]
    keys = [storage_key(hashlib.sha256(data).hexdigest()) for data in contents]
    for key, data in zip(keys, contents, strict=True):
        assert primary.publish_bytes(key, data) is True
    syncfs_calls: list[int] = []

    def failing_syncfs(fd: int) -> None:
        syncfs_calls.append(fd)
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    primary._syncfs = failing_syncfs
    for _ in range(10):  # the syncfs path is taken only while the machine has little dirty data
        os.sync()
        # Every object here was written fine: fsynced one by one, each is durable.
        assert primary.make_durable(keys) == [None] * len(keys)
        if syncfs_calls:
            break
    assert syncfs_calls, "the batch never took the syncfs path"
    os.sync()
    assert primary.make_durable(keys) == [None] * len(keys)
    assert primary.make_durable(keys[:4]) == [None] * 4
    assert len(syncfs_calls) == 1, "syncfs was trusted again after it failed"
