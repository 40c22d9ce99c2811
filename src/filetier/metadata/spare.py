"""A PostgreSQL connection kept for work that runs one call at a time: the insert batches
(:class:`filetier.metadata.batching.GroupCommit` runs one batch after the other).

The query pool pings every connection it hands out (``SELECT 1``, a round trip), so an
open store survives a server restart. For a batch that runs every few milliseconds under
load that ping was a quarter of its round trips. Here a connection is pinged only when it
may have died unnoticed: after it sat idle for a second. A connection whose socket the
server closed (a restart, a crash) is known dead without a ping and replaced; one that
fails while in use is dropped, and the next call opens a new one.

:meth:`SpareConnection.autocommit` hands out the asyncpg connection itself, outside any
transaction (autocommit), for work that is one statement.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from filetier.errors import FiletierError

# When a connection idle for this long is used again, it is pinged first.
IDLE_PING_SECONDS = 1.0
_USED = "filetier_spare_used"


def spare_options(engine_options: dict[str, Any]) -> dict[str, Any]:
    """The query pool's engine options, for a spare connection: no ping before each use
    (see :meth:`SpareConnection._live`), one connection (two more only should callers
    overlap), and its own name in ``pg_stat_activity``."""
    connect_args = {
        **engine_options["connect_args"],
        "server_settings": {"application_name": "filetier-inserts"},
    }
    spare = {"pool_pre_ping": False, "pool_size": 1, "max_overflow": 2}
    return {**engine_options, **spare, "connect_args": connect_args}


class SpareConnection:
    def __init__(
        self,
        engine: AsyncEngine,
        translate: Callable[[BaseException], Exception],
        idle_ping_seconds: float = IDLE_PING_SECONDS,
    ) -> None:
        self.engine = engine
        # A driver's error -> the filetier error callers get (Database.unavailable).
        self._translate = translate
        self._idle = idle_ping_seconds

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction on the spare connection, committed on success."""
        try:
            async with self.connect() as conn, conn.begin():
                yield conn
        except FiletierError:
            raise
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            raise self._translate(exc) from exc

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[Any]:
        """The asyncpg connection, outside a transaction (each statement commits on its
        own). An error the server answered a statement with passes through, for the
        caller to handle; a lost connection is translated ("unavailable")."""
        try:
            async with self.driver() as driver:
                yield driver
        except FiletierError:
            raise
        except Exception as exc:
            if not driver_error(exc) or not connection_lost(exc):
                raise
            raise self._translate(exc) from exc

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A live connection; a failure while it is used drops it. SQLAlchemy's and
        driver exceptions pass through (the caller's boundary translates them)."""
        # Pinged first, as the query pool does: a transaction that failed on a dead
        # connection could not tell whether its COMMIT went through.
        async with self._checked_out(ping=True) as (conn, _driver):
            yield conn

    @asynccontextmanager
    async def driver(self) -> AsyncIterator[Any]:
        """The asyncpg connection of :meth:`connect`, outside any transaction."""
        async with self._checked_out() as (_conn, driver):
            yield driver

    @asynccontextmanager
    async def _checked_out(
        self, *, ping: bool = False
    ) -> AsyncIterator[tuple[AsyncConnection, Any]]:
        async with self.engine.connect() as conn:
            driver = await self._live(conn, ping=ping)
            try:
                yield conn, driver
            except BaseException as exc:
                if connection_lost(exc) and not conn.invalidated:
                    await conn.invalidate()
                raise
            finally:
                if not conn.invalidated and not driver.is_closed():
                    conn.info[_USED] = time.monotonic()

    async def _live(self, conn: AsyncConnection, *, ping: bool) -> Any:
        driver: Any = (await conn.get_raw_connection()).driver_connection
        used = conn.info.get(_USED)
        if driver.is_closed():
            await conn.invalidate()  # the server closed it: the next use reconnects
            return (await conn.get_raw_connection()).driver_connection
        if used is not None and (ping or time.monotonic() - used >= self._idle):
            return await pinged_driver(conn)
        return driver


async def pinged_driver(conn: AsyncConnection) -> Any:
    """The asyncpg connection of ``conn``, known to answer: pinged, and should the ping
    fail, ``conn`` invalidated and connected anew (once; a failure then is the caller's)."""
    driver: Any = (await conn.get_raw_connection()).driver_connection
    try:
        await driver.fetchval("SELECT 1")
    except Exception:  # noqa: BLE001 - any failure of the ping: a new connection
        await conn.invalidate()
        driver = (await conn.get_raw_connection()).driver_connection
    return driver


def driver_error(exc: BaseException) -> bool:
    """Whether ``exc`` came from the database or its driver (not a bug of ours)."""
    import asyncpg  # loaded already: only a PostgreSQL store has a spare connection

    return isinstance(
        exc,
        SQLAlchemyError
        | OSError
        | TimeoutError
        | asyncpg.PostgresError
        | asyncpg.InterfaceError
        | asyncpg.InternalClientError,
    )


def connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` may have left the connection unusable or mid-statement: anything
    but an error the server answered with (a refused statement leaves it fine)."""
    seen: BaseException | None = exc
    for _ in range(4):  # the error, and what it wraps (SQLAlchemy's, a refused batch's)
        if seen is None:
            break
        sqlstate = getattr(seen, "sqlstate", None)
        if isinstance(sqlstate, str):
            # Class 08: connection exception; 57: operator intervention (shutdown, cancel).
            return sqlstate[:2] in ("08", "57")
        seen = getattr(seen, "orig", None) or getattr(seen, "cause", None) or seen.__cause__
    return True
