"""Every way a caller can be wrong: a clear error of the right class, and nothing changed.

Each test takes a snapshot of the store (file count, every byte under the object store,
the allowed root and the directories next to it), makes one wrong call, and checks that
the error names the problem and that the snapshot, and every stored file's bytes, are
exactly as before.
"""

from __future__ import annotations

import io
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import filetier
from filetier import (
    FileStore,
    FiletierError,
    FileTooLargeError,
    InsufficientSpaceError,
    InvalidFileIdError,
    InvalidInputError,
    InvalidMetadataError,
    NotFoundError,
    PathNotAllowedError,
    Settings,
    SourceNotFoundError,
    TypeNotAllowedError,
)
from filetier.errors import mapping_for

LIMIT = 64 * 1024
IMAGE_LIMIT = 4096
PNG_HEADER = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
EXE = (
    b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00\xb8\x00\x00\x00"
    + b"\x00" * 40
    + b"This program cannot be run in DOS mode.\r\r\n$"
    + b"\x00" * 64
)
EXE_TYPE = "application/vnd.microsoft.portable-executable"


def tree(directory: Path) -> dict[str, bytes | str]:
    """Every entry under ``directory``: file bytes, symlink targets, directories."""
    found: dict[str, bytes | str] = {}
    if not directory.exists():
        return found
    for dirpath, dirnames, filenames in os.walk(directory):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            key = str(path.relative_to(directory))
            if path.is_symlink():
                found[key] = "symlink -> " + os.readlink(path)
            elif path.is_dir():
                found[key] = "dir"
            else:
                found[key] = path.read_bytes()
    return found


async def chunks(*parts: Any) -> AsyncIterator[Any]:
    for part in parts:
        yield part


async def refused(
    call: Awaitable[object], cls: type[FiletierError], builtin: type[Exception], *words: str
) -> FiletierError:
    """Await ``call``; it must raise ``cls`` (also a ``builtin``) naming every word."""
    with pytest.raises(cls) as caught:
        await call
    error = caught.value
    assert isinstance(error, FiletierError)
    assert isinstance(error, builtin)
    message = str(error)
    assert message.strip(), "an error always says what went wrong"
    for word in words:
        assert word.lower() in message.lower(), f"{word!r} not in {message!r}"
    return error


@dataclass
class World:
    """A store with two files in it, one allowed root, and directories it must not touch."""

    store: FileStore
    settings: Settings
    files: dict[uuid.UUID, bytes]
    root: Path
    sibling: Path
    outside: Path

    def watched(self) -> list[Path]:
        return [self.settings.objects_dir, self.root, self.sibling, self.outside]

    async def snapshot(self) -> tuple[object, ...]:
        page = await self.store.list(limit=1000)
        rows = sorted((str(r.file_id), r.sha256, r.size, r.filename) for r in page.items)
        return (page.total, rows, *(tree(d) for d in self.watched()))

    async def assert_unchanged(self, before: tuple[object, ...]) -> None:
        assert await self.snapshot() == before
        staging = self.settings.objects_dir / ".staging"
        assert not list(staging.iterdir()), "no temp file may be left behind"
        self.store.memory.clear()
        for file_id, data in self.files.items():
            assert await self.store.read_bytes(file_id) == data


def limited_settings(home: Path, root: Path, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "home": home,
        "fsync": False,
        "allowed_roots": str(root),
        "max_file_size": LIMIT,
        "type_limits": f"{EXE_TYPE}=0,image/*={IMAGE_LIMIT}",
        "bookkeeping_flush_seconds": 0.05,
    }
    values.update(extra)
    return Settings(**values)


@pytest.fixture
async def world(home: Path, tmp_path: Path) -> AsyncIterator[World]:
    base = tmp_path.resolve()
    root, sibling, outside = base / "root", base / "root-evil", base / "outside"
    for directory in (root, sibling, outside):
        directory.mkdir()
    (outside / "precious.txt").write_bytes(b"must never be overwritten")
    (root / "kept.txt").write_bytes(b"a file the user already had")
    source = base / "existing.bin"
    source.write_bytes(os.urandom(LIMIT))
    settings = limited_settings(home, root)
    async with FileStore(settings) as store:
        first = await store.upload_file(b"first stored file", filename="first.txt")
        second = await store.upload_file(source)
        files = {first.file_id: b"first stored file", second.file_id: source.read_bytes()}
        yield World(store, settings, files, root, sibling, outside)


@pytest.fixture
def any_id(world: World) -> uuid.UUID:
    return next(iter(world.files))


# --------------------------------------------------------------------------- upload sources


async def test_missing_source_path(world: World, tmp_path: Path) -> None:
    before = await world.snapshot()
    missing = tmp_path / "no-such-report.pdf"

    error = await refused(
        world.store.upload_file(missing), SourceNotFoundError, FileNotFoundError, "no such file"
    )

    assert "no-such-report.pdf" in str(error)
    await world.assert_unchanged(before)


async def test_directory_as_source(world: World, tmp_path: Path) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    (folder / "inside.txt").write_bytes(b"x")
    before = await world.snapshot()

    error = await refused(
        world.store.upload_file(folder), SourceNotFoundError, FileNotFoundError, "not a regular"
    )

    assert "a-folder" in str(error)
    await world.assert_unchanged(before)


async def test_source_path_with_nul_byte(world: World) -> None:
    before = await world.snapshot()

    await refused(world.store.upload_file("report\x00.pdf"), InvalidInputError, ValueError, "NUL")

    await world.assert_unchanged(before)


@pytest.mark.parametrize("source", [42, None, 3.5, ["a", "list"]], ids=repr)
async def test_unsupported_source_type(world: World, source: Any) -> None:
    before = await world.snapshot()

    await refused(
        world.store.upload_file(source),
        InvalidInputError,
        ValueError,
        "upload source must be",
        type(source).__name__,
    )

    await world.assert_unchanged(before)


async def test_stream_yielding_str(world: World) -> None:
    before = await world.snapshot()

    await refused(
        world.store.upload_file(chunks(b"some bytes first, ", "then text")),
        InvalidInputError,
        ValueError,
        "must yield bytes",
        "str",
    )

    await world.assert_unchanged(before)


async def test_text_mode_file_object(world: World, tmp_path: Path) -> None:
    source = tmp_path / "notes.txt"
    source.write_text("opened in text mode by mistake\n", encoding="utf-8")
    before = await world.snapshot()

    with open(source, encoding="utf-8") as handle:
        await refused(world.store.upload_file(handle), InvalidInputError, ValueError, "bytes")

    await world.assert_unchanged(before)


@pytest.mark.parametrize("filename", ["bad\x00name.txt", "", "   "], ids=["nul", "empty", "blank"])
async def test_bad_filename(world: World, filename: str) -> None:
    before = await world.snapshot()

    await refused(
        world.store.upload_file(b"content", filename=filename),
        InvalidInputError,
        ValueError,
        "filename",
    )

    await world.assert_unchanged(before)


# --------------------------------------------------------------------------- file ids


def id_operations(store: FileStore) -> dict[str, Callable[[str], Awaitable[object]]]:
    async def open_and_read(file_id: str) -> bytes:
        async with store.open(file_id) as reader:
            return await reader.read()

    return {
        "stat": store.stat,
        "read_bytes": store.read_bytes,
        "download_file": store.download_file,
        "download": store.download,
        "delete": store.delete,
        "open": open_and_read,
    }


@pytest.mark.parametrize(
    "operation", ["stat", "read_bytes", "download_file", "download", "delete", "open"]
)
async def test_malformed_file_id(world: World, operation: str) -> None:
    before = await world.snapshot()
    call = id_operations(world.store)[operation]

    error = await refused(
        call("not-a-uuid"), InvalidFileIdError, ValueError, "not-a-uuid", "not a file id"
    )

    assert mapping_for(error).http_status == 400
    await world.assert_unchanged(before)


@pytest.mark.parametrize(
    "operation", ["stat", "read_bytes", "download_file", "download", "delete", "open"]
)
async def test_unknown_file_id(world: World, operation: str) -> None:
    before = await world.snapshot()
    unknown = str(uuid.uuid4())
    call = id_operations(world.store)[operation]

    error = await refused(call(unknown), NotFoundError, FileNotFoundError, unknown, "no file")

    assert not isinstance(error, SourceNotFoundError)
    assert mapping_for(error).http_status == 404
    await world.assert_unchanged(before)


async def test_history_of_malformed_id(world: World) -> None:
    await refused(world.store.history("not-a-uuid"), InvalidFileIdError, ValueError, "file id")


# --------------------------------------------------------------------------- destinations


def escapes(world: World) -> dict[str, str]:
    """Destinations that must all be refused, by name."""
    return {
        "dotdot": "../x.txt",
        "dotdot-inside-then-out": "sub/../../x.txt",
        "dotdot-back-in": "sub/../x.txt",
        "absolute-outside": str(world.outside / "x.txt"),
        "overwrite-outside": str(world.outside / "precious.txt"),
        "sibling-prefix": str(world.sibling / "x.txt"),
        "sibling-prefix-bare": str(world.sibling),
        "symlinked-dir": "link-out/x.txt",
        "symlinked-dir-itself": "link-out",
        "symlinked-file": "precious-link.txt",
        "nul-byte": "report\x00.txt",
        "file-as-directory": "kept.txt/x.txt",
        "component-too-long": "d" * 300 + "/x.txt",
    }


@pytest.mark.parametrize(
    "case",
    [
        "dotdot",
        "dotdot-inside-then-out",
        "dotdot-back-in",
        "absolute-outside",
        "overwrite-outside",
        "sibling-prefix",
        "sibling-prefix-bare",
        "symlinked-dir",
        "symlinked-dir-itself",
        "symlinked-file",
        "nul-byte",
        "file-as-directory",
        "component-too-long",
    ],
)
async def test_destination_outside_the_allowed_roots(
    world: World, any_id: uuid.UUID, case: str
) -> None:
    (world.root / "link-out").symlink_to(world.outside, target_is_directory=True)
    (world.root / "precious-link.txt").symlink_to(world.outside / "precious.txt")
    before = await world.snapshot()

    error = await refused(
        world.store.download_file(any_id, escapes(world)[case]),
        PathNotAllowedError,
        PermissionError,
        "destination",
    )

    assert mapping_for(error).http_status == 403
    assert "\n" not in str(error)
    assert (world.outside / "precious.txt").read_bytes() == b"must never be overwritten"
    assert sorted(p.name for p in world.outside.iterdir()) == ["precious.txt"]
    assert list(world.sibling.iterdir()) == []
    await world.assert_unchanged(before)


async def test_refusal_names_the_allowed_root(world: World, any_id: uuid.UUID) -> None:
    error = await refused(
        world.store.download_file(any_id, world.sibling / "x.txt"),
        PathNotAllowedError,
        PermissionError,
    )

    assert str(world.root) in str(error)
    assert "outside" in str(error)


async def test_download_many_reports_a_refused_destination(world: World, any_id: uuid.UUID) -> None:
    before = await world.snapshot()

    results = await world.store.download_many([any_id], str(world.outside))

    assert [r.ok for r in results] == [False]
    assert "allowed root" in (results[0].error or "")
    await world.assert_unchanged(before)


async def test_cleanup_policy_on_a_chosen_destination(world: World, any_id: uuid.UUID) -> None:
    before = await world.snapshot()

    await refused(
        world.store.download(any_id, "mine.txt", cleanup="immediate"),
        InvalidInputError,
        ValueError,
        "cleanup",
        "downloads folder",
    )

    assert not (world.root / "mine.txt").exists()
    await world.assert_unchanged(before)


async def test_download_many_with_zero_concurrency(world: World, any_id: uuid.UUID) -> None:
    before = await world.snapshot()

    await refused(
        world.store.download_many([any_id], concurrency=0),
        InvalidInputError,
        ValueError,
        "concurrency",
    )

    await world.assert_unchanged(before)


# --------------------------------------------------------------------------- size and type limits


async def test_path_over_max_file_size(world: World, tmp_path: Path) -> None:
    source = tmp_path / "too-big.bin"
    source.write_bytes(os.urandom(LIMIT + 1))
    before = await world.snapshot()

    error = await refused(
        world.store.upload_file(source), FileTooLargeError, ValueError, f"{LIMIT + 1:,}", "limit"
    )

    assert f"{LIMIT:,}" in str(error)
    assert mapping_for(error).http_status == 413
    await world.assert_unchanged(before)


async def test_bytes_over_max_file_size(world: World) -> None:
    before = await world.snapshot()

    error = await refused(
        world.store.upload_file(b"a" * (LIMIT + 1)), FileTooLargeError, ValueError, "limit"
    )

    assert f"{LIMIT:,}" in str(error)
    assert mapping_for(error).http_status == 413
    await world.assert_unchanged(before)


async def test_stream_over_max_file_size(world: World) -> None:
    before = await world.snapshot()
    parts = [os.urandom(10_000) for _ in range(10)]  # 100,000 bytes in all

    error = await refused(
        world.store.upload_file(chunks(*parts)), FileTooLargeError, ValueError, "limit"
    )

    assert f"{LIMIT:,}" in str(error)
    await world.assert_unchanged(before)  # also: objects/.staging is empty


async def test_file_object_over_max_file_size(world: World) -> None:
    before = await world.snapshot()

    await refused(
        world.store.upload_file(io.BytesIO(os.urandom(LIMIT * 3))),
        FileTooLargeError,
        ValueError,
        "limit",
    )

    await world.assert_unchanged(before)


async def test_stream_over_limit_with_remote_primary_leaves_no_temp(
    home: Path, tmp_path: Path
) -> None:
    remote = tmp_path / "remote"
    settings = Settings(home=home, fsync=False, primary_url=f"file://{remote}", max_file_size=LIMIT)
    async with FileStore(settings) as store:
        kept = await store.upload_file(b"kept")

        await refused(
            store.upload_file(chunks(*[os.urandom(10_000) for _ in range(10)])),
            FileTooLargeError,
            ValueError,
            "limit",
        )

        assert list((settings.cache_dir / "tmp").iterdir()) == []
        assert (await store.list()).total == 1
        assert len([p for p in remote.rglob("*") if p.is_file()]) == 1
        store.memory.clear()
        assert await store.read_bytes(kept.file_id) == b"kept"


@pytest.mark.parametrize("kind", ["bytes", "path", "stream"])
async def test_refused_type(world: World, tmp_path: Path, kind: str) -> None:
    source = tmp_path / "report.pdf"
    source.write_bytes(EXE)
    sources: dict[str, Any] = {
        "bytes": EXE,
        "path": source,
        "stream": chunks(EXE[:10], EXE[10:]),
    }
    before = await world.snapshot()

    error = await refused(
        world.store.upload_file(sources[kind], filename="report.pdf"),
        TypeNotAllowedError,
        ValueError,
        EXE_TYPE,
        "not accepted",
    )

    assert mapping_for(error).http_status == 415
    await world.assert_unchanged(before)


async def test_declared_type_cannot_dodge_a_refused_type(world: World) -> None:
    before = await world.snapshot()

    await refused(
        world.store.upload_file(EXE, filename="report.pdf", mime_type="application/pdf"),
        TypeNotAllowedError,
        ValueError,
        EXE_TYPE,
    )

    await world.assert_unchanged(before)


@pytest.mark.parametrize("kind", ["bytes", "path", "stream"])
async def test_per_type_limit_below_the_global_limit(
    world: World, tmp_path: Path, kind: str
) -> None:
    png = PNG_HEADER + os.urandom(IMAGE_LIMIT + 100 - len(PNG_HEADER))
    source = tmp_path / "photo.png"
    source.write_bytes(png)
    sources: dict[str, Any] = {
        "bytes": png,
        "path": source,
        "stream": chunks(png[:1000], png[1000:]),
    }
    before = await world.snapshot()

    error = await refused(
        world.store.upload_file(sources[kind]),
        FileTooLargeError,
        ValueError,
        "image/png",
        f"{IMAGE_LIMIT:,}",
    )

    assert mapping_for(error).http_status == 413
    await world.assert_unchanged(before)
    # The same size of another type is within the global limit and accepted.
    accepted = await world.store.upload_file(os.urandom(len(png)))
    assert accepted.size == len(png)


# --------------------------------------------------------------------------- metadata


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


@pytest.mark.parametrize(
    ("metadata", "words"),
    [
        (["not", "a", "dict"], ("JSON object", "list")),
        ("a string", ("JSON object", "str")),
        (nested(100), ("deeper",)),
        ({"blob": "x" * 100 * 1024}, ("bytes", "limit")),
        ({"tags": {"a", "b"}}, ("JSON",)),
        ({"ratio": float("nan")}, ("JSON",)),
        ({"when": object()}, ("JSON",)),
    ],
    ids=["list", "str", "depth-100", "100KiB", "set", "nan", "object"],
)
async def test_bad_metadata(world: World, metadata: Any, words: tuple[str, ...]) -> None:
    before = await world.snapshot()

    error = await refused(
        world.store.upload_file(b"content", metadata=metadata),
        InvalidMetadataError,
        ValueError,
        "metadata",
        *words,
    )

    assert mapping_for(error).http_status == 400
    await world.assert_unchanged(before)


async def test_bad_metadata_with_a_path_source(world: World, tmp_path: Path) -> None:
    source = tmp_path / "fine.txt"
    source.write_bytes(b"fine content")
    before = await world.snapshot()

    await refused(
        world.store.upload_file(source, metadata=nested(100)),
        InvalidMetadataError,
        ValueError,
        "deeper",
    )

    await world.assert_unchanged(before)


# --------------------------------------------------------------------------- disk space


async def test_insufficient_space_stores_nothing(world: World, tmp_path: Path) -> None:
    files = world.files
    before = await world.snapshot()
    await world.store.close()
    free = shutil.disk_usage(world.settings.home).free
    greedy = limited_settings(world.settings.home, world.root, min_free_bytes=free * 2 + 10**12)
    source = tmp_path / "small.txt"
    source.write_bytes(b"small but no room")

    async with FileStore(greedy) as store:
        for upload in (
            store.upload_file(b"no room for me"),
            store.upload_file(source),
            store.upload_file(chunks(b"no ", b"room")),
        ):
            error = await refused(upload, InsufficientSpaceError, OSError, "free space")
            assert mapping_for(error).http_status == 507
        await refused(
            store.download_file(next(iter(files)), "copy.txt"),
            InsufficientSpaceError,
            OSError,
            "free space",
        )

        assert not (world.root / "copy.txt").exists()
        world.store = store
        await world.assert_unchanged(before)


# --------------------------------------------------------------------------- list arguments


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": -5}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"offset": -1}, "offset"),
    ],
)
async def test_bad_list_arguments(world: World, kwargs: dict[str, int], word: str) -> None:
    await refused(world.store.list(**kwargs), InvalidInputError, ValueError, word)


# --------------------------------------------------------------------------- the hierarchy


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (filetier.ConfigError, ValueError),
        (InvalidInputError, ValueError),
        (InvalidFileIdError, ValueError),
        (InvalidMetadataError, ValueError),
        (NotFoundError, FileNotFoundError),
        (SourceNotFoundError, FileNotFoundError),
        (PathNotAllowedError, PermissionError),
        (filetier.LimitExceededError, ValueError),
        (FileTooLargeError, ValueError),
        (TypeNotAllowedError, ValueError),
        (InsufficientSpaceError, OSError),
        (filetier.IntegrityError, OSError),
        (filetier.StoreBusyError, TimeoutError),
        (filetier.StorageUnavailableError, ConnectionError),
        (filetier.MetadataUnavailableError, ConnectionError),
    ],
    ids=lambda v: v.__name__,
)
def test_every_error_is_domain_and_builtin(cls: type[Exception], builtin: type) -> None:
    error = cls("something went wrong")

    assert isinstance(error, FiletierError)
    assert isinstance(error, builtin)
    assert str(error) == "something went wrong"


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (NotFoundError("x"), 404),
        (SourceNotFoundError("x"), 400),
        (InvalidFileIdError("x"), 400),
        (InvalidMetadataError("x"), 400),
        (InvalidInputError("x"), 400),
        (PathNotAllowedError("x"), 403),
        (FileTooLargeError("x"), 413),
        (TypeNotAllowedError("x"), 415),
        (filetier.LimitExceededError("x"), 422),
        (InsufficientSpaceError("x"), 507),
        (filetier.StorageUnavailableError("x"), 503),
        (FiletierError("x"), 500),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_documented_http_status(error: FiletierError, status: int) -> None:
    assert mapping_for(error).http_status == status
    assert mapping_for(error).exit_code != 0


# --------------------------------------------------------------------------- more caller mistakes


@pytest.mark.parametrize(
    "declared",
    ["text/html\r\nX-Injected: 1", "not a mime type", "text/plain\x00"],
    ids=["crlf", "no-slash", "nul"],
)
async def test_malformed_declared_mime_type(world: World, declared: str) -> None:
    # The declared type is served back as Content-Type: it must be a single clean token.
    before = await world.snapshot()

    await refused(
        world.store.upload_file(b"plain words", mime_type=declared),
        InvalidInputError,
        ValueError,
        "type",
    )

    await world.assert_unchanged(before)


async def test_unknown_cleanup_policy(store: FileStore, settings: Settings) -> None:
    # The default destination is the downloads folder, where cleanup policies apply.
    uploaded = await store.upload_file(b"deliver me", filename="deliver.txt")

    await refused(
        store.download(uploaded.file_id, None, cleanup="bogus"),  # type: ignore[arg-type]
        InvalidInputError,
        ValueError,
        "cleanup",
        "bogus",
    )

    assert tree(settings.downloads_dir) == {}, "nothing is delivered for a refused request"
    assert await store.history() == []


async def test_unknown_cleanup_policy_in_a_batch(store: FileStore, settings: Settings) -> None:
    uploaded = await store.upload_file(b"deliver me", filename="deliver.txt")

    # Either the batch is refused up front, or each item reports the error: never a crash
    # with a foreign exception.
    try:
        results = await store.download_many(
            [uploaded.file_id],
            cleanup="bogus",  # type: ignore[arg-type]
        )
    except FiletierError as exc:
        assert "cleanup" in str(exc)
    else:
        assert [r.ok for r in results] == [False]
        assert "cleanup" in (results[0].error or "")
    assert tree(settings.downloads_dir) == {}


async def test_download_many_given_one_id_instead_of_a_list(
    world: World, any_id: uuid.UUID
) -> None:
    before = await world.snapshot()

    await refused(
        world.store.download_many(str(any_id)),  # type: ignore[arg-type]
        InvalidInputError,
        ValueError,
        "file id",
    )

    await world.assert_unchanged(before)


async def test_store_used_before_it_was_opened(settings: Settings) -> None:
    store = FileStore(settings)

    with pytest.raises(FiletierError) as caught:
        await store.upload_file(b"too early")

    message = str(caught.value)
    assert any(w in message for w in ("async with", "start()", "not open")), message


async def test_store_used_after_it_was_closed(settings: Settings) -> None:
    async with FileStore(settings) as store:
        uploaded = await store.upload_file(b"while open")

    try:
        with pytest.raises(FiletierError) as upload_error:
            await store.upload_file(b"after close")
        with pytest.raises(FiletierError) as read_error:
            await store.read_bytes(uploaded.file_id)
    finally:
        # Whatever the closed store opened again must not outlive this test.
        await store.db.close()

    for caught in (upload_error, read_error):
        assert "closed" in str(caught.value)
    async with FileStore(settings) as reopened:
        assert (await reopened.list()).total == 1
        assert await reopened.history() == []
