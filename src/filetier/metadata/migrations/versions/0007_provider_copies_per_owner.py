"""Provider copies and their extracted text belong to one owner; blobs remember their
object's modification time.

A copy shared by every owner with the same content told bob that alice had uploaded it
(an instant ``uploaded: false`` answer, his file's ``provider_file_ids`` changed by her
upload). Each owner now has its own copies: ``owner`` joins the upload key, and the
``provider_file_ids`` mirror of a file lists only its owner's copies.

Existing copies go to the earliest owner of the content (the others upload their own on
first use); provider-only (``foreign``) rows keep ``owner`` NULL: they belong to the
provider account, which is the operator's. The extracted-text cache is a cache: it is
recreated empty, keyed by owner.

``blobs.object_modified_at``: the object's modification time when filetier last wrote or
hashed it. Deduplication trusts a stored object without hashing it only while its time is
unchanged (NULL for existing blobs: hashed once, on their next deduplication).

Revision ID: 0007
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
OLD_KEY = ["file_hash", "provider", "provider_account", "purpose"]


def _text_table(with_owner: bool) -> None:
    columns: list[sa.Column[Any]] = [
        sa.Column("file_hash", sa.String(64), primary_key=True),
        sa.Column("provider", sa.String(32), primary_key=True),
        sa.Column("provider_account", sa.String(255), primary_key=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    ]
    if with_owner:
        columns.insert(0, sa.Column("owner", sa.String(255), primary_key=True))
    op.create_table("provider_extracted_text", *columns)


def _json_key(provider: str, purpose: str) -> str:
    return provider if purpose == "file-extract" else f"{provider}:{purpose}"


def upgrade() -> None:
    with op.batch_alter_table("blobs") as batch:
        batch.add_column(sa.Column("object_modified_at", TS, nullable=True))
    with op.batch_alter_table("provider_file_uploads") as batch:
        batch.add_column(sa.Column("owner", sa.String(255), nullable=True))
        batch.drop_constraint("uq_provider_upload_key", type_="unique")
        batch.create_unique_constraint("uq_provider_upload_key", ["owner", *OLD_KEY])
    op.create_index(
        "idx_provider_file_uploads_owner_hash", "provider_file_uploads", ["owner", "file_hash"]
    )
    op.execute(
        "UPDATE provider_file_uploads SET owner = (SELECT f.owner FROM file_metadata f "
        "WHERE f.file_hash = provider_file_uploads.file_hash "
        "ORDER BY f.created_at, f.file_id LIMIT 1) WHERE file_hash IS NOT NULL"
    )
    # Other owners' files no longer list a copy that is not theirs.
    bind = op.get_bind()
    copies = bind.execute(
        sa.text(
            "SELECT owner, file_hash, provider, purpose, provider_file_id "
            "FROM provider_file_uploads WHERE file_hash IS NOT NULL"
        )
    ).all()
    for owner, file_hash, provider, purpose, provider_file_id in copies:
        rows = bind.execute(
            sa.text(
                "SELECT file_id, owner, provider_file_ids FROM file_metadata WHERE file_hash = :h"
            ),
            {"h": file_hash},
        ).all()
        key = _json_key(provider, purpose)
        for file_id, file_owner, raw in rows:
            mapping = json.loads(raw) if isinstance(raw, str) else dict(raw or {})
            if file_owner == owner or mapping.get(key) != provider_file_id:
                continue
            mapping.pop(key)
            bind.execute(
                # The id goes back exactly as the database gave it (text on SQLite).
                sa.text(
                    "UPDATE file_metadata SET provider_file_ids = :m WHERE file_id = :f"
                ).bindparams(sa.bindparam("m", type_=sa.JSON())),
                {"m": mapping, "f": file_id},
            )
    op.drop_table("provider_extracted_text")
    _text_table(with_owner=True)


def downgrade() -> None:
    op.drop_table("provider_extracted_text")
    _text_table(with_owner=False)
    op.drop_index("idx_provider_file_uploads_owner_hash", "provider_file_uploads")
    # Back to one copy per content: keep the oldest of each key.
    op.execute(
        "DELETE FROM provider_file_uploads WHERE file_hash IS NOT NULL "
        "AND CAST(id AS TEXT) NOT IN (SELECT min(CAST(id AS TEXT)) FROM provider_file_uploads "
        "WHERE file_hash IS NOT NULL GROUP BY file_hash, provider, provider_account, purpose)"
    )
    with op.batch_alter_table("provider_file_uploads") as batch:
        batch.drop_constraint("uq_provider_upload_key", type_="unique")
        batch.create_unique_constraint("uq_provider_upload_key", OLD_KEY)
        batch.drop_column("owner")
    with op.batch_alter_table("blobs") as batch:
        batch.drop_column("object_modified_at")
