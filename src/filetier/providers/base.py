"""The Protocol every LLM provider adapter implements, and the values it returns.

Adapters are thin: one network call per method, each made through
:func:`filetier.providers.retrying.call` under one :class:`RetryPolicy`, with the SDK's
exceptions translated by :mod:`filetier.providers.failures` (one ``translate`` per SDK).
The upload-once logic, quotas and caching live in :mod:`filetier.providers.uploads`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How one provider call is retried, the same for every adapter.

    ``attempts`` counts the first try. Between attempts the wait is the provider's
    ``Retry-After`` when it sends one, else exponential (``wait_initial`` doubling up to
    ``wait_max``), scaled by a random factor within ``1 ± wait_jitter`` so that callers
    failing together do not come back together. ``max_wait_seconds``
    bounds the total time spent waiting (not the time the calls themselves take, so a
    slow upload that then fails is still retried); a wait that would pass it is not
    started, and the last error is raised at once.
    """

    attempts: int = 4
    max_wait_seconds: float = 30.0
    wait_initial: float = 0.25
    wait_max: float = 8.0
    wait_jitter: float = 0.5  # a fraction of the wait, not seconds


@dataclass(frozen=True, slots=True)
class MultipartPolicy:
    """When and how OpenAI's multipart Uploads API is used (only OpenAI has it)."""

    threshold_bytes: int  # files larger than this use the Uploads API
    part_bytes: int
    parallel: int


@dataclass(frozen=True, slots=True)
class ProviderLimits:
    """What a provider accepts, checked before any byte is sent."""

    purposes: frozenset[str]
    max_file_bytes: dict[str, int]  # per purpose; missing = no stated limit
    max_files: int | None = None
    max_total_bytes: int | None = None
    # Some purposes have their own file count (GLM's code-interpreter: 100 files).
    max_files_per_purpose: dict[str, int] = field(default_factory=dict)
    # filetier's default purpose is ``file-extract``; a provider without it names the
    # purpose that means the same to it (Mistral: ``ocr``). The alias is resolved before
    # anything is keyed on the purpose, so one content never has two copies for it.
    purpose_aliases: dict[str, str] = field(default_factory=dict)

    def file_limit(self, purpose: str) -> int | None:
        return self.max_file_bytes.get(purpose)

    def canonical(self, purpose: str) -> str:
        return self.purpose_aliases.get(purpose, purpose)


@dataclass(frozen=True, slots=True)
class ProviderFile:
    id: str
    bytes: int
    filename: str | None = None
    purpose: str | None = None
    created_at: datetime | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ChatAnswer:
    content: str
    model: str
    usage: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FileReference:
    """A file the provider holds, as a question refers to it."""

    provider_file_id: str
    mime_type: str
    filename: str


class Provider(Protocol):
    """One provider account: a name (``kimi``), an account (its base URL), its limits."""

    @property
    def name(self) -> str: ...

    @property
    def account(self) -> str: ...

    @property
    def limits(self) -> ProviderLimits: ...

    @property
    def default_model(self) -> str: ...

    @property
    def returns_original_bytes(self) -> bool:
        """False for Kimi and GLM: their ``content`` is extracted text, not the file."""
        ...

    async def upload(self, filename: str, data: bytes, purpose: str) -> ProviderFile: ...

    async def retrieve(self, file_id: str) -> ProviderFile | None:
        """The file's metadata, or None when the provider no longer has it (404)."""
        ...

    async def delete(self, file_id: str) -> bool:
        """True when deleted, False when the provider did not have it."""
        ...

    async def list_files(self) -> list[ProviderFile]: ...

    async def extracted_text(self, file_id: str) -> str | None:
        """The provider's extraction of the file (raw body), or None on 404."""
        ...

    async def chat(self, model: str, messages: list[dict[str, str]]) -> ChatAnswer: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class LocalContent:
    """A local file holding one stored content, for adapters that read as they send.

    The path is the store's own copy (local primary or disk cache): adapters only read
    it, and check what the provider received against ``sha256`` where it can tell.
    """

    path: Path
    filename: str
    size: int
    sha256: str
    mime_type: str


@runtime_checkable
class UploadsFromDisk(Protocol):
    """An adapter that can send a file from disk with bounded memory.

    Large files never have to be read whole into memory: Gemini's resumable upload and
    OpenAI's multipart Uploads API both read the file piece by piece.
    """

    def reads_from_disk(self, size: int) -> bool:
        """True when a file of ``size`` bytes should go through :meth:`upload_from_disk`."""
        ...

    async def upload_from_disk(self, content: LocalContent, purpose: str) -> ProviderFile: ...


@runtime_checkable
class AsksWithFileReferences(Protocol):
    """A provider whose chat API takes uploaded files by id (Anthropic, Mistral).

    ``ask_file`` uploads each file once with ``ask_purpose`` and sends references to the
    copies instead of their extracted text.
    """

    @property
    def ask_purpose(self) -> str: ...

    @property
    def extracts_text(self) -> bool:
        """False when the provider hands back neither the file nor a text of it."""
        ...

    async def ask(
        self, model: str, question: str, files: Sequence[FileReference]
    ) -> ChatAnswer | None:
        """The answer, or None when the provider no longer has one of ``files`` (404)."""
        ...
