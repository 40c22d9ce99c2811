"""The metadata schema, one definition for SQLite and PostgreSQL.

Migrations in ``migrations/versions`` create exactly these tables; a test compares the
two. Column and index names of the original design are kept (``file_metadata``,
``supabase_storage_path``, ``idx_file_metadata_*``).

- ``file_metadata``: one row per logical file (an upload), owned by ``owner``.
- ``blobs``: one row per distinct content hash; many files may share one blob.
- ``provider_file_uploads``: which provider holds which owner's copy of which content.
- ``file_download_history``: one row per download, appended in batches.
- ``provider_extracted_text``: a provider's text extraction, cached per owner and content.
- ``api_tokens``: hashes of bearer tokens for the HTTP API and MCP over HTTP.
- ``download_links``: signed download links, so that revoking one and using a single-use
  one count on every host.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine


class JSONType(sa.TypeDecorator[Any]):
    """JSON on SQLite, JSONB on PostgreSQL.

    A decorator rather than ``JSON().with_variant(postgresql.JSONB())``: the variant needs
    the PostgreSQL dialect at import (~50 ms), which the embedded default never uses.
    """

    impl = sa.JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(sa.JSON())


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive text)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata_obj = sa.MetaData()

file_metadata = sa.Table(
    "file_metadata",
    metadata_obj,
    sa.Column("file_id", sa.Uuid(), primary_key=True),
    sa.Column("owner", sa.String(255), nullable=False, server_default="default"),
    sa.Column("original_filename", sa.Text(), nullable=False),
    sa.Column("file_size", sa.BigInteger(), nullable=False),
    sa.Column("mime_type", sa.String(255), nullable=False),
    sa.Column("supabase_storage_path", sa.Text(), nullable=False),
    sa.Column("local_cache_path", sa.Text(), nullable=True),
    sa.Column("file_hash", sa.String(64), nullable=False),
    sa.Column("provider_file_ids", JSONType, nullable=False, server_default="{}"),
    sa.Column("upload_date", UTCDateTime(), nullable=False),
    sa.Column("last_accessed", UTCDateTime(), nullable=True),
    sa.Column("access_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("metadata", JSONType, nullable=False, server_default="{}"),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Index("idx_file_metadata_upload_date", "upload_date"),
    sa.Index("idx_file_metadata_last_accessed", "last_accessed"),
    sa.Index("idx_file_metadata_file_hash", "file_hash"),
    sa.Index("idx_file_metadata_owner_created", "owner", "created_at"),
)

blobs = sa.Table(
    "blobs",
    metadata_obj,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("size", sa.BigInteger(), nullable=False),
    sa.Column("storage_key", sa.Text(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="ok"),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("last_verified_at", UTCDateTime(), nullable=True),
    # The object's modification time (by its store's clock) when filetier last wrote or
    # hashed it: an object whose time differs was touched since, and is not trusted.
    sa.Column("object_modified_at", UTCDateTime(), nullable=True),
    sa.Index("idx_blobs_size", "size"),
)

provider_file_uploads = sa.Table(
    "provider_file_uploads",
    metadata_obj,
    sa.Column("id", sa.Uuid(), primary_key=True),
    # The owner whose copy this is (copies are never shared between owners: a shared one
    # would tell one owner what another stores). NULL: a provider-only file, the account's.
    sa.Column("owner", sa.String(255), nullable=True),
    sa.Column("file_hash", sa.String(64), nullable=True),  # NULL: provider-only file
    sa.Column("provider", sa.String(32), nullable=False),
    sa.Column("provider_account", sa.String(255), nullable=False),
    sa.Column("purpose", sa.String(64), nullable=False),
    sa.Column("provider_file_id", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("uploaded_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=True),
    sa.Column("download_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("last_downloaded_at", UTCDateTime(), nullable=True),
    sa.Column("bytes", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("filename", sa.Text(), nullable=True),
    sa.Column("last_used_at", UTCDateTime(), nullable=True),
    sa.UniqueConstraint(
        "owner",
        "file_hash",
        "provider",
        "provider_account",
        "purpose",
        name="uq_provider_upload_key",
    ),
    sa.UniqueConstraint("provider", "provider_file_id", name="uq_provider_file_id"),
    sa.Index("idx_provider_file_uploads_file_hash", "file_hash"),
    sa.Index("idx_provider_file_uploads_owner_hash", "owner", "file_hash"),
    sa.Index(
        "idx_provider_file_uploads_account_used",
        "provider",
        "provider_account",
        "status",
        "last_used_at",
    ),
)

provider_extracted_text = sa.Table(
    "provider_extracted_text",
    metadata_obj,
    sa.Column("owner", sa.String(255), primary_key=True),
    sa.Column("file_hash", sa.String(64), primary_key=True),
    sa.Column("provider", sa.String(32), primary_key=True),
    sa.Column("provider_account", sa.String(255), primary_key=True),
    sa.Column("text", sa.Text(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

file_download_history = sa.Table(
    "file_download_history",
    metadata_obj,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("file_id", sa.Uuid(), nullable=False),
    sa.Column("owner", sa.String(255), nullable=False, server_default="default"),
    sa.Column("provider_file_id", sa.String(255), nullable=True),
    sa.Column("downloaded_at", UTCDateTime(), nullable=False),
    sa.Column("downloaded_by", sa.String(255), nullable=True),
    sa.Column("destination_path", sa.Text(), nullable=True),
    sa.Column("tier", sa.String(16), nullable=False),
    sa.Column("bytes", sa.BigInteger(), nullable=False),
    sa.Column("duration_ms", sa.Float(), nullable=False),
    sa.Column("verified", sa.Boolean(), nullable=False),
    sa.Column("cleanup_policy", sa.String(16), nullable=True),
    sa.Column("expires_at", UTCDateTime(), nullable=True),
    sa.Column("removed_at", UTCDateTime(), nullable=True),
    sa.Index("idx_file_download_history_file_id", "file_id"),
    sa.Index("idx_file_download_history_downloaded_at", "downloaded_at"),
    sa.Index("idx_file_download_history_expires_at", "expires_at"),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata_obj,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(255), nullable=False),
    sa.Column("name", sa.String(255), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("last_used_at", UTCDateTime(), nullable=True),
    sa.Index("idx_api_tokens_owner", "owner"),
)

download_links = sa.Table(
    "download_links",
    metadata_obj,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("owner", sa.String(255), nullable=False),
    sa.Column("file_id", sa.Uuid(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    sa.Column("single_use", sa.Boolean(), nullable=False),
    # Bytes range_start..range_end inclusive; both NULL: the whole file.
    sa.Column("range_start", sa.BigInteger(), nullable=True),
    sa.Column("range_end", sa.BigInteger(), nullable=True),
    sa.Column("used_at", UTCDateTime(), nullable=True),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
    sa.Index("idx_download_links_owner_file", "owner", "file_id"),
    sa.Index("idx_download_links_expires_at", "expires_at"),
)
