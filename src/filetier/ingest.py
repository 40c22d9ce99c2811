"""Turning an upload source into hashed, size-checked, typed bytes in a temp file.

Every source is read exactly once. Sources with a known size (a path, bytes) are refused
before any byte is written when they break a limit; streams are refused as soon as they
cross one, and their partial temp file is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import threading
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

from filetier.config import Settings
from filetier.digest import (
    CHUNK_SIZE,
    SNIFF_BYTES,
    TEXT_TYPES,
    Progress,
    StreamDigest,
    copy_and_hash,
    hash_file,
    sniff_mime,
)
from filetier.diskcap import check_space
from filetier.errors import (
    FileTooLargeError,
    InsufficientSpaceError,
    InvalidInputError,
    InvalidMetadataError,
    SourceNotAFileError,
    SourceNotFoundError,
    StorageUnavailableError,
    TypeNotAllowedError,
)
from filetier.finishing import until_done
from filetier.modes import FILE_MODE, write_all

UploadSource = (
    str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes] | AsyncIterable[bytes]
)

MAX_METADATA_BYTES = 64 * 1024
MAX_METADATA_DEPTH = 16
# Sniffed types this generic say nothing about the content; the caller's type is kept.
_GENERIC_TYPES = frozenset({"application/octet-stream", "text/plain"})
_SPACE_CHECK_EVERY = 64 * 1024 * 1024


def validate_metadata(metadata: Any) -> dict[str, Any]:
    """User metadata must be a small JSON object of bounded depth."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidMetadataError(f"metadata must be a JSON object, not {type(metadata).__name__}")

    def depth(value: Any, level: int = 1) -> int:
        if level > MAX_METADATA_DEPTH:
            return level
        if isinstance(value, dict):
            return max((depth(v, level + 1) for v in value.values()), default=level)
        if isinstance(value, list):
            return max((depth(v, level + 1) for v in value), default=level)
        return level

    def has_nul(value: Any) -> bool:
        if isinstance(value, str):
            return "\x00" in value
        if isinstance(value, dict):
            return any(has_nul(k) or has_nul(v) for k, v in value.items())
        if isinstance(value, list):
            return any(has_nul(v) for v in value)
        return False

    if depth(metadata) > MAX_METADATA_DEPTH:
        raise InvalidMetadataError(f"metadata is nested deeper than {MAX_METADATA_DEPTH} levels")
    if has_nul(metadata):
        # PostgreSQL's JSONB cannot hold U+0000; refuse it everywhere, not only there.
        raise InvalidMetadataError("metadata keys and values must not contain NUL characters")
    try:
        encoded = json.dumps(metadata, allow_nan=False, ensure_ascii=False)
        size = len(encoded.encode())
    except UnicodeEncodeError:
        raise InvalidMetadataError("metadata contains text that is not valid Unicode") from None
    except (TypeError, ValueError) as exc:
        raise InvalidMetadataError(f"metadata is not JSON-serialisable: {exc}") from None
    if size > MAX_METADATA_BYTES:
        raise InvalidMetadataError(
            f"metadata is {size} bytes as JSON; the limit is {MAX_METADATA_BYTES}"
        )
    parsed: dict[str, Any] = json.loads(encoded)
    return parsed


_MIME_RE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")


# Types whose files carry magic bytes puremagic recognises: content declared as one of
# these that did not sniff as it is not one (an executable "declared" a PDF).
_MAGIC_TYPE_PREFIXES = ("image/", "audio/", "video/", "font/")
_MAGIC_TYPES = frozenset(
    {
        "application/pdf",
        "application/zip",
        "application/gzip",
        "application/x-tar",
        "application/x-7z-compressed",
        "application/vnd.rar",
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
        "application/postscript",
        "application/rtf",
        "application/epub+zip",
    }
)


def _declared_fits(sniffed: str, declared: str) -> bool:
    """May a generic sniff be refined by what the caller declared?"""
    if sniffed == "text/plain":
        # Text stays text: a script declared as a PDF is still a script.
        return (
            declared.startswith("text/")
            or declared in TEXT_TYPES
            or declared.endswith(("+json", "+xml", "+yaml"))
            or declared in {"application/jsonl", "application/x-ndjson"}
        )
    if declared.startswith(_MAGIC_TYPE_PREFIXES) or declared in _MAGIC_TYPES:
        return False
    return not declared.startswith("application/vnd.openxmlformats")


# Control characters (C0, DEL, C1) and Unicode line and paragraph separators.
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def check_filename(filename: str) -> None:
    """A name a caller chose: refused, never silently changed, when it cannot be kept.

    Control characters are refused rather than replaced: a name with a newline or a
    terminal escape is a mistake or an attempt to forge a log line or a listing, and the
    caller can choose another. (A name taken from a source path is the file system's,
    not the caller's: :func:`name_of_path` replaces them instead.)
    """
    if "\x00" in filename or not filename.strip():
        raise InvalidInputError("filename must be non-empty and contain no NUL byte")
    control = _CONTROL_CHARS.search(filename)
    if control is not None:
        raise InvalidInputError(
            f"filename must not contain control characters such as newlines or tabs "
            f"(found U+{ord(control.group()):04X}); choose another name"
        )
    try:
        filename.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError("filename is not valid Unicode (it has lone surrogates)") from None
    if len(filename.encode("utf-8")) > 4096:
        raise InvalidInputError("filename is longer than 4096 bytes")


def name_of_path(path: Path) -> str:
    """A source file's name as text: undecodable bytes (kept by Python as surrogates)
    and control characters (a newline is legal in a POSIX name) become U+FFFD, so the
    name can be stored, served and logged."""
    name = path.name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return _CONTROL_CHARS.sub("\ufffd", name)


def effective_mime(sniffed: str, declared: str | None) -> str:
    """The sniffed type wins unless it is generic: a ``.pdf`` that is an executable stays
    an executable, whatever the caller or the name claims."""
    if declared is not None:
        declared = declared.strip().lower()
        # The type is later sent as a Content-Type header: no parameters, no control
        # characters, nothing that could smuggle a second header.
        if not _MIME_RE.match(declared):
            raise InvalidInputError(
                f"mime_type {declared[:80]!r} is not a MIME type such as application/pdf"
            )
    if declared and sniffed in _GENERIC_TYPES and _declared_fits(sniffed, declared):
        return declared
    return sniffed


def check_limits(settings: Settings, mime_type: str, size: int) -> None:
    limit = settings.size_limit_for(mime_type)
    if limit == 0:
        raise TypeNotAllowedError(f"files of type {mime_type} are not accepted by this store")
    if size > limit:
        raise FileTooLargeError(
            f"file is {size:,} bytes; the limit for {mime_type} is {limit:,} bytes"
        )


def translate_os_error(exc: OSError, what: str) -> Exception:
    import errno

    if exc.errno in {errno.ENOSPC, errno.EDQUOT}:
        return InsufficientSpaceError(f"disk full while writing {what}")
    return StorageUnavailableError(f"could not write {what}: {exc.strerror or exc}")


FileIdentity = tuple[int, int, int, int, int]


def file_identity(path: Path) -> FileIdentity:
    """Device, inode, size, mtime and ctime: any write to the file changes one of them
    (the ctime even when the mtime is put back)."""
    st = path.stat()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def source_changed(filename: str) -> InvalidInputError:
    return InvalidInputError(
        f"{filename} changed while it was being uploaded, so nothing was stored: "
        "upload it again once it is complete"
    )


@dataclass(slots=True)
class Staged:
    """Hashed bytes, held in a temp file (``temp``) or in memory (``data``)."""

    sha256: str
    size: int
    mime_type: str
    filename: str
    temp: Path | None = None
    data: bytes | None = None
    source_path: Path | None = None
    # Set when the caller's file itself is to be sent (hashed in place, not staged): its
    # identity when hashed, checked again after it was sent.
    source_identity: FileIdentity | None = None

    def discard(self) -> None:
        if self.temp is not None:
            self.temp.unlink(missing_ok=True)
            self.temp = None


def _new_temp(staging: Path) -> tuple[int, Path]:
    name = staging / f"{os.getpid()}-{os.urandom(8).hex()}.tmp"
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    return fd, name


def _not_a_file(path: Path, mode: int) -> str:
    import stat as stat_mod

    if stat_mod.S_ISDIR(mode):
        return f"not a regular file: {path} is a directory (upload the files inside it)"
    return f"not a regular file: {path}"


def source_path(source: str | os.PathLike[str]) -> tuple[Path, int]:
    path = Path(source).expanduser()
    if "\x00" in str(path):
        raise InvalidInputError("the source path contains a NUL byte")
    try:
        st = path.stat()
    except FileNotFoundError:
        raise SourceNotFoundError(f"no such file: {path}") from None
    except OSError as exc:
        raise SourceNotFoundError(f"cannot read {path}: {exc.strerror}") from None
    import stat as stat_mod

    if not stat_mod.S_ISREG(st.st_mode):
        raise SourceNotAFileError(_not_a_file(path, st.st_mode))
    return path, st.st_size


def read_head(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(SNIFF_BYTES)


_T = TypeVar("_T")


class StoppedByCancel(Exception):
    """Raised in a worker thread, between two chunks, once its caller was cancelled."""


async def in_stoppable_thread(work: Callable[[Progress], _T], progress: Progress | None) -> _T:
    """Run ``work(per_chunk)`` in a worker thread, and stop it when the caller is cancelled.

    A thread cannot be cancelled: ``asyncio.to_thread`` alone lets a cancelled caller's
    ``finally`` close the temp file's descriptor and unlink it while the thread still
    writes to that number, which the process may already have reused for another file.
    So ``per_chunk`` (the callback the copy loop calls after every chunk) raises once a
    stop flag is set, and a cancelled caller waits for the thread to end before its
    cleanup runs; the cancellation is then re-raised.
    """
    stop = threading.Event()

    def per_chunk(n: int) -> None:
        if stop.is_set():
            raise StoppedByCancel
        if progress is not None:
            progress(n)

    thread = asyncio.ensure_future(asyncio.to_thread(work, per_chunk))
    try:
        return await asyncio.shield(thread)
    except asyncio.CancelledError:
        stop.set()
        await until_done(thread)
        raise


async def hash_path(path: Path, progress: Progress | None) -> StreamDigest:
    return await in_stoppable_thread(lambda per_chunk: hash_file(path, per_chunk), progress)


async def stage_path(
    path: Path,
    *,
    size: int,
    mime_type: str,
    filename: str,
    settings: Settings,
    staging: Path,
    progress: Progress | None,
    fsync: bool,
) -> Staged:
    """Copy a local file into ``staging`` while hashing it: one pass.

    ``fsync`` when the temp file will become the stored object (a local primary); a temp
    file bound for a remote primary and the disk cache needs no durability of its own.
    """
    check_space(staging, size, settings.min_free_bytes)
    fd, temp = _new_temp(staging)
    try:
        limit = settings.size_limit_for(mime_type)
        digest = await in_stoppable_thread(
            lambda per_chunk: copy_and_hash(path, fd, limit=limit, progress=per_chunk, fsync=fsync),
            progress,
        )
    except OverflowError:
        temp.unlink(missing_ok=True)
        # The file grew while we read it; report the limit it crossed.
        check_limits(settings, mime_type, settings.size_limit_for(mime_type) + 1)
        raise  # pragma: no cover - check_limits always raises here
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise translate_os_error(exc, filename) from exc
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    return Staged(digest.sha256, digest.size, mime_type, filename, temp=temp, source_path=path)


def stage_bytes(
    data: bytes, *, filename: str, declared_mime: str | None, settings: Settings
) -> Staged:
    mime_type = effective_mime(sniff_mime(data[:SNIFF_BYTES], filename), declared_mime)
    check_limits(settings, mime_type, len(data))
    return Staged(hashlib.sha256(data).hexdigest(), len(data), mime_type, filename, data=data)


def write_staged_bytes(staged: Staged, staging: Path, settings: Settings, *, fsync: bool) -> None:
    """Give in-memory bytes a temp file so they can be published like any other."""
    assert staged.data is not None
    check_space(staging, staged.size, settings.min_free_bytes)
    fd, temp = _new_temp(staging)
    try:
        view = memoryview(staged.data)
        written = 0
        while written < len(view):
            written += os.write(fd, view[written : written + CHUNK_SIZE])
        if fsync:
            os.fsync(fd)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise translate_os_error(exc, staged.filename) from exc
    finally:
        os.close(fd)
    staged.temp = temp


async def iterate_file_object(handle: IO[bytes]) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(handle.read, CHUNK_SIZE):
        yield chunk


async def stage_stream(
    stream: AsyncIterable[bytes],
    *,
    filename: str,
    declared_mime: str | None,
    settings: Settings,
    staging: Path,
    progress: Progress | None,
    fsync: bool,
) -> Staged:
    """Write an async stream of unknown length to a temp file while hashing it."""
    check_space(staging, 0, settings.min_free_bytes)
    fd, temp = _new_temp(staging)
    digest = StreamDigest()
    mime_type: str | None = None
    limit = settings.max_file_size
    next_space_check = _SPACE_CHECK_EVERY
    try:
        async for chunk in stream:
            if not isinstance(chunk, bytes | bytearray | memoryview):
                raise InvalidInputError(
                    f"an upload stream must yield bytes, not {type(chunk).__name__}"
                )
            if len(chunk) >= 256 * 1024:
                # Hashed and written in a worker: a large chunk's SHA-256 on the loop
                # held up every small request behind it. Waited for even when
                # cancelled: it writes to ``fd``, closed below.
                work = asyncio.ensure_future(asyncio.to_thread(_hash_and_write, digest, fd, chunk))
                try:
                    await asyncio.shield(work)
                except asyncio.CancelledError:
                    await until_done(work)
                    raise
            else:
                digest.update(chunk)
                write_all(fd, chunk)
            if mime_type is None and len(digest.head) >= SNIFF_BYTES:
                mime_type = effective_mime(sniff_mime(digest.head, filename), declared_mime)
                limit = settings.size_limit_for(mime_type)
                check_limits(settings, mime_type, digest.size)
            if digest.size > limit:
                check_limits(settings, mime_type or "application/octet-stream", digest.size)
            if digest.size >= next_space_check:
                check_space(staging, 0, settings.min_free_bytes)
                next_space_check += _SPACE_CHECK_EVERY
            if progress:
                progress(len(chunk))
        if mime_type is None:
            mime_type = effective_mime(sniff_mime(digest.head, filename), declared_mime)
            check_limits(settings, mime_type, digest.size)
        if fsync:
            await asyncio.to_thread(os.fsync, fd)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise translate_os_error(exc, filename) from exc
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    return Staged(digest.sha256, digest.size, mime_type, filename, temp=temp)


def _hash_and_write(digest: StreamDigest, fd: int, chunk: bytes | memoryview) -> None:
    digest.update(chunk)
    write_all(fd, chunk)
