"""Uploads: every source kind, the result a caller gets back, type sniffing, deduplication,
delete of shared content and a data dir that sets itself up."""

from __future__ import annotations

import hashlib
import io
import os
import sqlite3
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from urllib.parse import urlparse

import pytest

from filetier import FileStore, NotFoundError, Settings

PNG = (
    b"\x89PNG\r\n\x1a\n"
    b"\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    + b"\x00"
    * 64
)
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n" + b"0" * 64
# The start of a real Windows executable: DOS header, then the DOS stub.
EXE = (
    b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00\xb8\x00\x00\x00"
    + b"\x00" * 40
    + b"This program cannot be run in DOS mode.\r\r\n$"
    + b"\x00" * 64
)
# Bytes no magic number matches, with NUL bytes so they cannot pass for text.
OPAQUE_BINARY = bytes(range(256)) * 4


def object_files(objects_root: Path) -> list[Path]:
    """The published objects of a primary store directory (``sha256/ab/cd/<hash>``)."""
    base = objects_root / "sha256"
    return sorted(p for p in base.rglob("*") if p.is_file()) if base.exists() else []


def remote_root(settings: Settings) -> Path:
    assert settings.primary_url is not None
    return Path(urlparse(settings.primary_url).path)


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


# --------------------------------------------------------------------------- sources


async def test_upload_bytes_reports_hash_size_and_new_bytes(
    store: FileStore, settings: Settings
) -> None:
    data = b"quarterly numbers\n" * 100

    result = await store.upload_file(data, filename="numbers.txt")

    assert isinstance(result.file_id, uuid.UUID)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.size == len(data)
    assert result.filename == "numbers.txt"
    assert result.deduplicated is False
    assert result.bytes_written == len(data)
    [stored] = object_files(settings.objects_dir)
    assert stored.name == result.sha256
    assert stored.read_bytes() == data
    assert await store.read_bytes(result.file_id) == data


async def test_upload_from_path_takes_the_file_name(store: FileStore, tmp_path: Path) -> None:
    source = tmp_path / "minutes-2024.txt"
    data = os.urandom(50_000)
    source.write_bytes(data)

    result = await store.upload_file(source)

    assert result.filename == "minutes-2024.txt"
    assert result.size == len(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.bytes_written == len(data)
    assert (await store.stat(result.file_id)).filename == "minutes-2024.txt"
    assert await store.read_bytes(result.file_id) == data
    assert source.read_bytes() == data, "the source file must not be touched"


async def test_upload_from_path_given_as_str(store: FileStore, tmp_path: Path) -> None:
    source = tmp_path / "as-text.bin"
    source.write_bytes(b"path given as a string")

    result = await store.upload_file(str(source))

    assert result.filename == "as-text.bin"
    assert await store.read_bytes(result.file_id) == b"path given as a string"


async def test_upload_from_open_binary_file(store: FileStore, tmp_path: Path) -> None:
    source = tmp_path / "scan.pdf"
    source.write_bytes(PDF)

    with open(source, "rb") as handle:
        result = await store.upload_file(handle)

    assert result.filename == "scan.pdf"
    assert result.mime_type == "application/pdf"
    assert result.sha256 == hashlib.sha256(PDF).hexdigest()
    assert await store.read_bytes(result.file_id) == PDF


async def test_upload_from_bytesio(store: FileStore) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # several read chunks

    result = await store.upload_file(io.BytesIO(data), filename="blob.bin")

    assert result.size == len(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.filename == "blob.bin"
    assert await store.read_bytes(result.file_id) == data


async def test_upload_from_nameless_file_object_still_gets_a_name(store: FileStore) -> None:
    result = await store.upload_file(io.BytesIO(b"no name given"))

    assert result.filename.strip()
    assert (await store.stat(result.file_id)).filename == result.filename


async def test_upload_from_async_iterator(store: FileStore) -> None:
    parts = [os.urandom(70_000) for _ in range(5)]
    data = b"".join(parts)

    result = await store.upload_file(chunks(*parts), filename="stream.bin")

    assert result.size == len(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.bytes_written == len(data)
    assert await store.read_bytes(result.file_id) == data


async def test_stream_type_is_sniffed_across_tiny_chunks(store: FileStore) -> None:
    # The PNG signature arrives split over several chunks, some empty.
    pieces = [b"", PNG[:3], PNG[3:5], b"", PNG[5:], b"\x00" * 20_000]

    result = await store.upload_file(chunks(*pieces))

    assert result.mime_type == "image/png"
    assert await store.read_bytes(result.file_id) == b"".join(pieces)


@pytest.mark.parametrize("wrap", [bytearray, memoryview], ids=["bytearray", "memoryview"])
async def test_upload_bytes_like(store: FileStore, wrap: type) -> None:
    data = b"bytes-like content"

    result = await store.upload_file(wrap(data))

    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert await store.read_bytes(result.file_id) == data


async def test_progress_reports_every_byte(store: FileStore, tmp_path: Path) -> None:
    source = tmp_path / "progress.bin"
    source.write_bytes(os.urandom(2_500_000))
    from_path: list[int] = []
    from_bytes: list[int] = []

    await store.upload_file(source, progress=from_path.append)
    await store.upload_file(os.urandom(1234), progress=from_bytes.append)

    assert sum(from_path) == 2_500_000
    assert sum(from_bytes) == 1234


async def test_upload_empty_file(store: FileStore, settings: Settings) -> None:
    result = await store.upload_file(b"", filename="empty.txt")

    assert result.size == 0
    assert result.sha256 == hashlib.sha256(b"").hexdigest()
    # Nothing was stored before, so this cannot be a deduplicated upload.
    assert result.deduplicated is False
    assert await store.read_bytes(result.file_id) == b""
    assert len(object_files(settings.objects_dir)) == 1


# --------------------------------------------------------------------------- optional fields


async def test_filename_mime_and_metadata_round_trip_through_stat(store: FileStore) -> None:
    metadata = {"project": "apollo", "tags": ["q3", "draft"], "nested": {"n": 1, "ok": True}}

    result = await store.upload_file(
        b"a,b\n1,2\n", filename="Résumé 2024.csv", mime_type="text/csv", metadata=metadata
    )
    record = await store.stat(result.file_id)

    assert record.file_id == result.file_id
    assert record.filename == "Résumé 2024.csv"
    assert record.mime_type == "text/csv"
    assert record.metadata == metadata
    assert record.size == 8
    assert record.sha256 == result.sha256
    assert record.access_count == 0
    assert record.last_accessed is None
    assert record.upload_date is not None


async def test_upload_without_optional_fields(store: FileStore) -> None:
    result = await store.upload_file(b"plain words")
    record = await store.stat(result.file_id)

    assert record.metadata == {}
    assert record.filename == result.filename
    assert record.filename.strip()
    assert record.mime_type == result.mime_type == "text/plain"


async def test_declared_type_fills_in_for_generic_content(store: FileStore) -> None:
    result = await store.upload_file(b"id\tname\n1\tx\n", mime_type="text/tab-separated-values")

    assert result.mime_type == "text/tab-separated-values"
    assert (await store.stat(result.file_id)).mime_type == "text/tab-separated-values"


# --------------------------------------------------------------------------- type sniffing


@pytest.mark.parametrize(
    ("data", "filename", "expected"),
    [
        (PNG, "photo.bin", "image/png"),
        (PNG, "photo", "image/png"),
        (PDF, "document.dat", "application/pdf"),
        (PDF, "scan.pdf", "application/pdf"),
        (b'{"name": "filetier", "tiers": 3}\n', "config.json", "application/json"),
        # A Linux executable, not the AppImage that puremagic's weaker "ELF" match says.
        (Path(sys.executable).resolve().read_bytes()[:8192], "python", "application/x-executable"),
    ],
)
async def test_type_is_sniffed_from_content(
    store: FileStore, data: bytes, filename: str, expected: str
) -> None:
    result = await store.upload_file(data, filename=filename)

    assert result.mime_type == expected
    assert (await store.stat(result.file_id)).mime_type == expected


async def test_markdown_file_gets_a_text_type(store: FileStore, tmp_path: Path) -> None:
    source = tmp_path / "README.md"
    source.write_text("# Notes\n\n- one\n- two\n", encoding="utf-8")

    result = await store.upload_file(source)

    assert result.mime_type.startswith("text/")


async def test_markdown_file_is_labelled_markdown(store: FileStore, tmp_path: Path) -> None:
    # digest.py maps ".md" to text/markdown for UTF-8 content; "text/plain" loses that.
    source = tmp_path / "README.md"
    source.write_text("# Notes\n\n- one\n- two\n", encoding="utf-8")

    result = await store.upload_file(source)

    assert result.mime_type == "text/markdown"


async def test_executable_named_pdf_is_not_labelled_pdf(store: FileStore) -> None:
    result = await store.upload_file(EXE, filename="report.pdf", mime_type="application/pdf")

    assert result.mime_type != "application/pdf"
    assert "executable" in result.mime_type or result.mime_type == "application/octet-stream"
    assert (await store.stat(result.file_id)).mime_type == result.mime_type


@pytest.mark.parametrize(
    ("filename", "claimed_type"),
    [("report.pdf", "application/pdf"), ("notes.txt", "text/plain")],
)
async def test_binary_without_magic_is_not_labelled_by_its_name(
    store: FileStore, filename: str, claimed_type: str
) -> None:
    # Neither magic bytes nor text: the name alone must not decide the type.
    result = await store.upload_file(OPAQUE_BINARY, filename=filename)

    assert result.mime_type != claimed_type
    assert result.mime_type == "application/octet-stream"


# --------------------------------------------------------------------------- deduplication


async def test_same_bytes_twice_are_stored_once(store: FileStore, settings: Settings) -> None:
    data = os.urandom(10_000)

    first = await store.upload_file(data, filename="one.bin")
    second = await store.upload_file(data, filename="two.bin")

    assert first.deduplicated is False
    assert first.bytes_written == len(data)
    assert second.deduplicated is True
    assert second.bytes_written == 0
    assert second.file_id != first.file_id
    assert second.sha256 == first.sha256
    assert len(object_files(settings.objects_dir)) == 1
    stats = await store.stats()
    assert stats.blobs == 1
    assert stats.files == 2
    assert (await store.stat(second.file_id)).filename == "two.bin"
    assert await store.read_bytes(first.file_id) == data
    assert await store.read_bytes(second.file_id) == data


async def test_same_file_content_from_two_paths_is_stored_once(
    store: FileStore, settings: Settings, tmp_path: Path
) -> None:
    data = os.urandom(200_000)
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(data)
    b.write_bytes(data)

    first = await store.upload_file(a)
    second = await store.upload_file(b)

    assert (first.deduplicated, second.deduplicated) == (False, True)
    assert second.bytes_written == 0
    assert second.file_id != first.file_id
    assert len(object_files(settings.objects_dir)) == 1
    assert (await store.stats()).blobs == 1
    assert await store.read_bytes(second.file_id) == data


async def test_same_size_different_content_is_not_deduplicated(
    store: FileStore, settings: Settings, tmp_path: Path
) -> None:
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"A" * 4096)
    b.write_bytes(b"A" * 4095 + b"B")

    first = await store.upload_file(a)
    second = await store.upload_file(b)

    assert second.deduplicated is False
    assert second.bytes_written == 4096
    assert second.sha256 != first.sha256
    assert len(object_files(settings.objects_dir)) == 2
    assert (await store.stats()).blobs == 2
    assert await store.read_bytes(first.file_id) == b"A" * 4096
    assert await store.read_bytes(second.file_id) == b"A" * 4095 + b"B"


async def test_dedup_spans_source_kinds(
    store: FileStore, settings: Settings, tmp_path: Path
) -> None:
    data = os.urandom(30_000)
    source = tmp_path / "same.bin"
    source.write_bytes(data)

    results = [
        await store.upload_file(data),
        await store.upload_file(source),
        await store.upload_file(io.BytesIO(data)),
        await store.upload_file(chunks(data[:1000], data[1000:])),
    ]

    assert [r.deduplicated for r in results] == [False, True, True, True]
    assert [r.bytes_written for r in results] == [len(data), 0, 0, 0]
    assert len({r.file_id for r in results}) == 4
    assert len(object_files(settings.objects_dir)) == 1
    assert not list((settings.objects_dir / ".staging").iterdir()), "no temp file left behind"


async def test_dedup_with_remote_primary(
    remote_store: FileStore, remote_settings: Settings
) -> None:
    data = os.urandom(20_000)

    first = await remote_store.upload_file(data, filename="first.bin")
    second = await remote_store.upload_file(data, filename="second.bin")

    assert (first.deduplicated, second.deduplicated) == (False, True)
    assert second.bytes_written == 0
    assert len(object_files(remote_root(remote_settings))) == 1
    assert (await remote_store.stats()).blobs == 1
    remote_store.memory.clear()
    assert await remote_store.read_bytes(second.file_id) == data


# --------------------------------------------------------------------------- delete


async def test_deleting_one_of_two_sharing_files_keeps_the_bytes(
    store: FileStore, settings: Settings
) -> None:
    data = os.urandom(5000)
    keep = await store.upload_file(data, filename="keep.bin")
    drop = await store.upload_file(data, filename="drop.bin")

    deleted = await store.delete(drop.file_id)

    assert deleted.file_id == drop.file_id
    assert deleted.sha256 == drop.sha256
    assert deleted.blob_deleted is False
    assert len(object_files(settings.objects_dir)) == 1
    store.memory.clear()
    assert await store.read_bytes(keep.file_id) == data
    path = await store.download_file(keep.file_id)
    assert path.read_bytes() == data
    with pytest.raises(NotFoundError):
        await store.stat(drop.file_id)
    assert (await store.list()).total == 1


async def test_deleting_the_last_file_removes_the_object(
    store: FileStore, settings: Settings
) -> None:
    data = os.urandom(5000)
    a = await store.upload_file(data)
    b = await store.upload_file(data)

    first = await store.delete(a.file_id)
    second = await store.delete(b.file_id)

    assert first.blob_deleted is False
    assert second.blob_deleted is True
    assert object_files(settings.objects_dir) == []
    stats = await store.stats()
    assert (stats.files, stats.blobs, stats.unique_bytes) == (0, 0, 0)
    with pytest.raises(NotFoundError):
        await store.read_bytes(b.file_id)
    with pytest.raises(NotFoundError):
        await store.delete(b.file_id)


async def test_delete_last_file_with_remote_primary(
    remote_store: FileStore, remote_settings: Settings
) -> None:
    result = await remote_store.upload_file(os.urandom(4000))
    assert len(object_files(remote_root(remote_settings))) == 1

    deleted = await remote_store.delete(result.file_id)

    assert deleted.blob_deleted is True
    assert object_files(remote_root(remote_settings)) == []
    assert object_files(remote_settings.cache_dir) == [], "the cached copy goes too"


async def test_upload_again_after_last_delete_writes_the_bytes_again(
    store: FileStore, settings: Settings
) -> None:
    data = os.urandom(3000)
    first = await store.upload_file(data)
    await store.delete(first.file_id)

    again = await store.upload_file(data)

    assert again.deduplicated is False
    assert again.bytes_written == len(data)
    assert len(object_files(settings.objects_dir)) == 1
    store.memory.clear()
    assert await store.read_bytes(again.file_id) == data


# --------------------------------------------------------------------------- data dir


async def test_new_data_dir_migrates_itself(tmp_path: Path) -> None:
    home = tmp_path / "brand" / "new" / "home"
    settings = Settings(home=home, fsync=False)

    async with FileStore(settings) as store:
        uploaded = await store.upload_file(b"first file ever", filename="first.txt")
        assert await store.read_bytes(uploaded.file_id) == b"first file ever"

    database = home / "filetier.db"
    assert database.is_file()
    with closing(sqlite3.connect(database)) as conn:
        rows = conn.execute("SELECT type, name FROM sqlite_master").fetchall()
        count = conn.execute("SELECT count(*) FROM file_metadata").fetchone()[0]
    tables = {name for kind, name in rows if kind == "table"}
    indexes = {name for kind, name in rows if kind == "index"}
    assert {"file_metadata", "blobs", "provider_file_uploads", "file_download_history"} <= tables
    assert {
        "idx_file_metadata_upload_date",
        "idx_file_metadata_last_accessed",
        "idx_file_metadata_file_hash",
    } <= indexes
    assert count == 1

    # Opening the same data dir again keeps what is there.
    async with FileStore(settings) as reopened:
        assert (await reopened.stat(uploaded.file_id)).filename == "first.txt"
        assert await reopened.read_bytes(uploaded.file_id) == b"first file ever"


async def test_a_cancelled_upload_leaves_no_temp_file_and_no_row(home: Path) -> None:
    """An upload cancelled mid-stream (what the SDK does to a tool call the client
    cancels) leaves nothing behind: no staged temp file anywhere in the data dir, no row."""
    import asyncio

    settings = Settings(home=home, fsync=False)
    started = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield b"x" * (1024 * 1024)
        started.set()
        await asyncio.sleep(60)  # the client stalls: the caller gives up
        yield b"never sent"

    async with FileStore(settings) as store:
        task = asyncio.create_task(store.upload_file(slow_body(), filename="gone.bin"))
        await asyncio.wait_for(started.wait(), 10)
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await store.list()).total == 0
    leftovers = [p for p in home.rglob("*") if p.is_file() and p.suffix == ".tmp"]
    assert leftovers == []


async def test_a_cancelled_path_upload_stops_its_copy_before_answering(
    home: Path, tmp_path: Path
) -> None:
    """Cancelling an upload of a large file stops the thread that copies it before the
    cancellation returns: a file opened right after (likely on the descriptor number the
    staged copy had) receives none of the upload's bytes, and nothing is left behind: no
    staged file, no row, no object."""
    import asyncio
    import time

    source = tmp_path / "large.bin"
    source.write_bytes(os.urandom(32 * 1024 * 1024))
    settings = Settings(home=home, fsync=False)
    loop = asyncio.get_running_loop()
    copying = asyncio.Event()

    def slow_progress(n: int) -> None:  # a caller's callback; it runs in the copy thread
        loop.call_soon_threadsafe(copying.set)
        time.sleep(0.01)  # 32 chunks of 1 MiB: the copy takes about a third of a second

    async with FileStore(settings) as store:
        task = asyncio.create_task(store.upload_file(source, progress=slow_progress))
        await asyncio.wait_for(copying.wait(), 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        victim = tmp_path / "opened-after.bin"
        fd = os.open(victim, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            await asyncio.sleep(0.5)  # long enough for a copy still running to finish
        finally:
            os.close(fd)
        assert victim.stat().st_size == 0
        assert (await store.list()).total == 0
    leftovers = [p for p in home.rglob("*") if p.is_file() and p.suffix == ".tmp"]
    assert leftovers == []
    assert [p for p in settings.objects_dir.rglob("*") if p.is_file()] == []
