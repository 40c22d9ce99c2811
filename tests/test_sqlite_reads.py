"""The quick path's plain SQL is the repository's, and its rows decode as the repository's.

:mod:`filetier.metadata.sqlite_reads` keeps the SQL the CLI's quick path runs through the
standard library. Here the real repository runs each read on a real SQLite database, the
statements SQLAlchemy hands the driver are captured, and the plain copies must equal them
(text and parameters); then every row decodes to what ``FileRecord.model_dump(mode="json")``
makes of it. A change to a query or to the schema fails here until the copy follows.
"""

from __future__ import annotations

import itertools
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url

from filetier import FileStore, Settings
from filetier.catalog import LIST_OFFSET_MAX
from filetier.metadata import sqlite_reads
from filetier.metadata.provider_repository import ProviderRepository
from filetier.metadata.rows import record_from_row

Captured = list[tuple[str, tuple[Any, ...]]]


@pytest.fixture
async def opened(settings: Settings) -> AsyncIterator[tuple[FileStore, Captured]]:
    async with FileStore(settings) as store:
        seen: Captured = []

        def capture(_c: Any, _cur: Any, statement: str, params: Any, *_rest: Any) -> None:
            if statement not in {"BEGIN", "BEGIN IMMEDIATE"}:
                seen.append((statement, tuple(params)))

        event.listen(store.db.engine.sync_engine, "before_cursor_execute", capture)
        if store.db.batch_engine is not None:  # the reads answered in one thread call
            event.listen(store.db.batch_engine, "before_cursor_execute", capture)
        yield store, seen


NAMES = [None, "", "plain", "50%", "a_b", "back\\slash", "Été", "%_\\/"]
TYPES = [None, "", "text/plain", "text/*", "image/png", "a_b/*", "x%/*", "odd/sub/*", "*"]
HASHES = [None, "", "ab" * 32]


async def test_the_listing_sql_is_the_repositorys(opened: tuple[FileStore, Captured]) -> None:
    store, seen = opened
    for name, mime, sha256 in itertools.product(NAMES, TYPES, HASHES):
        for limit, offset in ((50, 0), (2, 7)):
            seen.clear()
            await store.repo.list_files(
                "someone",
                name_contains=name,
                mime_type=mime,
                sha256=sha256,
                limit=limit,
                offset=offset,
            )
            plain = sqlite_reads.list_files(
                "someone",
                name_contains=name,
                mime_type=mime,
                sha256=sha256,
                limit=limit,
                offset=offset,
            )
            assert seen == plain, (name, mime, sha256)


async def test_the_id_reads_are_the_repositorys(opened: tuple[FileStore, Captured]) -> None:
    store, seen = opened
    file_id, low, high = uuid.uuid4(), uuid.UUID(int=5), uuid.UUID(int=2**100)
    await store.repo.get_file("o", file_id)
    assert seen == [sqlite_reads.get_file("o", file_id)]
    seen.clear()
    await store.repo.file_ids_between("o", low, high, limit=2)
    assert seen == sqlite_reads.file_ids_between("o", low, high, limit=2)
    seen.clear()
    await ProviderRepository(store.db).for_hash("cd" * 32)
    assert seen == [sqlite_reads.copies_for_hash("cd" * 32)]


async def test_rows_decode_as_the_repositorys(
    opened: tuple[FileStore, Captured], settings: Settings, tmp_path: Path
) -> None:
    store, _seen = opened
    source = tmp_path / "a.txt"
    source.write_text("some text\n")
    kept = [
        await store.upload_file(source, filename="Été 50%.txt"),
        await store.upload_file(
            b"{}",
            filename="data.json",
            metadata={"tags": ["a", "é"], "n": 1.5, "deep": {"x": None}, "big": 2**70},
        ),
    ]
    await store.download_file(kept[0].file_id)  # sets last_accessed and access_count
    await store.flush()
    database = settings.home / "filetier.db"
    with sqlite3.connect(database) as db:
        # Values only another writer would leave: non-finite floats, JSON null, empty text.
        db.execute(
            'UPDATE file_metadata SET metadata = \'{"n": NaN, "i": -Infinity}\', '
            "provider_file_ids = 'null' WHERE file_id = ?",
            (kept[1].file_id.hex,),
        )
    db.close()
    for item in kept:
        sql, params = sqlite_reads.get_file("default", item.file_id)
        with sqlite3.connect(database) as db:
            cursor = db.execute(sql, params)
            row = dict(zip([c[0] for c in cursor.description], cursor.fetchone(), strict=True))
        db.close()
        record = await store.repo.get_file("default", item.file_id)
        assert record is not None
        assert sqlite_reads.record_json(row) == record.model_dump(mode="json")
        assert record_from_row(row | _decoded(row)).model_dump(mode="json") == (
            sqlite_reads.record_json(row)
        )


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    """The row as SQLAlchemy types hand it over (ids, times, JSON), for record_from_row."""
    import json
    from datetime import UTC, datetime

    def when(text: str | None) -> datetime | None:
        return None if text is None else datetime.fromisoformat(text).replace(tzinfo=UTC)

    return {
        "file_id": uuid.UUID(row["file_id"]),
        "provider_file_ids": json.loads(row["provider_file_ids"]),
        "metadata": json.loads(row["metadata"]),
        **{k: when(row[k]) for k in ("upload_date", "last_accessed", "created_at", "updated_at")},
    }


def test_values_it_cannot_decode_with_certainty_are_refused() -> None:
    row = {
        "file_id": uuid.uuid4().hex,
        "owner": "o",
        "original_filename": "f",
        "file_size": 1,
        "mime_type": "text/plain",
        "supabase_storage_path": "k",
        "file_hash": "ab",
        "provider_file_ids": "{}",
        "metadata": "{}",
        "upload_date": "2026-01-02 03:04:05.000000",
        "last_accessed": None,
        "access_count": 0,
        "created_at": "2026-01-02 03:04:05.120000",
        "updated_at": "2026-01-02 03:04:05",
    }
    decoded = sqlite_reads.record_json(row)
    assert decoded["upload_date"] == "2026-01-02T03:04:05Z"
    assert decoded["created_at"] == "2026-01-02T03:04:05.120000Z"
    for key, odd in (
        ("file_size", 1.0),
        ("file_size", "1"),
        ("metadata", "[1]"),
        ("upload_date", "2026-01-02T03:04:05+02:00"),
        ("owner", None),
    ):
        with pytest.raises(sqlite_reads.NotPlain):
            sqlite_reads.record_json(row | {key: odd})


def test_the_quick_path_bounds_agree_with_the_stores() -> None:
    from filetier.interfaces.cli import quick

    assert quick._OFFSET_MAX == LIST_OFFSET_MAX


@pytest.mark.parametrize("home", ["/tmp/a b", "/tmp/at@host", "/tmp/Été", "rel/dir", "/tmp/a:b"])
def test_the_database_file_is_the_one_the_store_opens(home: str) -> None:
    """The quick path opens ``home / filetier.db``: the path SQLAlchemy reads from the URL."""
    settings = Settings(home=Path(home))
    assert make_url(settings.database_url).database == str(Path(home) / "filetier.db")


def test_every_setting_read_from_the_environment_sends_the_cli_to_the_normal_path() -> None:
    """Any setting in the environment but FILETIER_HOME and FILETIER_OWNER makes the quick
    path step aside: every name Settings reads is FILETIER_-prefixed or listed."""
    from pydantic_settings import EnvSettingsSource

    from filetier.interfaces.cli.quick import HANDLED_SETTINGS, UNPREFIXED_SETTINGS

    source = EnvSettingsSource(Settings)
    read = {
        env_name
        for name, field in Settings.model_fields.items()
        for _key, env_name, _complex in source._extract_field_info(field, name)
    }
    assert set(HANDLED_SETTINGS) <= read
    assert {n for n in read if not n.startswith("filetier_")} <= UNPREFIXED_SETTINGS
    assert Settings.model_config.get("env_prefix") == "FILETIER_"
    assert Settings.model_config.get("env_file") == ".env"
    assert not Settings.model_config.get("case_sensitive", False)


def test_the_provider_settings_it_ignores_cannot_be_refused() -> None:
    """Provider keys, URLs and models in the environment leave the quick path on: no value
    of theirs fails validation, and opening a store makes no provider client."""
    from pydantic import SecretStr
    from pydantic_settings import EnvSettingsSource

    from filetier.interfaces.cli.quick import INERT_SETTINGS

    source = EnvSettingsSource(Settings)
    decorators = Settings.__pydantic_decorators__
    validated = {f for v in decorators.field_validators.values() for f in v.info.fields}
    assert not decorators.model_validators
    fields = {
        env_name: (name, field)
        for name, field in Settings.model_fields.items()
        for _key, env_name, _complex in source._extract_field_info(field, name)
    }
    assert set(fields) >= INERT_SETTINGS
    for env_name in INERT_SETTINGS:
        name, field = fields[env_name]
        assert name.split("_")[0] in {"anthropic", "gemini", "glm", "kimi", "mistral", "openai"}
        assert field.annotation in (str, SecretStr | None), env_name
        assert not field.metadata, env_name
        assert name not in validated, env_name
