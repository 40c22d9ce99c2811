"""What is acknowledged is kept: dedup vouches for the copy it trusts, quotas hold under
concurrency (tasks, processes, SQLite and PostgreSQL), and content ends in one place.

Issue 10, "What is acknowledged is kept". Each test fails on the code before the fix:
dedup answered "deduplicated" over a damaged object; 16 concurrent uploads all passed a
3-file quota; ``gc`` left provider copies behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from filetier import FileStore, QuotaExceededError, Settings
from filetier.store import storage_key
from testbed.provider_server import ProviderServer
from tests.support.procs import Child, StoreLayout

KEY = "sk-kimi-test-secret-kept-5d1c"


def object_path(store: FileStore, sha256: str) -> Path:
    """Where the primary keeps the object (local primary or a ``file://`` one)."""
    root = store.settings.objects_dir
    if store.settings.primary_url is not None:
        root = Path(store.settings.primary_url.removeprefix("file://"))
    return root / storage_key(sha256)


def objects_under(store: FileStore) -> list[Path]:
    base = object_path(store, "0" * 64).parents[2]
    return sorted(p for p in base.rglob("*") if p.is_file()) if base.exists() else []


# -- dedup vouches for the copy it trusts ---------------------------------------------------


def damage_same_size(path: Path) -> None:
    path.write_bytes(os.urandom(path.stat().st_size))


def damage_truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-7])


def damage_remove(path: Path) -> None:
    path.unlink()


DAMAGES = {"same-size": damage_same_size, "truncated": damage_truncate, "missing": damage_remove}


def upload_as(kind: str, data: bytes, tmp_path: Path) -> Any:
    if kind == "bytes":
        return data
    source = tmp_path / "again.bin"
    source.write_bytes(data)
    return source


@pytest.mark.parametrize("kind", ["bytes", "path"])
@pytest.mark.parametrize("damage", sorted(DAMAGES))
async def test_an_upload_repairs_a_damaged_stored_copy_instead_of_trusting_it(
    store: FileStore, tmp_path: Path, damage: str, kind: str
) -> None:
    data = os.urandom(300_000)
    first = await store.upload_file(data, filename="first.bin")
    DAMAGES[damage](object_path(store, first.sha256))
    store.memory.clear()

    again = await store.upload_file(upload_as(kind, data, tmp_path), filename="again.bin")

    assert again.deduplicated is False
    assert again.bytes_written == len(data)
    store.memory.clear()
    assert await store.read_bytes(again.file_id) == data
    assert await store.read_bytes(first.file_id) == data, "the older file is repaired too"
    assert (await store.verify()).clean


@pytest.mark.parametrize("damage", ["truncated", "missing"])
async def test_a_remote_primary_copy_is_vouched_for_by_size_and_presence(
    remote_store: FileStore, damage: str
) -> None:
    data = os.urandom(200_000)
    first = await remote_store.upload_file(data, filename="first.bin")
    DAMAGES[damage](object_path(remote_store, first.sha256))
    remote_store.memory.clear()
    remote_store.disk.evict(first.sha256)

    again = await remote_store.upload_file(data, filename="again.bin")

    assert again.deduplicated is False
    remote_store.memory.clear()
    remote_store.disk.evict(first.sha256)
    assert await remote_store.read_bytes(first.file_id) == data


async def test_a_healthy_copy_is_deduplicated_without_rewriting_it(store: FileStore) -> None:
    data = os.urandom(100_000)
    first = await store.upload_file(data, filename="a.bin")
    before = object_path(store, first.sha256).stat()

    again = await store.upload_file(data, filename="b.bin")

    assert again.deduplicated is True and again.bytes_written == 0
    after = object_path(store, first.sha256).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


async def test_a_copy_touched_after_it_was_vouched_for_is_hashed_and_kept_when_intact(
    store: FileStore,
) -> None:
    data = os.urandom(100_000)
    first = await store.upload_file(data, filename="a.bin")
    path = object_path(store, first.sha256)
    # e.g. a restore from backup: newer mtime, same bytes. One second on, not "now": the
    # kernel's coarse clock could give "now" the very mtime the upload just wrote.
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    inode = path.stat().st_ino

    again = await store.upload_file(data, filename="b.bin")

    assert again.deduplicated is True
    assert path.stat().st_ino == inode, "an intact object is not replaced"
    blob = await store.repo.get_blob(first.sha256)
    assert blob is not None and blob.last_verified_at is not None


# -- quotas hold under concurrency ----------------------------------------------------------


QUOTA = 3
ATTEMPTS = 16


def quota_settings(home: Path, **extra: Any) -> Settings:
    values: dict[str, Any] = {"owner_quota_files": QUOTA, **extra}
    return Settings(home=home, fsync=False, bookkeeping_flush_seconds=0.05, **values)


@contextlib.asynccontextmanager
async def opened(settings: Settings) -> AsyncIterator[FileStore]:
    async with FileStore(settings) as store:
        yield store


async def race_uploads(store: FileStore) -> tuple[int, int]:
    """ATTEMPTS distinct uploads at once: (stored, refused)."""

    async def one(index: int) -> bool:
        try:
            await store.upload_file(os.urandom(4096), filename=f"f{index}.bin")
        except QuotaExceededError:
            return False
        return True

    results = await asyncio.gather(*(one(i) for i in range(ATTEMPTS)))
    return sum(results), results.count(False)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings for the metadata database: SQLite (the default) or PostgreSQL."""
    if request.param == "postgresql":
        return {"database_url": request.getfixturevalue("pg_url")}
    return {}


async def test_a_file_quota_holds_for_sixteen_concurrent_uploads(
    home: Path, database: dict[str, Any]
) -> None:
    async with opened(quota_settings(home, **database)) as root:
        for store in (root, root.as_owner("bob")):
            stored, refused = await race_uploads(store)
            assert (stored, refused) == (QUOTA, ATTEMPTS - QUOTA), store.owner
            assert (await store.list()).total == QUOTA
        # Refused uploads leave no object behind: one object per stored file.
        assert len(objects_under(root)) == 2 * QUOTA


async def test_a_byte_quota_holds_for_concurrent_uploads(
    home: Path, database: dict[str, Any]
) -> None:
    settings = quota_settings(home, owner_quota_files=None, owner_quota_bytes=3 * 4096, **database)
    async with opened(settings) as root:
        stored, _refused = await race_uploads(root.as_owner("carol"))
        assert stored == 3
        assert sum(f.size for f in (await root.as_owner("carol").list()).items) == 3 * 4096


@pytest.mark.slow
async def test_a_file_quota_holds_across_processes(
    tmp_path: Path, database: dict[str, Any]
) -> None:
    layout = StoreLayout(tmp_path).make_dirs()
    env = layout.env(FILETIER_OWNER_QUOTA_FILES=str(QUOTA))
    if "database_url" in database:
        env["FILETIER_DATABASE_URL"] = database["database_url"]
    go = tmp_path / "go"
    with contextlib.ExitStack() as stack:
        children = [
            stack.enter_context(
                Child(
                    "quota_worker",
                    "--owner",
                    "dave",
                    "--count",
                    "4",
                    "--go",
                    go,
                    env=env,
                    cwd=tmp_path,
                )
            )
            for _ in range(4)
        ]
        for child in children:
            child.expect("ready")
        go.touch()
        for child in children:
            assert child.finish() == 0, child.stderr
        events = [m["event"] for child in children for m in child.messages()]
    assert events.count("uploaded") == QUOTA
    assert events.count("refused") == 16 - QUOTA
    async with opened(layout.settings(**database)) as root:
        assert (await root.as_owner("dave").list()).total == QUOTA


# -- content ends in one place --------------------------------------------------------------


@pytest.fixture(scope="module")
def provider() -> Any:
    with ProviderServer(api_key=KEY) as server:
        yield server


def provider_settings(home: Path, server: ProviderServer, **extra: Any) -> Settings:
    return Settings(
        home=home,
        fsync=False,
        bookkeeping_flush_seconds=0.05,
        kimi_api_key=server.api_key,
        kimi_base_url=server.base_url,
        provider_retry_attempts=1,
        provider_timeout_seconds=2,
        **extra,
    )


def drop_file_rows_behind_filetiers_back(home: Path) -> None:
    """What a delete that crashed after its commit leaves: content no file references."""
    with contextlib.closing(sqlite3.connect(home / "filetier.db")) as conn, conn:
        conn.execute("DELETE FROM file_metadata")


def provider_rows(home: Path) -> list[tuple[str, str]]:
    with contextlib.closing(sqlite3.connect(home / "filetier.db")) as conn:
        rows = conn.execute("SELECT provider_file_id, status FROM provider_file_uploads")
        return [(r[0], r[1]) for r in rows]


@pytest.mark.parametrize("how", ["gc", "verify-fix"])
async def test_gc_and_verify_end_content_everywhere_including_provider_copies(
    home: Path, provider: ProviderServer, how: str
) -> None:
    provider.reset()
    settings = provider_settings(home, provider, gc_grace_seconds=0)
    async with FileStore(settings) as store:
        data = b"orphaned after a crash\n" * 100
        uploaded = await store.upload_file(data, filename="notes.txt")
        pid = (await store.get_provider_file_id(uploaded.file_id, "kimi")).provider_file_id
        await store.get_file_text(uploaded.file_id, "kimi")
        assert pid in provider.files
        drop_file_rows_behind_filetiers_back(home)

        if how == "gc":
            report = await store.gc(grace_seconds=0)
            assert [a.kind for a in report.actions] == ["delete_orphan_blob_row"]
        else:
            report = await store.verify(fix=True)
            assert [(f.kind, f.fixed) for f in report.findings] == [("orphan_blob_row", True)]

        assert pid not in provider.files, "the provider copy is deleted at the provider"
        assert provider.request_count("DELETE", f"/files/{pid}") == 1
        assert provider_rows(home) == []
        assert not object_path(store, uploaded.sha256).exists()
        assert uploaded.sha256 not in store.memory
        with contextlib.closing(sqlite3.connect(home / "filetier.db")) as conn:
            texts = conn.execute("SELECT count(*) FROM provider_extracted_text").fetchone()
        assert texts == (0,)


async def test_hash_first_upload_asks_for_the_bytes_when_the_stored_copy_is_damaged(
    store: FileStore,
) -> None:
    data = os.urandom(50_000)
    first = await store.upload_file(data, filename="first.bin")
    damage_same_size(object_path(store, first.sha256))

    linked = await store.link_existing(
        sha256=first.sha256,
        size=len(data),
        filename="again.bin",
        mime_type=None,
        metadata=None,
    )

    assert linked is None, "a copy it cannot vouch for is never linked to"
    again = await store.upload_file(data, filename="again.bin")  # the client sends the bytes
    assert again.deduplicated is False
    store.memory.clear()
    assert await store.read_bytes(first.file_id) == data


async def test_on_s3_a_rewritten_or_missing_object_is_repaired_and_a_healthy_one_trusted(
    home: Path, s3: Any
) -> None:
    bucket = s3.create_bucket()
    settings = Settings(home=home, fsync=False, **s3.settings_overrides(bucket))
    data = os.urandom(150_000)
    async with FileStore(settings) as store:
        first = await store.upload_file(data, filename="first.bin")
        key = storage_key(first.sha256)
        healthy = await store.upload_file(data, filename="healthy.bin")
        assert healthy.deduplicated is True, "an untouched object is trusted as it is"

        # S3 keeps modification times to the second: rewrite in a later one.
        await asyncio.sleep(1.1)
        s3.client().put_object(Bucket=bucket, Key=key, Body=os.urandom(len(data)))
        repaired = await store.upload_file(data, filename="after-rewrite.bin")
        assert repaired.deduplicated is False

        s3.client().delete_object(Bucket=bucket, Key=key)
        restored = await store.upload_file(data, filename="after-delete.bin")
        assert restored.deduplicated is False

        store.memory.clear()
        store.disk.evict(first.sha256)
        assert await store.read_bytes(first.file_id) == data
        keys = s3.object_keys(bucket)
        assert key in keys
        # The rewritten object was set aside for inspection, not deleted.
        assert len([k for k in keys if k.startswith("quarantine/")]) == 1
