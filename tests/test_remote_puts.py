"""Uploads to a primary that is not read in place: bytes in memory go in one put, and this
host keeps a disk-cache copy only when there is room for it (the store's copy is the
durable one); free space is measured at most once a second."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from collections.abc import AsyncIterator
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


async def test_a_cache_directory_gone_costs_the_cache_copy_not_the_upload(
    remote_settings: Settings, tmp_path: Path
) -> None:
    """The cache's temp directory removed under a running store (an operator clearing
    the cache, say): uploads from a path and from memory are still stored, without a
    cache copy, instead of failing on the free-space check of that copy; a stream is
    staged, and the primary read into the cache, in the directory made again."""
    source = tmp_path / "report.txt"
    source.write_bytes(b"uploaded from a path\n")
    async with FileStore(remote_settings) as store:
        shutil.rmtree(store.disk.tmp)
        from_path = await store.upload_file(source)
        from_memory = await store.upload_file(b"uploaded from memory\n", filename="m.txt")
        for result in (from_path, from_memory):
            assert store.disk.lookup(result.sha256) is None

        async def chunks() -> AsyncIterator[bytes]:
            yield b"uploaded as "
            yield b"a stream\n"

        from_stream = await store.upload_file(chunks(), filename="s.txt")  # staged in tmp
        store.memory.clear()
        shutil.rmtree(store.disk.tmp)
        assert await store.read_bytes(from_path.file_id) == b"uploaded from a path\n"
        assert await store.read_bytes(from_memory.file_id) == b"uploaded from memory\n"
        assert await store.read_bytes(from_stream.file_id) == b"uploaded as a stream\n"


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


async def test_a_deduplicated_upload_reads_back_from_where_a_new_one_does(
    remote_settings: Settings, tmp_path: Path
) -> None:
    """Mallory uploads a candidate file: had it been stored already (alice's) and left no
    cache copy where a new upload leaves one, her first download would report the tier
    "primary" instead of "disk" (and take a primary read longer): a clear answer to "does
    anyone store these bytes?"."""
    settings = remote_settings.model_copy(update={"memory_item_max_bytes": 64 * 1024})
    async with FileStore(settings) as root:
        alice, mallory = root.as_owner("alice"), root.as_owner("mallory")
        for how in ("bytes", "path"):
            stored, fresh = os.urandom(300_000), os.urandom(300_000)
            await alice.upload_file(stored, filename="secret.bin")
            tiers = {}
            for label, data in (("stored", stored), ("new", fresh)):
                root.disk.evict(hashlib.sha256(data).hexdigest())  # long after, or elsewhere
                root.memory.clear()
                source: bytes | Path = data
                if how == "path":
                    source = tmp_path / f"{how}-{label}.bin"
                    source.write_bytes(data)
                uploaded = await mallory.upload_file(source, filename="guess.bin")
                assert not uploaded.deduplicated  # never told, either way
                downloaded = await mallory.download(uploaded.file_id)
                assert Path(downloaded.path).read_bytes() == data
                tiers[label] = downloaded.tier
            assert tiers == {"stored": "disk", "new": "disk"}, how
