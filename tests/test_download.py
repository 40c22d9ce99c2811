"""Downloads: where the bytes land, which tier served them, streaming reads, batches and
the bookkeeping a download leaves behind."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from filetier import FileStore, IntegrityError, Settings


def with_roots(home: Path, *roots: Path, **extra: object) -> Settings:
    return Settings(
        home=home,
        fsync=False,
        allowed_roots=os.pathsep.join(str(r) for r in roots),
        bookkeeping_flush_seconds=0.05,
        **extra,
    )


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    first, second = tmp_path / "exports", tmp_path / "shared"
    second.mkdir()
    return first.resolve(), second.resolve()


@pytest.fixture
async def rooted_store(home: Path, roots: tuple[Path, Path]) -> AsyncIterator[FileStore]:
    async with FileStore(with_roots(home, *roots)) as opened:
        yield opened


# --------------------------------------------------------------------------- destinations


async def test_download_to_default_destination(store: FileStore, settings: Settings) -> None:
    data = b"weekly report body"
    uploaded = await store.upload_file(data, filename="weekly-report.txt")

    path = await store.download_file(uploaded.file_id)

    # Each owner has its own folder there: "default" is the library's own owner.
    assert path == settings.downloads_dir.resolve() / "default" / "weekly-report.txt"
    assert path.read_bytes() == data


async def test_default_destination_keeps_a_hostile_name_inside_downloads(
    store: FileStore, settings: Settings, tmp_path: Path
) -> None:
    uploaded = await store.upload_file(b"payload", filename="../../escape.txt")

    path = await store.download_file(uploaded.file_id)

    assert path.parent == settings.downloads_dir.resolve() / "default"
    assert path.name == "escape.txt"
    assert path.read_bytes() == b"payload"
    assert not (tmp_path / "escape.txt").exists()
    assert not (settings.home / "escape.txt").exists()


async def test_relative_destination_is_inside_the_first_root(
    rooted_store: FileStore, roots: tuple[Path, Path]
) -> None:
    uploaded = await rooted_store.upload_file(b"relative", filename="orig.txt")

    path = await rooted_store.download_file(uploaded.file_id, "nested/dir/renamed.txt")

    assert path == roots[0] / "nested" / "dir" / "renamed.txt"
    assert path.read_bytes() == b"relative"


async def test_absolute_destination_in_another_allowed_root(
    rooted_store: FileStore, roots: tuple[Path, Path]
) -> None:
    uploaded = await rooted_store.upload_file(b"second root", filename="orig.txt")
    target = roots[1] / "team" / "copy.txt"

    path = await rooted_store.download_file(uploaded.file_id, target)

    assert path == target
    assert target.read_bytes() == b"second root"


async def test_existing_directory_receives_the_original_name(
    rooted_store: FileStore, roots: tuple[Path, Path]
) -> None:
    uploaded = await rooted_store.upload_file(b"into a folder", filename="invoice-7.txt")
    folder = roots[1] / "inbox"
    folder.mkdir()

    path = await rooted_store.download_file(uploaded.file_id, folder)

    assert path == folder / "invoice-7.txt"
    assert path.read_bytes() == b"into a folder"


async def test_root_itself_receives_the_original_name(
    rooted_store: FileStore, roots: tuple[Path, Path]
) -> None:
    uploaded = await rooted_store.upload_file(b"at the root", filename="top.txt")

    path = await rooted_store.download_file(uploaded.file_id, str(roots[1]))

    assert path == roots[1] / "top.txt"
    assert path.read_bytes() == b"at the root"


async def test_existing_file_in_a_root_is_replaced_when_asked(
    rooted_store: FileStore, roots: tuple[Path, Path]
) -> None:
    target = roots[1] / "existing.txt"
    target.write_bytes(b"old content that is longer than the new one")
    uploaded = await rooted_store.upload_file(b"new content", filename="x.txt")

    path = await rooted_store.download_file(uploaded.file_id, target, overwrite=True)

    assert path == target
    assert target.read_bytes() == b"new content"
    leftovers = [p.name for p in roots[1].iterdir() if p.name != "existing.txt"]
    assert leftovers == [], "no temp file is left next to the destination"


async def test_download_result_describes_the_copy(rooted_store: FileStore) -> None:
    data = os.urandom(4096)
    uploaded = await rooted_store.upload_file(data, filename="r.bin")

    result = await rooted_store.download(uploaded.file_id, "r-copy.bin")

    assert result.file_id == uploaded.file_id
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.size == len(data)
    assert result.mime_type == uploaded.mime_type
    assert result.verified is True
    assert Path(result.path).read_bytes() == data


# --------------------------------------------------------------------------- tiers


async def test_small_bytes_upload_is_served_from_memory(store: FileStore) -> None:
    uploaded = await store.upload_file(b"small and recent", filename="s.txt")

    result = await store.download(uploaded.file_id)

    assert result.tier == "memory"
    assert Path(result.path).read_bytes() == b"small and recent"


async def test_path_upload_is_served_from_the_local_primary_then_memory(
    store: FileStore, tmp_path: Path
) -> None:
    source = tmp_path / "doc.bin"
    source.write_bytes(os.urandom(10_000))
    uploaded = await store.upload_file(source)

    first = await store.download(uploaded.file_id)
    second = await store.download(uploaded.file_id)

    assert first.tier == "primary"
    assert second.tier == "memory"
    assert Path(second.path).read_bytes() == source.read_bytes()


async def test_remote_primary_then_disk_cache_on_another_host(
    remote_store: FileStore, remote_settings: Settings, tmp_path: Path
) -> None:
    data = os.urandom(20_000)
    uploaded = await remote_store.upload_file(data, filename="shared.bin")
    # A second host: same database and primary, its own (empty) disk cache.
    other_host = Settings(
        home=remote_settings.home,
        primary_url=remote_settings.primary_url,
        cache_dir=tmp_path / "host-b-cache",
        fsync=False,
    )

    async with FileStore(other_host) as store_b:
        first = await store_b.download(uploaded.file_id, "from-primary.bin")
        store_b.memory.clear()
        second = await store_b.download(uploaded.file_id, "from-disk.bin")
        third = await store_b.download(uploaded.file_id, "from-memory.bin")

    assert (first.tier, second.tier, third.tier) == ("primary", "disk", "memory")
    for result in (first, second, third):
        assert Path(result.path).read_bytes() == data


async def test_remote_uploader_keeps_its_copy_in_the_disk_cache(
    remote_store: FileStore,
) -> None:
    data = os.urandom(20_000)
    uploaded = await remote_store.upload_file(data)
    remote_store.memory.clear()

    result = await remote_store.download(uploaded.file_id)

    assert result.tier == "disk"
    assert Path(result.path).read_bytes() == data
    assert (await remote_store.stats()).primary_reads == 0


async def test_read_bytes_returns_the_content(store: FileStore, tmp_path: Path) -> None:
    source = tmp_path / "r.bin"
    source.write_bytes(os.urandom(100_000))
    uploaded = await store.upload_file(source)

    assert await store.read_bytes(uploaded.file_id) == source.read_bytes()
    assert await store.read_bytes(str(uploaded.file_id)) == source.read_bytes()


@pytest.mark.parametrize("warm", [True, False], ids=["memory", "primary"])
async def test_open_streams_chunks(store: FileStore, warm: bool) -> None:
    data = os.urandom(10_000)
    uploaded = await store.upload_file(data)
    if not warm:
        store.memory.clear()

    received: list[bytes] = []
    async with store.open(uploaded.file_id, chunk_size=3000) as reader:
        assert reader.size == len(data)
        async for chunk in reader:
            received.append(chunk)

    assert b"".join(received) == data
    assert [len(c) for c in received] == [3000, 3000, 3000, 1000]


@pytest.mark.parametrize("warm", [True, False], ids=["memory", "primary"])
async def test_open_read_n(store: FileStore, warm: bool) -> None:
    data = os.urandom(5000)
    uploaded = await store.upload_file(data)
    if not warm:
        store.memory.clear()

    async with store.open(uploaded.file_id) as reader:
        head = await reader.read(100)
        middle = await reader.read(4000)
        rest = await reader.read()
        end = await reader.read(10)

    assert head == data[:100]
    assert middle == data[100:4100]
    assert rest == data[4100:]
    assert end == b""


async def test_large_files_never_enter_memory(home: Path, tmp_path: Path) -> None:
    settings = Settings(home=home, fsync=False, memory_item_max_bytes="64KiB")
    big = os.urandom(200_000)
    source = tmp_path / "big.bin"
    source.write_bytes(big)

    async with FileStore(settings) as store:
        from_path = await store.upload_file(source)
        from_bytes = await store.upload_file(big[::-1])
        for uploaded in (from_path, from_bytes):
            first = await store.download(uploaded.file_id, f"{uploaded.file_id}.bin")
            second = await store.download(uploaded.file_id, f"{uploaded.file_id}-2.bin")
            assert Path(second.path).read_bytes() == await store.read_bytes(uploaded.file_id)
            async with store.open(uploaded.file_id) as reader:
                assert await reader.read() == Path(first.path).read_bytes()
            assert uploaded.sha256 not in store.memory
            assert (first.tier, second.tier) == ("primary", "primary")
        assert len(store.memory) == 0
        assert (await store.stats()).memory_bytes == 0


# --------------------------------------------------------------------------- batches


async def test_download_many_reports_each_id_in_order(
    rooted_store: FileStore, roots: tuple[Path, Path]
) -> None:
    a = await rooted_store.upload_file(b"alpha", filename="a.txt")
    b = await rooted_store.upload_file(b"bravo", filename="b.txt")
    c = await rooted_store.upload_file(b"charlie", filename="c.txt")
    missing = str(uuid.uuid4())
    ids = [str(a.file_id), "not-a-uuid", missing, str(b.file_id), c.file_id]

    results = await rooted_store.download_many(ids, concurrency=2)

    assert [r.file_id for r in results] == [str(i) for i in ids]
    assert [r.ok for r in results] == [True, False, False, True, True]
    assert "not-a-uuid" in (results[1].error or "")
    assert "not a file id" in (results[1].error or "")
    assert missing in (results[2].error or "")
    assert "no file" in (results[2].error or "")
    for result, expected in zip(
        [results[0], results[3], results[4]], [b"alpha", b"bravo", b"charlie"], strict=True
    ):
        assert result.error is None
        assert result.tier in {"memory", "disk", "primary"}
        assert result.path is not None
        assert Path(result.path).read_bytes() == expected
        assert Path(result.path).parent == roots[0] / "default"
    assert results[1].path is None and results[2].path is None


async def test_download_many_into_a_directory(
    rooted_store: FileStore, roots: tuple[Path, Path]
) -> None:
    # Two files with the same name must not overwrite each other.
    one = await rooted_store.upload_file(b"one", filename="same.txt")
    two = await rooted_store.upload_file(b"two", filename="same.txt")

    results = await rooted_store.download_many([one.file_id, two.file_id], "batch")

    assert all(r.ok for r in results)
    paths = [Path(r.path or "") for r in results]
    assert all(p.parent == roots[0] / "batch" for p in paths)
    assert [p.read_bytes() for p in paths] == [b"one", b"two"]


# --------------------------------------------------------------------------- bookkeeping


async def test_downloads_update_counters_and_history(store: FileStore, tmp_path: Path) -> None:
    source = tmp_path / "tracked.bin"
    source.write_bytes(os.urandom(2048))
    uploaded = await store.upload_file(source)
    before = await store.stat(uploaded.file_id)

    first = await store.download(uploaded.file_id)
    second = await store.download(uploaded.file_id, "elsewhere.bin")
    await store.read_bytes(uploaded.file_id)
    await store.flush()

    record = await store.stat(uploaded.file_id)
    assert before.access_count == 0 and before.last_accessed is None
    assert record.access_count == 3
    assert record.last_accessed is not None
    assert record.last_accessed >= record.upload_date

    events = await store.history(uploaded.file_id)
    assert len(events) == 3
    assert all(e.file_id == uploaded.file_id for e in events)
    assert all(e.bytes == 2048 for e in events)
    assert all(e.verified for e in events)
    assert sorted(e.tier for e in events) == ["memory", "memory", "primary"]
    destinations = {e.destination_path for e in events}
    assert destinations == {first.path, second.path, None}
    by_destination = {e.destination_path: e.tier for e in events}
    assert by_destination[first.path] == "primary"


async def test_history_of_one_file_excludes_others(store: FileStore) -> None:
    a = await store.upload_file(b"a-file")
    b = await store.upload_file(b"b-file")
    await store.read_bytes(a.file_id)
    await store.read_bytes(b.file_id)
    await store.read_bytes(b.file_id)

    assert len(await store.history(a.file_id)) == 1
    assert len(await store.history(b.file_id)) == 2
    assert len(await store.history()) == 3


async def test_closing_the_store_persists_every_event(home: Path) -> None:
    # A flush interval far longer than the test: only close() can write the events.
    settings = Settings(home=home, fsync=False, bookkeeping_flush_seconds=3600)
    async with FileStore(settings) as store:
        uploaded = await store.upload_file(b"hot file", filename="hot.txt")
        for _ in range(50):
            assert await store.read_bytes(uploaded.file_id) == b"hot file"
        await store.download_file(uploaded.file_id)

    async with FileStore(settings) as reopened:
        events = await reopened.history(uploaded.file_id, limit=500)
        record = await reopened.stat(uploaded.file_id)
        stats = await reopened.stats()

    assert len(events) == 51
    assert record.access_count == 51
    assert record.last_accessed is not None
    assert stats.downloads == 51
    assert stats.tiers["memory"].hits == 51


def test_a_copy_just_fetched_is_delivered_by_a_kernel_copy_byte_for_byte(tmp_path: Path) -> None:
    from filetier.digest import copy_exact

    source = tmp_path / "fetched.bin"
    data = os.urandom(9 * 1024 * 1024 + 17)  # more than one copy step, not a multiple
    source.write_bytes(data)
    seen: list[int] = []
    fd = os.open(tmp_path / "out.bin", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        assert copy_exact(source, fd, len(data), progress=seen.append) == len(data)
    finally:
        os.close(fd)
    assert (tmp_path / "out.bin").read_bytes() == data
    assert sum(seen) == len(data)
    # A source shorter than its record: the count says so (the caller refetches).
    fd = os.open(tmp_path / "short.bin", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        assert copy_exact(source, fd, len(data) + 1) == len(data)
    finally:
        os.close(fd)


async def test_uncached_large_content_reaches_the_destination_and_the_cache_with_one_read(
    remote_settings: Settings, tmp_path: Path
) -> None:
    """A download of content no local tier holds reads the primary object once, into the
    disk cache (hashed on the way) and from there into the destination; concurrent
    downloads of it share that one primary read; a corrupt primary object leaves no
    destination file behind."""
    big = os.urandom(12 * 1024 * 1024)  # above the memory tier's item size
    async with FileStore(remote_settings) as uploader:
        up = await uploader.upload_file(big, filename="big.bin")
        rotten = await uploader.upload_file(os.urandom(12 * 1024 * 1024), filename="rot.bin")
    primary_root = Path(str(remote_settings.primary_url).removeprefix("file://"))
    host = Settings(
        home=remote_settings.home,
        primary_url=remote_settings.primary_url,
        cache_dir=tmp_path / "fresh-host-cache",
        fsync=False,
    )
    seen: list[int] = []
    async with FileStore(host) as store:
        first = await store.download(up.file_id, "one.bin", progress=seen.append)
        assert first.tier == "primary"
        assert Path(first.path).read_bytes() == big
        assert sum(seen) == len(big)
        cached = store.disk.lookup(up.sha256)
        assert cached is not None and cached.read_bytes() == big
        assert (await store.stats()).primary_reads == 1

        store.disk.evict(up.sha256)
        results = await asyncio.gather(
            *(store.download(up.file_id, f"many-{n}.bin") for n in range(4))
        )
        assert all(Path(r.path).read_bytes() == big for r in results)
        assert (await store.stats()).primary_reads == 2

        stored = next(primary_root.rglob(rotten.sha256))
        damaged = bytearray(stored.read_bytes())
        damaged[5_000_000] ^= 0xFF
        stored.write_bytes(bytes(damaged))
        with pytest.raises(IntegrityError, match="failed its SHA-256 check"):
            await store.download(rotten.file_id, "rot.bin")
        downloads = Path(first.path).parent
        assert not (downloads / "rot.bin").exists()
        assert [p.name for p in downloads.iterdir() if p.name.endswith(".tmp")] == []


async def test_an_agent_editing_its_download_in_place_never_changes_the_cache(
    remote_settings: Settings,
) -> None:
    """A download from a remote primary fills the disk cache and delivers a second copy
    (a reflink where the filesystem shares blocks, else a kernel copy): writing into the
    delivered file, truncating it or appending to it leaves the cache copy and the next
    download exactly as stored."""
    big = os.urandom(12 * 1024 * 1024 + 5)  # above the memory tier's item size
    sha = hashlib.sha256(big).hexdigest()
    async with FileStore(remote_settings) as store:
        up = await store.upload_file(big, filename="big.bin")
        store.memory.evict(sha)
        store.disk.evict(sha)
        first = await store.download(up.file_id, "mine.bin")
        assert first.tier == "primary"
        delivered = Path(first.path)
        with delivered.open("r+b") as edit:  # in place: same inode, no rename
            edit.seek(1_000_000)
            edit.write(b"\x00" * 4096)
        with delivered.open("ab") as grow:
            grow.write(b"tail")
        cached = store.disk.lookup(sha)
        assert cached is not None
        assert hashlib.sha256(cached.read_bytes()).hexdigest() == sha
        assert cached.stat().st_ino != delivered.stat().st_ino

        os.truncate(delivered, 10)
        again = await store.download(up.file_id, "again.bin")
        assert again.tier == "disk"
        assert Path(again.path).read_bytes() == big
        assert hashlib.sha256(cached.read_bytes()).hexdigest() == sha
        report = await store.verify()
        assert report.findings == []


def test_a_copy_that_cannot_share_blocks_falls_back_to_a_kernel_copy(tmp_path: Path) -> None:
    """Across filesystems (or on one without reflinks) the clone is refused and the bytes
    are copied instead; a source longer than asked for is cut to the size asked."""
    from filetier.digest import copy_exact

    source = tmp_path / "cached.bin"
    data = os.urandom(3 * 1024 * 1024 + 1)
    source.write_bytes(data)
    targets = [tmp_path / "same-fs.bin"]
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        targets.append(shm / f"filetier-test-{uuid.uuid4().hex}.bin")  # another filesystem
    for target in targets:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            assert copy_exact(source, fd, len(data) - 1) == len(data) - 1
        finally:
            os.close(fd)
        try:
            assert target.read_bytes() == data[:-1]
        finally:
            target.unlink()


async def test_a_cancelled_download_stops_its_copy_and_leaves_nothing_at_the_target(
    home: Path, roots: tuple[Path, Path]
) -> None:
    """Cancelling a large download stops the thread copying it before the cancellation
    returns: no file at the destination, no temp file beside it, even a moment later."""
    import time

    _, shared = roots
    data = os.urandom(32 * 1024 * 1024)
    settings = with_roots(home, *roots, memory_item_max_bytes=1024 * 1024)
    loop = asyncio.get_running_loop()
    copying = asyncio.Event()

    def slow_progress(n: int) -> None:  # a caller's callback; it runs in the copy thread
        loop.call_soon_threadsafe(copying.set)
        time.sleep(0.01)  # 32 chunks of 1 MiB: the copy takes about a third of a second

    async with FileStore(settings) as store:
        uploaded = await store.upload_file(data, filename="large.bin")
        target = shared / "large.bin"
        task = asyncio.create_task(store.download(uploaded.file_id, target, progress=slow_progress))
        await asyncio.wait_for(copying.wait(), 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.5)  # long enough for a copy still running to finish
        assert list(shared.iterdir()) == []
        # The store is unharmed: the same download, not cancelled, delivers the bytes.
        await store.download(uploaded.file_id, target)
        assert target.read_bytes() == data
