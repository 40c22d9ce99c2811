"""The repository contract, against SQLite and PostgreSQL: the same rows in, the same
answers out.

Each test opens a real database (a SQLite file, or a fresh PostgreSQL database), migrated
by filetier's own migrations, and talks to :class:`filetier.metadata.repository.Repository`
only: insert a file row (its blob row comes with it), look it up, list and filter, delete,
and never let one owner see another's rows.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest

from filetier import FileRecord, MetadataUnavailableError, Settings
from filetier.metadata.database import Database
from filetier.metadata.repository import Repository
from testbed.services import create_database, drop_database


@pytest.fixture(params=["sqlite", "postgresql"])
async def repo(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Repository]:
    home = tmp_path / "home"
    pg_url = await asyncio.to_thread(create_database) if request.param == "postgresql" else None
    settings = Settings(home=home, database_url=pg_url) if pg_url else Settings(home=home)
    db = Database(settings.database_url)
    try:
        await db.upgrade(lock_dir=home)
        repository = Repository(db)
        yield repository
        await repository.settle()
    finally:
        await db.close()
        if pg_url:
            await asyncio.to_thread(drop_database, pg_url)


async def insert(
    repo: Repository,
    owner: str,
    data: bytes,
    filename: str = "notes.txt",
    mime_type: str = "text/plain",
    *,
    written_at: datetime | None = None,
) -> FileRecord:
    """``written_at``: the caller has just written the object, whose time that is."""
    sha = hashlib.sha256(data).hexdigest()
    return await repo.insert_file(
        owner=owner,
        filename=filename,
        size=len(data),
        mime_type=mime_type,
        sha256=sha,
        storage_key=f"sha256/{sha[:2]}/{sha[2:4]}/{sha}",
        metadata={"source": "contract", "n": [1, 2]},
        local_cache_path=None,
        wrote_object=written_at is not None,
        object_modified_at=written_at,
    )


async def test_an_inserted_file_is_found_with_what_was_recorded(repo: Repository) -> None:
    record = await insert(repo, "alice", b"hello\n", filename="hello.txt")
    found = await repo.get_file("alice", record.file_id)
    assert found is not None
    assert found.file_id == record.file_id
    assert found.filename == "hello.txt" and found.owner == "alice"
    assert found.size == 6 and found.mime_type == "text/plain"
    assert found.sha256 == hashlib.sha256(b"hello\n").hexdigest()
    assert found.metadata == {"source": "contract", "n": [1, 2]}
    blob = await repo.get_blob(found.sha256)
    assert blob is not None and blob.size == 6
    assert await repo.get_file("alice", uuid4()) is None


async def test_list_filters_pages_and_counts(repo: Repository) -> None:
    ids = [
        (await insert(repo, "alice", f"text {i}".encode(), filename=f"report-{i}.txt")).file_id
        for i in range(3)
    ]
    image = await insert(
        repo, "alice", b"\x89PNG fake", filename="photo.png", mime_type="image/png"
    )
    everything, total = await repo.list_files(
        "alice", name_contains=None, mime_type=None, sha256=None, limit=10, offset=0
    )
    assert total == 4 and {r.file_id for r in everything} == {*ids, image.file_id}
    page, total = await repo.list_files(
        "alice", name_contains=None, mime_type=None, sha256=None, limit=2, offset=2
    )
    assert total == 4 and len(page) == 2
    reports, total = await repo.list_files(
        "alice", name_contains="report", mime_type=None, sha256=None, limit=10, offset=0
    )
    assert total == 3 and {r.file_id for r in reports} == set(ids)
    images, _ = await repo.list_files(
        "alice", name_contains=None, mime_type="image/*", sha256=None, limit=10, offset=0
    )
    assert [r.file_id for r in images] == [image.file_id]
    # A LIKE wildcard in the filter is a literal character, on both databases.
    none, total = await repo.list_files(
        "alice", name_contains="%", mime_type=None, sha256=None, limit=10, offset=0
    )
    assert (none, total) == ([], 0)


async def test_delete_removes_the_row_and_releases_the_blob_once_unreferenced(
    repo: Repository,
) -> None:
    first = await insert(repo, "alice", b"shared bytes")
    second = await insert(repo, "alice", b"shared bytes", filename="copy.txt")
    deleted = await repo.delete_file_row("alice", first.file_id)
    assert deleted is not None and deleted.file_id == first.file_id
    assert await repo.get_file("alice", first.file_id) is None
    assert await repo.delete_file_row("alice", first.file_id) is None  # already gone
    assert await repo.blob_referenced(first.sha256) is True
    assert await repo.release_blob(first.sha256) is False  # the copy still uses it
    await repo.delete_file_row("alice", second.file_id)
    assert await repo.release_blob(first.sha256) is True
    assert await repo.get_blob(first.sha256) is None


async def test_deletes_and_releases_that_arrive_together_each_get_their_own_answer(
    repo: Repository,
) -> None:
    # Queued together they commit in one batch: every caller still gets the answer it
    # would have had alone, and no owner learns of another's files.
    kept = await insert(repo, "alice", b"kept bytes")
    twin = await insert(repo, "alice", b"kept bytes", filename="twin.txt")
    lone = await insert(repo, "alice", b"lone bytes")
    bobs = await insert(repo, "bob", b"kept bytes")
    gone = await insert(repo, "alice", b"released bytes")
    assert await repo.delete_file_row("alice", gone.file_id) is not None
    results = await asyncio.gather(
        repo.delete_file("alice", twin.file_id),
        repo.delete_file("alice", lone.file_id),
        repo.delete_file("alice", bobs.file_id),  # not alice's
        repo.delete_file("alice", uuid4()),
        repo.release_blob(gone.sha256),
        repo.release_blob(kept.sha256),
    )
    twin_deleted, lone_deleted, not_hers, unknown, released, still_used = results
    assert twin_deleted is not None and twin_deleted.record.file_id == twin.file_id
    assert twin_deleted.owner_keeps_content is True  # ``kept`` has the same bytes
    assert lone_deleted is not None and lone_deleted.owner_keeps_content is False
    assert not_hers is None and unknown is None
    assert released is True and await repo.get_blob(gone.sha256) is None
    assert still_used is False and await repo.get_blob(kept.sha256) is not None
    assert await repo.get_file("bob", bobs.file_id) is not None
    assert set(await repo.get_files("alice", [kept.file_id, twin.file_id, lone.file_id])) == {
        kept.file_id
    }


async def test_an_owner_never_sees_or_deletes_anothers_rows(repo: Repository) -> None:
    mine = await insert(repo, "alice", b"alice's notes")
    assert await repo.get_file("bob", mine.file_id) is None
    assert await repo.get_files("bob", [mine.file_id]) == {}
    listed, total = await repo.list_files(
        "bob", name_contains=None, mime_type=None, sha256=None, limit=10, offset=0
    )
    assert (listed, total) == ([], 0)
    assert await repo.delete_file_row("bob", mine.file_id) is None
    assert await repo.get_file("alice", mine.file_id) is not None
    assert await repo.owner_usage("bob") == (0, 0)
    assert await repo.owner_usage("alice") == (1, len(b"alice's notes"))


async def test_inserts_that_arrive_together_are_each_recorded_as_if_alone(
    repo: Repository,
) -> None:
    # Queued together they commit in one batch (on PostgreSQL, distinct contents and no
    # quota: one statement); every row and blob row is what an insert alone makes.
    stale = await insert(repo, "alice", b"quarantined bytes")
    await repo.set_blob_status(stale.sha256, "quarantined")
    known = await insert(repo, "alice", b"known bytes")
    known_blob = await repo.get_blob(known.sha256)
    written_at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    contents = [f"batch {i}".encode() for i in range(20)]
    *fresh, rewritten, again = await asyncio.gather(
        *(
            insert(repo, "bob", data, filename=f"b{i}.txt", written_at=written_at)
            for i, data in enumerate(contents)
        ),
        insert(repo, "alice", b"quarantined bytes", written_at=written_at),
        insert(repo, "alice", b"known bytes", filename="again.txt"),
    )
    for record, data in zip(fresh, contents, strict=True):
        found = await repo.get_file("bob", record.file_id)
        assert found is not None and found.sha256 == hashlib.sha256(data).hexdigest()
        assert found.metadata == {"source": "contract", "n": [1, 2]}
        assert found.created_at == record.created_at and found.size == len(data)
        blob = await repo.get_blob(found.sha256)
        assert blob is not None and (blob.size, blob.status) == (len(data), "ok")
        assert blob.storage_key == found.storage_key
        assert blob.object_modified_at == written_at and blob.last_verified_at is None
    # Fresh bytes replace a quarantined object: the blob row is ok again, and verified.
    renewed = await repo.get_blob(rewritten.sha256)
    assert renewed is not None and renewed.status == "ok"
    assert renewed.object_modified_at == written_at
    assert renewed.last_verified_at == rewritten.created_at
    # A second file of stored content leaves its blob row as it was.
    assert await repo.get_blob(again.sha256) == known_blob
    assert await repo.get_file("alice", again.file_id) is not None
    assert await repo.owner_usage("bob") == (20, sum(map(len, contents)))


async def test_the_same_content_twice_in_one_batch_makes_one_blob_row(repo: Repository) -> None:
    first, second = await asyncio.gather(
        insert(repo, "alice", b"twice"), insert(repo, "bob", b"twice", filename="b.txt")
    )
    assert await repo.get_file("alice", first.file_id) is not None
    assert await repo.get_file("bob", second.file_id) is not None
    assert await repo.blob_referenced(first.sha256) is True
    blob = await repo.get_blob(first.sha256)
    assert blob is not None and blob.status == "ok"


async def test_a_row_the_database_refuses_fails_alone(repo: Repository) -> None:
    if repo.db.dialect != "postgresql":
        pytest.skip("SQLite stores a NUL in text; PostgreSQL refuses it")
    # The batch is refused as a whole; its other requests are then inserted one by one.
    before, bad, after = await asyncio.gather(
        insert(repo, "alice", b"before"),
        insert(repo, "alice", b"refused", filename="nul\x00.txt"),
        insert(repo, "alice", b"after"),
        return_exceptions=True,
    )
    assert isinstance(bad, MetadataUnavailableError)
    assert isinstance(before, FileRecord) and isinstance(after, FileRecord)
    assert await repo.get_file("alice", before.file_id) is not None
    assert await repo.get_file("alice", after.file_id) is not None
    assert await repo.get_blob(hashlib.sha256(b"refused").hexdigest()) is None
    assert await repo.owner_usage("alice") == (2, len(b"before") + len(b"after"))


async def test_an_insert_after_its_connection_was_ended_while_idle_works(
    repo: Repository,
) -> None:
    """PostgreSQL: the insert batches' connection is not pinged before each batch; one
    the server ended while it sat idle (a restart, an idle timeout) is replaced."""
    if repo.db.dialect != "postgresql":
        pytest.skip("SQLite has no connection to lose")
    import sqlalchemy as sa

    first = await insert(repo, "alice", b"first")
    async with repo.db.engine.connect() as conn:
        ended = await conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'filetier-inserts' AND datname = current_database()"
            )
        )
        assert ended.scalars().all() == [True]
    second = await insert(repo, "alice", b"second")
    assert await repo.get_file("alice", first.file_id) is not None
    assert await repo.get_file("alice", second.file_id) is not None


async def test_a_one_statement_batch_sent_twice_records_each_file_once(
    repo: Repository,
) -> None:
    """PostgreSQL: a batch whose answer was lost with its connection is sent again on a
    new one; the statement is idempotent, so the files are recorded once."""
    if repo.db.dialect != "postgresql":
        pytest.skip("SQLite's batches run in one local transaction")
    from filetier.metadata.inserts import FileInsert, insert_batch_pg_one_statement

    now = datetime.now(UTC)
    requests = []
    for i in range(3):
        sha = hashlib.sha256(b"%d" % i).hexdigest()
        values = {
            "file_id": uuid4(),
            "owner": "alice",
            "original_filename": f"f{i}.txt",
            "file_size": 1,
            "mime_type": "text/plain",
            "supabase_storage_path": f"sha256/{sha[:2]}/{sha[2:4]}/{sha}",
            "local_cache_path": None,
            "file_hash": sha,
            "provider_file_ids": {},
            "upload_date": now,
            "last_accessed": None,
            "access_count": 0,
            "metadata": {},
            "created_at": now,
            "updated_at": now,
        }
        requests.append(FileInsert(values, None, True, now, None))
    for _ in range(2):
        assert repo.db.spare is not None
        async with repo.db.spare.autocommit() as driver:
            assert await insert_batch_pg_one_statement(driver, requests) == [None] * 3
    assert await repo.owner_usage("alice") == (3, 3)
    for request in requests:
        assert await repo.get_file("alice", request.values["file_id"]) is not None
