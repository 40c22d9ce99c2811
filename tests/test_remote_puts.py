"""Uploads to a primary that is not read in place: bytes in memory go in one put, and this
host keeps a disk-cache copy only when there is room for it (the store's copy is the
durable one); free space is measured at most once a second."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from pathlib import Path

from filetier import FileStore, Settings
from filetier.diskcap import FreeSpace
from filetier.store import storage_key


async def test_bytes_go_to_the_primary_and_a_cache_copy_beside_them(
    remote_store: FileStore, remote_settings: Settings
) -> None:
    contents = [os.urandom(4096) for _ in range(24)]
    results = await asyncio.gather(
        *(remote_store.upload_file(data, filename=f"f{i}.bin") for i, data in enumerate(contents))
    )
    remote = Path(str(remote_settings.primary_url).removeprefix("file://"))
    for result, data in zip(results, contents, strict=True):
        assert not result.deduplicated and result.bytes_written == len(data)
        assert (remote / storage_key(result.sha256)).read_bytes() == data
        cached = remote_store.disk.lookup(result.sha256)
        assert cached is not None and cached.read_bytes() == data
    assert list(remote_store.disk.tmp.iterdir()) == []  # no staging file left behind
    remote_store.memory.clear()
    for result, data in zip(results, contents, strict=True):
        remote_store.disk.evict(result.sha256)
        assert await remote_store.read_bytes(result.file_id) == data  # from the primary


async def test_without_room_for_a_cache_copy_the_upload_is_still_stored(
    remote_settings: Settings,
) -> None:
    free = shutil.disk_usage(remote_settings.home.parent).free
    settings = remote_settings.model_copy(update={"min_free_bytes": free * 2 + 10**12})
    data = b"no room on this host, plenty in the store"
    async with FileStore(settings) as store:
        result = await store.upload_file(data, filename="kept.txt")
        assert store.disk.lookup(result.sha256) is None
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    async with FileStore(remote_settings) as roomier:  # reads fill the cache: room needed
        assert await roomier.read_bytes(result.file_id) == data


def test_free_space_counts_what_it_grants_between_measurements(tmp_path: Path) -> None:
    free = shutil.disk_usage(tmp_path).free
    # Room for 3 MB above the reserve; others' writes meanwhile may take up to 1 MB.
    space = FreeSpace(tmp_path, reserve=free - 3_000_000, interval=3600)
    assert space.take(1_000_000) is True
    assert space.take(1_000_000) is True
    # Not measured again within the interval: the two grants are counted as used.
    assert space.take(1_500_000) is False
    assert space.take(100) is True


def test_no_room_above_the_reserve_is_refused(tmp_path: Path) -> None:
    free = shutil.disk_usage(tmp_path).free
    assert FreeSpace(tmp_path, reserve=free + 10**12).take(1) is False
    # A large write measures afresh, whatever the interval.
    space = FreeSpace(tmp_path, reserve=0, interval=3600)
    assert space.take(1) is True
    assert space.take(FreeSpace.FRESH_ABOVE) is True
