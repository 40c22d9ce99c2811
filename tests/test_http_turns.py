"""Large file bodies take turns (``interfaces/http/turns.py``): at most so many at once,
and none waits longer than its bound, however long the others take."""

from __future__ import annotations

import asyncio
import time

from filetier.interfaces.http.turns import LargeBodies


async def test_large_bodies_take_turns_and_none_waits_past_its_bound() -> None:
    turns = LargeBodies(at_once=1, max_wait=0.2)
    order: list[str] = []
    first_in = asyncio.Event()
    release_first = asyncio.Event()

    async def first() -> None:
        async with turns.turn():
            order.append("first in")
            first_in.set()
            await release_first.wait()
        order.append("first out")

    async def second() -> None:
        await first_in.wait()
        began = time.monotonic()
        async with turns.turn():
            order.append("second in")
            waited = time.monotonic() - began
        assert 0.15 <= waited < 2.0  # waited for its turn, then went anyway
        release_first.set()

    await asyncio.gather(first(), second())
    assert order == ["first in", "second in", "first out"]
    assert turns.waited_out == 1
    # With the slot free again, a body goes at once and counts as having had its turn.
    async with turns.turn():
        pass
    assert turns.waited_out == 1
