"""Moving bytes: upload_file and download_file (to a path, inline, or as a link)."""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from mcp.types import CallToolResult
from pydantic import Field

from filetier.errors import (
    DestinationExistsError,
    FiletierError,
    FileTooLargeError,
    InvalidInputError,
    PathNotAllowedError,
    SourceNotFoundError,
)
from filetier.interfaces.common.links import mint_link
from filetier.interfaces.mcp.context import (
    app_state,
    caller_store,
    remote_roots,
    request_base,
)
from filetier.interfaces.mcp.progress import TransferProgress
from filetier.interfaces.mcp.results import (
    DownloadAnswer,
    UploadedFile,
    answer,
    file_link,
    resource_uri,
)
from filetier.interfaces.mcp.tools.common import Ctx
from filetier.store import FileStore

# What a remote caller is told when a path is refused: its own input and the rule, never a
# resolved path or the server's directories.
REMOTE_PATH_REFUSED = (
    "{what} {path!r} is not allowed: over HTTP, paths must stay inside your own folder on "
    "the server (relative paths are taken from it; no '..', no symbolic links out)."
)

DOWNLOAD_LINK_SECONDS = 3600  # download_file's link, for a caller that runs elsewhere


# -- upload / download ---------------------------------------------------------------------


async def upload_file(
    ctx: Ctx,
    path: Annotated[
        str | None,
        Field(
            description="Server file in the allowed roots (relative: from the first root; "
            "over HTTP, your folder)"
        ),
    ] = None,
    # Plain `str`, not `str | None`: the SDK JSON-decodes string arguments of any other
    # type, which would turn the text of a JSON document into an object. "" = not given.
    text: Annotated[str, Field(description="Small text content")] = "",
    content_base64: Annotated[str | None, Field(description="Small binary content, base64")] = None,
    filename: Annotated[str | None, Field(description="Name to record")] = None,
    mime_type: Annotated[str | None, Field(description="MIME type (default: sniffed)")] = None,
    metadata: Annotated[
        dict[str, Any] | None, Field(description="Small JSON object to keep")
    ] = None,
) -> Annotated[CallToolResult, UploadedFile]:
    """Store a file; returns its file id. One source: `path` (on the server, any size),
    or `text` / `content_base64` (inline, small)."""
    state = app_state(ctx)
    store = caller_store(ctx)
    given = [
        n
        for n, v in (("path", path), ("text", text or None), ("content_base64", content_base64))
        if v is not None
    ]
    if len(given) != 1:
        raise InvalidInputError(
            "give exactly one of path, text or content_base64"
            + (f" (got {', '.join(given)})" if given else "")
        )
    source: Literal["path", "text", "base64"]
    source_path: str | None = None
    if path is None:
        data, source = _inline_bytes(
            text or None, content_base64, state.settings.inline_upload_max_bytes
        )
        result = await store.upload_file(
            data,
            filename=filename or ("upload.txt" if source == "text" else "upload.bin"),
            mime_type=mime_type,
            metadata=metadata,
        )
    else:
        own = remote_roots(ctx)
        try:
            fd, resolved = (own or state.roots).open_source(path)
        except PathNotAllowedError as exc:
            # A remote caller learns nothing of the server's paths, only of its own input.
            reason = REMOTE_PATH_REFUSED.format(what="Source", path=path) if own else str(exc)
            raise PathNotAllowedError(
                f"{reason} Small content can be sent inline as text or content_base64."
            ) from None
        except SourceNotFoundError:
            if own is None:
                raise
            raise SourceNotFoundError(
                f"no regular file {path!r} in your folder on the server"
            ) from None
        source, source_path = "path", str(resolved)
        try:
            # The store reads the descriptor opened above, through its /proc link: a path
            # component swapped after the check cannot redirect the read.
            readable = _fd_path(fd) or resolved
            # Progress is a no-op unless the client asked for it (sent a progress token).
            async with TransferProgress(
                ctx.report_progress, os.fstat(fd).st_size, f"uploading {resolved.name}"
            ) as progress:
                result = await store.upload_file(
                    readable,
                    filename=filename or resolved.name,
                    mime_type=mime_type,
                    metadata=metadata,
                    progress=progress,
                )
        finally:
            os.close(fd)
    uploaded = UploadedFile(
        file_id=result.file_id,
        sha256=result.sha256,
        size=result.size,
        mime_type=result.mime_type,
        filename=result.filename,
        source=source,
        source_path=source_path,
        deduplicated=result.deduplicated,
        bytes_written=result.bytes_written,
        resource_uri=resource_uri(result.file_id),
    )
    return answer(
        uploaded,
        f"Stored {result.filename} ({result.size:,} bytes, {result.mime_type}) as {result.file_id}"
        + (" (content already stored)" if result.deduplicated else ""),
        [file_link(result.file_id, result.filename, result.mime_type, result.size)],
    )


def _inline_bytes(
    text: str | None, content_base64: str | None, limit: int
) -> tuple[bytes, Literal["text", "base64"]]:
    """The bytes of an inline upload, refused before decoding anything over ``limit``."""
    advice = (
        f"inline uploads are limited to {limit:,} bytes (FILETIER_INLINE_UPLOAD_MAX_BYTES); "
        "write the file under an allowed root and upload it by `path`"
    )
    if text is not None:
        # UTF-8 takes at least one byte per character: refuse huge text before encoding it.
        if len(text) > limit or len(data := text.encode("utf-8")) > limit:
            raise FileTooLargeError(f"text is larger than the inline limit: {advice}")
        return data, "text"
    encoded = "".join((content_base64 or "").split())
    if len(encoded) // 4 * 3 > limit + 2:
        raise FileTooLargeError(f"content_base64 decodes to more than the inline limit: {advice}")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError(
            "content_base64 is not valid base64 (standard alphabet, with padding)"
        ) from None
    if len(data) > limit:
        raise FileTooLargeError(f"content_base64 is larger than the inline limit: {advice}")
    return data, "base64"


def _fd_path(fd: int) -> Path | None:
    """A path that opens the same file as ``fd`` whatever happens to its name (Linux)."""
    link = Path(f"/proc/self/fd/{fd}")
    return link if link.exists() else None


async def download_file(
    ctx: Ctx,
    file_id: Annotated[str, Field(description="File id, or a provider's file id")],
    destination: Annotated[
        str | None,
        Field(
            description="File or directory in the allowed roots (relative: from the first "
            "root; over HTTP, your folder)"
        ),
    ] = None,
    overwrite: Annotated[
        bool,
        Field(description="Replace a different file there"),
    ] = False,
) -> Annotated[CallToolResult, DownloadAnswer]:
    """Write a stored file to the server's disk, SHA-256 checked. Over HTTP without a
    `destination`: a download link (`url`, valid an hour) instead."""
    store = caller_store(ctx)
    own = remote_roots(ctx)
    if own is not None and destination is None:
        return await _download_link(ctx, store, file_id)
    # Reading the record first costs nothing extra: the download reuses it.
    total = await _size_of(store, file_id)
    async with TransferProgress(ctx.report_progress, total, f"downloading {file_id}") as progress:
        try:
            result = await store.download(
                file_id,
                destination,
                downloaded_by="mcp",
                progress=progress,
                overwrite=overwrite,
                roots=own,
            )
        except (PathNotAllowedError, DestinationExistsError) as exc:
            if own is None:
                raise
            shown = destination if destination is not None else "(default)"
            if isinstance(exc, DestinationExistsError):
                raise DestinationExistsError(
                    f"Destination {shown!r} already exists in your folder with different "
                    "content; it was left as it is. Choose another name, or set overwrite."
                ) from None
            raise PathNotAllowedError(
                REMOTE_PATH_REFUSED.format(what="Destination", path=shown)
            ) from None
    delivered = DownloadAnswer(
        file_id=result.file_id,
        sha256=result.sha256,
        size=result.size,
        mime_type=result.mime_type,
        path=result.path,
        tier=result.tier,
        verified=result.verified,
        cleanup=result.cleanup,
    )
    return answer(
        delivered,
        f"Wrote {result.size:,} bytes to {result.path} (verified, from {result.tier})",
        [file_link(result.file_id, Path(result.path).name, result.mime_type, result.size)],
    )


async def _download_link(ctx: Ctx, store: FileStore, file_id: str) -> CallToolResult:
    record = await store.stat(file_id)
    link = await mint_link(
        app_state(ctx).links,
        store,
        record,
        request_base=request_base(ctx),
        expires_in=min(DOWNLOAD_LINK_SECONDS, store.settings.link_max_seconds),
        single_use=False,
        range_header=None,
        direct=False,
    )
    linked = DownloadAnswer(
        file_id=record.file_id,
        sha256=record.sha256,
        size=record.size,
        mime_type=record.mime_type,
        url=link["url"],
        link_id=link["link_id"],
        expires_at=link["expires_at"],
    )
    return answer(
        linked,
        f"Download {record.filename} ({record.size:,} bytes) from {link['url']} "
        f"until {link['expires_at']}",
        [file_link(record.file_id, record.filename, record.mime_type, record.size)],
    )


async def _size_of(store: FileStore, file_id: str) -> int | None:
    try:
        return (await store.stat(file_id)).size
    except FiletierError:
        return None  # a provider file id, or an error the download itself will report
