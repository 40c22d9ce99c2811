"""Group commit: writes that arrive while one batch is being committed go in the next.

Each write transaction costs a fixed price (SQLite: ``BEGIN IMMEDIATE``, a thread hop
per statement, and with fsync on, an fsync of the WAL at commit) that dwarfs the rows
themselves. Sixteen uploads that finish together pay it once instead of sixteen times.
A lone write still goes at once: nothing waits for company, a batch is simply whatever
queued up while the previous one was being committed.

Every caller gets its own outcome: the batch's runner returns one result or one
exception per request, and an error of the whole batch (the commit failed) is every
request's error. A request is answered only after its batch committed, so nothing is
acknowledged before it is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

Request = TypeVar("Request")
Result = TypeVar("Result")

# Bounds one transaction's length, and so how long the writer lock is held at once.
MAX_BATCH = 256


class GroupCommit(Generic[Request, Result]):
    """Queue of requests run in batches by ``run``, one batch at a time."""

    def __init__(
        self,
        run: Callable[[list[Request]], Awaitable[list[Result | Exception]]],
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._run = run
        self._max = max_batch
        self._pending: list[tuple[Request, asyncio.Future[Result]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, request: Request) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        entry = (request, future)
        self._pending.append(entry)
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        try:
            # Awaited directly (no shield): a cancelled caller cancels its own future,
            # which the batch then skips when it answers.
            return await future
        except asyncio.CancelledError:
            # Not taken into a batch yet: it never happens. Already taken: it commits
            # with its batch (as a commit already sent would), unacknowledged.
            with contextlib.suppress(ValueError):
                self._pending.remove(entry)
            raise

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[: self._max], self._pending[self._max :]
            try:
                results = await self._run([request for request, _ in batch])
            except Exception as exc:  # noqa: BLE001 - the whole batch's error is each caller's
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            except BaseException as exc:
                # Cancelled or interrupted: the batch's fate is unknown; tell its callers
                # and leave the rest queued for the next submit to drain.
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                raise
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    async def wait_idle(self) -> None:
        """Wait until every queued request was answered (before closing the database)."""
        while self._drainer is not None and not self._drainer.done():
            await asyncio.wait({self._drainer})


def each_alone_if_refused(
    sync_conn: sa.Connection,
    requests: list[Request],
    run_all: Callable[[sa.Connection, list[Request]], Sequence[Result]],
    translate: Callable[[BaseException], Exception],
) -> list[Result | Exception]:
    """``run_all(sync_conn, requests)`` in a savepoint of the caller's write transaction,
    one outcome per request. Should the batch fail as a whole (a constraint, say), it is
    undone and each request is run again in a savepoint of its own, so only the request
    at fault gets the error (translated by ``translate``)."""
    try:
        with sync_conn.begin_nested():
            return list(run_all(sync_conn, requests))
    except SQLAlchemyError as exc:
        if len(requests) == 1:
            return [translate(exc)]
    outcomes: list[Result | Exception] = []
    for request in requests:
        try:
            with sync_conn.begin_nested():
                outcomes.extend(run_all(sync_conn, [request]))
        except SQLAlchemyError as exc:
            outcomes.append(translate(exc))
    return outcomes
