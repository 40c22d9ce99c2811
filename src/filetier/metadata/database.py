"""The metadata database: engine set-up, migrations on first use, transactions.

This is the boundary where SQLAlchemy and driver exceptions become
:class:`filetier.errors.MetadataUnavailableError`.

SQLite notes: WAL lets readers run beside the single writer; write transactions start
with ``BEGIN IMMEDIATE`` because a deferred transaction that reads and then writes fails
at once with "database is locked" when another process holds the write lock, instead of
waiting out ``busy_timeout``.

PostgreSQL: every table, the trigger function and Alembic's version table live in
filetier's own schema (``FILETIER_DATABASE_SCHEMA``, default ``filetier``). Each connection
starts with ``search_path`` set to that schema alone, so the queries, the migrations and
their RLS policies name tables unqualified and still never touch ``public`` or another
app's schema. A database (either dialect) that is not filetier's is never migrated
silently: see :meth:`Database.upgrade`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from filetier.config import mask_url
from filetier.errors import (
    ConfigError,
    FiletierError,
    InsufficientSpaceError,
    MetadataUnavailableError,
)
from filetier.metadata.advisory import LockSession
from filetier.metadata.revisions import quick_head_revision
from filetier.metadata.spare import SpareConnection, spare_options
from filetier.modes import FILE_MODE, create_file, make_dirs

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext

# Alembic (with mako and its templates) is imported only when a schema has to change or
# be inspected: a store whose database is already at head checks that with one plain
# query, so a short CLI command does not pay ~0.1 s to load it.

P = ParamSpec("P")
T = TypeVar("T")

_WRITE = "filetier_write"
# SQLite file: threads answering the hot path's reads (record lookups), one call each.
READ_THREADS = 4
_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# Schemas of PostgreSQL itself: their tables do not make a database "someone else's".
_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema")


def _alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("filetier.metadata") / "migrations")
    )
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def _known_revisions() -> frozenset[str]:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config())
    return frozenset(rev.revision for rev in script.walk_revisions())


def _install_sqlite_hooks(engine: sa.Engine, *, durable_commits: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the driver so "begin" below decides.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        # busy_timeout first: switching to WAL takes a lock, and processes opening a new
        # database at once would otherwise fail with "database is locked" instead of waiting.
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL syncs only at checkpoints: a commit acknowledged just before
        # a power cut can be lost. With fsync on (``durable_commits``) every commit syncs
        # the WAL; group commit (metadata.batching) makes that one sync per batch.
        cursor.execute(f"PRAGMA synchronous={'FULL' if durable_commits else 'NORMAL'}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _set_search_path(engine: AsyncEngine, schema: str) -> None:
    # A SET on each new connection rather than a startup parameter: PgBouncer and poolers
    # refuse startup parameters they do not know, and a session SET survives in session
    # pooling, which filetier's session advisory locks need anyway.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute(f'SET search_path TO "{schema}"')
        cursor.close()
        # The driver ran it in a transaction; a later rollback would undo an uncommitted SET.
        dbapi_conn.commit()


class Database:
    """One async engine plus the few transaction shapes FileStore uses."""

    def __init__(
        self,
        url: str,
        *,
        timeout_seconds: float = 10.0,
        schema: str = "filetier",
        durable_commits: bool = False,
    ) -> None:
        self.url = url
        self.dialect = sa.engine.make_url(url).get_backend_name()
        if not _SCHEMA_RE.match(schema):
            raise ConfigError(
                f"FILETIER_DATABASE_SCHEMA {schema!r} is not a plain lower-case SQL name "
                "(letters, digits, underscores)"
            )
        # SQLite has no schemas: the file is filetier's database.
        self.schema: str | None = schema if self.dialect == "postgresql" else None
        kwargs: dict[str, Any] = {}
        if self.dialect == "sqlite":
            path = sa.engine.make_url(url).database
            if path and path != ":memory:":
                # Created 0600 before SQLite opens it: its -wal and -shm copy that mode.
                make_dirs(Path(path).parent)
                create_file(Path(path))
            kwargs["connect_args"] = {"timeout": 30}
        elif self.dialect == "postgresql":
            kwargs.update(
                pool_pre_ping=True,
                pool_size=10,
                max_overflow=10,
                pool_timeout=timeout_seconds,
                connect_args={
                    "timeout": timeout_seconds,
                    "command_timeout": timeout_seconds * 3,
                    "server_settings": {"application_name": "filetier"},
                },
            )
        self.engine = create_async_engine(url, **kwargs)
        # Session advisory locks live on one session held for the process's life (see
        # metadata.advisory.LockSession), apart from the query pool.
        self.lock_engine = (
            create_async_engine(
                url,
                **{
                    **kwargs,
                    # It only ever runs the lock functions: autocommit (no BEGIN/ROLLBACK
                    # around them) and no ping (a dead session fails its next statement,
                    # and the next request opens a new one).
                    "pool_pre_ping": False,
                    "isolation_level": "AUTOCOMMIT",
                    "pool_size": 1,
                    "max_overflow": 1,
                    "connect_args": {
                        **kwargs["connect_args"],
                        "server_settings": {"application_name": "filetier-locks"},
                    },
                },
            )
            if self.dialect == "postgresql"
            else None
        )
        self.lock_session = LockSession(self.lock_engine, self.unavailable)
        # The insert batches' connection: pinged only after it sat idle (metadata.spare).
        self.spare: SpareConnection | None = None
        if self.dialect == "postgresql":
            spare_engine = create_async_engine(url, **spare_options(kwargs))
            _set_search_path(spare_engine, schema)
            self.spare = SpareConnection(spare_engine, self.unavailable)
        self._writer_gate: contextlib.AbstractAsyncContextManager[Any] = (
            asyncio.Lock() if self.dialect == "sqlite" else contextlib.nullcontext()
        )
        # SQLite file: a batch of writes runs in one worker-thread call on a plain sqlite3
        # engine (write_batch), where through aiosqlite each statement is a thread hop.
        self.batch_engine: sa.Engine | None = None
        self._batch_thread: ThreadPoolExecutor | None = None
        self._read_threads: ThreadPoolExecutor | None = None
        if self.dialect == "sqlite":
            _install_sqlite_hooks(self.engine.sync_engine, durable_commits=durable_commits)
            path = sa.engine.make_url(url).database
            if path and path != ":memory:":
                sync_url = sa.engine.make_url(url).set(drivername="sqlite")
                self.batch_engine = sa.create_engine(sync_url, **kwargs)
                _install_sqlite_hooks(self.batch_engine, durable_commits=durable_commits)
                self._batch_thread = ThreadPoolExecutor(1, thread_name_prefix="filetier-sqlite")
                self._read_threads = ThreadPoolExecutor(
                    READ_THREADS, thread_name_prefix="filetier-sqlite-read"
                )
        if self.dialect == "postgresql":
            _set_search_path(self.engine, schema)

    @property
    def safe_url(self) -> str:
        return mask_url(self.url)

    def unavailable(self, exc: BaseException) -> FiletierError:
        text = str(getattr(exc, "orig", None) or exc)
        if "database or disk is full" in text or "No space left on device" in text:
            return InsufficientSpaceError(
                "disk full: the metadata database cannot grow; free space and try again"
            )
        return self._unavailable(exc)

    def _unavailable(self, exc: BaseException) -> MetadataUnavailableError:
        detail = type(exc).__name__
        if isinstance(exc, OSError) and exc.strerror:
            detail = f"{detail}: {exc.strerror}"
        elif isinstance(exc, DBAPIError) and exc.orig is not None:
            detail = f"{type(exc.orig).__name__}: {str(exc.orig).splitlines()[0][:200]}"
        return MetadataUnavailableError(f"metadata database unavailable ({self.dialect}): {detail}")

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.engine.connect() as conn:
                yield conn
        except FiletierError:
            raise
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            # Connect failures surface from the driver as bare OSError / TimeoutError.
            raise self.unavailable(exc) from exc

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that commits on success and rolls back on any exception."""
        # SQLite has one writer. Queueing this process's writers here costs nothing;
        # letting them collide inside SQLite costs its busy handler's sleeps (1-100 ms).
        async with self._writer_gate, self._write_transaction() as conn:
            yield conn

    @asynccontextmanager
    async def _write_transaction(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.engine.connect() as conn:
                conn = await conn.execution_options(**{_WRITE: True})
                async with conn.begin():
                    yield conn
        except FiletierError:
            raise
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            # Connect failures surface from the driver as bare OSError / TimeoutError.
            raise self.unavailable(exc) from exc

    async def write_batch(
        self, fn: Callable[Concatenate[sa.Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``fn(conn, *args)`` in one write transaction, committed on success.

        SQLite file: the whole call (begin, every statement, commit) runs in one call to a
        worker thread on :attr:`batch_engine`; elsewhere (PostgreSQL, ``:memory:``) it is
        :meth:`write` with ``run_sync``."""
        if self.batch_engine is None or self._batch_thread is None:
            async with self.write() as conn:
                return await conn.run_sync(fn, *args, **kwargs)
        call = functools.partial(self._run_batch, self.batch_engine, fn, *args, **kwargs)
        async with self._writer_gate:
            try:
                return await asyncio.get_running_loop().run_in_executor(self._batch_thread, call)
            except FiletierError:
                raise
            except (SQLAlchemyError, OSError, TimeoutError) as exc:
                raise self.unavailable(exc) from exc

    async def read_sync(
        self, fn: Callable[Concatenate[sa.Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``fn(conn, *args)`` in one read transaction.

        SQLite file: one call to a reader thread on :attr:`batch_engine` (WAL: readers do
        not wait for the writer), where through aiosqlite each statement, the BEGIN and
        the ROLLBACK are a thread hop and a turn of the busy event loop each; elsewhere
        :meth:`read` with ``run_sync``."""
        if self.batch_engine is None or self._read_threads is None:
            async with self.read() as conn:
                return await conn.run_sync(fn, *args, **kwargs)
        call = functools.partial(self._run_read, self.batch_engine, fn, *args, **kwargs)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._read_threads, call)
        except FiletierError:
            raise
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            raise self.unavailable(exc) from exc

    @staticmethod
    def _run_read(
        engine: sa.Engine,
        fn: Callable[Concatenate[sa.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        with engine.connect() as conn:
            return fn(conn, *args, **kwargs)

    @staticmethod
    def _run_batch(
        engine: sa.Engine,
        fn: Callable[Concatenate[sa.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        with engine.connect() as conn:
            conn = conn.execution_options(**{_WRITE: True})
            with conn.begin():
                return fn(conn, *args, **kwargs)

    def _migration_context(self, sync_conn: sa.Connection) -> MigrationContext:
        from alembic.runtime.migration import MigrationContext

        return MigrationContext.configure(sync_conn, opts={"version_table_schema": self.schema})

    def _heads(self, sync_conn: sa.Connection) -> tuple[str, ...]:
        from alembic.util import CommandError

        try:
            return tuple(self._migration_context(sync_conn).get_current_heads())
        except CommandError as exc:  # a version table alembic cannot read as one
            raise ConfigError(
                f"the database {self.safe_url} has an Alembic version table filetier cannot "
                f"read ({str(exc).splitlines()[0][:120]}): give filetier its own database "
                "with FILETIER_DATABASE_URL"
            ) from None

    async def current_revision(self) -> str | None:
        async with self.read() as conn:
            heads = await conn.run_sync(self._heads)
        return heads[0] if len(heads) == 1 else None

    async def upgrade(self, lock_dir: Path | None = None, *, adopt: bool = True) -> bool:
        """Bring the schema to the newest revision; True when anything ran.

        ``adopt=False`` is for a database filetier was not explicitly given (the generic
        ``DATABASE_URL``): it is migrated only when it is already filetier's or holds no
        table at all; one with other tables is refused with :class:`ConfigError`, never
        changed. A version table at a revision filetier does not know (another app's
        Alembic history in the same SQLite file, or a newer filetier) is always refused.
        """
        head = quick_head_revision()
        if head is not None:
            async with self.read() as conn:
                if await conn.run_sync(self._stored_revisions) == (head,):
                    return False
        else:
            async with self.read() as conn:
                if await conn.run_sync(self._heads) == (head_revision(),):
                    return False
        # Two processes opening a new data dir at once must not both create tables: a file
        # lock on one host (SQLite), a transaction-scoped advisory lock on PostgreSQL.
        lock = None
        if lock_dir is not None and self.dialect == "sqlite":
            from filelock import FileLock

            lock = FileLock(str(lock_dir / ".migrate.lock"), timeout=60, mode=FILE_MODE)
        if lock:
            lock.acquire()
        try:
            async with self.write() as conn:
                if self.dialect == "postgresql":
                    await conn.execute(sa.text("SELECT pg_advisory_xact_lock(1718906881, 0)"))
                await conn.run_sync(self._migrate, adopt)
        finally:
            if lock:
                lock.release()
        return True

    def _stored_revisions(self, sync_conn: sa.Connection) -> tuple[str, ...]:
        """The version table's rows by plain SQL; empty when there is no table yet."""
        if not sa.inspect(sync_conn).has_table("alembic_version", schema=self.schema):
            return ()
        table = f'"{self.schema}".alembic_version' if self.schema else "alembic_version"
        rows = sync_conn.exec_driver_sql(f"SELECT version_num FROM {table}")  # noqa: S608 - a validated name
        return tuple(row[0] for row in rows)

    def _migrate(self, sync_conn: sa.Connection, adopt: bool) -> None:
        from alembic import command

        if self.schema is not None:
            self._move_legacy_tables(sync_conn, self.schema)
        heads = self._heads(sync_conn)
        unknown = sorted(set(heads) - _known_revisions())
        if unknown:
            raise ConfigError(
                f"the database {self.safe_url} is at Alembic revision {unknown[0]!r}, which "
                "is not one of filetier's (another application's migrations, or a newer "
                "filetier): give filetier its own database with FILETIER_DATABASE_URL"
            )
        if not heads and not adopt:
            others = self._other_tables(sync_conn)
            if others:
                raise ConfigError(
                    f"the database {self.safe_url} is not filetier's (it holds "
                    f"{', '.join(others)}) and filetier was not asked to add its tables "
                    "there: set FILETIER_DATABASE_URL to a database for filetier, or run "
                    "`filetier db upgrade` to add them on purpose"
                )
        if self.schema is not None:
            sync_conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        config = _alembic_config()
        config.attributes["connection"] = sync_conn
        config.attributes["version_table_schema"] = self.schema
        command.upgrade(config, "head")

    def _other_tables(self, sync_conn: sa.Connection, shown: int = 3) -> list[str]:
        """Up to ``shown`` tables already in the database (names only, for the error)."""
        if self.dialect == "sqlite":
            names = sa.inspect(sync_conn).get_table_names()
            return sorted(n for n in names if not n.startswith("sqlite_"))[:shown]
        rows = sync_conn.execute(
            sa.text(
                "SELECT table_schema || '.' || table_name FROM information_schema.tables "
                "WHERE table_schema NOT IN :system AND table_schema NOT LIKE 'pg\\_%' "
                "ORDER BY 1 LIMIT :shown"
            ).bindparams(sa.bindparam("system", expanding=True)),
            {"system": list(_SYSTEM_SCHEMAS), "shown": shown},
        )
        return [row[0] for row in rows]

    @staticmethod
    def _move_legacy_tables(sync_conn: sa.Connection, schema: str) -> None:
        """Move an older filetier's tables from ``public`` into ``schema``, once.

        Before the schema setting, filetier created its tables in ``public``. They are
        filetier's when ``public.alembic_version`` holds one of filetier's revisions and
        ``public.file_metadata`` exists; then each table filetier defines, and that version
        table, moves as it is (rows, indexes, policies and triggers go with it), in the
        migration's transaction. Without this, the new schema would start empty and every
        stored file would seem gone.
        """
        if schema == "public":
            return
        inspector = sa.inspect(sync_conn)
        if inspector.has_table("alembic_version", schema=schema):
            return
        if not (
            inspector.has_table("alembic_version", schema="public")
            and inspector.has_table("file_metadata", schema="public")
        ):
            return
        versions = {
            row[0]
            for row in sync_conn.exec_driver_sql("SELECT version_num FROM public.alembic_version")
        }
        if not versions or not versions <= _known_revisions():
            return
        from filetier.metadata.schema import metadata_obj

        sync_conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        for name in [*metadata_obj.tables, "alembic_version"]:
            if inspector.has_table(name, schema="public"):
                sync_conn.exec_driver_sql(f'ALTER TABLE public."{name}" SET SCHEMA "{schema}"')

    async def close(self) -> None:
        await self.lock_session.close()
        await self.engine.dispose()
        if self.batch_engine is not None:
            self.batch_engine.dispose()
        if self._batch_thread is not None:
            self._batch_thread.shutdown(wait=False)
        if self._read_threads is not None:
            self._read_threads.shutdown(wait=False)
        if self.lock_engine is not None:
            await self.lock_engine.dispose()
        if self.spare is not None:
            await self.spare.engine.dispose()
