"""The caller's file records: file_info, list_files, delete_file."""

from __future__ import annotations

from typing import Annotated

from mcp.types import CallToolResult
from pydantic import Field

from filetier.catalog import LIST_OFFSET_MAX
from filetier.interfaces.mcp.context import (
    caller_store,
    remote_roots,
)
from filetier.interfaces.mcp.results import (
    FileInfo,
    FileList,
    answer,
    file_link,
)
from filetier.interfaces.mcp.tools.common import Ctx, FileId
from filetier.models import DeleteResult

# -- records -------------------------------------------------------------------------------


async def file_info(ctx: Ctx, file_id: FileId) -> Annotated[CallToolResult, FileInfo]:
    """A stored file's metadata, and the providers holding a copy."""
    store = caller_store(ctx)
    record = await store.stat(file_id)
    copies = await store.provider_copies(record.file_id)
    info = FileInfo.of(record, copies, remote=remote_roots(ctx) is not None)
    return answer(
        info,
        f"{record.filename}: {record.size:,} bytes, {record.mime_type}, uploaded "
        f"{record.upload_date:%Y-%m-%d %H:%M} UTC, {len(copies)} provider cop"
        + ("y" if len(copies) == 1 else "ies"),
        [file_link(record.file_id, record.filename, record.mime_type, record.size)],
    )


async def list_files(
    ctx: Ctx,
    name_contains: Annotated[str | None, Field(description="Name contains")] = None,
    mime_type: Annotated[str | None, Field(description="MIME type, or a family: image/*")] = None,
    sha256: Annotated[str | None, Field(description="Content hash")] = None,
    limit: Annotated[int, Field(ge=1, le=1000)] = 50,
    offset: Annotated[int, Field(ge=0, le=LIST_OFFSET_MAX, description="From next_offset")] = 0,
) -> Annotated[CallToolResult, FileList]:
    """List your files, newest first, with optional filters."""
    page = await caller_store(ctx).list(
        name_contains=name_contains, mime_type=mime_type, sha256=sha256, limit=limit, offset=offset
    )
    remote = remote_roots(ctx) is not None
    listed = FileList(
        items=[FileInfo.of(record, remote=remote) for record in page.items],
        total=page.total,
        offset=page.offset,
        limit=page.limit,
        next_offset=page.next_offset,
    )
    shown = f"{page.offset + 1}-{page.offset + len(page.items)}" if page.items else "none"
    more = f"; next offset {page.next_offset}" if page.next_offset is not None else ""
    return answer(
        listed,
        f"{page.total} file(s); showing {shown}{more}",
        [file_link(r.file_id, r.filename, r.mime_type, r.size) for r in page.items],
    )


async def delete_file(ctx: Ctx, file_id: FileId) -> DeleteResult:
    """Delete a stored file, with its provider copies. Cannot be undone."""
    return await caller_store(ctx).delete(file_id)
