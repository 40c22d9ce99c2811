"""Many readers and writers of the same content, in tasks and in real processes.

The promises under test (see ``store.py`` and ``singleflight.py``):

- content that is not cached is read from the primary store once, however many tasks
  and processes ask for it at the same moment;
- uploads of the same bytes, from anywhere, store one object and one file row each;
- an upload racing a delete of the same content never leaves a row without its object;
- what a process reports reflects what happened: a copy another process fetched is a
  disk hit, and a file another process deleted is not found.

Children are real interpreters configured through the environment (``tests/support/procs``);
a start barrier (a "go" file) makes them begin together.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import time
from pathlib import Path

import pytest

from filetier import FileStore, NotFoundError
from filetier.tiers.disk import DiskCache
from tests.support.procs import (
    Child,
    StoreLayout,
    all_records,
    object_names,
    unsound_objects,
    write_random_file,
)

MiB = 1024 * 1024


# --------------------------------------------------------------------------- downloads


@pytest.mark.slow
async def test_eight_processes_downloading_uncached_content_read_the_primary_once(
    tmp_path: Path,
) -> None:
    layout = StoreLayout(tmp_path, remote=True).make_dirs()
    original = tmp_path / "original.bin"
    sha = write_random_file(original, 20 * MiB)
    async with FileStore(layout.settings()) as store:
        uploaded = await store.upload_file(original)
        # The upload keeps its verified temp file as the disk-cache copy; drop it so that
        # every child finds the content uncached.
        assert store.disk.evict(sha)
    assert object_names(layout.objects) == [sha]

    go = tmp_path / "go"
    with contextlib.ExitStack() as stack:
        children = [
            stack.enter_context(
                Child(
                    "download_worker",
                    uploaded.file_id,
                    layout.out / f"copy-{i}.bin",
                    "--go",
                    go,
                    env=layout.env(),
                    cwd=tmp_path,
                )
            )
            for i in range(8)
        ]
        for child in children:
            child.expect("ready")
        go.touch()
        results = [child.expect("done", timeout=120) for child in children]
        codes = [child.finish() for child in children]

    assert codes == [0] * 8
    assert sum(r["primary_reads"] for r in results) == 1, results
    expected = original.read_bytes()
    for i, result in enumerate(results):
        assert result["sha256"] == sha
        assert (layout.out / f"copy-{i}.bin").read_bytes() == expected


async def test_a_download_served_by_another_process_fill_reports_the_disk_tier(
    tmp_path: Path,
) -> None:
    layout = StoreLayout(tmp_path, remote=True).make_dirs()
    original = tmp_path / "original.bin"
    sha = write_random_file(original, 6 * MiB)
    async with FileStore(layout.settings()) as store:
        uploaded = await store.upload_file(original)
        assert store.disk.evict(sha)
    cache = DiskCache(layout.cache)
    go = tmp_path / "go"
    with Child(
        "download_worker",
        uploaded.file_id,
        layout.out / "copy.bin",
        "--go",
        go,
        env=layout.env(),
        cwd=tmp_path,
    ) as child:
        child.expect("ready")
        # Play the other process: hold the fetch lock while filling the cache.
        fd = os.open(cache.lock_path(sha), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            go.touch()
            time.sleep(0.5)  # the child finds no copy and waits for the lock
            temp = cache.new_temp()
            shutil.copyfile(original, temp)
            cache.adopt(sha, temp)
        finally:
            os.close(fd)  # releases the lock
        result = child.expect("done")
        assert child.finish() == 0

    assert result["seconds"] >= 0.4, "the child did not wait for the lock: nothing was tested"
    assert result["sha256"] == sha
    assert result["primary_reads"] == 0
    # Served from the disk copy another process made: the history must not count a
    # primary hit that never happened.
    assert result["tier"] == "disk"


@pytest.mark.parametrize("size", [1 * MiB, 6 * MiB], ids=["memory-sized", "beyond-memory-item"])
async def test_fifty_tasks_reading_uncached_content_share_one_primary_read(
    tmp_path: Path, size: int
) -> None:
    layout = StoreLayout(tmp_path, remote=True).make_dirs()
    data = os.urandom(size)
    async with FileStore(layout.settings()) as store:
        uploaded = await store.upload_file(data, filename="shared.bin")

    async with FileStore(layout.settings()) as store:  # a new process: memory is empty
        assert store.disk.evict(uploaded.sha256)

        async def reader(i: int) -> bytes:
            if i % 2:
                return await store.read_bytes(uploaded.file_id)
            path = await store.download_file(uploaded.file_id, layout.out / f"task-{i}.bin")
            return path.read_bytes()

        results = await asyncio.gather(*(reader(i) for i in range(50)))
        stats = await store.stats()

    assert stats.primary_reads == 1
    assert len(results) == 50
    assert all(result == data for result in results)


# --------------------------------------------------------------------------- uploads


@pytest.mark.slow
@pytest.mark.parametrize("remote", [False, True], ids=["local", "remote"])
async def test_four_processes_uploading_the_same_content_store_one_object(
    tmp_path: Path, remote: bool
) -> None:
    # The children also race to create the database of a new home.
    layout = StoreLayout(tmp_path, remote=remote).make_dirs()
    source = tmp_path / "same.bin"
    sha = write_random_file(source, 8 * MiB)
    go = tmp_path / "go"
    kinds = ["path", "bytes", "stream", "path"]
    with contextlib.ExitStack() as stack:
        children = [
            stack.enter_context(
                Child(
                    "upload_worker",
                    "--path",
                    source,
                    "--as",
                    kind,
                    "--go",
                    go,
                    env=layout.env(),
                    cwd=tmp_path,
                )
            )
            for kind in kinds
        ]
        for child in children:
            child.expect("ready")
        go.touch()
        results = [child.expect("uploaded") for child in children]
        codes = [child.finish() for child in children]

    assert codes == [0] * 4
    assert {r["sha256"] for r in results} == {sha}
    assert len({r["file_id"] for r in results}) == 4
    # Exactly one process wrote the bytes; the others found them stored.
    assert sorted(r["bytes_written"] for r in results) == [0, 0, 0, 8 * MiB]
    assert sorted(r["deduplicated"] for r in results) == [False, True, True, True]
    assert object_names(layout.objects) == [sha]
    assert unsound_objects(layout.objects) == []

    expected = source.read_bytes()
    async with FileStore(layout.settings()) as store:
        records = await all_records(store)
        assert sorted(str(r.file_id) for r in records) == sorted(r["file_id"] for r in results)
        assert (await store.stats()).blobs == 1
        assert (await store.verify()).findings == []
        store.disk.evict(sha)
        for record in records:
            path = await store.download_file(record.file_id, layout.out / f"{record.file_id}.bin")
            assert path.read_bytes() == expected


@pytest.mark.parametrize("remote", [False, True], ids=["local", "remote"])
async def test_uploads_racing_deletes_of_the_same_content_never_lose_the_object(
    tmp_path: Path, remote: bool
) -> None:
    layout = StoreLayout(tmp_path, remote=remote).make_dirs()
    content = tmp_path / "x.bin"
    sha = write_random_file(content, 256 * 1024)
    async with FileStore(layout.settings()):
        pass  # create the database, so the race is between upload and delete only
    go, stop = tmp_path / "go", tmp_path / "stop"
    uploads = 45
    with (
        Child(
            "upload_worker",
            "--path",
            content,
            "--as",
            "mixed",
            "--repeat",
            str(uploads),
            "--go",
            go,
            env=layout.env(),
            cwd=tmp_path,
        ) as uploader,
        Child(
            "delete_worker", sha, "--stop", stop, "--go", go, env=layout.env(), cwd=tmp_path
        ) as deleter,
    ):
        uploader.expect("ready")
        deleter.expect("ready")
        go.touch()
        uploaded = [uploader.expect("uploaded") for _ in range(uploads)]
        assert uploader.finish() == 0, uploader.stderr()
        stop.touch()
        deleted = deleter.expect("done")
        assert deleter.finish() == 0, deleter.stderr()

    assert {u["sha256"] for u in uploaded} == {sha}

    expected = content.read_bytes()
    async with FileStore(layout.settings()) as store:
        remaining = await all_records(store, sha256=sha)
        assert len(remaining) == uploads - deleted["deleted"]
        # The object came and went in turns: each write (an upload that found it gone)
        # was undone by one delete of the last reference, except the write that survives.
        writes = sum(not u["deduplicated"] for u in uploaded)
        assert writes == deleted["blobs_deleted"] + (1 if remaining else 0)
        # Read every row from the primary itself, not from a cached copy.
        store.disk.evict(sha)
        for record in remaining:
            assert await store.read_bytes(record.file_id) == expected
        assert (await store.verify()).findings == []
        assert object_names(layout.objects) == ([sha] if remaining else [])

        # The content can be stored and read again whatever state the race left behind.
        again = await store.upload_file(expected, filename="again.bin")
    async with FileStore(layout.settings()) as store:
        store.disk.evict(sha)
        path = await store.download_file(again.file_id, layout.out / "again.bin")
        assert path.read_bytes() == expected
        assert (await store.verify()).findings == []


@pytest.mark.parametrize("remote", [False, True], ids=["local", "remote"])
async def test_a_file_deleted_by_another_process_is_not_found_not_missing_bytes(
    tmp_path: Path, remote: bool
) -> None:
    layout = StoreLayout(tmp_path, remote=remote).make_dirs()
    content = tmp_path / "x.bin"
    sha = write_random_file(content, 6 * MiB)  # beyond the memory tier: read from a file
    # The record cache may serve this process's view of the file for a minute.
    async with FileStore(layout.settings(record_cache_ttl_seconds=60)) as store:
        uploaded = await store.upload_file(content)
        await store.download_file(uploaded.file_id, layout.out / "before.bin")
        with Child("delete_worker", sha, "--once", env=layout.env(), cwd=tmp_path) as deleter:
            done = deleter.expect("done")
            assert deleter.finish() == 0
        assert done["deleted"] == 1
        assert done["blobs_deleted"] == 1
        assert object_names(layout.objects) == []
        # The bytes went with the last file that used them: that is "not found", not a
        # storage fault that sends the user to `filetier verify`.
        with pytest.raises(NotFoundError):
            await store.download_file(uploaded.file_id, layout.out / "after.bin")
        assert not (layout.out / "after.bin").exists()
