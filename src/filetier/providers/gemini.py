"""An adapter for Google's Gemini Files API, through the official ``google-genai`` SDK.

Gemini differs from the OpenAI-shaped providers in ways the manager relies on:

- uploads are resumable sessions (``POST /upload/v1beta/files`` with
  ``X-Goog-Upload-Protocol: resumable`` and ``Command: start``, then ``upload, finalize``
  to the session URL); the SDK reads the file from disk in 8 MB chunks, so memory stays
  bounded whatever the size (2 GB per file, 20 GB per project);
- a new file is ``PROCESSING`` until ``ACTIVE``: :meth:`GeminiProvider.upload_from_disk`
  waits for it with a bound, and a file that ends ``FAILED`` is deleted, never recorded;
- every file is deleted by Google 48 hours after upload; ``expirationTime`` is recorded
  so reuse can check it;
- ``sha256Hash`` (base64) lets us check that the copy holds the bytes we sent;
- a file that is unknown or has expired answers **403 PERMISSION_DENIED**, not 404: for
  lookups and deletes that means "no longer there". A wrong key answers 400
  ``API_KEY_INVALID`` (or 401/403 on calls that name no file).

This module's ``translate`` is the one place google-genai's exceptions are read; calls
are retried by :class:`filetier.providers.retrying.Boundary` (429 honours
``Retry-After``; 5xx, timeouts and connection failures back off with jitter; both
bounded). The SDK's own retries are off. The key travels in the
``x-goog-api-key`` header, never in a URL, and is masked in any message.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import importlib
import logging
import time
from datetime import timedelta

from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from filetier.errors import (
    IntegrityError,
    ProviderError,
    ProviderRequestError,
    ProviderTimeoutError,
)
from filetier.providers.base import (
    ChatAnswer,
    LocalContent,
    ProviderFile,
    ProviderLimits,
    RetryPolicy,
)
from filetier.providers.failures import (
    UPLOAD,
    Call,
    file_missing,
    key_refused,
    refused,
    retry_after_seconds,
    timed_out,
    unreachable,
)
from filetier.providers.retrying import Boundary

log = logging.getLogger(__name__)

NAME = "gemini"
# Google deletes every uploaded file after this long; used when a file shows no
# expirationTime (the API documents it as set only "if the File is scheduled to expire").
LIFETIME = timedelta(hours=48)
LOOK_UP = "look up a file"
DELETE = "delete a file"


def _transport_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(timeouts, all transport errors) of whichever of httpx/httpx2 the SDK may use."""
    timeouts: list[type[BaseException]] = []
    transport: list[type[BaseException]] = []
    for module_name in ("httpx", "httpx2"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        timeouts.append(module.TimeoutException)
        transport.append(module.TransportError)
    return tuple(timeouts), tuple(transport)


TIMEOUTS, TRANSPORT = _transport_errors()


def sha256_hex(value: str | None) -> str | None:
    """Gemini's ``sha256Hash`` as a hex digest: base64 of the 32 digest bytes, or (as some
    deployments answer) base64 of the hex digest itself."""
    if not value:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) == 32:
        return raw.hex()
    text = raw.decode("ascii", errors="replace").lower()
    if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
        return text
    return None


def _state(file: genai_types.File) -> str:
    state = file.state
    return str(getattr(state, "value", state) or "STATE_UNSPECIFIED")


def to_provider_file(file: genai_types.File) -> ProviderFile:
    created = file.create_time
    expires = file.expiration_time
    if expires is None and created is not None:
        expires = created + LIFETIME
    return ProviderFile(
        id=str(file.name),
        bytes=int(file.size_bytes or 0),
        filename=file.display_name,
        purpose=None,
        created_at=created,
        expires_at=expires,
    )


class GeminiProvider:
    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        limits: ProviderLimits,
        default_model: str,
        timeout_seconds: float,
        retry: RetryPolicy,
        processing_timeout_seconds: float,
        poll_seconds: float = 1.0,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._limits = limits
        self._default_model = default_model
        self._calls = Boundary(NAME, self._base_url, api_key, retry, translate)
        self._processing_timeout = processing_timeout_seconds
        self._poll = poll_seconds
        self._client = genai.Client(
            api_key=api_key,
            vertexai=False,
            http_options=genai_types.HttpOptions(
                base_url=self._base_url + "/",
                api_version="v1beta",
                timeout=max(1, int(timeout_seconds * 1000)),  # milliseconds
                # No retry_options: the SDK then tries each call once; the boundary retries.
            ),
        )

    @property
    def name(self) -> str:
        return NAME

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
        return False  # Gemini never hands uploaded files back

    # -- uploads --------------------------------------------------------------------------

    def reads_from_disk(self, size: int) -> bool:
        return True  # the resumable protocol reads any size in chunks

    async def upload(self, filename: str, data: bytes, purpose: str) -> ProviderFile:
        raise ProviderRequestError(
            "gemini uploads are sent from the stored file on disk (upload_from_disk)"
        )

    async def upload_from_disk(self, content: LocalContent, purpose: str) -> ProviderFile:
        config = genai_types.UploadFileConfig(
            display_name=content.filename[:512], mime_type=content.mime_type
        )
        file = await self._calls.call(
            UPLOAD, lambda: self._client.aio.files.upload(file=content.path, config=config)
        )
        name = str(file.name)
        try:
            remote = sha256_hex(file.sha256_hash)
            if remote is not None and remote != content.sha256:
                raise IntegrityError(
                    f"gemini file {name} does not hold the bytes sent (its SHA-256 is "
                    f"{remote}, ours {content.sha256}); it was deleted, nothing is recorded"
                )
            if int(file.size_bytes or content.size) != content.size:
                raise IntegrityError(
                    f"gemini file {name} holds {file.size_bytes} bytes, not {content.size}; "
                    "it was deleted, nothing is recorded"
                )
            file = await self._until_active(file)
        except BaseException:
            # Never leave behind a copy nobody recorded: it would count against the
            # 20 GB project quota until Google expires it.
            await asyncio.shield(self._forget_quietly(name))
            raise
        return to_provider_file(file)

    async def _until_active(self, file: genai_types.File) -> genai_types.File:
        """Wait, with a bound, for a PROCESSING file to become ACTIVE."""
        deadline = time.monotonic() + self._processing_timeout
        name = str(file.name)
        while _state(file) == "PROCESSING":
            if time.monotonic() >= deadline:
                raise ProviderTimeoutError(
                    f"gemini was still processing file {name} after "
                    f"{self._processing_timeout:g}s; it was deleted, try again later"
                )
            await asyncio.sleep(min(self._poll, max(0.0, deadline - time.monotonic())))
            found = await self._lookup(name)
            if found is None:
                raise ProviderRequestError(f"gemini lost file {name} while processing it")
            file = found
        if _state(file) == "FAILED":
            reason = file.error.message if file.error is not None else "no reason given"
            raise ProviderRequestError(
                f"gemini could not process file {name}: "
                f"{self._calls.describe(UPLOAD).scrub(str(reason))}"
            )
        return file

    async def _forget_quietly(self, name: str) -> None:
        try:
            await self.delete(name)
        except ProviderError as exc:
            log.warning("gemini: could not delete unrecorded file %s: %s", name, exc)

    # -- lookups --------------------------------------------------------------------------

    async def _lookup(self, file_id: str) -> genai_types.File | None:
        return await self._calls.call_or_none(
            LOOK_UP, lambda: self._client.aio.files.get(name=file_id)
        )

    async def retrieve(self, file_id: str) -> ProviderFile | None:
        found = await self._lookup(file_id)
        if found is None or _state(found) == "FAILED":
            return None
        return to_provider_file(found)

    async def delete(self, file_id: str) -> bool:
        deleted = await self._calls.call_or_none(
            DELETE, lambda: self._client.aio.files.delete(name=file_id)
        )
        return deleted is not None

    async def list_files(self) -> list[ProviderFile]:
        async def fetch() -> list[genai_types.File]:
            pager = await self._client.aio.files.list(config={"page_size": 100})
            return [item async for item in pager]

        return [to_provider_file(f) for f in await self._calls.call("list files", fetch)]

    async def extracted_text(self, file_id: str) -> str | None:
        raise ProviderRequestError(
            "gemini returns neither the contents nor an extracted text of uploaded files; "
            "use its provider file id in a Gemini request instead"
        )

    async def chat(self, model: str, messages: list[dict[str, str]]) -> ChatAnswer:
        system = "\n\n".join(m["content"] for m in messages if m.get("role") == "system")
        contents = [
            genai_types.Content(
                role="model" if m.get("role") == "assistant" else "user",
                parts=[genai_types.Part(text=m["content"])],
            )
            for m in messages
            if m.get("role") != "system"
        ]
        config = genai_types.GenerateContentConfig(system_instruction=system or None)
        response = await self._calls.call(
            "answer a question",
            lambda: self._client.aio.models.generate_content(
                model=model, contents=contents, config=config
            ),
        )
        usage = (
            response.usage_metadata.model_dump(exclude_none=True) if response.usage_metadata else {}
        )
        return ChatAnswer(content=response.text or "", model=model, usage=usage)

    async def close(self) -> None:
        await self._client.aio.aclose()


# Gemini answers 403, not 404, for a file it does not have (unknown or expired); only on
# calls that name a file does that mean "gone" rather than "the key was refused".
NAMES_A_FILE = frozenset({LOOK_UP, DELETE})


def translate(exc: Exception, call: Call) -> ProviderError | None:
    """google-genai's exceptions (and its HTTP client's) as filetier errors."""
    if isinstance(exc, TIMEOUTS):
        return timed_out(call)
    if isinstance(exc, TRANSPORT):
        return unreachable(call)
    if not isinstance(exc, genai_errors.APIError):
        return None
    detail = str(exc.message or exc.status or type(exc).__name__)
    if exc.code == 404 or (exc.code == 403 and call.action in NAMES_A_FILE):
        return file_missing(call, detail)
    if "API_KEY_INVALID" in str(exc.details) or "API key not valid" in detail:
        return key_refused(call)  # Gemini's wrong key is a 400
    headers = getattr(exc.response, "headers", None)
    retry_after = retry_after_seconds(headers.get("retry-after") if headers is not None else None)
    return refused(call, exc.code, detail, retry_after)
