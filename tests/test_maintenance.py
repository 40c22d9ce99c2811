"""gc and cleanup: what they remove, what they never touch, and that a dry run is the plan.

Ages are set with ``os.utime`` on real files and retention with a tiny real setting;
nothing inside filetier is mocked.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from filetier import FileStore, InvalidInputError, Settings
from filetier.store import storage_key

DAY = 86_400

# --------------------------------------------------------------------------- helpers


def age(path: Path, seconds: float) -> None:
    """Make ``path`` look last used ``seconds`` ago."""
    when = time.time() - seconds
    os.utime(path, (when, when))


def cached_hashes(store: FileStore) -> set[str]:
    return {entry.sha256 for entry in store.disk.entries()}


def kinds(report: object) -> list[tuple[str, str]]:
    return [(a.kind, a.target) for a in report.actions]  # type: ignore[attr-defined]


@pytest.fixture(params=["embedded", "remote"])
async def any_store(
    request: pytest.FixtureRequest, settings: Settings, remote_settings: Settings
) -> AsyncIterator[FileStore]:
    chosen = settings if request.param == "embedded" else remote_settings
    async with FileStore(chosen) as opened:
        yield opened


async def write_orphan_object(store: FileStore, tmp_path: Path, data: bytes) -> str:
    """An object in the primary with no blob row: an upload that crashed after publishing."""
    source = tmp_path / f"orphan-{len(data)}.bin"
    source.write_bytes(data)
    key = storage_key(hashlib.sha256(data).hexdigest())
    assert await store.primary.put_file(key, source) is True
    return key


# --------------------------------------------------------------------------- gc


async def test_gc_leaves_an_orphan_object_alone_within_the_grace_window(
    any_store: FileStore, tmp_path: Path
) -> None:
    key = await write_orphan_object(any_store, tmp_path, os.urandom(1_000))

    assert (await any_store.gc()).actions == []
    assert (await any_store.gc(grace_seconds=3600)).actions == []

    assert await any_store.primary.head(key) is not None


async def test_gc_dry_run_lists_an_orphan_object_without_removing_it(
    any_store: FileStore, tmp_path: Path
) -> None:
    key = await write_orphan_object(any_store, tmp_path, os.urandom(1_000))

    plan = await any_store.gc(dry_run=True, grace_seconds=0)

    assert plan.dry_run
    assert kinds(plan) == [("delete_orphan_object", key)]
    assert plan.bytes_freed == 1_000
    assert await any_store.primary.head(key) is not None


async def test_gc_removes_an_orphan_object_after_the_grace_window(
    any_store: FileStore, tmp_path: Path
) -> None:
    key = await write_orphan_object(any_store, tmp_path, os.urandom(1_000))

    report = await any_store.gc(grace_seconds=0)

    assert not report.dry_run
    assert kinds(report) == [("delete_orphan_object", key)]
    assert report.bytes_freed == 1_000
    assert await any_store.primary.head(key) is None
    assert (await any_store.gc(grace_seconds=0)).actions == []


async def test_gc_never_touches_referenced_objects(any_store: FileStore) -> None:
    payloads = {f"f{i}.bin": os.urandom(2_000 + i) for i in range(3)}
    ids = {
        name: (await any_store.upload_file(data, filename=name)).file_id
        for name, data in payloads.items()
    }
    # Shared content whose first reference is deleted stays referenced by the second.
    shared = os.urandom(3_000)
    first = await any_store.upload_file(shared, filename="shared-1.bin")
    second = await any_store.upload_file(shared, filename="shared-2.bin")
    assert (await any_store.delete(first.file_id)).blob_deleted is False

    assert (await any_store.gc(dry_run=True, grace_seconds=0)).actions == []
    assert (await any_store.gc(grace_seconds=0)).actions == []

    any_store.memory.clear()
    for name, file_id in ids.items():
        assert await any_store.read_bytes(file_id) == payloads[name]
    assert await any_store.read_bytes(second.file_id) == shared
    assert (await any_store.verify()).clean


async def test_gc_collects_a_blob_row_no_file_references(
    any_store: FileStore, tmp_path: Path
) -> None:
    data = os.urandom(4_000)
    sha = hashlib.sha256(data).hexdigest()
    key = await write_orphan_object(any_store, tmp_path, data)
    await any_store.repo.insert_blob_row(sha, len(data), key)
    kept = await any_store.upload_file(os.urandom(500), filename="kept.bin")

    assert (await any_store.gc()).actions == []  # still within the grace window
    plan = await any_store.gc(dry_run=True, grace_seconds=0)
    assert kinds(plan) == [("delete_orphan_blob_row", sha)]
    assert await any_store.repo.get_blob(sha) is not None

    report = await any_store.gc(grace_seconds=0)

    assert kinds(report) == [("delete_orphan_blob_row", sha)]
    assert report.bytes_freed == len(data)
    assert await any_store.repo.get_blob(sha) is None
    assert await any_store.primary.head(key) is None
    assert await any_store.read_bytes(kept.file_id) is not None
    assert (await any_store.verify()).clean


# --------------------------------------------------------------------------- cleanup: cache


async def upload_cached(store: FileStore, count: int, size: int) -> list[str]:
    hashes = []
    for i in range(count):
        uploaded = await store.upload_file(os.urandom(size), filename=f"c{i}.bin")
        assert store.disk.lookup(uploaded.sha256) is not None
        hashes.append(uploaded.sha256)
    return hashes


async def test_cleanup_evicts_cache_entries_older_than_max_age(remote_store: FileStore) -> None:
    old, recent = await upload_cached(remote_store, 2, 50_000)
    age(remote_store.disk.path_for(old), 10 * DAY)
    before = remote_store.disk.size_bytes()

    report = await remote_store.cleanup_cache(max_age_days=5)

    assert kinds(report) == [("evict_cache_age", old)]
    assert report.bytes_freed == 50_000
    assert cached_hashes(remote_store) == {recent}
    assert before - remote_store.disk.size_bytes() == report.bytes_freed


async def test_cleanup_uses_the_configured_max_age_by_default(remote_store: FileStore) -> None:
    old, recent = await upload_cached(remote_store, 2, 10_000)
    assert remote_store.settings.max_cache_age_days == 30
    age(remote_store.disk.path_for(old), 31 * DAY)
    age(remote_store.disk.path_for(recent), 29 * DAY)

    report = await remote_store.cleanup_cache()

    assert kinds(report) == [("evict_cache_age", old)]
    assert cached_hashes(remote_store) == {recent}


async def test_cleanup_size_cap_evicts_least_recently_used_first(
    remote_store: FileStore,
) -> None:
    a, b, c = await upload_cached(remote_store, 3, 300_000)
    age(remote_store.disk.path_for(a), 300)
    age(remote_store.disk.path_for(b), 200)
    age(remote_store.disk.path_for(c), 100)
    # Reading a makes it the most recently used, though it was cached first.
    remote_store.memory.clear()
    ids = {r.sha256: r.file_id for r in (await remote_store.list()).items}
    await remote_store.read_bytes(ids[a])

    report = await remote_store.cleanup_cache(max_size_mb=0.65)

    assert kinds(report) == [("evict_cache_size", b)]
    assert report.bytes_freed == 300_000
    assert cached_hashes(remote_store) == {a, c}
    assert remote_store.disk.size_bytes() <= 650_000


async def test_cleanup_size_cap_evicts_as_many_as_needed(remote_store: FileStore) -> None:
    hashes = await upload_cached(remote_store, 4, 100_000)
    for i, sha in enumerate(hashes):
        age(remote_store.disk.path_for(sha), 1000 - i)  # first uploaded = least recent

    report = await remote_store.cleanup_cache(max_size_mb=0.25)

    assert [a.target for a in report.actions] == hashes[:2]
    assert report.bytes_freed == 200_000
    assert cached_hashes(remote_store) == set(hashes[2:])


async def test_cleanup_dry_run_is_the_plan_and_changes_nothing(remote_store: FileStore) -> None:
    old, lru, fresh = await upload_cached(remote_store, 3, 100_000)
    age(remote_store.disk.path_for(old), 40 * DAY)
    age(remote_store.disk.path_for(lru), 3600)
    stale_temp = remote_store.disk.tmp / "crashed-fill.tmp"
    stale_temp.write_bytes(b"x" * 123)
    age(stale_temp, 2 * 3600)
    snapshot = {e.sha256: (e.size, e.last_access) for e in remote_store.disk.entries()}

    plan = await remote_store.cleanup_cache(max_size_mb=0.15, dry_run=True)

    assert plan.dry_run
    assert kinds(plan) == [
        ("evict_cache_age", old),
        ("evict_cache_size", lru),
        ("remove_temp", str(stale_temp)),
    ]
    assert plan.bytes_freed == 100_000 + 100_000 + 123
    assert {e.sha256: (e.size, e.last_access) for e in remote_store.disk.entries()} == snapshot
    assert stale_temp.exists()

    done = await remote_store.cleanup_cache(max_size_mb=0.15)

    assert not done.dry_run
    assert done.actions == plan.actions
    assert cached_hashes(remote_store) == {fresh}
    assert not stale_temp.exists()


async def test_evicted_cache_entries_are_fetched_again_on_read(remote_store: FileStore) -> None:
    data = os.urandom(20_000)
    uploaded = await remote_store.upload_file(data, filename="again.bin")
    age(remote_store.disk.path_for(uploaded.sha256), 90 * DAY)
    await remote_store.cleanup_cache()
    assert remote_store.disk.lookup(uploaded.sha256) is None
    remote_store.memory.clear()

    assert await remote_store.read_bytes(uploaded.file_id) == data
    assert remote_store.disk.lookup(uploaded.sha256) is not None


async def test_cleanup_removes_only_stale_temps_in_the_cache(remote_store: FileStore) -> None:
    stale = remote_store.disk.tmp / "123-deadbeef.tmp"
    stale.write_bytes(b"left by a crash")
    age(stale, 2 * 3600)
    fresh = remote_store.disk.tmp / "456-cafebabe.tmp"
    fresh.write_bytes(b"a fill in progress")

    report = await remote_store.cleanup_cache()

    assert kinds(report) == [("remove_temp", str(stale))]
    assert not stale.exists()
    assert fresh.read_bytes() == b"a fill in progress"


async def test_cleanup_removes_only_stale_temps_in_local_staging(
    store: FileStore, settings: Settings
) -> None:
    staging = settings.objects_dir / ".staging"
    stale = staging / "deadbeef.tmp"
    stale.write_bytes(b"an upload that crashed")
    age(stale, 2 * 3600)
    fresh = staging / "cafebabe.tmp"
    fresh.write_bytes(b"an upload in progress")

    report = await store.cleanup_cache()

    assert kinds(report) == [("remove_temp", str(stale))]
    assert not stale.exists()
    assert fresh.exists()


# --------------------------------------------------------------------------- delivered copies


def tiny_retention(home: Path, **extra: object) -> Settings:
    # 0.0001 h = 0.36 s
    return Settings(
        home=home,
        fsync=False,
        bookkeeping_flush_seconds=0.05,
        delivery_retention_hours=0.0001,
        **extra,  # type: ignore[arg-type]
    )


async def past_retention(store: FileStore) -> None:
    await store.flush()
    await asyncio.sleep(0.5)


async def test_a_retained_copy_survives_cleanup_within_its_retention(
    store: FileStore, settings: Settings
) -> None:
    uploaded = await store.upload_file(b"retained for a day", filename="day.txt")
    path = await store.download_file(uploaded.file_id)
    assert path.parent == settings.downloads_dir.resolve() / "default"
    await store.flush()

    report = await store.cleanup_cache()

    assert report.actions == []
    assert path.read_bytes() == b"retained for a day"


async def test_a_retained_copy_is_removed_after_its_retention(home: Path) -> None:
    async with FileStore(tiny_retention(home)) as store:
        uploaded = await store.upload_file(b"short-lived", filename="short.txt")
        path = await store.download_file(uploaded.file_id)
        assert path.read_bytes() == b"short-lived"
        await past_retention(store)

        plan = await store.cleanup_cache(dry_run=True)
        assert kinds(plan) == [("remove_delivered", str(path))]
        assert path.exists()

        report = await store.cleanup_cache()

        assert kinds(report) == [("remove_delivered", str(path))]
        assert report.bytes_freed == len(b"short-lived")
        assert not path.exists()
        # Done once: a later cleanup has nothing left to do.
        assert (await store.cleanup_cache()).actions == []
        # The stored file itself is untouched.
        assert await store.read_bytes(uploaded.file_id) == b"short-lived"


async def test_a_kept_copy_is_never_removed(home: Path) -> None:
    async with FileStore(tiny_retention(home)) as store:
        uploaded = await store.upload_file(b"mine to keep", filename="keep.txt")
        path = await store.download_file(uploaded.file_id, cleanup="keep")
        await past_retention(store)

        report = await store.cleanup_cache()

        assert report.actions == []
        assert path.read_bytes() == b"mine to keep"
    assert path.read_bytes() == b"mine to keep"


async def test_asking_to_keep_a_copy_again_overrides_its_earlier_retention(home: Path) -> None:
    """Downloaded once (retained by default), then again with cleanup="keep" to the same
    place: the file there is the kept one, and cleanup must not remove it."""
    async with FileStore(tiny_retention(home)) as store:
        uploaded = await store.upload_file(b"changed my mind", filename="mind.txt")
        first = await store.download_file(uploaded.file_id)
        second = await store.download_file(uploaded.file_id, cleanup="keep")
        assert first == second
        await past_retention(store)

        await store.cleanup_cache()

        assert second.read_bytes() == b"changed my mind"


async def test_an_immediate_copy_is_removed_when_the_store_closes(settings: Settings) -> None:
    async with FileStore(settings) as store:
        uploaded = await store.upload_file(b"only while open", filename="now.txt")
        path = await store.download_file(uploaded.file_id, cleanup="immediate")
        await store.flush()
        assert (await store.cleanup_cache()).actions == []
        assert path.read_bytes() == b"only while open"  # still in use by this process

    assert not path.exists()


async def test_an_immediate_copy_left_by_a_crashed_process_is_cleaned_up(
    home: Path, tmp_path: Path
) -> None:
    """A process that dies never runs its close(); the safety net (one hour) must then
    let ``cleanup`` remove its immediate copies."""
    script = tmp_path / "crash.py"
    script.write_text(
        "import asyncio, os, sys\n"
        "from filetier import FileStore, Settings\n"
        "async def main():\n"
        "    store = FileStore(Settings(home=sys.argv[1], fsync=False))\n"
        "    await store.start()\n"
        "    up = await store.upload_file(b'orphaned copy', filename='crash.txt')\n"
        "    path = await store.download_file(up.file_id, cleanup='immediate')\n"
        "    await store.flush()\n"
        "    print(path, flush=True)\n"
        "    os._exit(1)\n"
        "asyncio.run(main())\n"
    )
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(script), str(home)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    path = Path(result.stdout.strip())
    assert path.read_bytes() == b"orphaned copy"  # the crash left it behind

    # Let the safety net pass: in the real database, the delivery is moved two hours back.
    db = sqlite3.connect(home / "filetier.db")
    with db:
        db.execute(
            "UPDATE file_download_history "
            "SET downloaded_at = datetime(downloaded_at, '-2 hours'), "
            "expires_at = datetime(expires_at, '-2 hours')"
        )
    db.close()

    async with FileStore(Settings(home=home, fsync=False)) as store:
        report = await store.cleanup_cache()

    assert kinds(report) == [("remove_delivered", str(path))]
    assert not path.exists()


async def test_delivered_context_manager_removes_the_copy_on_exit(store: FileStore) -> None:
    uploaded = await store.upload_file(b"borrowed", filename="borrowed.txt")

    async with store.delivered(uploaded.file_id) as path:
        assert path.read_bytes() == b"borrowed"
    assert not path.exists()

    with pytest.raises(RuntimeError, match="boom"):
        async with store.delivered(uploaded.file_id) as path:
            assert path.exists()
            raise RuntimeError("boom")
    assert not path.exists()


@pytest.mark.parametrize("policy", ["immediate", "retain"])
async def test_a_removal_policy_is_refused_outside_the_downloads_folder(
    home: Path, tmp_path: Path, policy: str
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    roots = f"{home / 'downloads'}{os.pathsep}{elsewhere}"
    async with FileStore(tiny_retention(home, allowed_roots=roots)) as store:
        uploaded = await store.upload_file(b"user's own", filename="own.txt")

        with pytest.raises(InvalidInputError, match="downloads folder"):
            await store.download_file(uploaded.file_id, elsewhere / "own.txt", cleanup=policy)  # type: ignore[arg-type]
        assert list(elsewhere.iterdir()) == []

        # Without a policy the copy is the user's and cleanup leaves it alone.
        path = await store.download_file(uploaded.file_id, elsewhere / "own.txt")
        await past_retention(store)
        assert (await store.cleanup_cache()).actions == []
    assert path.read_bytes() == b"user's own"


async def test_cleanup_does_not_follow_a_delivered_file_replaced_by_a_symlink(
    home: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "victim.txt"
    outside.write_bytes(b"not filetier's")
    async with FileStore(tiny_retention(home)) as store:
        first = await store.upload_file(b"one", filename="one.txt")
        second = await store.upload_file(b"two", filename="two.txt")
        kept = await store.upload_file(b"kept", filename="kept.txt")
        kept_path = await store.download_file(kept.file_id, cleanup="keep")
        to_outside = await store.download_file(first.file_id)
        to_inside = await store.download_file(second.file_id)
        for link, target in ((to_outside, outside), (to_inside, kept_path)):
            link.unlink()
            link.symlink_to(target)
        await past_retention(store)

        report = await store.cleanup_cache()

        assert all(a.kind != "remove_delivered" for a in report.actions)
    assert outside.read_bytes() == b"not filetier's"
    assert kept_path.read_bytes() == b"kept"


async def test_cleanup_does_not_follow_a_delivered_folder_replaced_by_a_symlink(
    home: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "report.txt").write_bytes(b"not filetier's")
    async with FileStore(tiny_retention(home)) as store:
        uploaded = await store.upload_file(b"report", filename="report.txt")
        path = await store.download_file(uploaded.file_id, "sub/report.txt")
        assert path == store.settings.downloads_dir.resolve() / "sub" / "report.txt"
        path.unlink()
        path.parent.rmdir()
        path.parent.symlink_to(outside, target_is_directory=True)
        await past_retention(store)

        await store.cleanup_cache()

    assert (outside / "report.txt").read_bytes() == b"not filetier's"


async def test_cleanup_does_not_remove_a_delivered_copy_the_user_replaced(home: Path) -> None:
    """Past its retention the path holds someone else's bytes now (the user saved over
    it): that file is not the delivered copy, and cleanup must leave it alone."""
    async with FileStore(tiny_retention(home)) as store:
        uploaded = await store.upload_file(b"draft from the store", filename="notes.txt")
        path = await store.download_file(uploaded.file_id)
        path.write_bytes(b"the user's own edits, saved over the draft")
        await past_retention(store)

        await store.cleanup_cache()

    assert path.read_bytes() == b"the user's own edits, saved over the draft"


async def test_closing_does_not_follow_a_delivered_folder_replaced_by_a_symlink(
    settings: Settings, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "report.txt").write_bytes(b"not filetier's")
    async with FileStore(settings) as store:
        uploaded = await store.upload_file(b"report", filename="report.txt")
        path = await store.download_file(uploaded.file_id, "sub/report.txt", cleanup="immediate")
        path.unlink()
        path.parent.rmdir()
        path.parent.symlink_to(outside, target_is_directory=True)

    assert (outside / "report.txt").read_bytes() == b"not filetier's"
