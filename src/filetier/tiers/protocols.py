"""Small Protocols for object stores: a backend implements the verbs it supports.

Code depends only on the verbs it calls, so the local directory, obstore's memory store
and an S3 bucket are interchangeable wherever they implement them. Keys are
``/``-separated relative names such as ``sha256/ab/cd/abcd…``.

Every implementation raises only filetier errors: a missing object is
:class:`filetier.errors.ObjectMissing`, any other failure
:class:`filetier.errors.StorageUnavailableError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    modified: datetime


@runtime_checkable
class Get(Protocol):
    def get_stream(self, key: str, chunk_size: int = ...) -> AsyncIterator[bytes | memoryview]:
        """Stream an object's bytes; raises ObjectMissing when absent.

        A chunk may be a memoryview of the client's own buffer, so nothing is copied
        on the way to the hash and the file."""
        ...


@runtime_checkable
class Head(Protocol):
    async def head(self, key: str) -> ObjectInfo | None:
        """Size and modification time, or None when absent."""
        ...


@runtime_checkable
class PutFile(Protocol):
    async def put_file(self, key: str, source: Path) -> bool:
        """Store a complete local file under ``key`` atomically, if absent.

        Returns True when this call wrote the object, False when it already existed
        (content addressing makes the existing object identical). ``source`` is left
        in place; the caller owns it.
        """
        ...


@runtime_checkable
class PutBytes(Protocol):
    async def put_bytes(self, key: str, data: bytes) -> bool:
        """:meth:`PutFile.put_file` of bytes already in memory: a remote store is sent
        them in one request, with no staging file written and read back."""
        ...


@runtime_checkable
class Delete(Protocol):
    async def delete(self, key: str) -> None:
        """Remove an object; absent objects are not an error."""
        ...


@runtime_checkable
class ListObjects(Protocol):
    def list_objects(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every object under ``prefix``."""
        ...


@runtime_checkable
class LocalPath(Protocol):
    """A store whose objects are plain local files that can be read in place."""

    def local_path(self, key: str) -> Path: ...

    def staging_dir(self) -> Path:
        """A directory on the same filesystem, for temp files that will be published."""
        ...

    def publish_bytes(self, key: str, data: bytes) -> bool:
        """Publish small in-memory bytes as ``key`` if absent (blocking); True if written."""
        ...

    def make_durable(self, keys: Sequence[str]) -> list[OSError | None]:
        """Make published objects and their directory entries durable (blocking): one
        outcome per key, None when that object is durable."""
        ...


@runtime_checkable
class PartialUploads(Protocol):
    """A store that can leave partial writes behind when a writer dies mid-write."""

    async def partial_uploads(self) -> list[ObjectInfo]: ...

    async def remove_partial(self, key: str) -> None: ...


@runtime_checkable
class PrimaryStore(Get, Head, PutFile, Delete, ListObjects, Protocol):
    """Everything the primary tier needs."""

    @property
    def name(self) -> str: ...

    async def quarantine(self, key: str) -> str | None:
        """Move a corrupt object aside (kept for inspection); returns where, or None."""
        ...

    async def close(self) -> None: ...
