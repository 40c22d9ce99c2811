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
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx2  # mistralai's HTTP client: its transport errors reach us unwrapped
from mistralai.client import Mistral, errors
from mistralai.client.types import UnrecognizedStr
from mistralai.client.utils import logger as sdk_logger

from filetier.errors import ProviderError, ProviderRequestError
from filetier.providers.base import (
    ChatAnswer,
    FileReference,
    ProviderFile,
    ProviderLimits,
    RetryPolicy,
)
from filetier.providers.failures import (
    Call,
    refused,
    retry_after_seconds,
    timed_out,
    unreachable,
)
from filetier.providers.retrying import Boundary

log = logging.getLogger(__name__)
ASK_PURPOSE = "ocr"
# A signed URL only has to outlive one chat request; 1 hour is the shortest Mistral allows.
SIGNED_URL_HOURS = 1
PAGE_SIZE = 100
ANSWER = "answer a question"


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
        retry: RetryPolicy,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._limits = limits
        self._default_model = default_model
        self._calls = Boundary("mistral", self._base_url, api_key, retry, translate)
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
        result = await self._calls.call(
            "upload a file",
            lambda: self._client.files.upload_async(
                file={"file_name": filename, "content": data},
                purpose=UnrecognizedStr(purpose),
            ),
        )
        return _to_file(result)

    async def retrieve(self, file_id: str) -> ProviderFile | None:
        found = await self._calls.call_or_none(
            "look up a file", lambda: self._client.files.retrieve_async(file_id=file_id)
        )
        if found is None or getattr(found, "deleted", False):
            return None
        return _to_file(found)

    async def delete(self, file_id: str) -> bool:
        deleted = await self._calls.call_or_none(
            "delete a file", lambda: self._client.files.delete_async(file_id=file_id)
        )
        return deleted is not None

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

        return [_to_file(item) for item in await self._calls.call("list files", fetch)]

    async def signed_url(self, file_id: str, hours: int = SIGNED_URL_HOURS) -> str | None:
        """A URL that reads the file without the key for ``hours``; None on 404."""
        answer = await self._calls.call_or_none(
            "sign a file URL",
            lambda: self._client.files.get_signed_url_async(file_id=file_id, expiry=hours),
        )
        return None if answer is None else str(answer.url)

    async def extracted_text(self, file_id: str) -> str | None:
        raise ProviderRequestError(
            "mistral returns no extracted text of an uploaded file; ask about the file "
            "instead (ask_file)"
        )

    async def chat(self, model: str, messages: list[dict[str, str]]) -> ChatAnswer:
        answer = await self._calls.call(ANSWER, lambda: self._send(model, list(messages)))
        return _to_answer(answer, model)

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
        turns = [{"role": "user", "content": content}]
        answer = await self._calls.call_or_none(ANSWER, lambda: self._send(model, turns))
        return None if answer is None else _to_answer(answer, model)

    def _send(self, model: str, messages: list[Any]) -> Awaitable[Any]:
        return self._client.chat.complete_async(model=model, messages=messages)

    async def close(self) -> None:
        await self._http.aclose()


def _to_answer(answer: Any, model: str) -> ChatAnswer:
    choice = answer.choices[0] if answer.choices else None
    raw = choice.message.content if choice is not None and choice.message else None
    if isinstance(raw, list):
        text = "".join(str(getattr(chunk, "text", "")) for chunk in raw)
    else:
        text = raw or ""
    usage = answer.usage.model_dump(exclude_none=True) if answer.usage else {}
    return ChatAnswer(content=text, model=str(answer.model or model), usage=usage)


def translate(exc: Exception, call: Call) -> ProviderError | None:
    """mistralai's exceptions (and its httpx2 transport's) as filetier errors."""
    if isinstance(exc, httpx2.TimeoutException):
        return timed_out(call)
    if isinstance(exc, httpx2.TransportError | errors.NoResponseError):
        return unreachable(call)
    if not isinstance(exc, errors.MistralError):
        return None
    retry_after = retry_after_seconds(exc.headers.get("retry-after"))
    return refused(call, exc.status_code, _server_message(exc.body), retry_after)


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
