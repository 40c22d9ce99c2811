"""Anthropic's Files API, through the official ``anthropic`` SDK (``filetier[anthropic]``).

``POST /v1/files`` (multipart ``file``, optional ``expires_in_seconds``), ``GET /v1/files``
(cursor pages), ``GET``/``DELETE /v1/files/{id}``; the SDK sends ``x-api-key`` and
``anthropic-version``. Deployments that still gate the API behind the beta get
``anthropic-beta: files-api-2025-04-14`` on every request when
``FILETIER_ANTHROPIC_FILES_BETA`` is set. Uploaded files cannot be downloaded, and
Anthropic extracts no text for us: a copy here is never a source of bytes or text, and
``ask`` refers to it from a Messages ``document``/``image`` block
(``source: {type: "file", file_id}``). This module is the one place the SDK's exceptions
are translated; the API key never appears in a message.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import anthropic

from filetier.errors import (
    ProviderAuthError,
    ProviderLimitError,
    ProviderRateLimitedError,
    ProviderRequestError,
    ProviderTimeoutError,
    ProviderUnavailableError,
)
from filetier.providers.base import ChatAnswer, FileReference, ProviderFile, ProviderLimits
from filetier.providers.retrying import Failure, Missing, call_with_retries, retry_after_seconds

log = logging.getLogger(__name__)
T = TypeVar("T")
FILES_BETA = "files-api-2025-04-14"
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
# Anthropic's Files API has no purposes: every copy is recorded under filetier's default.
PURPOSE = "file-extract"
MAX_ANSWER_TOKENS = 4096
ANSWER = "answer a question"


def _utc(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


def _to_file(obj: Any) -> ProviderFile:
    return ProviderFile(
        id=str(obj.id),
        bytes=int(getattr(obj, "size_bytes", 0) or 0),
        filename=getattr(obj, "filename", None),
        purpose=PURPOSE,
        created_at=_utc(getattr(obj, "created_at", None)),
        expires_at=_utc(getattr(obj, "expires_at", None)),
    )


def content_block(ref: FileReference) -> dict[str, Any]:
    """The Messages block that refers to an uploaded file."""
    kind = "image" if ref.mime_type in IMAGE_TYPES else "document"
    return {"type": kind, "source": {"type": "file", "file_id": ref.provider_file_id}}


class AnthropicProvider:
    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        limits: ProviderLimits,
        default_model: str,
        files_beta: bool,
        file_ttl_seconds: int | None,
        timeout_seconds: float,
        retry_attempts: int,
        max_retry_wait_seconds: float,
    ) -> None:
        self._key = api_key
        self._base_url = base_url.rstrip("/")
        self._limits = limits
        self._default_model = default_model
        self._ttl = file_ttl_seconds
        self._attempts = max(1, retry_attempts)
        self._max_wait = max_retry_wait_seconds
        # The SDK's own retries are off: ours honour Retry-After and are bounded.
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key,
            base_url=self._base_url,
            max_retries=0,
            timeout=timeout_seconds,
            default_headers={"anthropic-beta": FILES_BETA} if files_beta else None,
        )

    @property
    def name(self) -> str:
        return "anthropic"

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
        return False  # files uploaded to Anthropic are not downloadable

    @property
    def ask_purpose(self) -> str:
        return PURPOSE

    @property
    def extracts_text(self) -> bool:
        return False

    # -- calls ------------------------------------------------------------------------

    async def upload(self, filename: str, data: bytes, purpose: str) -> ProviderFile:
        def send() -> Awaitable[Any]:
            if self._ttl is None:
                return self._client.files.upload(file=(filename, data))
            return self._client.files.upload(file=(filename, data), expires_in_seconds=self._ttl)

        return _to_file(await self._call("upload a file", send))

    async def retrieve(self, file_id: str) -> ProviderFile | None:
        try:
            return _to_file(
                await self._call(
                    "look up a file", lambda: self._client.files.retrieve_metadata(file_id)
                )
            )
        except Missing:
            return None

    async def delete(self, file_id: str) -> bool:
        try:
            await self._call("delete a file", lambda: self._client.files.delete(file_id))
        except Missing:
            return False
        return True

    async def list_files(self) -> list[ProviderFile]:
        async def fetch() -> list[Any]:
            return [item async for item in self._client.files.list(limit=1000)]

        return [_to_file(item) for item in await self._call("list files", fetch)]

    async def extracted_text(self, file_id: str) -> str | None:
        raise ProviderRequestError(
            "anthropic returns neither the contents nor a text of an uploaded file; "
            "ask about the file instead (ask_file)"
        )

    async def chat(self, model: str, messages: list[dict[str, str]]) -> ChatAnswer:
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        turns = [m for m in messages if m["role"] != "system"]
        return await self._answer(model, turns, system)

    async def ask(
        self, model: str, question: str, files: Sequence[FileReference]
    ) -> ChatAnswer | None:
        content: list[dict[str, Any]] = [content_block(ref) for ref in files]
        content.append({"type": "text", "text": question})
        try:
            return await self._answer(model, [{"role": "user", "content": content}], "")
        except Missing:
            return None

    async def _answer(self, model: str, messages: list[Any], system: str) -> ChatAnswer:
        def send() -> Awaitable[Any]:
            if system:
                return self._client.messages.create(
                    model=model, max_tokens=MAX_ANSWER_TOKENS, messages=messages, system=system
                )
            return self._client.messages.create(
                model=model, max_tokens=MAX_ANSWER_TOKENS, messages=messages
            )

        message = await self._call(ANSWER, send)
        text = "".join(
            block.text for block in message.content if getattr(block, "type", "") == "text"
        )
        usage = message.usage.model_dump(exclude_none=True) if message.usage else {}
        return ChatAnswer(content=text, model=str(message.model or model), usage=usage)

    async def close(self) -> None:
        await self._client.close()

    # -- retries and error translation ------------------------------------------------

    async def _call(self, action: str, fn: Callable[[], Awaitable[T]]) -> T:
        return await call_with_retries(
            fn,
            who="anthropic",
            attempts=self._attempts,
            max_wait_seconds=self._max_wait,
            classify=lambda exc: self._classify(action, exc),
        )

    def _classify(self, action: str, exc: Exception) -> Failure | None:
        if not isinstance(exc, anthropic.AnthropicError):
            return None
        who = f"anthropic ({self._base_url})"
        if isinstance(exc, anthropic.NotFoundError):
            raise Missing() from exc
        if isinstance(exc, anthropic.AuthenticationError | anthropic.PermissionDeniedError):
            return Failure(
                ProviderAuthError(
                    f"{who} refused the API key while trying to {action}: check ANTHROPIC_API_KEY"
                )
            )
        if isinstance(exc, anthropic.RateLimitError):
            wait = retry_after_seconds(exc.response.headers.get("retry-after"))
            hint = f" (Retry-After {wait:g}s)" if wait is not None else ""
            return Failure(
                ProviderRateLimitedError(
                    f"{who} is rate limiting requests{hint}; try again later", wait
                ),
                retryable=True,
                retry_after=wait,
            )
        if isinstance(exc, anthropic.APITimeoutError):
            return Failure(
                ProviderTimeoutError(f"{who} did not answer in time while trying to {action}"),
                retryable=True,
            )
        if isinstance(exc, anthropic.APIConnectionError):
            return Failure(
                ProviderUnavailableError(f"{who} could not be reached to {action}"),
                retryable=True,
            )
        if isinstance(exc, anthropic.InternalServerError):
            return Failure(
                ProviderUnavailableError(
                    f"{who} failed with HTTP {exc.status_code} while trying to {action}; "
                    "try again later"
                ),
                retryable=True,
            )
        if isinstance(exc, anthropic.APIStatusError):
            detail = self._scrub((exc.api_message or type(exc).__name__)[:300])
            if action == ANSWER and exc.status_code == 400 and "not found" in detail.lower():
                # A message naming a file the provider no longer has.
                raise Missing() from exc
            if exc.status_code == 413 or "too large" in detail.lower():
                return Failure(ProviderLimitError(f"{who} refused the file as too large: {detail}"))
            if any(word in detail.lower() for word in ("quota", "storage limit", "exceeded")):
                return Failure(ProviderLimitError(f"{who} quota is full: {detail}"))
            return Failure(
                ProviderRequestError(
                    f"{who} refused the request to {action} (HTTP {exc.status_code}): {detail}"
                )
            )
        return Failure(ProviderRequestError(f"{who} failed to {action}: {type(exc).__name__}"))

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "****") if self._key else text
