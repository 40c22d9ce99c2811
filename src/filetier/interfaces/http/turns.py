"""Large file bodies take turns, so that small requests do not wait behind them (see
:class:`LargeBodies`; :mod:`filetier.interfaces.http.content` asks for the turns).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

LARGE_BODY = 4 * 1024 * 1024  # a file body this long streams in turn
LARGE_BODIES_AT_ONCE = 2
LARGE_BODY_MAX_WAIT = 5.0  # seconds a large body waits for its turn, then goes anyway


class LargeBodies:
    """Large file bodies take turns: at most ``at_once`` stream together, the others wait
    before their first byte, at most ``max_wait`` seconds (then they go anyway).

    Under load every body streaming at once shares the event loop and the cores: a few
    64 MiB downloads, each reading, hashing and sending a chunk per turn of the loop,
    made every small request behind them wait for those turns. Taking turns, the small
    ones go first and the large ones queue among themselves. The wait is bounded so that
    clients that read a large body slowly (above the response-rate floor) cannot hold
    the turns and stall every other large download. One event loop: no lock needed
    beyond the semaphore.
    """

    def __init__(
        self, at_once: int = LARGE_BODIES_AT_ONCE, max_wait: float = LARGE_BODY_MAX_WAIT
    ) -> None:
        self._slots = asyncio.Semaphore(at_once)
        self._max_wait = max_wait
        self.waited_out = 0  # bodies that went without a turn after max_wait

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self._max_wait):
                await self._slots.acquire()
            held = True
        except TimeoutError:
            held = False
            self.waited_out += 1
        try:
            yield
        finally:
            if held:
                self._slots.release()
