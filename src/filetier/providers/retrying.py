"""Bounded retries for the SDK-specific adapters (Anthropic, Mistral).

Each adapter says how to read its SDK's exceptions (:class:`Failure`); this module owns
when to try again: 429 honours ``Retry-After``, 5xx and connection failures back off
exponentially with jitter, and both are bounded in attempts and in total wait. A
``Retry-After`` longer than what is left of the wait budget fails at once rather than
sleeping past it. (``openai_compat`` keeps its own copy of the loop, written before this
module, for the openai SDK.)
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from filetier.errors import ProviderError

log = logging.getLogger(__name__)
T = TypeVar("T")


class Missing(Exception):
    """The provider answered 404; adapters turn it into None/False."""


@dataclass(frozen=True, slots=True)
class Failure:
    """What a foreign exception means: the error to raise, and whether to try again."""

    error: ProviderError
    retryable: bool = False
    retry_after: float | None = None


def retry_after_seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


async def call_with_retries(
    fn: Callable[[], Awaitable[T]],
    *,
    who: str,
    attempts: int,
    max_wait_seconds: float,
    classify: Callable[[Exception], Failure | None],
) -> T:
    """``fn()``, retried as above. ``classify`` raises :class:`Missing` for a 404 and
    returns None for an exception that is not the SDK's (a bug: it propagates as is)."""
    waited = 0.0
    attempts = max(1, attempts)
    for attempt in range(1, attempts + 1):
        try:
            return await fn()
        except Exception as exc:
            failure = classify(exc)
            if failure is None:
                raise
            if not failure.retryable:
                raise failure.error from exc
            delay = (
                failure.retry_after
                if failure.retry_after is not None
                else min(8.0, 0.25 * 2 ** (attempt - 1)) * (0.5 + random.random())  # noqa: S311 - jitter
            )
            if attempt == attempts or waited + delay > max_wait_seconds:
                raise failure.error from exc
            log.info("%s: %s; retrying in %.2fs", who, failure.error, delay)
            await asyncio.sleep(delay)
            waited += delay
    raise AssertionError("unreachable")  # pragma: no cover
