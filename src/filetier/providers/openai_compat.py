"""An adapter for any OpenAI-compatible files API, through the official ``openai`` SDK.

Kimi (Moonshot), GLM (Zhipu BigModel) and OpenAI itself differ only in base URL,
purposes, limits and whether ``files.content`` returns the original bytes; those come
from :mod:`filetier.providers.registry`. Its ``translate`` is the
one place openai's exceptions are read; calls are retried by
:class:`filetier.providers.retrying.Boundary` (429 honours ``Retry-After``; 5xx and
timeouts back off with jitter; both bounded). The API key never appears in a message:
the SDK's messages carry the server's error text, and any echo of the key is masked.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import openai

from filetier.errors import ProviderError, ProviderInputError, ProviderRequestError
from filetier.providers.base import (
    ChatAnswer,
    LocalContent,
    MultipartPolicy,
    ProviderFile,
    ProviderLimits,
    RetryPolicy,
)
from filetier.providers.failures import (
    UPLOAD,
    Call,
    refused,
    retry_after_seconds,
    timed_out,
    unreachable,
)
from filetier.providers.openai_uploads import multipart_upload
from filetier.providers.retrying import Boundary

log = logging.getLogger(__name__)
READ_TEXT = "read a file's extracted text"
T = TypeVar("T")


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
        retry: RetryPolicy,
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
        self._base_url = base_url.rstrip("/")
        self._limits = limits
        self._default_model = default_model
        self._returns_original = returns_original_bytes
        self._calls = Boundary(name, self._base_url, api_key, retry, translate)
        # The SDK's own retries are off: the boundary's honour Retry-After, and give up
        # at once on one longer than the wait budget; the SDK's do neither.
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
        result = await self._calls.call(
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
            return await self._calls.call(action, fn)
        except ProviderInputError as exc:
            if not exc.file_missing:
                raise
            raise ProviderRequestError(
                f"{self._name} ({self._base_url}) no longer has the upload while trying to "
                f"{action}; it expires an hour after it starts"
            ) from None

    async def retrieve(self, file_id: str) -> ProviderFile | None:
        found = await self._calls.call_or_none(
            "look up a file", lambda: self._client.files.retrieve(file_id)
        )
        return None if found is None else _to_file(found)

    async def delete(self, file_id: str) -> bool:
        deleted = await self._calls.call_or_none(
            "delete a file", lambda: self._client.files.delete(file_id)
        )
        return deleted is not None

    async def list_files(self) -> list[ProviderFile]:
        async def fetch() -> list[Any]:
            page = await self._client.files.list()
            return list(page.data)

        return [_to_file(item) for item in await self._calls.call("list files", fetch)]

    async def extracted_text(self, file_id: str) -> str | None:
        async def fetch() -> str:
            response = await self._client.files.content(file_id)
            return response.text

        return await self._calls.call_or_none(READ_TEXT, fetch)

    async def chat(self, model: str, messages: list[dict[str, str]]) -> ChatAnswer:
        completion = await self._calls.call(
            "answer a question",
            lambda: self._client.chat.completions.create(model=model, messages=messages),  # type: ignore[arg-type]
        )
        choice = completion.choices[0] if completion.choices else None
        content = (choice.message.content if choice else None) or ""
        usage = completion.usage.model_dump() if completion.usage else {}
        return ChatAnswer(content=content, model=completion.model or model, usage=usage)

    async def close(self) -> None:
        await self._client.close()


def translate(exc: Exception, call: Call) -> ProviderError | None:
    """openai's exceptions as filetier errors (see :mod:`filetier.providers.failures`)."""
    if not isinstance(exc, openai.OpenAIError):
        return None
    if isinstance(exc, openai.APITimeoutError):
        return timed_out(call)
    if isinstance(exc, openai.APIConnectionError):
        return unreachable(call)
    if isinstance(exc, openai.APIStatusError):
        detail = _server_message(exc)
        if call.action == READ_TEXT and exc.status_code == 400:
            # Providers that never hand a file back refuse /content outright.
            return ProviderRequestError(
                f"{call.who} does not return the contents or extracted text of this file: "
                f"{call.scrub(detail)}"
            )
        retry_after = retry_after_seconds(exc.response.headers.get("retry-after"))
        return refused(call, exc.status_code, detail, retry_after)
    return ProviderRequestError(f"{call.who} failed to {call.action}: {type(exc).__name__}")


def _server_message(exc: openai.OpenAIError) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])[:300]
        if isinstance(body.get("message"), str):
            return str(body["message"])[:300]
    return type(exc).__name__
