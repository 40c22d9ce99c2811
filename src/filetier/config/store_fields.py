"""The store's settings: data dir, database, cache tiers, limits, S3 primary, timeouts.

A mixin of :class:`~filetier.config.settings.Settings`: the fields only (their environment
names, defaults and checks); what is derived from them lives on ``Settings``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import BaseModel, Field, SecretStr

from filetier.config.values import Size, env_names


class StoreFields(BaseModel):
    """Where files and records live, how much they may take, and how the store is reached."""

    home: Path = Field(
        default_factory=lambda: platformdirs.user_data_path("filetier"),
        description="Data directory: SQLite database, local primary store, downloads.",
    )
    cache_dir_override: Path | None = Field(
        default=None,
        validation_alias=env_names("FILE_CACHE_DIR", "cache_dir"),
        description="Disk cache directory (default: <home>/cache).",
    )
    database_url_override: SecretStr | None = Field(
        default=None,
        validation_alias=env_names("FILETIER_DATABASE_URL"),
        description="SQLAlchemy URL of the metadata database (default: SQLite in home).",
    )
    shared_database_url: SecretStr | None = Field(
        default=None,
        validation_alias=env_names("DATABASE_URL"),
        description="The generic DATABASE_URL, used when FILETIER_DATABASE_URL is unset; "
        "filetier adds its tables there only to an empty database or one already filetier's.",
    )
    database_schema: str = Field(
        default="filetier",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="PostgreSQL schema holding filetier's tables and its Alembic version table.",
    )
    primary_url: str | None = Field(
        default=None,
        description="Primary store: unset = <home>/objects; memory:// ; file:///dir.",
    )
    max_memory_cache_size: Size = Field(
        default=104_857_600,
        validation_alias=env_names("MAX_MEMORY_CACHE_SIZE", "max_memory_cache_size"),
        description="Memory tier capacity in bytes.",
    )
    memory_item_max_bytes: Size = Field(
        default=4 * 1024 * 1024,
        description="Files larger than this never enter the memory tier.",
    )
    max_cache_size_mb: int = Field(
        default=1000,
        validation_alias=env_names("MAX_CACHE_SIZE_MB", "max_cache_size_mb"),
        description="Disk cache capacity in MB (10^6 bytes).",
    )
    max_cache_age_days: float = Field(
        default=30,
        validation_alias=env_names("MAX_CACHE_AGE_DAYS", "max_cache_age_days"),
        description="Disk cache entries unused for longer are evicted by cleanup.",
    )
    allowed_roots_raw: str | None = Field(
        default=None,
        validation_alias=env_names("FILETIER_ALLOWED_ROOTS", "allowed_roots"),
        description="Download destinations allowed, separated by os.pathsep.",
    )
    max_file_size: Size = Field(
        default=5 * 1024**3,
        description="Largest file accepted, in bytes.",
    )
    type_limits_raw: str = Field(
        default="",
        validation_alias=env_names("FILETIER_TYPE_LIMITS", "type_limits"),
        description="Per-MIME size limits, e.g. 'image/*=20MiB,application/x-dosexec=0' "
        "(0 refuses the type).",
    )
    min_free_bytes: Size = Field(
        default=64 * 1024 * 1024,
        description="Free space kept in reserve on every filesystem filetier writes to.",
    )
    delivery_retention_hours: float = Field(
        default=24,
        description="How long copies delivered to the default downloads folder are kept.",
    )
    gc_grace_seconds: float = Field(
        default=3600,
        description="Unreferenced objects younger than this are never collected.",
    )
    lock_timeout_seconds: float = Field(
        default=60,
        description=(
            "Longest wait for a cross-process lock; then an upload is refused "
            "(StoreBusyError) and maintenance skips that content."
        ),
    )
    record_cache_ttl_seconds: float = Field(
        default=5,
        description="How long a file record read from the database is reused in memory.",
    )
    fsync: bool = Field(
        default=True,
        description=(
            "Make every upload durable before it is acknowledged: its object, directories "
            "and database row (uploads arriving together share one sync)."
        ),
    )
    owner: str = Field(
        default="default",
        description="Owner (namespace) of files created by this process.",
    )
    bookkeeping_flush_seconds: float = Field(
        default=1.0,
        description="How often batched access counters and history are written.",
    )
    s3_bucket: str | None = Field(
        default=None,
        description="S3 bucket; when set, the S3 store is the primary.",
    )
    s3_endpoint: str | None = Field(
        default=None,
        description="S3-compatible endpoint URL (default: derived from SUPABASE_URL, else AWS).",
    )
    s3_region: str | None = Field(
        default=None,
        description="S3 region name (default: us-east-1; for Supabase learned from the server "
        "where it says; any name works for Ceph RGW and MinIO).",
    )
    s3_access_key_id: str | None = Field(
        default=None,
    )
    s3_secret_access_key: SecretStr | None = Field(
        default=None,
    )
    s3_session_token: SecretStr | None = Field(
        default=None,
    )
    s3_path_style: bool = Field(
        default=True,
        description="Path-style requests (Supabase, Ceph RGW, MinIO need them).",
    )
    s3_sign_payload: Literal["auto", "always", "never"] = Field(
        default="auto",
        description=(
            "Sign request bodies (SigV4 payload hash): 'auto' signs over plain HTTP to "
            "another host and not over HTTPS (TLS already checks every byte, as AWS's own "
            "SDKs decide) or on loopback (no wire); 'always' or 'never' force it."
        ),
    )
    s3_prefix: str = Field(
        default="",
        description="Key prefix inside the bucket, e.g. 'filetier/'.",
    )
    storage_timeout_seconds: float = Field(
        default=60,
        description="Timeout of one object-store request.",
    )
    storage_connect_timeout_seconds: float = Field(
        default=5,
        description="Timeout for connecting to the object store.",
    )
    storage_retry_attempts: int = Field(
        default=4,
        description="Attempts per object-store write (backoff with jitter between them).",
    )
    storage_retry_timeout_seconds: float = Field(
        default=30,
        description="Longest time spent retrying one object-store write.",
    )
    database_timeout_seconds: float = Field(
        default=10,
        description="Connect and statement timeout for the metadata database.",
    )
