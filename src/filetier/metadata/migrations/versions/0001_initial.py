"""The four tables of SPEC section 3, with the original column and index names.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "file_metadata",
        sa.Column("file_id", sa.Uuid(), primary_key=True),
        sa.Column("owner", sa.String(255), nullable=False, server_default="default"),
        sa.Column("original_filename", sa.Text(), nullable=False),
        sa.Column("file_size", sa.BigInteger(), nullable=False),
        sa.Column("mime_type", sa.String(255), nullable=False),
        sa.Column("supabase_storage_path", sa.Text(), nullable=False),
        sa.Column("local_cache_path", sa.Text(), nullable=True),
        sa.Column("file_hash", sa.String(64), nullable=False),
        sa.Column("provider_file_ids", JSON, nullable=False, server_default="{}"),
        sa.Column("upload_date", TS, nullable=False),
        sa.Column("last_accessed", TS, nullable=True),
        sa.Column("access_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("metadata", JSON, nullable=False, server_default="{}"),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("idx_file_metadata_upload_date", "file_metadata", ["upload_date"])
    op.create_index("idx_file_metadata_last_accessed", "file_metadata", ["last_accessed"])
    op.create_index("idx_file_metadata_file_hash", "file_metadata", ["file_hash"])
    op.create_index("idx_file_metadata_owner_created", "file_metadata", ["owner", "created_at"])

    op.create_table(
        "blobs",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("storage_key", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="ok"),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_verified_at", TS, nullable=True),
    )
    op.create_index("idx_blobs_size", "blobs", ["size"])

    op.create_table(
        "provider_file_uploads",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("file_hash", sa.String(64), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("provider_account", sa.String(255), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("provider_file_id", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        sa.Column("uploaded_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("download_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_downloaded_at", TS, nullable=True),
        sa.UniqueConstraint(
            "file_hash", "provider", "provider_account", "purpose", name="uq_provider_upload_key"
        ),
        sa.UniqueConstraint("provider", "provider_file_id", name="uq_provider_file_id"),
    )
    op.create_index("idx_provider_file_uploads_file_hash", "provider_file_uploads", ["file_hash"])

    op.create_table(
        "file_download_history",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("file_id", sa.Uuid(), nullable=False),
        sa.Column("owner", sa.String(255), nullable=False, server_default="default"),
        sa.Column("provider_file_id", sa.String(255), nullable=True),
        sa.Column("downloaded_at", TS, nullable=False),
        sa.Column("downloaded_by", sa.String(255), nullable=True),
        sa.Column("destination_path", sa.Text(), nullable=True),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("cleanup_policy", sa.String(16), nullable=True),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("removed_at", TS, nullable=True),
    )
    op.create_index("idx_file_download_history_file_id", "file_download_history", ["file_id"])
    op.create_index(
        "idx_file_download_history_downloaded_at", "file_download_history", ["downloaded_at"]
    )
    op.create_index("idx_file_download_history_expires_at", "file_download_history", ["expires_at"])

    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE OR REPLACE FUNCTION update_updated_at_column() RETURNS trigger AS $$
            BEGIN
                NEW.updated_at = now();
                RETURN NEW;
            END;
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            """
            CREATE TRIGGER update_file_metadata_updated_at
            BEFORE UPDATE ON file_metadata
            FOR EACH ROW EXECUTE FUNCTION update_updated_at_column()
            """
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS update_file_metadata_updated_at ON file_metadata")
        op.execute("DROP FUNCTION IF EXISTS update_updated_at_column()")
    op.drop_table("file_download_history")
    op.drop_table("provider_file_uploads")
    op.drop_table("blobs")
    op.drop_table("file_metadata")
