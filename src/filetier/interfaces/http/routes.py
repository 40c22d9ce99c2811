"""The /v1 endpoints: parse the request, call the owner's FileStore view, answer.

Every endpoint works on ``runtime.store_for(request)``, the store as seen by the owner the
bearer token resolved to, so another owner's file is simply not found (404), never
forbidden: its existence is not revealed.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from email.utils import format_datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive

from filetier.errors import FileTooLargeError, InvalidInputError, InvalidMetadataError
from filetier.interfaces.common.ranges import (
    UNSATISFIABLE,
    ByteRange,
    not_modified,
    parse_range,
    range_applies,
    strong_etag,
)
from filetier.interfaces.http.content import CHUNK_SIZE, ContentReader, find_record
from filetier.interfaces.http.errors import error_response
from filetier.interfaces.http.headers import (
    content_disposition,
    filename_from_disposition,
    latin1_to_text,
    repr_digest,
)
from filetier.interfaces.http.multipart import ENVELOPE_ALLOWANCE, boundary_of, read_file_part
from filetier.interfaces.http.openapi import OFFSET_MAX
from filetier.interfaces.http.params import (
    check_keys,
    int_param,
    json_object,
    loads_json,
    only_params,
    require_unicode,
    runtime_of,
    text_param,
)
from filetier.interfaces.http.runtime import Runtime
from filetier.models import FileRecord, UploadResult
from filetier.providers.uploads import DEFAULT_PURPOSE
from filetier.store import FileStore

FILENAME_MAX = 1024
LIMIT_MAX = 1000
_MIME_RE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
_GENERIC_BODY_TYPES = frozenset(
    {"application/octet-stream", "application/x-www-form-urlencoded", "multipart/form-data"}
)


def _record_json(record: FileRecord) -> dict[str, Any]:
    # The storage key is an internal object name: clients address files by id only.
    return record.model_dump(mode="json", exclude={"storage_key"})


def _created(result: UploadResult) -> JSONResponse:
    return JSONResponse(
        result.model_dump(mode="json"),
        status_code=201,
        headers={"Location": f"/v1/files/{result.file_id}"},
    )


def _file_name(name: str) -> str:
    if len(name) > FILENAME_MAX:
        raise InvalidInputError(f"a file name may have at most {FILENAME_MAX} characters")
    return name


# -- upload -------------------------------------------------------------------------------


async def _body_chunks(receive: Receive, limit: int) -> AsyncIterator[bytes]:
    """The request body as ~1 MiB chunks; stops with FileTooLargeError past ``limit``.

    Nothing is read beyond the first chunk that crosses the limit: the 413 goes out while
    the client is still sending, and the server closes the connection after it.
    """
    pending = bytearray()
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InvalidInputError("the client disconnected before the upload was complete")
        chunk: bytes = message.get("body", b"")
        received += len(chunk)
        if received > limit:
            raise FileTooLargeError(
                f"the upload is larger than this store's limit of {limit:,} bytes"
            )
        more = message.get("more_body", False)
        if not pending and (len(chunk) >= CHUNK_SIZE or not more):
            if chunk:
                yield chunk
        else:
            pending += chunk
            if len(pending) >= CHUNK_SIZE or not more:
                if pending:
                    yield bytes(pending)
                pending.clear()
        if not more:
            return


def _declared_type(request: Request) -> str | None:
    explicit = request.query_params.get("mime_type")
    if explicit is not None:
        return explicit  # validated by the store: a bad one is a 400
    header = request.headers.get("content-type", "")
    declared = header.split(";", 1)[0].strip().lower()
    # A Content-Type that is not a plain type/subtype is ignored, not refused: many
    # clients send their default for any body.
    if declared in _GENERIC_BODY_TYPES or not _MIME_RE.match(declared):
        return None
    return declared


def _plain_type(declared: str | None) -> str | None:
    """A declared type worth passing on as a hint: generic ones are left to sniffing."""
    if declared is None or declared in _GENERIC_BODY_TYPES or not _MIME_RE.match(declared):
        return None
    return declared


def _metadata(request: Request) -> dict[str, Any] | None:
    raw = request.headers.get("x-filetier-metadata")
    if raw is None or not raw.strip():
        return None
    try:
        value = loads_json(latin1_to_text(raw), "X-Filetier-Metadata")
    except InvalidInputError as exc:
        raise InvalidMetadataError(f"{exc}; it must be a JSON object") from None
    if not isinstance(value, dict):
        raise InvalidMetadataError("X-Filetier-Metadata must be a JSON object")
    require_unicode(value, "X-Filetier-Metadata")
    return value


async def upload_file(request: Request) -> Response:
    only_params(request, "filename", "mime_type")
    store = runtime_of(request).store_for(request)
    limit = store.settings.max_file_size
    boundary = boundary_of(request.headers.get("content-type", ""))
    # A form's boundaries and part headers do not count against the file's limit.
    envelope = ENVELOPE_ALLOWANCE if boundary is not None else 0
    length = request.headers.get("content-length")
    if length is not None:
        if not length.strip().isdigit():
            raise InvalidInputError("Content-Length must be a number of bytes")
        if int(length) - envelope > limit:
            raise FileTooLargeError(
                f"the upload is {int(length):,} bytes; this store's limit is {limit:,} bytes"
            )
        await store.check_quota(max(0, int(length) - envelope))  # before a byte is read
    name = request.query_params.get("filename")
    if boundary is not None:
        # A form upload: the file part is stored, with its own name and declared type.
        part = await read_file_part(_body_chunks(request.receive, limit + envelope), boundary)
        name = name if name is not None else part.filename
        declared = request.query_params.get("mime_type") or _plain_type(part.content_type)
        chunks: AsyncIterator[bytes] = part.chunks
    else:
        if name is None:
            name = filename_from_disposition(
                latin1_to_text(request.headers.get("content-disposition", ""))
            )
        declared = _declared_type(request)
        chunks = _body_chunks(request.receive, limit)
    filename = _file_name(name) if name is not None else None
    result = await store.upload_file(
        chunks,
        filename=filename,
        mime_type=declared,
        metadata=_metadata(request),
    )
    # ``deduplicated`` is already relative to this owner (the write path's rule: another
    # owner's copy of the same bytes is never revealed to a non-operator).
    return _created(result)


async def upload_by_hash(request: Request) -> Response:
    only_params(request)
    store = runtime_of(request).store_for(request)
    body = await json_object(request)
    check_keys(
        body,
        {"sha256", "size", "filename", "mime_type", "metadata"},
        {"sha256", "size", "filename"},
    )
    sha256, size, filename = body["sha256"], body["size"], body["filename"]
    mime_type, metadata = body.get("mime_type"), body.get("metadata")
    if not isinstance(sha256, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise InvalidInputError("sha256 must be 64 hexadecimal characters")
    if isinstance(size, float) and size.is_integer():
        size = int(size)  # JSON does not tell 3 from 3.0
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise InvalidInputError("size must be a non-negative integer")
    if not isinstance(filename, str):
        raise InvalidInputError("filename must be a string")
    if mime_type is not None and not isinstance(mime_type, str):
        raise InvalidInputError("mime_type must be a string")
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidMetadataError("metadata must be a JSON object")
    result = await store.link_existing(
        sha256=sha256.lower(),
        size=size,
        filename=_file_name(filename),
        mime_type=mime_type,
        metadata=metadata,
    )
    if result is None:
        return error_response(
            404,
            "NotFoundError",
            "no content with this SHA-256 and size is stored for you: send the bytes with "
            "POST /v1/files",
        )
    return _created(result)


# -- read, list, delete -------------------------------------------------------------------


async def list_files(request: Request) -> Response:
    only_params(request, "name", "type", "sha256", "limit", "offset")
    store = runtime_of(request).store_for(request)
    page = await store.list(
        name_contains=text_param(request, "name"),
        mime_type=text_param(request, "type"),
        sha256=text_param(request, "sha256"),
        limit=int_param(request, "limit", 100, LIMIT_MAX),
        offset=int_param(request, "offset", 0, OFFSET_MAX),
    )
    body = page.model_dump(mode="json", exclude={"items"})
    body["items"] = [_record_json(item) for item in page.items]
    return JSONResponse(body)


async def get_file(request: Request) -> Response:
    only_params(request)
    store = runtime_of(request).store_for(request)
    record = await store.stat(request.path_params["file_id"])
    body = _record_json(record)
    body["provider_copies"] = [
        c.model_dump(mode="json") for c in await store.provider_copies(record.file_id)
    ]
    return JSONResponse(body)


async def delete_file(request: Request) -> Response:
    only_params(request)
    store = runtime_of(request).store_for(request)
    await store.delete(request.path_params["file_id"])
    return Response(status_code=204)


async def provider_file_id(request: Request) -> Response:
    only_params(request)
    store = runtime_of(request).store_for(request)
    body = await json_object(request)
    check_keys(body, {"provider", "purpose", "verify"}, {"provider"})
    provider, purpose, verify = body["provider"], body.get("purpose"), body.get("verify", False)
    if not isinstance(provider, str) or not provider.strip():
        raise InvalidInputError("provider must be a non-empty string such as 'kimi'")
    if purpose is not None and (not isinstance(purpose, str) or not purpose.strip()):
        raise InvalidInputError("purpose must be a non-empty string")
    if not isinstance(verify, bool):
        raise InvalidInputError("verify must be true or false")
    result = await store.get_provider_file_id(
        request.path_params["file_id"],
        provider.strip(),
        purpose.strip() if purpose else DEFAULT_PURPOSE,
        verify=verify,
    )
    return JSONResponse(result.model_dump(mode="json"))


# -- content ------------------------------------------------------------------------------


def _content_headers(record: FileRecord) -> dict[str, str]:
    return {
        "etag": strong_etag(record.sha256),
        "repr-digest": repr_digest(record.sha256),
        "accept-ranges": "bytes",
        "content-type": record.mime_type,
        "content-disposition": content_disposition(record.filename),
        "last-modified": format_datetime(record.upload_date, usegmt=True),
        "cache-control": "private, no-cache",
        # Uploaded bytes are served as a download, never interpreted by a browser.
        "x-content-type-options": "nosniff",
        "content-security-policy": "sandbox; default-src 'none'",
    }


async def file_content(request: Request) -> Response:
    only_params(request)
    runtime = runtime_of(request)
    store = runtime.store_for(request)
    record = await find_record(store, request.path_params["file_id"])
    return await serve_content(request, runtime, store, record)


async def serve_content(
    request: Request,
    runtime: Runtime,
    store: FileStore,
    record: FileRecord,
    *,
    bound_range: ByteRange | None = None,
    before_body: Callable[[], Awaitable[None]] | None = None,
    downloaded_by: str | None = None,
) -> Response:
    """A file's content as GET/HEAD answer: conditional, ranged, verified; the one code
    path for the authenticated route and download links.

    ``bound_range``: the only bytes this request may have (a range-bound link), sent as a
    206 whatever Range the client asks for. ``before_body`` runs only when a body is about
    to be sent (not for HEAD, 304 or 416), once its bytes are in hand: a single-use link
    is used up there.
    """
    headers = _content_headers(record)
    etag = headers["etag"]
    if not_modified(request.headers.get("if-none-match"), etag):
        keep = ("etag", "cache-control", "last-modified")
        return Response(status_code=304, headers={k: headers[k] for k in keep})
    if request.method == "HEAD":
        if bound_range is not None:
            headers["content-range"] = bound_range.content_range
        headers["content-length"] = str(bound_range.length if bound_range else record.size)
        return Response(status_code=206 if bound_range else 200, headers=headers)
    byte_range: ByteRange | None = bound_range
    requested = request.headers.get("range")
    if (
        bound_range is None
        and requested is not None
        and range_applies(request.headers.get("if-range"), etag)
    ):
        parsed = parse_range(requested, record.size)
        if parsed == UNSATISFIABLE:
            return error_response(
                416,
                "RangeNotSatisfiable",
                f"the file has {record.size} bytes; the range {requested[:80]!r} selects none",
                {"content-range": f"bytes */{record.size}", "accept-ranges": "bytes"},
            )
        if isinstance(parsed, ByteRange):
            byte_range = parsed
    if byte_range is not None:
        headers["content-range"] = byte_range.content_range
    reader = ContentReader(store, runtime.verified, runtime.read_ahead, runtime.large_bodies)
    return await reader.body(
        record,
        byte_range,
        status_code=206 if byte_range else 200,
        headers=headers,
        downloaded_by=downloaded_by,
        before_body=before_body,
    )


__all__ = [
    "delete_file",
    "file_content",
    "get_file",
    "list_files",
    "provider_file_id",
    "serve_content",
    "upload_by_hash",
    "upload_file",
]
