"""One contract for every primary store, and the cache tiers' own small contracts.

The primary-store suite runs unchanged against the embedded local directory, obstore's
real MemoryStore and LocalStore, and S3 buckets on moto's server, a real Ceph radosgw and
the real Supabase Storage server:
a backend is done when it passes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import obstore
import pytest
from obstore.store import LocalStore, MemoryStore

from filetier.config import Settings
from filetier.errors import ObjectMissing
from filetier.tiers.disk import DiskCache
from filetier.tiers.factory import build_s3_primary
from filetier.tiers.local import LocalPrimary
from filetier.tiers.memory import MemoryTier
from filetier.tiers.objectstore import ObstorePrimary
from filetier.tiers.protocols import PrimaryStore, PutBytes
from testbed.services import S3Server

KEY = "sha256/ab/cd/abcdef0123"
INVALID_KEYS = ["../x", "/abs", "a//b"]

# --------------------------------------------------------------------------- helpers


@dataclass
class Backend:
    """A primary store under test, and a way to read what it set aside, from outside."""

    store: PrimaryStore
    read_quarantined: Callable[[str], bytes]
    root: Path | None  # the directory it writes to, for the on-disk backends


def _local(tmp_path: Path) -> Backend:
    root = tmp_path / "local-primary"
    return Backend(LocalPrimary(root), lambda where: Path(where).read_bytes(), root)


def _memory(tmp_path: Path) -> Backend:
    raw = MemoryStore()
    return Backend(
        ObstorePrimary(raw, name="memory"),
        lambda where: bytes(obstore.get(raw, where).bytes()),
        None,
    )


def _file(tmp_path: Path) -> Backend:
    root = tmp_path / "file-primary"
    raw = LocalStore(root, mkdir=True)
    return Backend(
        ObstorePrimary(raw, name="file"),
        lambda where: bytes(obstore.get(raw, where).bytes()),
        root,
    )


def _s3(server_fixture: str) -> Callable[[Path, pytest.FixtureRequest], Backend]:
    """An S3 bucket of its own on moto's emulator, a real Ceph radosgw or Supabase Storage."""

    def make(tmp_path: Path, request: pytest.FixtureRequest) -> Backend:
        server: S3Server = request.getfixturevalue(server_fixture)
        bucket = server.create_bucket()
        settings = Settings(home=tmp_path / "home", **server.settings_overrides(bucket))  # type: ignore[arg-type]
        store = build_s3_primary(settings)
        client = server.client()
        return Backend(
            store,
            lambda where: client.get_object(Bucket=bucket, Key=where)["Body"].read(),
            None,
        )

    return make


def _plain(factory: Callable[[Path], Backend]) -> Callable[[Path, pytest.FixtureRequest], Backend]:
    return lambda tmp_path, _request: factory(tmp_path)


@pytest.fixture(
    params=[
        _plain(_local),
        _plain(_memory),
        _plain(_file),
        _s3("moto"),
        _s3("ceph"),
        _s3("supabase"),
    ],
    ids=["local", "memory", "file", "s3-moto", "s3-ceph", "s3-supabase"],
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return request.param(tmp_path, request)


@pytest.fixture
def primary(backend: Backend) -> PrimaryStore:
    return backend.store


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    path = tmp_path / "sources"
    path.mkdir()
    return path


def source_file(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.write_bytes(data)
    return path


async def read_all(primary: PrimaryStore, key: str) -> bytes:
    return b"".join([chunk async for chunk in primary.get_stream(key)])


async def keys(primary: PrimaryStore, prefix: str = "") -> set[str]:
    return {info.key async for info in primary.list_objects(prefix)}


def files_under(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()}


# --------------------------------------------------------------------------- primary stores


def test_every_backend_implements_the_primary_protocol(primary: PrimaryStore) -> None:
    assert isinstance(primary, PrimaryStore)
    assert primary.name


@pytest.mark.parametrize("size", [0, 1, 6 * 1024 * 1024 + 7], ids=["empty", "1-byte", "6MiB"])
async def test_bytes_round_trip(primary: PrimaryStore, sources: Path, size: int) -> None:
    data = os.urandom(size)
    source = source_file(sources, "src.bin", data)

    assert await primary.put_file(KEY, source) is True

    assert await read_all(primary, KEY) == data
    info = await primary.head(KEY)
    assert info is not None
    assert info.key == KEY
    assert info.size == size
    # The caller owns the source: it is left in place, unchanged.
    assert source.read_bytes() == data


async def test_second_put_returns_false_and_keeps_the_first_bytes(
    primary: PrimaryStore, sources: Path
) -> None:
    first = source_file(sources, "first.bin", b"the first bytes")
    second = source_file(sources, "second.bin", b"something else entirely")

    assert await primary.put_file(KEY, first) is True
    assert await primary.put_file(KEY, second) is False
    assert await primary.put_file(KEY, first) is False

    assert await read_all(primary, KEY) == b"the first bytes"
    info = await primary.head(KEY)
    assert info is not None
    assert info.size == len(b"the first bytes")
    assert second.read_bytes() == b"something else entirely"


def bytes_putter(primary: PrimaryStore) -> PutBytes:
    """The store as a :class:`PutBytes` (the remote ones); others are skipped."""
    if not isinstance(primary, PutBytes):
        pytest.skip("publishes in-memory bytes its own way (LocalPath.publish_bytes)")
    return primary


@pytest.mark.parametrize("size", [0, 1, 6 * 1024 * 1024 + 7], ids=["empty", "1-byte", "6MiB"])
async def test_bytes_in_memory_round_trip(primary: PrimaryStore, size: int) -> None:
    data = os.urandom(size)
    assert await bytes_putter(primary).put_bytes(KEY, data) is True
    assert await read_all(primary, KEY) == data
    info = await primary.head(KEY)
    assert info is not None and info.size == size


async def test_bytes_put_if_absent_like_a_file(primary: PrimaryStore, sources: Path) -> None:
    putter = bytes_putter(primary)
    assert await putter.put_bytes(KEY, b"the first bytes") is True
    assert await putter.put_bytes(KEY, b"something else entirely") is False
    assert await primary.put_file(KEY, source_file(sources, "again.bin", b"other")) is False
    other = "sha256/ab/cd/abcdef0124"
    assert await primary.put_file(other, source_file(sources, "file.bin", b"a file")) is True
    assert await putter.put_bytes(other, b"not the file") is False
    assert await read_all(primary, KEY) == b"the first bytes"
    assert await read_all(primary, other) == b"a file"


@pytest.mark.parametrize("key", INVALID_KEYS)
async def test_bytes_under_an_invalid_key_are_refused(primary: PrimaryStore, key: str) -> None:
    with pytest.raises(ValueError, match="invalid object key"):
        await bytes_putter(primary).put_bytes(key, b"x")
    assert await keys(primary) == set()


async def test_head_of_an_absent_key_is_none(primary: PrimaryStore) -> None:
    assert await primary.head(KEY) is None


async def test_get_of_an_absent_key_raises_object_missing(primary: PrimaryStore) -> None:
    with pytest.raises(ObjectMissing):
        await read_all(primary, KEY)


async def test_delete_removes_the_object_and_missing_is_fine(
    primary: PrimaryStore, sources: Path
) -> None:
    await primary.put_file(KEY, source_file(sources, "a.bin", b"doomed"))
    other = "sha256/ab/cd/other"
    await primary.put_file(other, source_file(sources, "b.bin", b"survivor"))

    await primary.delete(KEY)

    assert await primary.head(KEY) is None
    with pytest.raises(ObjectMissing):
        await read_all(primary, KEY)
    assert await keys(primary) == {other}
    assert await read_all(primary, other) == b"survivor"
    # Deleting again, or deleting something that never existed, is not an error.
    await primary.delete(KEY)
    await primary.delete("sha256/00/00/never-existed")


async def test_a_deleted_key_can_be_written_again(primary: PrimaryStore, sources: Path) -> None:
    source = source_file(sources, "a.bin", b"again")
    await primary.put_file(KEY, source)
    await primary.delete(KEY)

    assert await primary.put_file(KEY, source) is True
    assert await read_all(primary, KEY) == b"again"


async def test_list_objects_by_prefix(primary: PrimaryStore, sources: Path) -> None:
    layout = {
        "sha256/aa/bb/one": b"1",
        "sha256/aa/cc/two": b"22",
        "sha256/ff/ee/three": b"333",
        "other/four": b"4444",
    }
    for i, (key, data) in enumerate(layout.items()):
        await primary.put_file(key, source_file(sources, f"{i}.bin", data))

    listed = {info.key: info.size async for info in primary.list_objects("sha256/")}

    assert listed == {k: len(v) for k, v in layout.items() if k.startswith("sha256/")}
    assert await keys(primary) == set(layout)
    assert await keys(primary, "sha256/aa/") == {"sha256/aa/bb/one", "sha256/aa/cc/two"}
    assert await keys(primary, "other/") == {"other/four"}
    assert await keys(primary, "nothing/") == set()


async def test_prefix_is_matched_by_whole_path_segments(
    primary: PrimaryStore, sources: Path
) -> None:
    """Every object *under* ``prefix``: ``sha256`` is a folder, not the start of a name.

    obstore matches prefixes segment by segment; every backend must agree, or code that
    lists ``sha256`` sees foreign objects on one backend only.
    """
    await primary.put_file("sha256/aa/bb/mine", source_file(sources, "a.bin", b"a"))
    await primary.put_file("sha256x/not-mine", source_file(sources, "b.bin", b"b"))

    assert await keys(primary, "sha256") == {"sha256/aa/bb/mine"}
    assert await keys(primary, "sha256/a") == set()


async def test_quarantine_moves_the_object_aside(backend: Backend, sources: Path) -> None:
    primary = backend.store
    await primary.put_file(KEY, source_file(sources, "bad.bin", b"suspect bytes"))
    other = "sha256/ab/cd/healthy"
    await primary.put_file(other, source_file(sources, "ok.bin", b"healthy"))

    where = await primary.quarantine(KEY)

    assert where
    assert await primary.head(KEY) is None
    with pytest.raises(ObjectMissing):
        await read_all(primary, KEY)
    assert await keys(primary) == {other}
    assert await keys(primary, "sha256/") == {other}
    # Kept for inspection, bytes intact.
    assert backend.read_quarantined(where) == b"suspect bytes"
    # The key is free again: a fresh upload repairs it.
    assert await primary.put_file(KEY, source_file(sources, "good.bin", b"good")) is True
    assert await read_all(primary, KEY) == b"good"


async def test_quarantine_of_an_absent_key_returns_none(primary: PrimaryStore) -> None:
    assert await primary.quarantine(KEY) is None


@pytest.mark.parametrize("bad_key", INVALID_KEYS)
async def test_invalid_keys_are_refused_and_nothing_is_written(
    backend: Backend, tmp_path: Path, sources: Path, bad_key: str
) -> None:
    primary = backend.store
    source = source_file(sources, "payload.bin", b"payload")
    before = files_under(tmp_path)

    with pytest.raises(ValueError, match="invalid object key"):
        await primary.put_file(bad_key, source)
    with pytest.raises(ValueError, match="invalid object key"):
        await primary.head(bad_key)
    with pytest.raises(ValueError, match="invalid object key"):
        await read_all(primary, bad_key)
    with pytest.raises(ValueError, match="invalid object key"):
        await primary.delete(bad_key)
    with pytest.raises(ValueError, match="invalid object key"):
        await primary.quarantine(bad_key)

    assert await keys(primary) == set()
    assert files_under(tmp_path) == before
    assert not (tmp_path / "x").exists()
    assert source.read_bytes() == b"payload"


# --------------------------------------------------------------------------- memory tier


def test_memory_tier_respects_its_byte_bound() -> None:
    tier = MemoryTier(max_bytes=100, item_max_bytes=100)
    for name in ("a", "b", "c"):
        assert tier.put(name, name.encode() * 40) is True

    assert tier.size_bytes == 80
    assert tier.size_bytes <= tier.max_bytes
    assert len(tier) == 2
    assert "a" not in tier
    assert tier.get("b") == b"b" * 40
    assert tier.get("c") == b"c" * 40


def test_memory_tier_replacing_an_entry_does_not_count_it_twice() -> None:
    tier = MemoryTier(max_bytes=100, item_max_bytes=100)
    tier.put("a", b"x" * 60)
    tier.put("a", b"y" * 60)

    assert tier.size_bytes == 60
    assert tier.get("a") == b"y" * 60


def test_memory_tier_evicts_least_recently_used_first() -> None:
    tier = MemoryTier(max_bytes=90, item_max_bytes=90)
    tier.put("a", b"a" * 30)
    tier.put("b", b"b" * 30)
    tier.put("c", b"c" * 30)
    assert tier.get("a") == b"a" * 30  # a is now the most recently used

    tier.put("d", b"d" * 30)

    assert "b" not in tier
    assert {"a", "c", "d"} <= {k for k in "abcd" if k in tier}
    assert tier.size_bytes == 90


def test_memory_tier_refuses_items_over_the_item_cap() -> None:
    tier = MemoryTier(max_bytes=1000, item_max_bytes=10)
    tier.put("small", b"s" * 10)

    assert tier.put("big", b"b" * 11) is False

    assert "big" not in tier
    assert tier.get("big") is None
    assert tier.get("small") == b"s" * 10  # a refused item flushes nothing
    assert tier.size_bytes == 10
    assert tier.accepts(10)
    assert not tier.accepts(11)


def test_memory_tier_item_cap_never_exceeds_the_whole_tier() -> None:
    tier = MemoryTier(max_bytes=10, item_max_bytes=100)

    assert tier.put("big", b"b" * 11) is False
    assert tier.size_bytes == 0


def test_memory_tier_evict_and_clear() -> None:
    tier = MemoryTier(max_bytes=100, item_max_bytes=100)
    tier.put("a", b"a" * 10)
    tier.put("b", b"b" * 20)

    assert tier.evict("a") is True
    assert tier.evict("a") is False
    assert tier.get("a") is None
    assert tier.size_bytes == 20

    assert tier.clear() == 20
    assert len(tier) == 0
    assert tier.size_bytes == 0


# --------------------------------------------------------------------------- disk cache

SHA_A = "aa" * 32
SHA_B = "bb" * 32


@pytest.fixture
def cache(tmp_path: Path) -> DiskCache:
    return DiskCache(tmp_path / "cache")


def put_in_cache(cache: DiskCache, sha256: str, data: bytes) -> Path:
    temp = cache.new_temp()
    temp.write_bytes(data)
    return cache.adopt(sha256, temp)


def test_disk_cache_adopt_publishes_the_temp_file_by_rename(cache: DiskCache) -> None:
    assert cache.lookup(SHA_A) is None
    temp = cache.new_temp()
    temp.write_bytes(b"verified bytes")
    inode = temp.stat().st_ino

    final = cache.adopt(SHA_A, temp)

    assert final == cache.path_for(SHA_A)
    assert final.read_bytes() == b"verified bytes"
    # Renamed, not copied: the very file that was written appears, complete.
    assert final.stat().st_ino == inode
    assert not temp.exists()
    assert list(cache.tmp.iterdir()) == []
    assert cache.lookup(SHA_A) == final


def test_disk_cache_adopt_replaces_an_existing_copy(cache: DiskCache) -> None:
    put_in_cache(cache, SHA_A, b"old copy")
    put_in_cache(cache, SHA_A, b"new copy")

    assert cache.path_for(SHA_A).read_bytes() == b"new copy"
    assert len(cache.entries()) == 1


def test_disk_cache_lookup_bumps_the_access_time(cache: DiskCache) -> None:
    path = put_in_cache(cache, SHA_A, b"data")
    long_ago = time.time() - 10_000
    os.utime(path, (long_ago, long_ago))

    assert cache.lookup(SHA_A) == path

    assert path.stat().st_mtime > time.time() - 60
    (entry,) = cache.entries()
    assert entry.last_access > time.time() - 60


def test_disk_cache_lookup_of_an_absent_entry_creates_nothing(cache: DiskCache) -> None:
    assert cache.lookup(SHA_A) is None
    assert not cache.path_for(SHA_A).exists()
    assert cache.entries() == []


def test_disk_cache_evict(cache: DiskCache) -> None:
    put_in_cache(cache, SHA_A, b"a")
    put_in_cache(cache, SHA_B, b"b")

    assert cache.evict(SHA_A) is True
    assert cache.evict(SHA_A) is False

    assert cache.lookup(SHA_A) is None
    assert cache.path_for(SHA_B).read_bytes() == b"b"


def test_disk_cache_entries_and_size(cache: DiskCache) -> None:
    put_in_cache(cache, SHA_A, b"a" * 100)
    put_in_cache(cache, SHA_B, b"b" * 250)
    cache.new_temp().write_bytes(b"in progress, not an entry" * 100)

    entries = {e.sha256: e for e in cache.entries()}

    assert set(entries) == {SHA_A, SHA_B}
    assert entries[SHA_A].size == 100
    assert entries[SHA_B].size == 250
    assert entries[SHA_B].path == cache.path_for(SHA_B)
    assert cache.size_bytes() == 350


def test_disk_cache_sweep_temps_removes_only_old_temps(cache: DiskCache) -> None:
    stale = cache.new_temp()
    stale.write_bytes(b"left by a crash")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    fresh = cache.new_temp()
    fresh.write_bytes(b"a fill in progress")
    entry = put_in_cache(cache, SHA_A, b"cached")
    os.utime(entry, (two_hours_ago, two_hours_ago))

    assert cache.sweep_temps(older_than_seconds=3600) == 1

    assert not stale.exists()
    assert fresh.read_bytes() == b"a fill in progress"
    assert entry.read_bytes() == b"cached"  # cache entries are not temps
