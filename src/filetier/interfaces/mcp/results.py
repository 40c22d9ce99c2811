"""The structured results of the MCP tools (their ``outputSchema``).

Core results (:mod:`filetier.models`) are returned as they are where they already say what
a model needs (``DownloadResult``, ``DeleteResult``, ``ProviderFileId``, ``AskResult``);
the models here add what only an agent needs: how to address the file again
(``resource_uri``, ``content_path``), paging of long text, and one ``ok`` flag. None of
them ever carries file content beyond a bounded page of extracted text.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from mcp.types import CallToolResult, ResourceLink, TextContent
from pydantic import BaseModel, ConfigDict, Field

from filetier.models import (
    FileRecord,
    Finding,
    PlannedAction,
    ProviderCopyInfo,
    StoreStats,
    Tier,
)

RESOURCE_TEMPLATE = "filetier://files/{file_id}"
CONTENT_PATH_TEMPLATE = "/v1/files/{file_id}/content"


def resource_uri(file_id: UUID | str) -> str:
    return RESOURCE_TEMPLATE.format(file_id=file_id)


def content_path(file_id: UUID | str) -> str:
    return CONTENT_PATH_TEMPLATE.format(file_id=file_id)


def file_link(file_id: UUID | str, name: str, mime_type: str, size: int) -> ResourceLink:
    """A ``resource_link`` content item: how a client addresses the file again."""
    return ResourceLink(
        type="resource_link", uri=resource_uri(file_id), name=name, mime_type=mime_type, size=size
    )


def answer(data: BaseModel, summary: str, links: Sequence[ResourceLink] = ()) -> CallToolResult:
    """A tool result: one line for a person, the data once (structured), and links.

    The SDK would otherwise put the same data in twice, pretty-printed as text too."""
    return CallToolResult(
        content=[TextContent(type="text", text=summary), *links],
        structured_content=data.model_dump(mode="json"),
    )


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True)


class FileInfo(_Result):
    file_id: UUID
    filename: str
    size: int = Field(description="Size in bytes")
    mime_type: str
    sha256: str = Field(description="SHA-256 of the content, hex")
    uploaded_at: datetime
    last_accessed: datetime | None = None
    access_count: int = 0
    metadata: dict[str, Any] = Field(default_factory=dict)
    provider_file_ids: dict[str, Any] = Field(
        default_factory=dict, description="Provider copies already made, e.g. {'kimi': 'file-…'}"
    )
    provider_copies: list[ProviderCopyInfo] = Field(
        default_factory=list,
        description="Each provider copy with the life it has left there (file_info only)",
    )
    resource_uri: str = Field(description="Read small text files through this MCP resource")
    content_path: str | None = Field(
        default=None,
        description="HTTP API path of the original bytes (over HTTP only; create_link makes "
        "a URL anyone can fetch)",
    )

    @classmethod
    def of(
        cls,
        record: FileRecord,
        copies: Sequence[ProviderCopyInfo] | None = None,
        *,
        remote: bool = False,
    ) -> FileInfo:
        return cls(
            provider_copies=list(copies or []),
            file_id=record.file_id,
            filename=record.filename,
            size=record.size,
            mime_type=record.mime_type,
            sha256=record.sha256,
            uploaded_at=record.upload_date,
            last_accessed=record.last_accessed,
            access_count=record.access_count,
            metadata=record.metadata,
            provider_file_ids=record.provider_file_ids,
            resource_uri=resource_uri(record.file_id),
            content_path=content_path(record.file_id) if remote else None,
        )


class UploadedFile(_Result):
    file_id: UUID
    sha256: str
    size: int
    mime_type: str
    filename: str
    source: Literal["path", "text", "base64"]
    source_path: str | None = Field(
        default=None, description="The resolved path read, for path uploads"
    )
    deduplicated: bool = Field(description="True when these bytes were already stored")
    bytes_written: int = Field(description="Bytes written to the primary store by this call")
    resource_uri: str


class FileList(_Result):
    items: list[FileInfo]
    total: int = Field(description="Files matching the filters, over all pages")
    offset: int
    limit: int
    next_offset: int | None = Field(description="Pass as offset for the next page; null at the end")


class FileText(_Result):
    file_id: UUID | None = Field(description="Null for a file only the provider holds")
    sha256: str | None
    provider: str
    provider_file_id: str | None
    text: str = Field(description="This page of the provider's extracted text")
    offset: int = Field(description="Index of the first character of this page")
    total_chars: int
    next_offset: int | None = Field(description="Pass as offset for the next page; null at the end")
    cached: bool = Field(description="True when served from filetier's cache, no provider call")


class VerifyOutcome(_Result):
    scope: Literal["file", "store"]
    ok: bool = Field(description="True when every byte checked matched its SHA-256")
    file_id: UUID | None = None
    sha256: str | None = None
    size: int | None = None
    tier: Tier | None = Field(default=None, description="Tier the verified bytes were read from")
    bytes_verified: int
    blobs_checked: int | None = None
    cache_entries_checked: int | None = None
    findings: list[Finding] = Field(default_factory=list)


class CleanupOutcome(_Result):
    dry_run: bool = Field(description="True: nothing was removed, this is the plan")
    bytes_freed: int = Field(description="Bytes removed (or that would be, for a dry run)")
    actions: list[PlannedAction]


class CacheStats(StoreStats):
    tier_hit_rates: dict[str, float] = Field(
        description="Share of all-time downloads served by each tier"
    )


class LinkInfo(_Result):
    url: str = Field(description="Hand this URL on: it serves the file without a token")
    file_id: UUID
    expires_at: datetime
    direct: bool = Field(description="True: a pre-signed object-store URL (not revocable)")
    link_id: str | None = Field(default=None, description="For revoke_links; null if direct")
    single_use: bool = False
    range: str | None = Field(default=None, description="The only bytes the link serves")


class RevokedLinks(_Result):
    revoked: int = Field(description="Live links revoked by this call")


class DownloadAnswer(_Result):
    """Where a download went: a path on the server, or, for a remote caller that named no
    destination, a link it can fetch from wherever it runs."""

    file_id: UUID
    sha256: str
    size: int
    mime_type: str
    path: str | None = Field(default=None, description="Written here on the server")
    tier: Tier | None = Field(default=None, description="Tier that served the bytes")
    verified: bool | None = None
    cleanup: str | None = None
    url: str | None = Field(
        default=None, description="No destination over HTTP: fetch the file here (no token)"
    )
    link_id: str | None = None
    expires_at: datetime | None = None
