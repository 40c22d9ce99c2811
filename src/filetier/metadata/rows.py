"""Rows as filetier's values: file records, blob rows, new ids and timestamps, and the
ORDER BY of a listing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from uuid6 import uuid7

from filetier.metadata.schema import file_metadata
from filetier.models import FileRecord, FileSort


def new_id() -> UUID:
    # Time-ordered keys: batched inserts into a B-tree stay at its right edge.
    return UUID(bytes=uuid7().bytes)


def record_from_row(row: RowMapping) -> FileRecord:
    return FileRecord(
        file_id=row["file_id"],
        owner=row["owner"],
        filename=row["original_filename"],
        size=row["file_size"],
        mime_type=row["mime_type"],
        sha256=row["file_hash"],
        storage_key=row["supabase_storage_path"],
        provider_file_ids=row["provider_file_ids"] or {},
        metadata=row["metadata"] or {},
        upload_date=row["upload_date"],
        last_accessed=row["last_accessed"],
        access_count=row["access_count"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


@dataclass(frozen=True, slots=True)
class BlobRow:
    sha256: str
    size: int
    storage_key: str
    status: str
    created_at: datetime
    last_verified_at: datetime | None = None
    # The object's modification time when filetier last wrote or hashed it.
    object_modified_at: datetime | None = None


def blob_of(row: RowMapping) -> BlobRow:
    return BlobRow(
        row["sha256"],
        row["size"],
        row["storage_key"],
        row["status"],
        row["created_at"],
        row["last_verified_at"],
        row["object_modified_at"],
    )


def file_order(sort: FileSort) -> list[sa.ColumnElement[Any]]:
    """ORDER BY for a listing: the key, then newest first, then the id, so that pages
    never repeat or skip a row when keys tie."""
    f = file_metadata.c
    column: sa.ColumnElement[Any] = {
        "name": f.original_filename,
        "size": f.file_size,
        "type": f.mime_type,
        "uploaded": f.created_at,
        "accessed": f.last_accessed,
    }[sort.lstrip("-")]
    keyed = column.desc().nulls_last() if sort.startswith("-") else column.asc().nulls_first()
    return [keyed, f.created_at.desc(), f.file_id.desc()]
