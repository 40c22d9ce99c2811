"""The migrations create exactly the schema the code queries."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from filetier.metadata.database import Database, head_revision
from filetier.metadata.schema import metadata_obj


async def test_migrated_sqlite_matches_schema_module(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    try:
        assert await db.upgrade() is True
        assert await db.upgrade() is False  # idempotent: already at head
        assert await db.current_revision() == head_revision()
        async with db.read() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata_obj)
            )
    finally:
        await db.close()
    # Type affinity differences (JSON vs JSONB variants) are not reported by SQLite.
    assert diff == []


def test_original_column_and_index_names_exist(tmp_path: Path) -> None:
    import asyncio

    async def migrate() -> None:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'n.db'}")
        await db.upgrade()
        await db.close()

    asyncio.run(migrate())
    inspector = sa.inspect(sa.create_engine(f"sqlite:///{tmp_path / 'n.db'}"))
    columns = {c["name"] for c in inspector.get_columns("file_metadata")}
    assert {
        "file_id",
        "original_filename",
        "file_size",
        "mime_type",
        "supabase_storage_path",
        "local_cache_path",
        "file_hash",
        "provider_file_ids",
        "upload_date",
        "last_accessed",
        "access_count",
        "metadata",
        "created_at",
        "updated_at",
        "owner",
    } <= columns
    indexes = {i["name"] for i in inspector.get_indexes("file_metadata")}
    assert {
        "idx_file_metadata_upload_date",
        "idx_file_metadata_last_accessed",
        "idx_file_metadata_file_hash",
    } <= indexes
    assert {"blobs", "provider_file_uploads", "file_download_history"} <= set(
        inspector.get_table_names()
    )
    history = {c["name"] for c in inspector.get_columns("file_download_history")}
    assert {
        "downloaded_at",
        "downloaded_by",
        "destination_path",
        "tier",
        "bytes",
        "duration_ms",
        "verified",
    } <= history


def test_the_quick_head_revision_is_alembics() -> None:
    """A store at head skips Alembic on open by reading the head from the migration files
    itself; that reading must name the head Alembic would."""
    from filetier.metadata.database import head_revision
    from filetier.metadata.revisions import quick_head_revision

    assert quick_head_revision() == head_revision()
