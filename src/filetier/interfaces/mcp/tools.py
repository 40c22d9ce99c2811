"""The MCP tools: parse the arguments, call the caller's view of the store, shape the result.

Each tool's docstring is its description for the model; :data:`TOOLS` adds the title and
the behaviour hints clients use to decide what needs a confirmation. Domain errors are
not handled here: the server turns every :class:`~filetier.errors.FiletierError` into a
tool error with its message (see ``server.py``), so a tool reads as the happy path.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field

from filetier.catalog import LIST_OFFSET_MAX
from filetier.config import Settings
from filetier.errors import (
    DestinationExistsError,
    FiletierError,
    FileTooLargeError,
    IntegrityError,
    InvalidInputError,
    PathNotAllowedError,
    SourceNotFoundError,
)
from filetier.interfaces.http.links import mint_link
from filetier.interfaces.mcp.context import (
    AppState,
    app_state,
    caller_store,
    remote_roots,
    request_base,
    require_operator,
)
from filetier.interfaces.mcp.progress import TransferProgress
from filetier.interfaces.mcp.results import (
    CacheStats,
    CleanupOutcome,
    DownloadAnswer,
    FileInfo,
    FileList,
    FileText,
    LinkInfo,
    RevokedLinks,
    UploadedFile,
    VerifyOutcome,
    answer,
    file_link,
    resource_uri,
)
from filetier.links import parse_link_id
from filetier.models import (
    AskResult,
    DeleteResult,
    Finding,
    ProviderFileId,
    Tier,
)
from filetier.providers.registry import SPECS, configured_names
from filetier.providers.uploads import DEFAULT_PURPOSE
from filetier.store import FileStore

Ctx = Context[AppState, Any]

# What a remote caller is told when a path is refused: its own input and the rule, never a
# resolved path or the server's directories.
REMOTE_PATH_REFUSED = (
    "{what} {path!r} is not allowed: over HTTP, paths must stay inside your own folder on "
    "the server (relative paths are taken from it; no '..', no symbolic links out)."
)

_PROVIDERS = ", ".join(SPECS)
FileId = Annotated[str, Field(description="File id")]
# Listed as an enum of the providers configured (schemas.py), so the model cannot pick one
# that would only fail.
Provider = Annotated[str, Field(description=f"LLM provider: one of {_PROVIDERS}")]
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


# -- links -------------------------------------------------------------------------------


async def create_link(
    ctx: Ctx,
    file_id: FileId,
    expires_in: Annotated[
        int, Field(ge=1, description="Seconds (up to the server's maximum)")
    ] = 3600,
    single_use: Annotated[bool, Field(description="Serve once only")] = False,
    range: Annotated[str | None, Field(description="Only these bytes: 'bytes=0-1023'")] = None,
    direct: Annotated[
        bool,
        Field(description="Pre-signed S3 URL (S3 primary only; not revocable)"),
    ] = False,
) -> Annotated[CallToolResult, LinkInfo]:
    """A signed, expiring URL to one of your files, needing no token: hand it on."""
    store = caller_store(ctx)
    record = await store.stat(file_id)
    minted = await mint_link(
        app_state(ctx).links,
        store,
        record,
        request_base=request_base(ctx),
        expires_in=expires_in,
        single_use=single_use,
        range_header=range,
        direct=direct,
    )
    summary = f"Link to {record.filename}: {minted['url']} (until {minted['expires_at']})"
    if request_base(ctx) is None and not store.settings.public_url and not direct:
        # Over stdio no HTTP server is implied: say which one serves the URL.
        summary += "; served by `filetier serve` on this data dir at that address"
    return answer(
        LinkInfo.model_validate(minted),
        summary,
        [file_link(record.file_id, record.filename, record.mime_type, record.size)],
    )


async def revoke_links(
    ctx: Ctx,
    link_id: Annotated[str | None, Field(description="This link")] = None,
    file_id: Annotated[str | None, Field(description="Every link to this file")] = None,
    all_links: Annotated[bool, Field(description="Every link of yours")] = False,
) -> RevokedLinks:
    """Revoke download links: exactly one of link_id, file_id, all_links."""
    given = [n for n, v in (("link_id", link_id), ("file_id", file_id)) if v] + (
        ["all_links"] if all_links else []
    )
    if len(given) != 1:
        raise InvalidInputError("give exactly one of link_id, file_id or all_links")
    store = caller_store(ctx)
    links = app_state(ctx).links
    if link_id:
        revoked = await links.revoke(store.owner, link_id=parse_link_id(link_id))
    elif file_id:
        record = await store.stat(file_id)
        revoked = await links.revoke(store.owner, file_id=record.file_id)
    else:
        revoked = await links.revoke(store.owner)
    return RevokedLinks(revoked=revoked)


# -- integrity and maintenance -------------------------------------------------------------


async def verify_file(
    ctx: Ctx,
    file_id: Annotated[
        str | None,
        Field(description="Omitted: the whole store (operator only)"),
    ] = None,
) -> VerifyOutcome:
    """Check that a file's bytes match its SHA-256. A corrupt cache copy is dropped, a
    corrupt stored copy set aside (`ok` false)."""
    if file_id is None:
        report = await require_operator(ctx, "verifying the whole store").verify(fix=False)
        return VerifyOutcome(
            scope="store",
            ok=report.clean,
            bytes_verified=report.bytes_verified,
            blobs_checked=report.blobs_checked,
            cache_entries_checked=report.cache_entries_checked,
            findings=report.findings,
        )
    store = caller_store(ctx)
    total = (await store.stat(file_id)).size
    findings: list[Finding] = []
    async with TransferProgress(ctx.report_progress, total, f"verifying {file_id}") as progress:
        # A corrupt cache copy is evicted by the failed read; the second read then comes
        # from the primary store, which is the copy that matters.
        for _attempt in range(2):
            tier: Tier | None = None
            try:
                async with store.open(file_id) as reader:
                    tier, record = reader.tier, reader.record
                    async for chunk in reader:
                        progress(len(chunk))
            except IntegrityError as exc:
                cache_copy = tier == "disk"
                findings.append(
                    Finding(
                        kind="corrupt_cache" if cache_copy else "corrupt_object",
                        detail=str(exc),
                        fixed=cache_copy,
                    )
                )
                if cache_copy:
                    continue
                break
            return VerifyOutcome(
                scope="file",
                ok=True,
                file_id=record.file_id,
                sha256=record.sha256,
                size=record.size,
                tier=tier,
                bytes_verified=record.size,
                findings=findings,
            )
    return VerifyOutcome(scope="file", ok=False, bytes_verified=0, findings=findings)


async def cleanup_cache(
    ctx: Ctx,
    dry_run: Annotated[bool, Field(description="Only show the plan")] = False,
    max_age_days: Annotated[
        float | None,
        Field(ge=0, description="Evict copies unused for longer"),
    ] = None,
    max_size_mb: Annotated[
        float | None,
        Field(ge=0, description="Shrink the disk cache to this"),
    ] = None,
) -> CleanupOutcome:
    """Free disk space: old cache copies, expired downloads, temp files. Stored files
    stay."""
    store = require_operator(ctx, "cache cleanup")
    report = await store.cleanup_cache(max_age_days, max_size_mb, dry_run=dry_run)
    return CleanupOutcome(
        dry_run=report.dry_run, bytes_freed=report.bytes_freed, actions=report.actions
    )


async def cache_stats(ctx: Ctx) -> CacheStats:
    """Your file and byte counts, cache sizes, and hit rates per tier."""
    stats = await caller_store(ctx).stats()
    return CacheStats(**stats.model_dump(), tier_hit_rates=stats.hit_rates)


# -- providers ---------------------------------------------------------------------------


async def get_provider_file_id(
    ctx: Ctx,
    file_id: FileId,
    provider: Provider,
    purpose: Annotated[str, Field(description="e.g. file-extract, image")] = DEFAULT_PURPOSE,
    verify: Annotated[bool, Field(description="Check the copy still exists")] = False,
) -> ProviderFileId:
    """A provider's file id (`file-…`) for a stored file, for its chat API; uploaded to
    the provider at most once."""
    return await caller_store(ctx).get_provider_file_id(file_id, provider, purpose, verify=verify)


async def get_file_text(
    ctx: Ctx,
    file_id: Annotated[str, Field(description="File id, or a provider's file id")],
    provider: Provider,
    offset: Annotated[int, Field(ge=0, description="From next_offset")] = 0,
    max_chars: Annotated[int, Field(ge=1, le=200_000)] = 20_000,
) -> FileText:
    """The text a provider extracts from a file (PDF, Word, image…), a page at a time;
    cached."""
    extracted = await caller_store(ctx).get_file_text(file_id, provider)
    text = extracted.text
    end = min(len(text), offset + max_chars)
    return FileText(
        file_id=extracted.file_id,
        sha256=extracted.sha256,
        provider=extracted.provider,
        provider_file_id=extracted.provider_file_id,
        text=text[offset:end],
        offset=offset,
        total_chars=len(text),
        next_offset=end if end < len(text) else None,
        cached=extracted.cached,
    )


async def ask_file(
    ctx: Ctx,
    file_ids: Annotated[list[str], Field(min_length=1, max_length=50, description="File ids")],
    question: Annotated[str, Field(min_length=1)],
    provider: Provider,
    model: Annotated[str | None, Field(description="Default: the configured one")] = None,
) -> AskResult:
    """Ask a provider's model about stored files (their extracted text)."""
    return await caller_store(ctx).ask_file(file_ids, question, provider, model)


# -- registration --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolSpec:
    fn: Callable[..., Any]
    title: str
    annotations: ToolAnnotations


def _hints(
    *, read_only: bool, destructive: bool = False, idempotent: bool, open_world: bool = False
) -> ToolAnnotations:
    return ToolAnnotations(
        read_only_hint=read_only,
        destructive_hint=destructive,
        idempotent_hint=idempotent,
        open_world_hint=open_world,
    )


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(upload_file, "Upload a file", _hints(read_only=False, idempotent=False)),
    ToolSpec(
        download_file,
        "Download a file to disk",
        # Writes into the allowed roots; replaces a different file there only when the
        # caller sets overwrite, which is still a destructive possibility to confirm.
        _hints(read_only=False, destructive=True, idempotent=True),
    ),
    ToolSpec(
        get_provider_file_id,
        "Get a provider file id",
        _hints(read_only=False, idempotent=True, open_world=True),
    ),
    ToolSpec(file_info, "File metadata", _hints(read_only=True, idempotent=True)),
    ToolSpec(list_files, "List files", _hints(read_only=True, idempotent=True)),
    ToolSpec(
        delete_file,
        "Delete a file",
        # A second call for the same id is an error ("no file with id"): not idempotent.
        _hints(read_only=False, destructive=True, idempotent=False),
    ),
    ToolSpec(create_link, "Create a download link", _hints(read_only=False, idempotent=False)),
    ToolSpec(
        revoke_links,
        "Revoke download links",
        # A second revocation of the same link is an error: not idempotent.
        _hints(read_only=False, destructive=True, idempotent=False),
    ),
    ToolSpec(
        verify_file,
        "Verify file integrity",
        # Not read-only: a corrupt copy it finds is dropped (cache) or set aside (primary).
        _hints(read_only=False, idempotent=True),
    ),
    ToolSpec(
        cleanup_cache,
        "Clean up caches",
        _hints(read_only=False, destructive=True, idempotent=True),
    ),
    ToolSpec(cache_stats, "Cache statistics", _hints(read_only=True, idempotent=True)),
    ToolSpec(
        get_file_text,
        "Get a file's extracted text",
        # May upload the file to the provider on first use; repeats are served from cache.
        _hints(read_only=False, idempotent=True, open_world=True),
    ),
    ToolSpec(
        ask_file,
        "Ask a provider about files",
        _hints(read_only=False, idempotent=False, open_world=True),
    ),
)


# Tools only the operator can use (verify_file is listed for all: it checks one file).
OPERATOR_TOOLS = frozenset({"cleanup_cache"})
PROVIDER_TOOLS = frozenset({"get_provider_file_id", "get_file_text", "ask_file"})
NO_PROVIDER_MESSAGE = (
    "{name} needs an LLM provider, and this server has none configured: set one of "
    "KIMI_API_KEY, GLM_API_KEY, OPENAI_API_KEY, GEMINI_API_KEY, ANTHROPIC_API_KEY or "
    "MISTRAL_API_KEY on the server"
)


def register_tools(server: MCPServer[AppState], settings: Settings) -> None:
    """Register the tools that can work here: provider tools only with a provider."""
    with_providers = bool(configured_names(settings))
    for spec in TOOLS:
        if spec.fn.__name__ in PROVIDER_TOOLS and not with_providers:
            continue
        server.add_tool(
            spec.fn,
            title=spec.title,
            annotations=spec.annotations,
            structured_output=True,
        )
