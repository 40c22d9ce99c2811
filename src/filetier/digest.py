"""Streaming SHA-256, size and type sniffing: one pass over the bytes.

Reads use one page-aligned buffer per copy (an anonymous ``mmap``): ``readinto`` a buffer
that is not page-aligned runs several times slower on Linux, and reusing one buffer keeps
peak memory flat however large the file is.
"""

from __future__ import annotations

import errno
import hashlib
import mimetypes
import mmap
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import puremagic

if TYPE_CHECKING:
    from hashlib import _Hash

CHUNK_SIZE = 1024 * 1024
SNIFF_BYTES = 8192

# Extension fallback is trusted only for text formats, and only when the bytes decode as
# UTF-8: a binary named ``.pdf`` without the PDF magic must not be labelled a PDF.
TEXT_TYPES = frozenset(
    {
        "application/json",
        "application/xml",
        "application/yaml",
        "application/x-yaml",
        "application/javascript",
        "application/x-sh",
        "application/toml",
        "application/sql",
    }
)
_EXTRA_TEXT_EXTENSIONS = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".toml": "application/toml",
    ".jsonl": "application/jsonl",
    ".ts": "text/x-typescript",
    ".rs": "text/x-rust",
    ".go": "text/x-go",
}

Progress = Callable[[int], None]
"""Called with the number of bytes just processed."""


def aligned_buffer(size: int = CHUNK_SIZE) -> mmap.mmap:
    """A page-aligned, reusable read buffer."""
    return mmap.mmap(-1, size)


def _looks_like_utf8_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multibyte character cut at the end of the sniffed window is still text.
        return exc.start >= len(head) - 3
    return True


# Formats puremagic recognises by their magic bytes but names no MIME type for.
_MIME_BY_MAGIC_NAME = {"ELF executable": "application/x-executable"}

PE_MIME = "application/vnd.microsoft.portable-executable"
DOS_MIME = "application/x-dosexec"
ZIP_MIME = "application/zip"
# Names that tools give the same content: libmagic (``file --mime-type``) calls every MZ
# executable application/x-dosexec, IANA registers PE files under PE_MIME, and Windows
# serves them as application/x-msdownload. A FILETIER_TYPE_LIMITS entry for any of them
# covers all of them (see ``Settings.size_limit_for``).
_SAME_TYPE = (frozenset({PE_MIME, DOS_MIME, "application/x-msdownload"}),)

# OOXML documents are ZIP packages with a [Content_Types].xml part and their main part
# under a known folder; the folder, not the file name, says which kind.
_OOXML_BY_FOLDER = {
    b"word/": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    b"xl/": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    b"ppt/": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}
# ZIP containers that name their type in a first, stored entry called "mimetype".
_MIMETYPE_ENTRY_TYPES = ("application/epub+zip", "application/vnd.oasis.opendocument.")
_ZIP_LOCAL_HEADER = b"PK\x03\x04"


def mime_aliases(mime_type: str) -> frozenset[str]:
    """Every name of ``mime_type``'s content type, itself included."""
    for family in _SAME_TYPE:
        if mime_type in family:
            return family
    return frozenset({mime_type})


def _zip_entries(head: bytes) -> list[tuple[bytes, bytes]]:
    """(name, first stored bytes) of the ZIP local file headers within ``head``."""
    entries = []
    at = head.find(_ZIP_LOCAL_HEADER)
    while at >= 0 and at + 30 <= len(head):
        name_len = int.from_bytes(head[at + 26 : at + 28], "little")
        extra_len = int.from_bytes(head[at + 28 : at + 30], "little")
        name = head[at + 30 : at + 30 + name_len]
        data_at = at + 30 + name_len + extra_len
        entries.append((name, head[data_at : data_at + 80]))
        at = head.find(_ZIP_LOCAL_HEADER, at + 30 + name_len)
    return entries


def _zip_type(head: bytes) -> str:
    """The type of a ZIP container from the entries in its first bytes, never its name.

    A ZIP whose first entries do not show it to be an OOXML document, an OpenDocument or
    EPUB (a "mimetype" entry), or a Java archive is application/zip, whatever it is
    called: otherwise ``FILETIER_TYPE_LIMITS`` for zips is bypassed by naming one .docx.
    """
    entries = _zip_entries(head)
    names = [name for name, _ in entries]
    if entries and entries[0][0] == b"mimetype":
        declared = entries[0][1].split(b"PK", 1)[0].decode("ascii", "replace").strip()
        if declared.startswith(_MIMETYPE_ENTRY_TYPES) and _looks_like_mime(declared):
            return declared
    if b"[Content_Types].xml" in names:
        for folder, mime in _OOXML_BY_FOLDER.items():
            if any(name.startswith(folder) for name in names):
                return mime
    if b"META-INF/MANIFEST.MF" in names:
        return "application/java-archive"
    return ZIP_MIME


def _looks_like_mime(value: str) -> bool:
    kind, slash, sub = value.partition("/")
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789.+-")
    return bool(slash and kind and sub) and set(kind + sub) <= allowed


def _executable_type(head: bytes) -> str | None:
    """PE_MIME for any binary that starts ``MZ`` (a PE file, or a DOS program, which
    Windows runs all the same), whatever its name; None for anything else."""
    if head.startswith(b"MZ") and not _looks_like_utf8_text(head[:SNIFF_BYTES]):
        return PE_MIME
    return None


_Group = tuple[int, frozenset[bytes]]  # (end, signatures): one length at one offset
_Offset = tuple[int, int, frozenset[bytes], list[_Group]]  # start, stop, prefixes, groups


def _magic_index() -> tuple[int, int, list[_Offset], list[tuple[int, int, frozenset[bytes]]]]:
    """puremagic's signatures grouped by (offset, length): one slice and one set lookup
    per group instead of a Python loop over every signature (~1,400 of them). Header
    groups are gathered by offset behind the prefixes of their shortest length there, so
    bytes that match nothing (most uploads) cost one lookup per offset (~50), not one
    per group (~140)."""
    from puremagic import main as pm

    def grouped(rows: Any) -> list[tuple[int, int, frozenset[bytes]]]:
        groups: dict[tuple[int, int], set[bytes]] = {}
        for row in rows:
            groups.setdefault((row.offset, len(row.byte_match)), set()).add(row.byte_match)
        return [(off, off + n, frozenset(sigs)) for (off, n), sigs in groups.items()]

    by_offset: dict[int, list[tuple[int, frozenset[bytes]]]] = {}
    for start, end, signatures in grouped(pm.magic_header_array):
        by_offset.setdefault(start, []).append((end, signatures))
    heads: list[_Offset] = []
    for start, groups in by_offset.items():
        shortest = min(end for end, _ in groups) - start
        prefixes = frozenset(sig[:shortest] for _, sigs in groups for sig in sigs)
        heads.append((start, start + shortest, prefixes, groups))
    return pm.max_head, pm.max_foot, heads, grouped(pm.magic_footer_array)


_MAGIC_INDEX = _magic_index()


def _may_have_magic(data: bytes) -> bool:
    """False only when puremagic would find no magic bytes in ``data``: every match it
    reports with bytes starts from a header or footer signature (multi-part ones only
    extend those), looked for in the same header and footer slices it takes. Most
    uploads (text, random-looking data) are then settled without calling it at all."""
    max_head, max_foot, heads, feet = _MAGIC_INDEX
    header, footer = data[:max_head], data[-max_foot:]
    size = len(header)
    for start, stop, prefixes, groups in heads:
        if stop <= size and header[start:stop] in prefixes:
            for end, signatures in groups:
                if end <= size and header[start:end] in signatures:
                    return True
    for start, end, signatures in feet:
        if (footer[start:end] if end != 0 else footer[start:]) in signatures:
            return True
    return False


def sniff_mime(head: bytes, filename: str | None = None) -> str:
    """The MIME type of a file from its first bytes; the name only breaks ties for text."""
    if head.startswith((_ZIP_LOCAL_HEADER, b"PK\x05\x06")):
        return _zip_type(head[:SNIFF_BYTES])
    executable = _executable_type(head)
    if executable is not None:
        return executable
    if head and _may_have_magic(head[:SNIFF_BYTES]):
        try:
            matches = puremagic.magic_string(head[:SNIFF_BYTES], filename or "")
        except (puremagic.PureError, ValueError):
            matches = []
        for match in matches:
            # A match without magic bytes is puremagic guessing from the name alone.
            if not match.byte_match:
                continue
            # Matches come best first; some good ones carry no MIME type, and the next
            # may be a worse guess ("\x7fELF" is best, then "ELF" at offset 1: AppImage).
            mime = match.mime_type or _MIME_BY_MAGIC_NAME.get(match.name)
            if mime:
                return str(mime)
    if not _looks_like_utf8_text(head[:SNIFF_BYTES]):
        return "application/octet-stream"
    if filename:
        suffix = Path(filename).suffix.lower()
        guessed = _EXTRA_TEXT_EXTENSIONS.get(suffix) or mimetypes.guess_type(filename)[0]
        if guessed and (
            guessed.startswith("text/") or guessed in TEXT_TYPES or suffix in _EXTRA_TEXT_EXTENSIONS
        ):
            return guessed
    return "text/plain"


@dataclass
class StreamDigest:
    """SHA-256 and size accumulated over a stream; keeps the first bytes for sniffing."""

    _hash: _Hash = field(default_factory=hashlib.sha256)
    size: int = 0
    head: bytes = b""

    def update(self, chunk: bytes | memoryview) -> None:
        self._hash.update(chunk)
        self.size += len(chunk)
        if len(self.head) < SNIFF_BYTES:
            self.head += bytes(chunk[: SNIFF_BYTES - len(self.head)])

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


def hash_file(path: Path, progress: Progress | None = None) -> StreamDigest:
    """Hash a local file in one read pass (blocking: run it in a worker thread)."""
    digest = StreamDigest()
    buf = aligned_buffer()
    view = memoryview(buf)
    try:
        with path.open("rb", buffering=0) as src:
            while n := src.readinto(buf):
                digest.update(view[:n])
                if progress:
                    progress(n)
    finally:
        del view, buf  # freed by refcount; close() fails while slices are alive
    return digest


# copy_file_range refusals that sendfile handles (cross-device on old kernels, filesystems
# without support).
_NO_KERNEL_COPY = frozenset({errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP})


def copy_and_hash(
    src: Path | int,
    dst_fd: int,
    *,
    limit: int | None = None,
    progress: Progress | None = None,
    fsync: bool = False,
) -> StreamDigest:
    """Copy ``src`` (a path or an open fd) to ``dst_fd`` while hashing: one pass.

    Stops with :class:`OverflowError` as soon as more than ``limit`` bytes were read, so
    an oversized file is refused without being written in full. Blocking.
    """
    digest = StreamDigest()
    buf = aligned_buffer()
    view = memoryview(buf)
    src_fd = os.open(src, os.O_RDONLY | os.O_CLOEXEC) if isinstance(src, Path) else src
    try:
        while n := os.readv(src_fd, [buf]):
            chunk = view[:n]
            digest.update(chunk)
            if limit is not None and digest.size > limit:
                raise OverflowError(digest.size)
            written = 0
            while written < n:
                written += os.write(dst_fd, chunk[written:])
            if progress:
                progress(n)
        if fsync:
            os.fsync(dst_fd)
    finally:
        del view, buf
        if isinstance(src, Path):
            os.close(src_fd)
    return digest


COPY_STEP = 8 * 1024 * 1024


def copy_exact(src: Path, dst_fd: int, size: int, *, progress: Progress | None = None) -> int:
    """Copy ``size`` bytes of ``src`` to ``dst_fd`` in the kernel (``copy_file_range``,
    else ``sendfile``), without hashing: only for a copy this process has just hashed.

    Where the filesystem shares blocks (XFS, btrfs: ``FICLONE``) the copy is a reflink:
    no bytes move, and the two files stay independent (a write to either one gets its
    own blocks), so editing a delivered file never changes the cache copy it came from.

    Returns the bytes copied; fewer than ``size`` means the source was shorter. Blocking.
    """
    src_fd = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    try:
        cloned = _clone(src_fd, dst_fd, size)
        if cloned is not None:
            if progress and cloned:
                progress(cloned)
            return cloned
        return _kernel_copy(src_fd, dst_fd, size, progress)
    finally:
        os.close(src_fd)


# ioctl(dst, FICLONE, src) from <linux/fs.h>: share all of src's blocks with empty dst.
FICLONE = 0x40049409
# What an ioctl answers where cloning cannot be done: another filesystem (EXDEV), one
# without shared blocks (EOPNOTSUPP, ext4; ENOTTY, tmpfs), or no such ioctl at all.
_NO_CLONE = frozenset({errno.EXDEV, errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL, errno.ENOSYS})


def _clone(src_fd: int, dst_fd: int, size: int) -> int | None:
    """Reflink ``src_fd`` into the empty ``dst_fd``; the bytes now in it (at most
    ``size``), or None where the filesystem cannot share blocks."""
    if size == 0 or not hasattr(os, "copy_file_range"):  # Linux only, like FICLONE
        return None
    import fcntl

    try:
        fcntl.ioctl(dst_fd, FICLONE, src_fd)
    except OSError as exc:
        if exc.errno in _NO_CLONE:
            return None
        raise
    length = os.fstat(dst_fd).st_size
    if length > size:  # a longer source: deliver what was asked, as the copy would
        os.ftruncate(dst_fd, size)
    return min(length, size)


def _kernel_copy(src_fd: int, dst_fd: int, size: int, progress: Progress | None) -> int:
    copied = 0
    kernel_copy = getattr(os, "copy_file_range", None)
    while copied < size:
        step = min(COPY_STEP, size - copied)
        try:
            if kernel_copy is not None:
                n = kernel_copy(src_fd, dst_fd, step, copied, copied)
            else:
                n = os.sendfile(dst_fd, src_fd, copied, step)
        except OSError as exc:
            if kernel_copy is None or exc.errno not in _NO_KERNEL_COPY:
                raise
            kernel_copy = None  # e.g. across filesystems on an old kernel: sendfile
            continue
        if n == 0:
            break
        copied += n
        if progress:
            progress(n)
    return copied
