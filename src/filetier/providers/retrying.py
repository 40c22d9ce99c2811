"""Every provider call goes through here: one retry shape and one error boundary.

An adapter owns a :class:`Boundary` (its provider's name, base URL, key, its SDK's
``translate`` and the :class:`~filetier.providers.base.RetryPolicy`) and makes each SDK
call as ``await boundary.call("upload a file", lambda: sdk.files.create(...))``. Inside
one attempt the SDK's exception is translated to a filetier error at once, so nothing
above an adapter ever sees an openai, anthropic, mistralai or google-genai exception.

The loop is stamina's (attempts, instrumentation, ``stamina.set_testing``); the SDKs' own
retries are off, because none of them bounds the total wait or lets us give up at once
on a ``Retry-After`` longer than we are willing to wait. Whether to try again is decided
on the filetier error (:data:`RETRYABLE`); how long to wait by :class:`_Waits`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import stamina

from filetier.errors import (
    ProviderError,
    ProviderInputError,
    ProviderRateLimitedError,
    ProviderTimeoutError,
    ProviderUnavailableError,
)
from filetier.providers.base import RetryPolicy
from filetier.providers.failures import Call

log = logging.getLogger(__name__)
T = TypeVar("T")

# The failures another attempt can cure; every other refusal is final at once.
RETRYABLE = (ProviderRateLimitedError, ProviderUnavailableError, ProviderTimeoutError)

# An SDK's translate: its exception as a filetier error, or None when the exception is
# not the SDK's (a bug in our code: it propagates as it is).
Translate = Callable[[Exception, Call], ProviderError | None]


class _Waits:
    """The waits of one call: ``Retry-After`` or jittered exponential backoff, and the
    total wait budget. Returned to stamina as the backoff, or False to stop now."""

    def __init__(self, policy: RetryPolicy, provider: str) -> None:
        self._policy = policy
        self._provider = provider
        self._retries = 0
        self._waited = 0.0

    def __call__(self, exc: Exception) -> bool | float:
        policy = self._policy
        if not isinstance(exc, RETRYABLE) or self._retries + 1 >= policy.attempts:
            # Not curable, or the last attempt (stamina would stop anyway: saying so here
            # keeps the "retrying" log line true).
            return False
        retry_after = exc.retry_after if isinstance(exc, ProviderRateLimitedError) else None
        if retry_after is not None:
            delay = retry_after
        else:
            backoff = min(policy.wait_max, policy.wait_initial * 2**self._retries)
            spread = policy.wait_jitter
            delay = backoff * random.uniform(1 - spread, 1 + spread)  # noqa: S311 - jitter
        if self._waited + delay > policy.max_wait_seconds:
            # Sleeping past the budget would only delay the same answer.
            return False
        self._retries += 1
        self._waited += delay
        log.info("%s: %s; retrying in %.2fs", self._provider, exc, delay)
        return delay


@dataclass(frozen=True, slots=True)
class Boundary:
    """One provider account's calls: retried by ``policy``, translated by ``translate``."""

    provider: str
    base_url: str
    key: str
    policy: RetryPolicy
    translate: Translate

    def describe(self, action: str) -> Call:
        return Call(self.provider, self.base_url, self.key, action)

    async def call(self, action: str, fn: Callable[[], Awaitable[T]]) -> T:
        """``fn()``, retried while it fails in a way another attempt can cure."""
        call = self.describe(action)
        async for attempt in stamina.retry_context(
            on=_Waits(self.policy, self.provider),
            attempts=max(1, self.policy.attempts),
            timeout=None,  # the wait budget is _Waits'; the calls' own time is not counted
        ):
            with attempt:
                try:
                    return await fn()
                except ProviderError:
                    raise  # already ours (a nested call through this boundary)
                except Exception as exc:
                    error = self.translate(exc, call)
                    if error is None:
                        raise
                    raise error from exc
        raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover

    async def call_or_none(self, action: str, fn: Callable[[], Awaitable[T]]) -> T | None:
        """As :meth:`call`, but None when the provider does not have the file it names."""
        try:
            return await self.call(action, fn)
        except ProviderInputError as exc:
            if exc.file_missing:
                return None
            raise
