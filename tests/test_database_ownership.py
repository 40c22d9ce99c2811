"""A database that is not filetier's is never taken over.

The generic ``DATABASE_URL`` (from the environment, or a ``.env`` in whatever folder the
CLI runs in) often belongs to another app. filetier adds its tables only to an empty
database or one that is already filetier's, unless told on purpose
(``FILETIER_DATABASE_URL`` or ``filetier db upgrade``); on PostgreSQL everything it creates
lives in its own schema, so ``public`` and other apps' schemas are never touched.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from filetier import FileStore, Settings
from filetier.errors import ConfigError
from filetier.metadata.database import Database
from testbed.services import create_database, drop_database

FILETIER = [sys.executable, "-c", "from filetier.interfaces.cli.app import main; main()"]


def cli(cwd: Path, home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FILETIER_", "SUPABASE_")) and k != "DATABASE_URL"
    }
    environ.update({"FILETIER_HOME": str(home), "FILETIER_FSYNC": "0"}, **env)
    return subprocess.run(
        [*FILETIER, *args], capture_output=True, text=True, env=environ, cwd=cwd, timeout=60
    )


def sqlite_tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def app_database(path: Path, *, alembic_revision: str | None = None) -> None:
    """Another app's SQLite file: a table of its own, maybe its Alembic history."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO users (name) VALUES ('ada')")
        if alembic_revision:
            conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
            conn.execute("INSERT INTO alembic_version VALUES (?)", (alembic_revision,))


def test_dotenv_database_url_of_another_app_is_refused_not_migrated(tmp_path: Path) -> None:
    project = tmp_path / "someapp"
    project.mkdir()
    app_db = project / "app.db"
    app_database(app_db)
    (project / ".env").write_text(f"DATABASE_URL=sqlite:///{app_db}\n")

    listed = cli(project, tmp_path / "home", "ls")

    assert listed.returncode == 3, listed.stderr
    message = listed.stderr.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message
    assert "not filetier's" in message and "FILETIER_DATABASE_URL" in message
    assert "filetier db upgrade" in message
    assert sqlite_tables(app_db) == {"users"}

    # Asked on purpose, filetier adds its tables beside the app's and leaves them be.
    upgraded = cli(project, tmp_path / "home", "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert {"users", "file_metadata", "alembic_version"} <= sqlite_tables(app_db)
    assert cli(project, tmp_path / "home", "ls").returncode == 0
    with sqlite3.connect(app_db) as conn:
        assert conn.execute("SELECT name FROM users").fetchall() == [("ada",)]


@pytest.mark.parametrize("command", [["ls"], ["stats"], ["db", "upgrade"]])
def test_an_app_using_alembic_in_the_same_sqlite_file_gets_a_clear_error(
    tmp_path: Path, command: list[str]
) -> None:
    app_db = tmp_path / "app.db"
    app_database(app_db, alembic_revision="4f2e9c1ab7d3")

    for variable in ("DATABASE_URL", "FILETIER_DATABASE_URL"):
        ran = cli(tmp_path, tmp_path / "home", *command, **{variable: f"sqlite:///{app_db}"})

        assert ran.returncode == 3, ran.stderr
        assert "Traceback" not in ran.stderr
        assert "'4f2e9c1ab7d3'" in ran.stderr and "FILETIER_DATABASE_URL" in ran.stderr
        assert len(ran.stderr.strip().splitlines()) == 1
    assert sqlite_tables(app_db) == {"users", "alembic_version"}


def test_an_empty_database_from_database_url_is_used(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.db"
    ran = cli(tmp_path, tmp_path / "home", "ls", DATABASE_URL=f"sqlite:///{fresh}")
    assert ran.returncode == 0, ran.stderr
    assert "file_metadata" in sqlite_tables(fresh)


# -- PostgreSQL ------------------------------------------------------------------------------


@pytest.fixture
def app_pg() -> Iterator[str]:
    """A PostgreSQL database another app already uses: its table and its Alembic history
    in ``public``, and a function of the same name as filetier's trigger function."""
    url = create_database()

    async def populate() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(
                "CREATE TABLE public.orders (id serial PRIMARY KEY, total int);"
                "INSERT INTO public.orders (total) VALUES (42);"
                "CREATE TABLE public.alembic_version (version_num varchar(32) PRIMARY KEY);"
                "INSERT INTO public.alembic_version VALUES ('app0001');"
                "CREATE FUNCTION public.update_updated_at_column() RETURNS int "
                "LANGUAGE sql AS 'SELECT 7'"
            )
        finally:
            await conn.close()

    import asyncio

    asyncio.run(populate())
    try:
        yield url
    finally:
        drop_database(url)


async def public_state(url: str) -> tuple[set[str], list[str], int, set[str]]:
    conn = await asyncpg.connect(url)
    try:
        tables = {
            r[0]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        }
        versions = [r[0] for r in await conn.fetch("SELECT * FROM public.alembic_version")]
        function = await conn.fetchval("SELECT public.update_updated_at_column()")
        schemas = {r[0] for r in await conn.fetch("SELECT nspname FROM pg_namespace")}
    finally:
        await conn.close()
    return tables, versions, function, schemas


async def test_generic_database_url_of_a_shared_postgres_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, app_pg: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", app_pg)
    settings = Settings(home=tmp_path / "home", fsync=False)

    with pytest.raises(ConfigError, match=r"not filetier's .*public\.orders"):
        async with FileStore(settings):
            pass

    tables, versions, function, schemas = await public_state(app_pg)
    assert tables == {"orders", "alembic_version"}
    assert versions == ["app0001"]
    assert function == 7
    assert "filetier" not in schemas


@pytest.mark.parametrize("schema", ["filetier", "files_of_filetier"])
async def test_filetier_lives_in_its_own_schema_of_a_shared_postgres(
    tmp_path: Path, app_pg: str, schema: str
) -> None:
    settings = Settings(
        home=tmp_path / "home", database_url=app_pg, database_schema=schema, fsync=False
    )
    async with FileStore(settings) as store:
        up = await store.upload_file(b"kept apart", filename="a.txt")
        await store.flush()
    async with FileStore(settings) as store:
        assert await store.read_bytes(up.file_id) == b"kept apart"

    tables, versions, function, schemas = await public_state(app_pg)
    assert tables == {"orders", "alembic_version"}, "nothing of filetier's in public"
    assert versions == ["app0001"], "the app's Alembic history is untouched"
    assert function == 7, "the app's function of the same name is untouched"
    assert schema in schemas
    conn = await asyncpg.connect(app_pg)
    try:
        ours = {
            r[0]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
            )
        }
        policies = await conn.fetchval(
            "SELECT count(*) FROM pg_policies WHERE schemaname = $1", schema
        )
        trigger_schema = await conn.fetchval(
            "SELECT n.nspname FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid "
            "JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE t.tgname = 'update_file_metadata_updated_at'"
        )
    finally:
        await conn.close()
    assert {"file_metadata", "blobs", "alembic_version"} <= ours
    assert policies >= 2
    assert trigger_schema == schema


async def test_an_older_install_in_public_is_moved_into_the_schema_with_its_files(
    tmp_path: Path, pg_url: str
) -> None:
    old = Settings(home=tmp_path / "home", database_url=pg_url, database_schema="public")
    async with FileStore(old.model_copy(update={"fsync": False})) as store:
        up = await store.upload_file(b"uploaded before the schema", filename="old.txt")

    new = Settings(home=tmp_path / "home", database_url=pg_url, fsync=False)
    async with FileStore(new) as store:
        assert await store.read_bytes(up.file_id) == b"uploaded before the schema"
        assert (await store.stat(up.file_id)).filename == "old.txt"

    conn = await asyncpg.connect(pg_url)
    try:
        public = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
    finally:
        await conn.close()
    assert public == []


async def test_a_bad_schema_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="FILETIER_DATABASE_SCHEMA"):
        Database("postgresql+asyncpg://u@127.0.0.1/db", schema='x"; DROP')
