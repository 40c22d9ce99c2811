"""Batched download bookkeeping: counters and history without slowing a cache hit.

A hit appends one small event to a list (no I/O, no await). A background task writes
the batch in one transaction every ``flush_seconds`` or once ``max_pending`` events wait;
``close()`` writes whatever is left, so a clean shutdown loses nothing. A failed write
keeps the events for the next attempt (bounded, oldest dropped first with a warning).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from uuid import UUID

from filetier.errors import FiletierError
from filetier.metadata.repository import AccessEvent, Repository

log = logging.getLogger(__name__)

_Hit = tuple[UUID, str, float, str, int, float]


def _event(item: AccessEvent | _Hit) -> AccessEvent:
    if isinstance(item, AccessEvent):
        return item
    file_id, owner, at, tier, size, duration_ms = item
    return AccessEvent(
        file_id=file_id,
        owner=owner,
        at=datetime.fromtimestamp(at, UTC),
        tier=tier,
        bytes=size,
        duration_ms=duration_ms,
        verified=True,
    )


class AccessRecorder:
    def __init__(
        self,
        repo: Repository,
        *,
        flush_seconds: float,
        max_pending: int = 1000,
        max_retained: int = 100_000,
    ) -> None:
        self._repo = repo
        self._flush_seconds = flush_seconds
        self._max_pending = max_pending
        self._max_retained = max_retained
        self._pending: list[AccessEvent | _Hit] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()
        self._closing = False

    @property
    def pending(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="filetier-bookkeeping")

    def record(self, event: AccessEvent) -> None:
        self._pending.append(event)
        if len(self._pending) >= self._max_pending:
            self._wake.set()

    def record_hit(
        self, file_id: UUID, owner: str, tier: str, size: int, duration_ms: float
    ) -> None:
        """A plain read (no destination): kept as a tuple, made an event when written.
        Building the event here would cost a memory hit a third of its time."""
        self._pending.append((file_id, owner, time.time(), tier, size, duration_ms))
        if len(self._pending) >= self._max_pending:
            self._wake.set()

    async def flush(self) -> int:
        """Write every pending event now; returns how many were written."""
        async with self._flush_lock:
            batch, self._pending = self._pending, []
            if not batch:
                return 0
            try:
                await self._repo.record_accesses([_event(item) for item in batch])
            except FiletierError:
                # Keep them for the next attempt, newest last, within the bound.
                self._pending = (batch + self._pending)[-self._max_retained :]
                raise
            return len(batch)

    async def _run(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._flush_seconds)
            self._wake.clear()
            try:
                await self.flush()
            except FiletierError as exc:
                log.warning("download bookkeeping not written yet (%s); will retry", exc)

    async def close(self) -> None:
        # The loop is stopped by a flag, not cancelled: cancelling a write mid-commit
        # could not tell whether the batch landed.
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.flush()
