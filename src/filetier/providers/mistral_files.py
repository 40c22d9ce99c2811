"""Mistral's files API, through the official ``mistralai`` SDK (``filetier[mistral]``).

``POST /v1/files`` (multipart ``file`` + ``purpose``: ``fine-tune``, ``batch`` or ``ocr``),
``GET /v1/files`` (pages), ``GET``/``DELETE /v1/files/{id}``, and the signed URL endpoint
``GET /v1/files/{id}/url?expiry=HOURS``. ``ask`` follows Mistral's document
understanding guide: the file is uploaded once for ``ocr``, a short-lived signed URL is
asked for, and the chat message carries it as a ``document_url`` (``image_url`` for
images) chunk. The SDK's retries are off and its debug logger is a no-op whatever
``MISTRAL_DEBUG`` says, because that logger prints request headers, key included.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx2  # mistralai's HTTP client: its transport errors reach us unwrapped
from mistralai.client import Mistral, errors
from mistralai.client.types import UnrecognizedStr
from mistralai.client.utils import logger as sdk_logger

from filetier.errors import (
    ProviderAuthError,
    ProviderLimitError,
    ProviderRateLimitedError,
    ProviderRequestError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    UnsupportedPurposeError,
)
from filetier.providers.base import ChatAnswer, FileReference, ProviderFile, ProviderLimits
from filetier.providers.retrying import Failure, Missing, call_with_retries, retry_after_seconds

log = logging.getLogger(__name__)
T = TypeVar("T")
ASK_PURPOSE = "ocr"
# A signed URL only has to outlive one chat request; 1 hour is the shortest Mistral allows.
SIGNED_URL_HOURS = 1
PAGE_SIZE = 100


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(value, UTC)
    return None


def _to_file(obj: Any) -> ProviderFile:
    return ProviderFile(
        id=str(obj.id),
        bytes=int(getattr(obj, "size_bytes", 0) or 0),
        filename=getattr(obj, "filename", None),
        purpose=str(getattr(obj, "purpose", "") or "") or None,
        created_at=_timestamp(getattr(obj, "created_at", None)),
        expires_at=_timestamp(getattr(obj, "expires_at", None)),
    )


class MistralProvider:
    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        limits: ProviderLimits,
        default_model: str,
        timeout_seconds: float,
        retry_attempts: int,
        max_retry_wait_seconds: float,
    ) -> None:
        self._key = api_key
        self._base_url = base_url.rstrip("/")
        self._limits = limits
        self._default_model = default_model
        self._attempts = max(1, retry_attempts)
        self._max_wait = max_retry_wait_seconds
        # Our own HTTP client, so close() can close it (the SDK's has no typed close).
        self._http = httpx2.AsyncClient(follow_redirects=True)
        self._client = Mistral(
            api_key=api_key,
            server_url=self._base_url,
            async_client=self._http,
            timeout_ms=int(timeout_seconds * 1000),
            debug_logger=sdk_logger.NoOpLogger(),
        )

    @property
    def name(self) -> str:
        return "mistral"

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
        # Mistral can hand the bytes back, but filetier keeps its own original and never
        # reads one from a provider.
        return True

    @property
    def ask_purpose(self) -> str:
        return ASK_PURPOSE

    @property
    def extracts_text(self) -> bool:
        return False

    # -- calls ------------------------------------------------------------------------

    async def upload(self, filename: str, data: bytes, purpose: str) -> ProviderFile:
        result = await self._call(
            "upload a file",
            lambda: self._client.files.upload_async(
                file={"file_name": filename, "content": data},
                purpose=UnrecognizedStr(purpose),
            ),
        )
        return _to_file(result)

    async def retrieve(self, file_id: str) -> ProviderFile | None:
        try:
            found = await self._call(
                "look up a file", lambda: self._client.files.retrieve_async(file_id=file_id)
            )
        except Missing:
            return None
        return None if getattr(found, "deleted", False) else _to_file(found)

    async def delete(self, file_id: str) -> bool:
        try:
            await self._call(
                "delete a file", lambda: self._client.files.delete_async(file_id=file_id)
            )
        except Missing:
            return False
        return True

    async def list_files(self) -> list[ProviderFile]:
        async def fetch() -> list[Any]:
            items: list[Any] = []
            page = 0
            while True:
                answer = await self._client.files.list_async(page=page, page_size=PAGE_SIZE)
                items += answer.data
                if len(answer.data) < PAGE_SIZE:
                    return items
                page += 1

        return [_to_file(item) for item in await self._call("list files", fetch)]

    async def signed_url(self, file_id: str, hours: int = SIGNED_URL_HOURS) -> str | None:
        """A URL that reads the file without the key for ``hours``; None on 404."""
        try:
            answer = await self._call(
                "sign a file URL",
                lambda: self._client.files.get_signed_url_async(file_id=file_id, expiry=hours),
            )
        except Missing:
            return None
        return str(answer.url)

    async def extracted_text(self, file_id: str) -> str | None:
        raise ProviderRequestError(
            "mistral returns no extracted text of an uploaded file; ask about the file "
            "instead (ask_file)"
        )

    async def chat(self, model: str, messages: list[dict[str, str]]) -> ChatAnswer:
        return await self._complete(model, list(messages))

    async def ask(
        self, model: str, question: str, files: Sequence[FileReference]
    ) -> ChatAnswer | None:
        content: list[dict[str, Any]] = [{"type": "text", "text": question}]
        for ref in files:
            url = await self.signed_url(ref.provider_file_id)
            if url is None:
                return None
            if ref.mime_type.startswith("image/"):
                content.append({"type": "image_url", "image_url": url})
            else:
                content.append(
                    {"type": "document_url", "document_url": url, "document_name": ref.filename}
                )
        try:
            return await self._complete(model, [{"role": "user", "content": content}])
        except Missing:
            return None

    async def _complete(self, model: str, messages: list[Any]) -> ChatAnswer:
        answer = await self._call(
            "answer a question",
            lambda: self._client.chat.complete_async(model=model, messages=messages),
        )
        choice = answer.choices[0] if answer.choices else None
        raw = choice.message.content if choice is not None and choice.message else None
        if isinstance(raw, list):
            text = "".join(str(getattr(chunk, "text", "")) for chunk in raw)
        else:
            text = raw or ""
        usage = answer.usage.model_dump(exclude_none=True) if answer.usage else {}
        return ChatAnswer(content=text, model=str(answer.model or model), usage=usage)

    async def close(self) -> None:
        await self._http.aclose()

    # -- retries and error translation ------------------------------------------------

    async def _call(self, action: str, fn: Callable[[], Awaitable[T]]) -> T:
        return await call_with_retries(
            fn,
            who="mistral",
            attempts=self._attempts,
            max_wait_seconds=self._max_wait,
            classify=lambda exc: self._classify(action, exc),
        )

    def _classify(self, action: str, exc: Exception) -> Failure | None:
        who = f"mistral ({self._base_url})"
        if isinstance(exc, httpx2.TimeoutException):
            return Failure(
                ProviderTimeoutError(f"{who} did not answer in time while trying to {action}"),
                retryable=True,
            )
        if isinstance(exc, httpx2.TransportError | errors.NoResponseError):
            return Failure(
                ProviderUnavailableError(f"{who} could not be reached to {action}"),
                retryable=True,
            )
        if not isinstance(exc, errors.MistralError):
            return None
        status = exc.status_code
        detail = self._scrub(_server_message(exc.body))
        if status == 404:
            raise Missing() from exc
        if status in (401, 403):
            return Failure(
                ProviderAuthError(
                    f"{who} refused the API key while trying to {action}: check MISTRAL_API_KEY"
                )
            )
        if status == 429:
            wait = retry_after_seconds(exc.headers.get("retry-after"))
            hint = f" (Retry-After {wait:g}s)" if wait is not None else ""
            return Failure(
                ProviderRateLimitedError(
                    f"{who} is rate limiting requests{hint}; try again later", wait
                ),
                retryable=True,
                retry_after=wait,
            )
        if status >= 500:
            return Failure(
                ProviderUnavailableError(
                    f"{who} failed with HTTP {status} while trying to {action}; try again later"
                ),
                retryable=True,
            )
        lowered = detail.lower()
        if status == 413 or "too large" in lowered:
            return Failure(ProviderLimitError(f"{who} refused the file as too large: {detail}"))
        if "purpose" in lowered and action == "upload a file":
            return Failure(UnsupportedPurposeError(f"{who} does not accept that purpose: {detail}"))
        if any(word in lowered for word in ("quota", "limit", "exceed")):
            return Failure(ProviderLimitError(f"{who} quota is full: {detail}"))
        return Failure(
            ProviderRequestError(f"{who} refused the request to {action} (HTTP {status}): {detail}")
        )

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "****") if self._key else text


def _server_message(body: str) -> str:
    """Mistral's errors are ``{"message": ...}`` or ``{"detail": ...}`` JSON."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return body[:300] or "no detail"
    if isinstance(parsed, dict):
        for key in ("message", "detail", "error"):
            value = parsed.get(key)
            if isinstance(value, str):
                return value[:300]
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return str(value["message"])[:300]
    return body[:300]
