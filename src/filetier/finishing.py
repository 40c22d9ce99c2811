"""Work that must finish once started, even when the task awaiting it is cancelled.

A cancelled task leaves its ``async with`` blocks at once: a content lock is released
while a delete it guarded may still be running in a worker thread or in flight to an
object store, and would then land after another upload of the same content had vouched
for the object and been acknowledged. What is awaited through :func:`finished` ends
first; the cancellation is raised after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


async def finished(work: Awaitable[T]) -> T:
    """Await ``work`` to its end: a cancellation of the caller waits for it, then is
    raised."""
    future = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await until_done(future)
        raise


async def until_done(future: asyncio.Future[Any]) -> None:
    """Wait for ``future`` to finish, whatever it ends with, through further cancellations
    (a worker thread holds a descriptor the caller is about to close); a cancellation
    received meanwhile is raised after."""
    cancelled = False
    while not future.done():
        try:
            await asyncio.wait([future])
        except asyncio.CancelledError:
            cancelled = True
    if not future.cancelled():
        future.exception()  # retrieved: an error is not logged as unhandled
    if cancelled:
        raise asyncio.CancelledError
