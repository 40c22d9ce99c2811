"""Metadata: the schema, its migrations, and the queries FileStore runs."""
