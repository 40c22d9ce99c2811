"""An adapter for any OpenAI-compatible files API, through the official ``openai`` SDK.

Kimi (Moonshot), GLM (Zhipu BigModel) and OpenAI itself differ only in base URL,
purposes, limits and whether ``files.content`` returns the original bytes; those come
from :mod:`filetier.providers.registry`. This module is the one place openai's
exceptions are translated, and the one place provider calls are retried: 429 honours
``Retry-After``, 5xx and timeouts back off exponentially with jitter, both bounded in
attempts and in total wait. The API key never appears in a message: the SDK's messages
carry the server's error text, and any echo of the key is masked as well.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import openai

from filetier.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderLimitError,
    ProviderRateLimitedError,
    ProviderRequestError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    UnsupportedPurposeError,
)
from filetier.providers.base import ChatAnswer, LocalContent, ProviderFile, ProviderLimits
from filetier.providers.openai_uploads import MultipartPolicy, multipart_upload

log = logging.getLogger(__name__)
UPLOAD = "upload a file"
T = TypeVar("T")


class _Missing(Exception):
    """The provider answered 404 (internal; methods turn it into None/False)."""


def _retry_after(exc: openai.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, int | float) and value > 0:
        return datetime.fromtimestamp(value, UTC)
    return None


def _to_file(obj: Any) -> ProviderFile:
    return ProviderFile(
        id=str(obj.id),
        bytes=int(getattr(obj, "bytes", 0) or 0),
        filename=getattr(obj, "filename", None),
        purpose=getattr(obj, "purpose", None),
        created_at=_timestamp(getattr(obj, "created_at", None)),
        expires_at=_timestamp(getattr(obj, "expires_at", None)),
    )


class OpenAICompatibleProvider:
    def __init__(
        self,
        *,
        name: str,
        api_key: str,
        base_url: str,
        limits: ProviderLimits,
        default_model: str,
        returns_original_bytes: bool,
        timeout_seconds: float,
        retry_attempts: int,
        max_retry_wait_seconds: float,
        expires_after_seconds: int | None = None,
        multipart: MultipartPolicy | None = None,
    ) -> None:
        self._name = name
        # Only OpenAI itself takes these: Kimi and GLM have neither expires_after nor
        # the Uploads API, so the registry passes None for them.
        self._expires_seconds = expires_after_seconds
        self._expires_after: dict[str, Any] | None = (
            {"anchor": "created_at", "seconds": expires_after_seconds}
            if expires_after_seconds
            else None
        )
        self._multipart = multipart
        self._key = api_key
        self._base_url = base_url.rstrip("/")
        self._limits = limits
        self._default_model = default_model
        self._returns_original = returns_original_bytes
        self._attempts = max(1, retry_attempts)
        self._max_wait = max_retry_wait_seconds
        # The SDK's own retries are off: ours below honour Retry-After and are bounded.
        self._client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=self._base_url,
            max_retries=0,
            timeout=timeout_seconds,
        )

    @property
    def name(self) -> str:
        return self._name

    @property
    def account(self) -> str:
        return self._base_url

    @property
    def limits(self) -> ProviderLimits:
        return self._limits

    @property
    def default_model(self) -> str:
        return self._default_model

    @property
    def returns_original_bytes(self) -> bool:
        return self._returns_original

    # -- calls ------------------------------------------------------------------------

    async def upload(self, filename: str, data: bytes, purpose: str) -> ProviderFile:
        extra: dict[str, Any] = (
            {"expires_after": self._expires_after} if self._expires_after else {}
        )
        result = await self._call(
            UPLOAD,
            lambda: self._client.files.create(file=(filename, data), purpose=purpose, **extra),  # type: ignore[arg-type]
        )
        return self._with_expiry(_to_file(result))

    def reads_from_disk(self, size: int) -> bool:
        return self._multipart is not None and size > self._multipart.threshold_bytes

    async def upload_from_disk(self, content: LocalContent, purpose: str) -> ProviderFile:
        if self._multipart is None:  # pragma: no cover - reads_from_disk said no
            raise ProviderRequestError(f"{self._name} has no multipart Uploads API")
        result = await multipart_upload(
            self._client, self._upload_call, content, purpose, self._multipart, self._expires_after
        )
        return self._with_expiry(_to_file(result))

    def _with_expiry(self, file: ProviderFile) -> ProviderFile:
        """The provider's stated expiry, or the one we asked for when it states none."""
        if file.expires_at is not None or not self._expires_seconds:
            return file
        start = file.created_at or datetime.now(UTC)
        return replace(file, expires_at=start + timedelta(seconds=self._expires_seconds))

    async def _upload_call(self, action: str, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return await self._call(action, fn)
        except _Missing:
            raise ProviderRequestError(
                f"{self._name} ({self._base_url}) no longer has the upload while trying to "
                f"{action}; it expires an hour after it starts"
            ) from None

    async def retrieve(self, file_id: str) -> ProviderFile | None:
        try:
            return _to_file(
                await self._call("look up a file", lambda: self._client.files.retrieve(file_id))
            )
        except _Missing:
            return None

    async def delete(self, file_id: str) -> bool:
        try:
            await self._call("delete a file", lambda: self._client.files.delete(file_id))
        except _Missing:
            return False
        return True

    async def list_files(self) -> list[ProviderFile]:
        async def fetch() -> list[Any]:
            page = await self._client.files.list()
            return list(page.data)

        return [_to_file(item) for item in await self._call("list files", fetch)]

    async def extracted_text(self, file_id: str) -> str | None:
        async def fetch() -> str:
            response = await self._client.files.content(file_id)
            return response.text

        try:
            return await self._call("read a file's extracted text", fetch)
        except _Missing:
            return None

    async def chat(self, model: str, messages: list[dict[str, str]]) -> ChatAnswer:
        completion = await self._call(
            "answer a question",
            lambda: self._client.chat.completions.create(model=model, messages=messages),  # type: ignore[arg-type]
        )
        choice = completion.choices[0] if completion.choices else None
        content = (choice.message.content if choice else None) or ""
        usage = completion.usage.model_dump() if completion.usage else {}
        return ChatAnswer(content=content, model=completion.model or model, usage=usage)

    async def close(self) -> None:
        await self._client.close()

    # -- retries and error translation ------------------------------------------------

    async def _call(self, action: str, fn: Callable[[], Awaitable[T]]) -> T:
        waited = 0.0
        for attempt in range(1, self._attempts + 1):
            try:
                return await fn()
            except openai.NotFoundError:
                raise _Missing() from None
            except (
                openai.RateLimitError,
                openai.InternalServerError,
                openai.APIConnectionError,
            ) as exc:
                error = self._translate(action, exc)
                retry_after = _retry_after(exc) if isinstance(exc, openai.APIStatusError) else None
                delay = (
                    retry_after
                    if retry_after is not None
                    else min(8.0, 0.25 * 2 ** (attempt - 1)) * (0.5 + random.random())  # noqa: S311 - jitter
                )
                if attempt == self._attempts or waited + delay > self._max_wait:
                    raise error from exc
                log.info("%s: %s; retrying in %.2fs", self._name, error, delay)
                await asyncio.sleep(delay)
                waited += delay
            except openai.OpenAIError as exc:
                raise self._translate(action, exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "****") if self._key else text

    def _translate(self, action: str, exc: openai.OpenAIError) -> ProviderError:
        who = f"{self._name} ({self._base_url})"
        detail = self._scrub(_server_message(exc))
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            return ProviderAuthError(
                f"{who} refused the API key while trying to {action}: check "
                f"{self._name.upper()}_API_KEY"
            )
        if isinstance(exc, openai.RateLimitError):
            retry_after = _retry_after(exc)
            hint = f" (Retry-After {retry_after:g}s)" if retry_after is not None else ""
            return ProviderRateLimitedError(
                f"{who} is rate limiting requests{hint}; try again later", retry_after
            )
        if isinstance(exc, openai.APITimeoutError):
            return ProviderTimeoutError(f"{who} did not answer in time while trying to {action}")
        if isinstance(exc, openai.APIConnectionError):
            return ProviderUnavailableError(f"{who} could not be reached to {action}")
        if isinstance(exc, openai.InternalServerError):
            return ProviderUnavailableError(
                f"{who} failed with HTTP {exc.status_code} while trying to {action}; try again later"
            )
        if isinstance(exc, openai.APIStatusError):
            lowered = detail.lower()
            if exc.status_code == 413 or any(
                word in lowered for word in ("too large", "exceeded max file size", "file size")
            ):
                return ProviderLimitError(f"{who} refused the file as too large: {detail}")
            if action == "read a file's extracted text" and exc.status_code in (400, 403):
                return ProviderRequestError(
                    f"{who} does not return the contents or extracted text of this file: {detail}"
                )
            if "purpose" in lowered and action == UPLOAD:
                return UnsupportedPurposeError(f"{who} does not accept that purpose: {detail}")
            if any(word in lowered for word in ("exceed", "quota", "limit", "too many")):
                return ProviderLimitError(f"{who} quota is full: {detail}")
            return ProviderRequestError(
                f"{who} refused the request to {action} (HTTP {exc.status_code}): {detail}"
            )
        return ProviderRequestError(f"{who} failed to {action}: {type(exc).__name__}")


def _server_message(exc: openai.OpenAIError) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])[:300]
        if isinstance(body.get("message"), str):
            return str(body["message"])[:300]
    return type(exc).__name__
