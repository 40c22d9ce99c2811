"""The resource template ``filetier://files/{file_id}``.

Small text files (at most :data:`INLINE_TEXT_MAX_BYTES`, ``text/*`` or JSON, valid UTF-8)
are returned as their text, with their own MIME type. Anything else is returned as a short
JSON description that says where the bytes are (the HTTP API's content path, or the
``download_file`` tool), never as base64: a resource read lands in the model's context.
"""

from __future__ import annotations

import json

from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.types import ResourceTemplate

from filetier.interfaces.mcp.results import RESOURCE_TEMPLATE, content_path, resource_uri
from filetier.models import FileRecord
from filetier.store import FileStore

INLINE_TEXT_MAX_BYTES = 64 * 1024
_PREFIX = RESOURCE_TEMPLATE.split("{", 1)[0]  # "filetier://files/"

FILE_TEMPLATE = ResourceTemplate(
    uri_template=RESOURCE_TEMPLATE,
    name="file",
    title="Stored file",
    description=(
        "A stored file by id: the text itself for small text or JSON files (up to 64 KiB), "
        "otherwise a JSON description with its size, type, SHA-256 and where to fetch the bytes."
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


async def read_file_resource(store: FileStore, file_id: str) -> ReadResourceContents:
    record = await store.stat(file_id)
    if is_inline_text(record):
        data = await store.read_bytes(record.file_id)
        try:
            return ReadResourceContents(content=data.decode("utf-8"), mime_type=record.mime_type)
        except UnicodeDecodeError:
            pass  # labelled text but not UTF-8: describe it instead
    description = {
        "file_id": str(record.file_id),
        "filename": record.filename,
        "size": record.size,
        "mime_type": record.mime_type,
        "sha256": record.sha256,
        "uri": resource_uri(record.file_id),
        "content_path": content_path(record.file_id),
        "note": (
            "Content not inlined (only UTF-8 text or JSON up to 64 KiB is). Fetch the bytes "
            "from the HTTP API at content_path, or write them to disk with the download_file "
            "tool; get_file_text returns a provider's text extraction."
        ),
    }
    return ReadResourceContents(
        content=json.dumps(description, indent=2), mime_type="application/json"
    )
