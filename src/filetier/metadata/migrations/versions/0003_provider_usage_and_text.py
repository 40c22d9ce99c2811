"""Provider copies: size and last use (for quota eviction), provider-only files, and the
cache of provider-extracted text.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("provider_file_uploads") as batch:
        batch.add_column(sa.Column("bytes", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("filename", sa.Text(), nullable=True))
        batch.add_column(sa.Column("last_used_at", TS, nullable=True))
        # NULL for files found at the provider that filetier never uploaded: their
        # original bytes are unknown to us ("provider-only").
        batch.alter_column("file_hash", existing_type=sa.String(64), nullable=True)
    op.create_index(
        "idx_provider_file_uploads_account_used",
        "provider_file_uploads",
        ["provider", "provider_account", "status", "last_used_at"],
    )
    op.create_table(
        "provider_extracted_text",
        sa.Column("file_hash", sa.String(64), primary_key=True),
        sa.Column("provider", sa.String(32), primary_key=True),
        sa.Column("provider_account", sa.String(255), primary_key=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("provider_extracted_text")
    op.drop_index("idx_provider_file_uploads_account_used", "provider_file_uploads")
    with op.batch_alter_table("provider_file_uploads") as batch:
        batch.alter_column("file_hash", existing_type=sa.String(64), nullable=False)
        batch.drop_column("last_used_at")
        batch.drop_column("filename")
        batch.drop_column("bytes")
