"""The caller's files as MCP resources: ``resources/list`` and ``filetier://files/{file_id}``.

``resources/list`` pages through the caller's own files (newest first, the cursor is an
offset). A read returns small files embedded (at most :data:`INLINE_MAX_BYTES`): UTF-8
text or JSON as text with its own MIME type, anything else as a blob. A larger file is a
short JSON description with, over HTTP, a download link (``url``) the client fetches
itself, and over stdio only the ``download_file`` tool to write it to disk: a resource
read lands in the model's context, so large content never does.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.types import ListResourcesResult, Resource, ResourceTemplate

from filetier.errors import InvalidInputError
from filetier.interfaces.mcp.results import RESOURCE_TEMPLATE, content_path, resource_uri
from filetier.models import FileRecord
from filetier.store import FileStore

INLINE_MAX_BYTES = 64 * 1024
INLINE_TEXT_MAX_BYTES = INLINE_MAX_BYTES
RESOURCES_PAGE = 100
_PREFIX = RESOURCE_TEMPLATE.split("{", 1)[0]  # "filetier://files/"

FILE_TEMPLATE = ResourceTemplate(
    uri_template=RESOURCE_TEMPLATE,
    name="file",
    title="Stored file",
    description=(
        "A stored file by id: small files (up to 64 KiB) embedded, text as text; larger "
        "ones a JSON description with its size, type, SHA-256 and, over HTTP, a link."
    ),
)


def file_id_of(uri: str) -> str | None:
    """The file id in a ``filetier://files/{file_id}`` URI; None for any other URI."""
    if not uri.startswith(_PREFIX):
        return None
    rest = uri[len(_PREFIX) :]
    return rest if rest and "/" not in rest else None


def is_inline_text(record: FileRecord) -> bool:
    mime = record.mime_type.split(";", 1)[0].strip().lower()
    textual = mime.startswith("text/") or mime == "application/json" or mime.endswith("+json")
    return textual and record.size <= INLINE_TEXT_MAX_BYTES


async def list_file_resources(store: FileStore, cursor: str | None) -> ListResourcesResult:
    """One page of the caller's files as resources; ``next_cursor`` continues."""
    offset = 0
    if cursor:
        if not cursor.isdigit() or len(cursor) > 13:
            raise InvalidInputError(f"{cursor[:40]!r} is not a cursor this server gave")
        offset = int(cursor)
    page = await store.list(limit=RESOURCES_PAGE, offset=offset)
    return ListResourcesResult(
        resources=[
            Resource(
                uri=resource_uri(record.file_id),
                name=record.filename,
                mime_type=record.mime_type,
                size=record.size,
            )
            for record in page.items
        ],
        next_cursor=str(page.next_offset) if page.next_offset is not None else None,
    )


LinkMaker = Callable[[FileRecord], Awaitable[str]]


async def read_file_resource(
    store: FileStore, file_id: str, make_link: LinkMaker | None = None
) -> ReadResourceContents:
    """``make_link`` (over HTTP): a download link for a file too large to embed."""
    record = await store.stat(file_id)
    if record.size <= INLINE_MAX_BYTES:
        data = await store.read_bytes(record.file_id)
        if is_inline_text(record):
            try:
                return ReadResourceContents(
                    content=data.decode("utf-8"), mime_type=record.mime_type
                )
            except UnicodeDecodeError:
                pass  # labelled text but not UTF-8: its bytes, as a blob
        return ReadResourceContents(content=data, mime_type=record.mime_type)
    description: dict[str, object] = {
        "file_id": str(record.file_id),
        "filename": record.filename,
        "size": record.size,
        "mime_type": record.mime_type,
        "sha256": record.sha256,
        "uri": resource_uri(record.file_id),
    }
    if make_link is not None:
        description["url"] = await make_link(record)
        description["content_path"] = content_path(record.file_id)
        description["note"] = (
            f"Larger than {INLINE_MAX_BYTES // 1024} KiB, so not embedded: fetch the bytes "
            "from url (no token needed, expires); get_file_text returns a provider's text "
            "extraction."
        )
    else:
        description["note"] = (
            f"Larger than {INLINE_MAX_BYTES // 1024} KiB, so not embedded: write it to disk "
            "with the download_file tool; get_file_text returns a provider's text extraction."
        )
    return ReadResourceContents(
        content=json.dumps(description, indent=2), mime_type="application/json"
    )
