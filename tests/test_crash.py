"""Processes killed with SIGKILL at awkward moments: the store must stay consistent.

What a crash may leave behind, by design (``store.py``: temp file -> hash -> object
published atomically -> rows committed; rows committed -> object deleted):

- temp files in ``objects/.staging`` or ``cache/tmp``, which ``cleanup`` removes once they
  are an hour old;
- complete objects no row names yet (or any more), which ``gc`` collects;
- a ``file://`` primary's own partial write (obstore's ``<key>#<n>``), which ``gc`` must
  collect as well once it is past the grace window.

What it must never leave: an object whose bytes do not hash to its name, a file row
without its object, or a lock that blocks the next process.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import random
import signal
import time
from pathlib import Path

import pytest

from filetier import FileRecord, FileStore
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
HOURS_AGO_2 = 2 * 3600


def wait_for_temp(directory: Path, timeout: float = 30.0) -> Path:
    """The first ``*.tmp`` file to appear in ``directory`` (polled every half millisecond)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.endswith(".tmp"):
                    return Path(entry.path)
        time.sleep(0.0005)
    raise AssertionError(f"no temp file appeared in {directory} within {timeout}s")


def wait_for_partial(objects: Path, timeout: float = 30.0) -> Path:
    """The first non-empty file in a primary's ``sha256/`` tree that is not yet an object
    (obstore's local store writes ``<key>#<n>`` and renames it when complete)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in objects.rglob("*#*") if objects.exists() else ():
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_size > 0:
                    return path
        time.sleep(0.0005)
    raise AssertionError(f"no partial object appeared under {objects} within {timeout}s")


def lock_is_held(path: Path) -> bool:
    """Whether some process holds the flock on ``path`` (as filelock takes it)."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases the lock if we just took it
    return False


def make_old(paths: list[Path]) -> None:
    old = time.time() - HOURS_AGO_2
    for path in paths:
        os.utime(path, (old, old))


async def assert_consistent(
    layout: StoreLayout, *, allowed: frozenset[str] = frozenset(), context: str = ""
) -> list[FileRecord]:
    """Every row's object exists and verifies; nothing partial is visible as an object.

    ``allowed`` names verify findings a crash may leave by design (``orphan_object``).
    A store's own partial files beside the objects (obstore's ``<key>#<n>``) are left to
    the test of killed uploads, which pins them down deterministically.
    """
    assert unsound_objects(layout.objects, named_only=True) == [], context
    async with FileStore(layout.settings()) as store:
        report = await store.verify()
        unexpected = [f for f in report.findings if f.kind not in allowed]
        assert unexpected == [], context
        records = await all_records(store)
        for record in records:
            store.disk.evict(record.sha256)  # read each row from the primary itself
            data = await store.read_bytes(record.file_id)
            assert len(data) == record.size, context
    return records


# --------------------------------------------------------------------------- one kill


@pytest.mark.slow
@pytest.mark.parametrize(
    ("remote", "source"),
    [(False, "path"), (False, "stream"), (True, "path")],
    ids=["local-200MiB-path", "local-slow-stream", "remote-200MiB-path-during-put"],
)
async def test_upload_killed_midway_leaves_nothing_that_cleanup_and_gc_do_not_remove(
    tmp_path: Path, remote: bool, source: str
) -> None:
    layout = StoreLayout(tmp_path, remote=remote).make_dirs()
    earlier: dict[str, bytes] = {}
    async with FileStore(layout.settings()) as store:
        for i in range(5):
            data = os.urandom(50_000 + i)
            uploaded = await store.upload_file(data, filename=f"earlier-{i}.bin")
            earlier[str(uploaded.file_id)] = data
    assert list(layout.staging.iterdir()) == []
    objects_before = object_names(layout.objects)
    assert len(objects_before) == len(earlier)

    if source == "path":
        big = tmp_path / "big.bin"
        write_random_file(big, 200 * MiB)
        args: list[str | Path] = ["--path", big]
    else:
        args = ["--slow-stream", "200", "--chunk-delay", "0.02"]
    with Child("upload_worker", *args, env=layout.env(), cwd=tmp_path) as child:
        child.expect("ready")
        if source == "stream":
            child.expect("started")
        if remote:
            wait_for_partial(layout.objects)  # staged and hashed; now being published
        else:
            wait_for_temp(layout.staging)
        code = child.kill()
    assert code == -signal.SIGKILL, "the upload finished before it could be killed"

    leftovers = sorted(layout.staging.glob("*.tmp"))
    assert leftovers, "SIGKILL leaves the child no chance to remove its temp file"
    # Nothing partial is visible under an object's name, and no new object appeared.
    assert unsound_objects(layout.objects, named_only=True) == []
    assert object_names(layout.objects) == objects_before

    async with FileStore(layout.settings()) as store:
        assert (await store.verify()).findings == []
        assert (await store.list()).total == len(earlier)
        for file_id, data in earlier.items():
            assert await store.read_bytes(file_id) == data
            path = await store.download_file(file_id, layout.out / f"{file_id}.bin")
            assert path.read_bytes() == data

        # A young temp may belong to a live upload: cleanup leaves it alone.
        young = await store.cleanup_cache()
        assert [a for a in young.actions if a.kind == "remove_temp"] == []
        assert all(path.exists() for path in leftovers)

        make_old(leftovers)
        planned = await store.cleanup_cache(dry_run=True)
        assert all(path.exists() for path in leftovers)
        report = await store.cleanup_cache()
        removed = {a.target for a in report.actions if a.kind == "remove_temp"}
        assert removed == {str(path) for path in leftovers}
        assert {a.target for a in planned.actions} == {a.target for a in report.actions}
        assert list(layout.staging.glob("*.tmp")) == []

        assert (await store.verify()).findings == []
        assert (await store.list()).total == len(earlier)
        assert object_names(layout.objects) == objects_before

        # Whatever the killed upload left inside the primary store is garbage too: once
        # past the grace window, cleanup and gc leave nothing but complete objects.
        partials = [p for p in layout.objects.rglob("*") if p.is_file() and "#" in p.name]
        make_old(partials)
        await store.gc(grace_seconds=0)
        await store.cleanup_cache()
        assert unsound_objects(layout.objects) == []


# --------------------------------------------------------------------------- many kills


@pytest.mark.slow
@pytest.mark.parametrize(("remote", "rounds"), [(False, 20), (True, 8)], ids=["local", "remote"])
async def test_repeatedly_killed_worker_never_leaves_a_row_without_its_object(
    tmp_path: Path, remote: bool, rounds: int
) -> None:
    layout = StoreLayout(tmp_path, remote=remote).make_dirs()
    async with FileStore(layout.settings()):
        pass  # the database exists before the first kill
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    for round_ in range(rounds):
        context = f"round {round_}, seed {seed}"
        with Child(
            "churn_worker", "--seed", str(seed + round_), env=layout.env(), cwd=tmp_path
        ) as child:
            child.expect("ready")
            time.sleep(rng.uniform(0, 0.3))
            code = child.kill()
            assert code == -signal.SIGKILL, f"{context}: worker failed: {child.stderr()}"
        # A kill between publishing an object and committing its row (or between a
        # delete's commit and the object's removal) leaves an orphan object; a kill between
        # a delete's commit and the release of its content (end_content, which runs after
        # the commit that removed the last reference) leaves a blob row no file references.
        # Both are unreferenced leftovers that gc collects, below; never a row without data.
        await assert_consistent(
            layout, allowed=frozenset({"orphan_object", "orphan_blob_row"}), context=context
        )

    async with FileStore(layout.settings()) as store:
        await store.gc(grace_seconds=0)
        records = await all_records(store)
        make_old(sorted(layout.staging.glob("*.tmp")))
        await store.cleanup_cache()
        assert sorted(layout.staging.glob("*.tmp")) == []
    final = await assert_consistent(layout, context=f"after gc, seed {seed}")
    assert [r.file_id for r in final] == [r.file_id for r in records]
    # Every object left is named by a row: nothing orphaned, nothing missing.
    assert object_names(layout.objects) == sorted({r.sha256 for r in final})


@pytest.mark.slow
async def test_group_committed_uploads_acknowledged_before_a_kill_are_all_kept(
    tmp_path: Path,
) -> None:
    """Sixteen tasks upload small files with fsync on; their rows commit in shared
    batches. Killed at random moments, the worker must lose no upload it acknowledged:
    each is listed, its object is there and reads back as the bytes it named."""
    layout = StoreLayout(tmp_path).make_dirs()
    async with FileStore(layout.settings(fsync=True)):
        pass  # the database exists before the first kill
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    acknowledged: dict[str, str] = {}
    for round_ in range(4):
        context = f"round {round_}, seed {seed}"
        with Child(
            "small_uploads_worker",
            "--seed",
            str(seed + round_),
            env=layout.env(FILETIER_FSYNC="1"),
            cwd=tmp_path,
        ) as child:
            child.expect("ready")
            for _ in range(20):  # some batches are through before the kill
                message = child.expect("uploaded")
                acknowledged[message["file_id"]] = message["sha256"]
            time.sleep(rng.uniform(0, 0.2))
            code = child.kill()
            assert code == -signal.SIGKILL, f"{context}: worker failed: {child.stderr()}"
            for message in child.messages():
                if message.get("event") == "uploaded":
                    acknowledged[message["file_id"]] = message["sha256"]
        await assert_consistent(layout, allowed=frozenset({"orphan_object"}), context=context)
    assert len(acknowledged) >= 80
    async with FileStore(layout.settings(fsync=True)) as store:
        kept = {str(r.file_id): r.sha256 for r in await all_records(store)}
        lost = set(acknowledged) - set(kept)
        assert not lost, f"acknowledged uploads lost (seed {seed}): {sorted(lost)[:5]}"
        for file_id, sha256 in acknowledged.items():
            assert kept[file_id] == sha256
            data = await store.read_bytes(file_id)
            assert hashlib.sha256(data).hexdigest() == sha256


# --------------------------------------------------------------------------- locks


@pytest.mark.slow
async def test_process_killed_holding_the_fetch_lock_does_not_block_the_next(
    tmp_path: Path,
) -> None:
    layout = StoreLayout(tmp_path, remote=True).make_dirs()
    original = tmp_path / "big.bin"
    sha = write_random_file(original, 128 * MiB)
    async with FileStore(layout.settings()) as store:
        uploaded = await store.upload_file(original)
        assert store.disk.evict(sha)
    cache = DiskCache(layout.cache)
    lock = cache.lock_path(sha)

    with contextlib.ExitStack() as stack:
        # Stop a downloader inside its fill: its temp file exists only while it holds the
        # lock. Retried in the unlikely case the fill was over before the stop landed.
        for attempt in range(5):
            go = tmp_path / f"go-{attempt}"
            first = stack.enter_context(
                Child(
                    "download_worker",
                    uploaded.file_id,
                    layout.out / "first.bin",
                    "--go",
                    go,
                    env=layout.env(),
                    cwd=tmp_path,
                )
            )
            first.expect("ready")
            go.touch()
            temp = wait_for_temp(cache.tmp)
            os.kill(first.pid, signal.SIGSTOP)
            if temp.exists() and lock_is_held(lock):
                break
            first.kill()
            cache.evict(sha)
            for path in cache.tmp.glob("*.tmp"):
                path.unlink()
        else:
            pytest.fail("never caught a downloader inside its fill")
        stale = sorted(cache.tmp.glob("*.tmp"))  # the fill's partial temp file

        # A second process asks for the same content and queues behind the holder.
        go = tmp_path / "go-second"
        second = stack.enter_context(
            Child(
                "download_worker",
                uploaded.file_id,
                layout.out / "second.bin",
                "--go",
                go,
                env=layout.env(),
                cwd=tmp_path,
            )
        )
        second.expect("ready")
        go.touch()
        time.sleep(0.5)
        assert first.kill() == -signal.SIGKILL
        killed_at = time.monotonic()
        result = second.expect("done", timeout=90)
        after_kill = time.monotonic() - killed_at
        assert second.finish() == 0
        stderr = second.stderr()

    assert result["seconds"] >= 0.4, "the second download did not wait: nothing was tested"
    # It went on as soon as the holder died, not after the 60 s lock timeout.
    assert after_kill < 10
    assert "not acquired" not in stderr
    assert result["primary_reads"] == 1
    assert result["sha256"] == sha
    assert (layout.out / "second.bin").read_bytes() == original.read_bytes()
    assert not lock_is_held(lock)
    assert stale, "SIGKILL leaves the fill no chance to remove its temp file"
    assert sorted(cache.tmp.glob("*.tmp")) == stale

    async with FileStore(layout.settings()) as store:
        assert (await store.verify()).findings == []
        assert all(path.exists() for path in stale)
        make_old(stale)
        report = await store.cleanup_cache(max_size_mb=10_000)
        assert {a.target for a in report.actions if a.kind == "remove_temp"} == set(map(str, stale))
        assert list(cache.tmp.glob("*.tmp")) == []
