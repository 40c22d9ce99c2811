"""Row-level security on PostgreSQL: each owner sees only its own rows.

The policies read the owner from the ``filetier.owner`` setting of the session
(``SET filetier.owner = 'alice'`` or ``set_config('filetier.owner', 'alice', true)``);
with it unset, a role subject to RLS sees nothing. filetier itself connects as the
tables' owner, which PostgreSQL exempts from RLS, because maintenance (gc, verify, the
last-reference check of a delete) must see every owner's references to shared content;
its queries scope every user-facing read and write by owner. The policies bind every
other role: the API roles of Supabase, reporting users, a tenant's direct connection.

``blobs`` and ``provider_file_uploads`` are keyed by content, not owner, and stay
without policies; a tenant role is given no grant on them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

OWNER_TABLES = ("file_metadata", "file_download_history")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in OWNER_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"""
            CREATE POLICY {table}_owner_isolation ON {table}
            USING (owner = current_setting('filetier.owner', true))
            WITH CHECK (owner = current_setting('filetier.owner', true))
            """
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in OWNER_TABLES:
        op.execute(f"DROP POLICY IF EXISTS {table}_owner_isolation ON {table}")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
