"""The values FileStore returns: frozen pydantic models, so every interface (CLI ``--json``,
MCP structured output, HTTP) serialises them the same way."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

Tier = Literal["memory", "disk", "primary"]
CleanupPolicy = Literal["immediate", "retain", "keep"]
FileSort = Literal[
    "name",
    "-name",
    "size",
    "-size",
    "type",
    "-type",
    "uploaded",
    "-uploaded",
    "accessed",
    "-accessed",
]
"""How :meth:`FileStore.list` orders files: a key, ``-`` first for descending."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class FileRecord(_Frozen):
    file_id: UUID
    owner: str
    filename: str
    size: int
    mime_type: str
    sha256: str
    storage_key: str
    provider_file_ids: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    upload_date: datetime
    last_accessed: datetime | None = None
    access_count: int = 0
    created_at: datetime
    updated_at: datetime


class UploadResult(_Frozen):
    file_id: UUID
    sha256: str
    size: int
    mime_type: str
    filename: str
    deduplicated: bool = Field(description="True when these bytes were already stored")
    bytes_written: int = Field(description="Bytes written to the primary store by this call")


class DownloadResult(_Frozen):
    file_id: UUID
    path: str
    sha256: str
    size: int
    mime_type: str
    tier: Tier
    verified: bool
    cleanup: CleanupPolicy | None = None


class BatchItem(_Frozen):
    file_id: str
    ok: bool
    path: str | None = None
    tier: Tier | None = None
    error: str | None = None


class FilePage(_Frozen):
    items: list[FileRecord]
    total: int
    offset: int
    limit: int
    next_offset: int | None


class DeleteResult(_Frozen):
    file_id: UUID
    sha256: str
    blob_deleted: bool = Field(
        description="True when no other file of yours has the same bytes (for the operator: "
        "no other file at all); other owners' copies never change it"
    )


class Finding(_Frozen):
    kind: Literal[
        "missing_object",
        "corrupt_object",
        "corrupt_cache",
        "orphan_object",
        "orphan_blob_row",
        "missing_blob_row",
        "quarantined",
    ]
    sha256: str | None = None
    detail: str
    fixed: bool = False


class VerifyReport(_Frozen):
    blobs_checked: int
    cache_entries_checked: int
    bytes_verified: int
    findings: list[Finding]
    fix: bool

    @property
    def clean(self) -> bool:
        return not self.findings


class PlannedAction(_Frozen):
    kind: Literal[
        "evict_cache_age",
        "evict_cache_size",
        "remove_delivered",
        "remove_temp",
        "delete_orphan_object",
        "delete_orphan_blob_row",
        "remove_partial_upload",
    ]
    target: str
    bytes: int
    reason: str


class MaintenanceReport(_Frozen):
    """A plan (``dry_run=True``) or what was done: the same list either way."""

    operation: Literal["cleanup", "gc"]
    dry_run: bool
    actions: list[PlannedAction]

    @property
    def bytes_freed(self) -> int:
        return sum(action.bytes for action in self.actions)


class TierStats(_Frozen):
    hits: int = 0
    bytes_served: int = 0


class ProviderCopyInfo(_Frozen):
    """One provider's copy of a file's content, and how long it has left there."""

    provider: str
    purpose: str
    provider_file_id: str
    status: str
    uploaded_at: datetime
    expires_at: datetime | None
    remaining_seconds: float | None = Field(
        description="Life left at the provider when asked; None: no expiry scheduled"
    )


class StoreStats(_Frozen):
    """The operator's figures are the whole store's; another owner's are its own, and the
    host caches' (shared by every owner) read 0 for it."""

    files: int
    blobs: int = Field(description="Distinct contents (yours, unless you are the operator)")
    unique_bytes: int
    logical_bytes: int
    memory_entries: int = Field(description="Host-wide; 0 for owners other than the operator")
    memory_bytes: int
    memory_max_bytes: int
    disk_cache_entries: int = Field(description="Host-wide; 0 for owners other than the operator")
    disk_cache_bytes: int
    disk_cache_max_bytes: int
    downloads: int
    tiers: dict[str, TierStats] = Field(description="All-time downloads by serving tier")
    session: dict[str, TierStats] = Field(description="This process since it opened")
    primary_reads: int = Field(description="Primary-store reads by this process")
    provider_copies: list[ProviderCopyInfo] = Field(
        default_factory=list,
        description="Provider copies of this owner's content, soonest to expire first",
    )

    @property
    def hit_rates(self) -> dict[str, float]:
        total = sum(t.hits for t in self.tiers.values()) or 1
        return {name: t.hits / total for name, t in self.tiers.items()}


class DownloadEvent(_Frozen):
    file_id: UUID
    downloaded_at: datetime
    downloaded_by: str | None
    destination_path: str | None
    tier: Tier
    bytes: int
    duration_ms: float
    verified: bool
    cleanup_policy: CleanupPolicy | None = None
    expires_at: datetime | None = None
    removed_at: datetime | None = None


class ProviderFileId(_Frozen):
    file_id: UUID
    sha256: str
    provider: str
    purpose: str
    provider_file_id: str
    uploaded: bool = Field(description="True when this call uploaded the bytes")
    expires_at: datetime | None = Field(
        default=None, description="When the provider deletes this copy; None: not scheduled"
    )


class ExtractedText(_Frozen):
    """A provider's extraction of a file: text, never the original bytes.

    ``file_id`` and ``sha256`` are None for a file only the provider holds."""

    file_id: UUID | None
    sha256: str | None
    provider: str
    provider_file_id: str | None
    text: str
    cached: bool = Field(description="True when served from filetier's cache, no call made")


class AskResult(_Frozen):
    answer: str
    provider: str
    model: str
    file_ids: list[UUID]
    provider_file_ids: list[str]
    usage: dict[str, Any] = Field(default_factory=dict)


class SyncAction(_Frozen):
    kind: Literal[
        "forget_missing",  # our record names a copy the provider no longer has
        "delete_at_provider",  # a copy we meant to delete is still there
        "record_foreign",  # the provider holds a file filetier never uploaded
        "forget_expired",  # our copy's expiry has passed: the provider deletes it
        "record_expiry",  # the provider states an expiry our record lacks or differs from
    ]
    provider: str
    provider_file_id: str
    detail: str


class SyncReport(_Frozen):
    dry_run: bool
    providers: list[str]
    actions: list[SyncAction]
