"""Corruption, handled as a user expects: a bad cache copy is invisible, a bad primary
object is quarantined with a clear error, and ``verify`` reports and repairs on request.

Every byte is flipped in a real file on disk; nothing inside filetier is mocked.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from filetier import FileStore, IntegrityError, Settings, StorageUnavailableError
from tests.support.damage import flip_byte

# --------------------------------------------------------------------------- helpers


def damage(path: Path, how: str) -> None:
    if how == "flip":
        flip_byte(path, 12_345)
    elif how == "truncate":
        with path.open("r+b") as handle:
            handle.truncate(path.stat().st_size // 2)
    else:
        with path.open("ab") as handle:
            handle.write(b"trailing garbage")


def files_in(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file()) if directory.exists() else []


def remote_object(remote_settings: Settings, sha256: str) -> Path:
    """Where the ``file://`` primary keeps an object (its directory layout, seen from outside)."""
    root = Path(remote_settings.primary_url.removeprefix("file://"))  # type: ignore[union-attr]
    return root / "sha256" / sha256[:2] / sha256[2:4] / sha256


async def stream_all(store: FileStore, file_id: object) -> bytes:
    async with store.open(file_id, chunk_size=64 * 1024) as reader:  # type: ignore[arg-type]
        return b"".join([chunk async for chunk in reader])


async def primary_reads(store: FileStore) -> int:
    return (await store.stats()).primary_reads


@pytest.fixture
def small_memory_remote_settings(remote_settings: Settings) -> Settings:
    """A remote primary whose memory tier refuses files over 64 KiB, so downloads of
    larger files are copied file to file (the streaming delivery path)."""
    return Settings(
        home=remote_settings.home,
        primary_url=remote_settings.primary_url,
        memory_item_max_bytes=64 * 1024,
        fsync=False,
        bookkeeping_flush_seconds=0.05,
    )


# --------------------------------------------------------------------------- corrupt cache copy


async def _read_via(store: FileStore, how: str, file_id: object) -> bytes:
    if how == "read_bytes":
        return await store.read_bytes(file_id)  # type: ignore[arg-type]
    path = await store.download_file(file_id)  # type: ignore[arg-type]
    return path.read_bytes()


@pytest.mark.parametrize(
    ("how", "small_memory"),
    [("read_bytes", False), ("download_file", False), ("download_file", True)],
    ids=["read_bytes", "download_file", "download_file-not-via-memory"],
)
@pytest.mark.parametrize("how_damaged", ["flip", "truncate", "append"])
async def test_corrupt_cache_copy_is_refetched_from_the_primary(
    remote_settings: Settings,
    small_memory_remote_settings: Settings,
    how: str,
    small_memory: bool,
    how_damaged: str,
) -> None:
    settings = small_memory_remote_settings if small_memory else remote_settings
    data = os.urandom(300_000)
    async with FileStore(settings) as store:
        uploaded = await store.upload_file(data, filename="report.bin")
        assert await store.read_bytes(uploaded.file_id) == data
        assert store.disk.lookup(uploaded.sha256) is not None
        store.memory.clear()
        cache_copy = store.disk.path_for(uploaded.sha256)
        damage(cache_copy, how_damaged)
        before = await primary_reads(store)

        assert await _read_via(store, how, uploaded.file_id) == data

        assert await primary_reads(store) == before + 1
        assert cache_copy.read_bytes() == data  # the bad copy was replaced by a good one
        # The primary was fine all along: nothing was quarantined.
        assert remote_object(settings, uploaded.sha256).read_bytes() == data
        assert (await store.verify()).clean


async def test_streaming_a_corrupt_cache_copy_fails_at_the_end_then_reads_fine(
    remote_store: FileStore, remote_settings: Settings
) -> None:
    """The bytes already streamed cannot be taken back: the stream ends in IntegrityError,
    the bad copy is gone, and the next ``open`` streams the right bytes from the primary."""
    data = os.urandom(300_000)
    uploaded = await remote_store.upload_file(data, filename="stream.bin")
    assert await remote_store.read_bytes(uploaded.file_id) == data
    assert remote_store.disk.lookup(uploaded.sha256) is not None
    remote_store.memory.clear()
    cache_copy = remote_store.disk.path_for(uploaded.sha256)
    flip_byte(cache_copy, 200_000)
    before = await primary_reads(remote_store)

    with pytest.raises(IntegrityError, match=str(uploaded.file_id)):
        await stream_all(remote_store, uploaded.file_id)

    assert not cache_copy.exists()
    assert remote_object(remote_settings, uploaded.sha256).read_bytes() == data
    assert await stream_all(remote_store, uploaded.file_id) == data
    assert await primary_reads(remote_store) == before + 1
    assert cache_copy.read_bytes() == data


# --------------------------------------------------------------------------- corrupt primary


async def test_corrupt_local_object_is_quarantined_with_a_clear_error(
    store: FileStore, settings: Settings
) -> None:
    original = os.urandom(50_000)
    bad = await store.upload_file(original, filename="ledger.csv.gz")
    others = {
        (await store.upload_file(payload, filename=f"other-{i}.bin")).file_id: payload
        for i, payload in enumerate([os.urandom(10_000), os.urandom(70_000)])
    }
    record = await store.stat(bad.file_id)
    object_path = store.core.local.local_path(record.storage_key)  # type: ignore[union-attr]
    flip_byte(object_path, 100)
    store.memory.clear()

    with pytest.raises(IntegrityError) as caught:
        await store.read_bytes(bad.file_id)

    message = str(caught.value)
    assert str(bad.file_id) in message
    assert "ledger.csv.gz" in message
    assert "quarantine" in message
    assert not object_path.exists()
    (kept,) = files_in(settings.objects_dir / ".quarantine")
    assert hashlib.sha256(kept.read_bytes()).hexdigest() != bad.sha256  # the corrupt bytes

    report = await store.verify()
    assert [(f.kind, f.sha256) for f in report.findings] == [("quarantined", bad.sha256)]

    for file_id, payload in others.items():
        assert (await store.download_file(file_id)).read_bytes() == payload

    # Uploading the original bytes again repairs the existing file.
    await store.upload_file(original, filename="ledger-again.csv.gz")
    store.memory.clear()
    assert (await store.download_file(bad.file_id)).read_bytes() == original
    assert object_path.read_bytes() == original
    assert (await store.verify()).clean


async def test_a_quarantined_file_keeps_failing_until_repaired(store: FileStore) -> None:
    uploaded = await store.upload_file(os.urandom(5_000), filename="gone.bin")
    record = await store.stat(uploaded.file_id)
    flip_byte(store.core.local.local_path(record.storage_key))  # type: ignore[union-attr]
    store.memory.clear()
    with pytest.raises(IntegrityError):
        await store.read_bytes(uploaded.file_id)

    # Never the corrupt bytes, never a success: an error naming the file.
    with pytest.raises((IntegrityError, StorageUnavailableError), match=str(uploaded.file_id)):
        await store.read_bytes(uploaded.file_id)


async def test_corrupt_remote_object_without_cache_copy_is_quarantined(
    remote_store: FileStore, remote_settings: Settings
) -> None:
    data = os.urandom(80_000)
    uploaded = await remote_store.upload_file(data, filename="remote.bin")
    remote_store.memory.clear()
    remote_store.disk.evict(uploaded.sha256)
    obj = remote_object(remote_settings, uploaded.sha256)
    flip_byte(obj, 40_000)
    remote_root = obj.parents[3]

    with pytest.raises(IntegrityError) as caught:
        await remote_store.read_bytes(uploaded.file_id)

    assert str(uploaded.file_id) in str(caught.value)
    assert "remote.bin" in str(caught.value)
    assert "quarantine" in str(caught.value)
    assert not obj.exists()
    (kept,) = files_in(remote_root / "quarantine")
    assert len(kept.read_bytes()) == len(data)
    # No bad copy and no temp file were left in the cache.
    assert remote_store.disk.lookup(uploaded.sha256) is None
    assert list(remote_store.disk.tmp.iterdir()) == []


async def test_streaming_a_corrupt_local_object_raises_at_the_end(
    store: FileStore, settings: Settings
) -> None:
    data = os.urandom(200_000)
    uploaded = await store.upload_file(data, filename="streamed.bin")
    record = await store.stat(uploaded.file_id)
    object_path = store.core.local.local_path(record.storage_key)  # type: ignore[union-attr]
    flip_byte(object_path, 150_000)
    store.memory.clear()

    received: list[bytes] = []
    with pytest.raises(IntegrityError) as caught:
        async with store.open(uploaded.file_id, chunk_size=64 * 1024) as reader:
            async for chunk in reader:
                received.append(chunk)

    assert len(b"".join(received)) == len(data)  # raised at the end, not up front
    message = str(caught.value)
    assert str(uploaded.file_id) in message
    assert "streamed.bin" in message
    # Reading again cannot help: the message says the object was quarantined.
    assert "quarantine" in message
    assert not object_path.exists()
    assert len(files_in(settings.objects_dir / ".quarantine")) == 1


# --------------------------------------------------------------------------- verify


async def test_verify_on_a_clean_store(store: FileStore) -> None:
    payloads = [os.urandom(n) for n in (0, 1, 4_096, 123_457)]
    for i, payload in enumerate(payloads):
        await store.upload_file(payload, filename=f"f{i}.bin")
    await store.upload_file(payloads[-1], filename="duplicate.bin")  # stored once

    report = await store.verify()

    assert report.clean
    assert report.findings == []
    assert report.blobs_checked == len(payloads)
    assert report.bytes_verified == sum(len(p) for p in payloads)


async def test_verify_reports_a_corrupt_cache_copy_and_fix_evicts_it(
    remote_store: FileStore,
) -> None:
    data = os.urandom(60_000)
    uploaded = await remote_store.upload_file(data, filename="cached.bin")
    cache_copy = remote_store.disk.path_for(uploaded.sha256)
    assert cache_copy.exists()
    flip_byte(cache_copy, 7)
    corrupt = cache_copy.read_bytes()

    report = await remote_store.verify()

    assert [(f.kind, f.sha256, f.fixed) for f in report.findings] == [
        ("corrupt_cache", uploaded.sha256, False)
    ]
    assert cache_copy.read_bytes() == corrupt  # reported, nothing changed

    fixed = await remote_store.verify(fix=True)

    assert [(f.kind, f.fixed) for f in fixed.findings] == [("corrupt_cache", True)]
    assert not cache_copy.exists()
    assert (await remote_store.verify()).clean
    remote_store.memory.clear()
    assert await remote_store.read_bytes(uploaded.file_id) == data


async def test_verify_fix_restores_a_corrupt_primary_from_a_good_cache_copy(
    remote_store: FileStore, remote_settings: Settings
) -> None:
    data = os.urandom(90_000)
    uploaded = await remote_store.upload_file(data, filename="precious.bin")
    assert remote_store.disk.path_for(uploaded.sha256).read_bytes() == data
    obj = remote_object(remote_settings, uploaded.sha256)
    flip_byte(obj, 45_000)

    report = await remote_store.verify()
    assert [(f.kind, f.sha256, f.fixed) for f in report.findings] == [
        ("corrupt_object", uploaded.sha256, False)
    ]
    assert obj.read_bytes() != data  # a plain verify only reports

    fixed = await remote_store.verify(fix=True)

    assert [(f.kind, f.fixed) for f in fixed.findings] == [("corrupt_object", True)]
    assert "restored" in fixed.findings[0].detail
    assert obj.read_bytes() == data
    assert hashlib.sha256(obj.read_bytes()).hexdigest() == uploaded.sha256
    assert (await remote_store.verify()).clean
    remote_store.memory.clear()
    remote_store.disk.evict(uploaded.sha256)
    assert await remote_store.read_bytes(uploaded.file_id) == data


async def test_verify_reports_a_missing_object(store: FileStore) -> None:
    uploaded = await store.upload_file(os.urandom(1_000), filename="vanished.bin")
    kept = await store.upload_file(os.urandom(2_000), filename="kept.bin")
    record = await store.stat(uploaded.file_id)
    store.core.local.local_path(record.storage_key).unlink()  # type: ignore[union-attr]

    report = await store.verify()

    assert [(f.kind, f.sha256) for f in report.findings] == [("missing_object", uploaded.sha256)]
    assert report.bytes_verified == kept.size


async def test_verify_fix_restores_a_missing_remote_object_from_the_cache(
    remote_store: FileStore, remote_settings: Settings
) -> None:
    data = os.urandom(30_000)
    uploaded = await remote_store.upload_file(data, filename="lost.bin")
    obj = remote_object(remote_settings, uploaded.sha256)
    obj.unlink()

    report = await remote_store.verify()
    assert [(f.kind, f.sha256, f.fixed) for f in report.findings] == [
        ("missing_object", uploaded.sha256, False)
    ]
    assert not obj.exists()

    fixed = await remote_store.verify(fix=True)

    assert [(f.kind, f.fixed) for f in fixed.findings] == [("missing_object", True)]
    assert obj.read_bytes() == data
    assert (await remote_store.verify()).clean


@pytest.mark.parametrize("via_memory", [True, False], ids=["via-memory", "file-to-file"])
async def test_a_failed_download_leaves_the_destination_as_it_was(
    home: Path, via_memory: bool
) -> None:
    settings = Settings(
        home=home,
        fsync=False,
        bookkeeping_flush_seconds=0.05,
        memory_item_max_bytes=4 * 1024 * 1024 if via_memory else 1024,
    )
    async with FileStore(settings) as store:
        uploaded = await store.upload_file(os.urandom(100_000), filename="target.bin")
        record = await store.stat(uploaded.file_id)
        flip_byte(store.core.local.local_path(record.storage_key))  # type: ignore[union-attr]
        store.memory.clear()
        destination = settings.downloads_dir / "default" / "target.bin"  # the owner's folder
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(b"an older copy the user still has")

        with pytest.raises(IntegrityError):
            # Even when asked to replace it, a failed delivery leaves it be.
            await store.download_file(uploaded.file_id, cleanup="keep", overwrite=True)

        assert destination.read_bytes() == b"an older copy the user still has"
        assert [p.name for p in destination.parent.iterdir()] == ["target.bin"]


@pytest.mark.parametrize("how", ["read_bytes", "download_file", "open"])
async def test_a_file_larger_than_the_disk_cache_reads_fine_and_is_never_quarantined(
    home: Path, remote_settings: Settings, how: str
) -> None:
    """A 1 MB disk cache cannot hold a 1.5 MB file. Reading it must still work, and must
    never declare the healthy primary object corrupt."""
    settings = Settings(
        home=home,
        primary_url=remote_settings.primary_url,
        max_cache_size_mb=1,
        fsync=False,
        bookkeeping_flush_seconds=0.05,
    )
    data = os.urandom(1_500_000)
    async with FileStore(settings) as store:
        uploaded = await store.upload_file(data, filename="big.bin")
        store.memory.clear()

        if how == "open":
            assert await stream_all(store, uploaded.file_id) == data
        else:
            assert await _read_via(store, how, uploaded.file_id) == data

        assert remote_object(settings, uploaded.sha256).read_bytes() == data
        assert (await store.verify()).clean
