"""Progress notifications for transfers: the store counts bytes, the client sees progress.

The store's ``progress`` callback is called with byte increments, often from a worker
thread (hashing and copying run in ``asyncio.to_thread``). A notification must be sent from
the event loop, so the callback only adds to a counter and wakes a small pump task through
``loop.call_soon_threadsafe``; the pump sends at most one notification per ``interval``.
A client that stops listening never fails the transfer: a send that fails ends the pump.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

import anyio

log = logging.getLogger(__name__)

Report = Callable[[float, float | None, str | None], Awaitable[None]]

#: Shortest time between two progress notifications of one transfer, in seconds.
DEFAULT_INTERVAL = 0.05


class TransferProgress:
    """``async with TransferProgress(ctx.report_progress, total, "uploading x") as p:``
    then pass ``p`` as the store's ``progress`` callback."""

    def __init__(
        self,
        report: Report,
        total: int | None,
        message: str,
        *,
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        self._report = report
        self._total = total
        self._message = message
        self._interval = interval
        self._lock = threading.Lock()
        self._done = 0
        self._sent = -1
        self._broken = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._pump: asyncio.Task[None] | None = None

    @property
    def done(self) -> int:
        with self._lock:
            return self._done

    def __call__(self, increment: int) -> None:
        """The store's callback: safe from any thread, never blocks."""
        with self._lock:
            self._done += increment
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    async def __aenter__(self) -> Self:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        await self._send()
        self._pump = asyncio.create_task(self._run(), name="mcp-progress")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
        self._loop = None
        if exc_type is None:
            await self._send(final=True)

    async def _run(self) -> None:
        assert self._wake is not None
        while not self._broken:
            await self._wake.wait()
            self._wake.clear()
            await self._send()
            await asyncio.sleep(self._interval)

    async def _send(self, *, final: bool = False) -> None:
        done = self.done
        if final and self._total is not None:
            done = self._total  # a deduplicated upload may skip the copy pass entirely
        if self._total is not None:
            done = min(done, self._total)
        if self._broken or done == self._sent:
            return
        self._sent = done
        total = float(self._total) if self._total is not None else None
        try:
            await self._report(float(done), total, self._message)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError) as exc:
            # The client went away; the transfer itself goes on and reports its result.
            log.debug("progress notification not delivered: %r", exc)
            self._broken = True
