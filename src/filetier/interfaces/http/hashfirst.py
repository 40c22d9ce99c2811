"""Hash-first upload: a new file record for content the owner already stores.

A client sends ``{sha256, size, filename}`` before the body; when the content is there,
the record is created and no byte travels. Only content **this owner** already stores
counts: deduplicating against another owner's files would let anyone who knows (or
guesses) a hash learn that the content exists and then read it, the classic cross-user
deduplication leak. Other owners' copies are still shared on disk when the body is
uploaded; only the transfer is not skipped.

The record is created under the content lock, in the order ``FileStore`` uploads use: a
delete of the same content either sees the new row and keeps the object, or has removed
the object already and this call answers "send the bytes".
"""

from __future__ import annotations

from typing import Any

from filetier.ingest import check_filename, check_limits, effective_mime, validate_metadata
from filetier.models import UploadResult
from filetier.store import FileStore, storage_key


async def link_existing_content(
    store: FileStore,
    *,
    sha256: str,
    size: int,
    filename: str,
    mime_type: str | None,
    metadata: dict[str, Any] | None,
) -> UploadResult | None:
    """The new file's result, or None when the owner does not store this content."""
    meta = validate_metadata(metadata)
    check_filename(filename)
    async with store.content_locks.hold(sha256):
        page = await store.list(sha256=sha256, limit=1)
        existing = page.items[0] if page.items else None
        if existing is None or existing.size != size:
            return None
        # The stored copy must be one filetier can vouch for; a missing or damaged one
        # is set aside and the client told to send the bytes, which repair it.
        if not await store.vouch(sha256, size):
            return None
        mime = effective_mime(existing.mime_type, mime_type)
        check_limits(store.settings, mime, size)
        record = await store.repo.insert_file(
            owner=store.owner,
            filename=filename,
            size=size,
            mime_type=mime,
            sha256=sha256,
            storage_key=storage_key(sha256),
            metadata=meta,
            local_cache_path=None,
            quota=store.quota,
        )
    store.announce_files_changed()
    return UploadResult(
        file_id=record.file_id,
        sha256=sha256,
        size=size,
        mime_type=mime,
        filename=filename,
        deduplicated=True,
        bytes_written=0,
    )
