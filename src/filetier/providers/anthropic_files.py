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
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from typing import Any

import anthropic

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
    file_missing,
    refused,
    retry_after_seconds,
    timed_out,
    unreachable,
)
from filetier.providers.retrying import Boundary

log = logging.getLogger(__name__)
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
        retry: RetryPolicy,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._limits = limits
        self._default_model = default_model
        self._ttl = file_ttl_seconds
        self._calls = Boundary("anthropic", self._base_url, api_key, retry, translate)
        # The SDK's own retries are off: the boundary's honour Retry-After and are bounded.
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

        return _to_file(await self._calls.call("upload a file", send))

    async def retrieve(self, file_id: str) -> ProviderFile | None:
        found = await self._calls.call_or_none(
            "look up a file", lambda: self._client.files.retrieve_metadata(file_id)
        )
        return None if found is None else _to_file(found)

    async def delete(self, file_id: str) -> bool:
        deleted = await self._calls.call_or_none(
            "delete a file", lambda: self._client.files.delete(file_id)
        )
        return deleted is not None

    async def list_files(self) -> list[ProviderFile]:
        async def fetch() -> list[Any]:
            return [item async for item in self._client.files.list(limit=1000)]

        return [_to_file(item) for item in await self._calls.call("list files", fetch)]

    async def extracted_text(self, file_id: str) -> str | None:
        raise ProviderRequestError(
            "anthropic returns neither the contents nor a text of an uploaded file; "
            "ask about the file instead (ask_file)"
        )

    async def chat(self, model: str, messages: list[dict[str, str]]) -> ChatAnswer:
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        turns = [m for m in messages if m["role"] != "system"]
        message = await self._calls.call(ANSWER, lambda: self._send(model, turns, system))
        return _to_answer(message, model)

    async def ask(
        self, model: str, question: str, files: Sequence[FileReference]
    ) -> ChatAnswer | None:
        content: list[dict[str, Any]] = [content_block(ref) for ref in files]
        content.append({"type": "text", "text": question})
        turns = [{"role": "user", "content": content}]
        message = await self._calls.call_or_none(ANSWER, lambda: self._send(model, turns, ""))
        return None if message is None else _to_answer(message, model)

    def _send(self, model: str, messages: list[Any], system: str) -> Awaitable[Any]:
        if system:
            return self._client.messages.create(
                model=model, max_tokens=MAX_ANSWER_TOKENS, messages=messages, system=system
            )
        return self._client.messages.create(
            model=model, max_tokens=MAX_ANSWER_TOKENS, messages=messages
        )

    async def close(self) -> None:
        await self._client.close()


def _to_answer(message: Any, model: str) -> ChatAnswer:
    text = "".join(block.text for block in message.content if getattr(block, "type", "") == "text")
    usage = message.usage.model_dump(exclude_none=True) if message.usage else {}
    return ChatAnswer(content=text, model=str(message.model or model), usage=usage)


def translate(exc: Exception, call: Call) -> ProviderError | None:
    """anthropic's exceptions as filetier errors (see :mod:`filetier.providers.failures`)."""
    if not isinstance(exc, anthropic.AnthropicError):
        return None
    if isinstance(exc, anthropic.APITimeoutError):
        return timed_out(call)
    if isinstance(exc, anthropic.APIConnectionError):
        return unreachable(call)
    if isinstance(exc, anthropic.APIStatusError):
        detail = exc.api_message or type(exc).__name__
        if call.action == ANSWER and exc.status_code == 400 and "not found" in detail.lower():
            # A message naming a file the provider no longer has.
            return file_missing(call, detail)
        retry_after = retry_after_seconds(exc.response.headers.get("retry-after"))
        return refused(call, exc.status_code, detail, retry_after)
    return ProviderRequestError(f"{call.who} failed to {call.action}: {type(exc).__name__}")
