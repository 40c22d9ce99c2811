"""The metadata database: engine set-up, migrations on first use, transactions.

This is the boundary where SQLAlchemy and driver exceptions become
:class:`filetier.errors.MetadataUnavailableError`.

SQLite notes: WAL lets readers run beside the single writer; write transactions start
with ``BEGIN IMMEDIATE`` because a deferred transaction that reads and then writes fails
at once with "database is locked" when another process holds the write lock, instead of
waiting out ``busy_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from filelock import FileLock
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from filetier.config import mask_url
from filetier.errors import FiletierError, InsufficientSpaceError, MetadataUnavailableError

_WRITE = "filetier_write"


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("filetier.metadata") / "migrations")
    )
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def _install_sqlite_hooks(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the driver so "begin" below decides.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


# Advisory locks one process holds at once, at most (one per upload, delete or provider
# upload in flight); past it, a lock is waited for like any other and may be skipped.
LOCK_CONNECTIONS_MAX = 32


class Database:
    """One async engine plus the few transaction shapes FileStore uses."""

    def __init__(self, url: str, *, timeout_seconds: float = 10.0) -> None:
        self.url = url
        self.dialect = sa.engine.make_url(url).get_backend_name()
        kwargs: dict[str, Any] = {}
        if self.dialect == "sqlite":
            path = sa.engine.make_url(url).database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
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
        # Session advisory locks live on connections held for as long as the lock (an S3
        # put, say). From the same pool as the queries their holders still have to make,
        # enough of them would take every connection and wait for one forever; their own
        # pool keeps the two apart.
        self.lock_engine = (
            create_async_engine(
                url,
                **{
                    **kwargs,
                    "pool_size": 2,
                    "max_overflow": LOCK_CONNECTIONS_MAX - 2,
                    "connect_args": {
                        **kwargs["connect_args"],
                        "server_settings": {"application_name": "filetier-locks"},
                    },
                },
            )
            if self.dialect == "postgresql"
            else None
        )
        self._writer_gate: contextlib.AbstractAsyncContextManager[Any] = (
            asyncio.Lock() if self.dialect == "sqlite" else contextlib.nullcontext()
        )
        if self.dialect == "sqlite":
            _install_sqlite_hooks(self.engine)

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

    async def current_revision(self) -> str | None:
        async with self.read() as conn:
            return await conn.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )

    async def upgrade(self, lock_dir: Path | None = None) -> bool:
        """Bring the schema to the newest revision; True when anything ran."""
        if await self.current_revision() == head_revision():
            return False
        # Two processes opening a new data dir at once must not both create tables: a file
        # lock on one host (SQLite), a transaction-scoped advisory lock on PostgreSQL.
        lock = None
        if lock_dir is not None and self.dialect == "sqlite":
            lock = FileLock(str(lock_dir / ".migrate.lock"), timeout=60)
        if lock:
            lock.acquire()
        try:
            async with self.write() as conn:
                if self.dialect == "postgresql":
                    await conn.execute(sa.text("SELECT pg_advisory_xact_lock(1718906881, 0)"))
                await conn.run_sync(self._run_alembic)
        finally:
            if lock:
                lock.release()
        return True

    @staticmethod
    def _run_alembic(sync_conn: sa.Connection) -> None:
        config = _alembic_config()
        config.attributes["connection"] = sync_conn
        command.upgrade(config, "head")

    async def close(self) -> None:
        await self.engine.dispose()
        if self.lock_engine is not None:
            await self.lock_engine.dispose()
