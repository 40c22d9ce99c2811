"""Alembic environment: always run from filetier.metadata.migrate with a live connection."""

from __future__ import annotations

from alembic import context

from filetier.metadata.schema import metadata_obj

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable through the alembic CLI
    raise RuntimeError("run migrations with `filetier db upgrade`, not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=metadata_obj,
    # PostgreSQL: filetier's own schema (the connection's search_path names it too).
    version_table_schema=context.config.attributes.get("version_table_schema"),
    # SQLite cannot ALTER most things in place: batch mode recreates tables instead.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
