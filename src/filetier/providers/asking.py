"""Extracted text and questions about files, built on one owner's provider copies.

Extracted text is cached by (owner, content, provider, account) and is never presented
as the original bytes. A question goes the way the provider documents it: each file's
extraction as a system message, or references to uploaded copies where the provider
asks with file references; a copy the provider lost is re-uploaded exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from uuid import UUID

from filetier.clock import utcnow
from filetier.errors import ProviderRequestError
from filetier.metadata.provider_repository import ProviderCopy
from filetier.models import AskResult, ExtractedText, FileRecord
from filetier.providers.base import AsksWithFileReferences, FileReference, Provider
from filetier.providers.uploads import DEFAULT_PURPOSE, ProviderFiles
from filetier.records import RecordCache


def text_of(raw: str) -> str:
    """Kimi and GLM answer ``files.content`` with JSON whose ``content`` is the text."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        return raw
    if isinstance(parsed, dict) and isinstance(parsed.get("content"), str):
        return str(parsed["content"])
    return raw


class ProviderQuestions:
    def __init__(self, files: ProviderFiles, records: RecordCache) -> None:
        self._files = files
        self.repo = files.repo
        self._owner = files.owner
        self._records = records
        self._texts = files.clients.texts

    # -- extracted text -----------------------------------------------------------------

    async def get_file_text(self, file_id: str | UUID, provider: str) -> ExtractedText:
        client = self._files.provider(provider)
        if isinstance(client, AsksWithFileReferences) and not client.extracts_text:
            # Refused before anything is uploaded for a text that will never come.
            raise ProviderRequestError(
                f"{client.name} returns no extracted text of a file; ask about the file "
                "instead (ask_file)"
            )
        if isinstance(file_id, str):
            foreign = await self._foreign_copy(file_id.strip(), client)
            if foreign is not None:
                return await self._foreign_text(foreign, client)
        record = await self._records.get(self._owner, file_id)
        cached = await self.repo.cached_text(
            self._owner, record.sha256, client.name, client.account
        )
        if cached is not None:
            copy = await self.repo.get(
                self._owner, record.sha256, client.name, client.account, DEFAULT_PURPOSE
            )
            return ExtractedText(
                file_id=record.file_id,
                sha256=record.sha256,
                provider=client.name,
                provider_file_id=copy.provider_file_id if copy and copy.usable(utcnow()) else None,
                text=text_of(cached),
                cached=True,
            )
        raw, provider_file_id = await self._texts.run(
            f"{client.name}:{client.account}:{self._owner}:{record.sha256}",
            lambda: self._extract(record, client),
        )
        return ExtractedText(
            file_id=record.file_id,
            sha256=record.sha256,
            provider=client.name,
            provider_file_id=provider_file_id,
            text=text_of(raw),
            cached=False,
        )

    def _is_operator(self) -> bool:
        """Provider-only files belong to the provider account, which is the operator's:
        other owners must not read them, nor learn they exist."""
        return self._owner == self._files.clients.settings.owner

    async def _foreign_copy(self, provider_file_id: str, client: Provider) -> ProviderCopy | None:
        if not self._is_operator():
            return None
        for copy in await self.repo.by_provider_file_id(provider_file_id):
            if copy.file_hash is None and copy.provider == client.name:
                return copy
        return None

    async def _foreign_text(self, copy: ProviderCopy, client: Provider) -> ExtractedText:
        """Text of a file only the provider holds: asked of the provider each time (there
        is no content hash to cache it under)."""
        raw = await client.extracted_text(copy.provider_file_id)
        if raw is None:
            await self.repo.remove(copy)
            raise ProviderRequestError(
                f"{client.name} no longer has file {copy.provider_file_id}; its record is removed"
            )
        return ExtractedText(
            file_id=None,
            sha256=None,
            provider=client.name,
            provider_file_id=copy.provider_file_id,
            text=text_of(raw),
            cached=False,
        )

    async def _raw_text(self, record: FileRecord, client: Provider) -> str:
        cached = await self.repo.cached_text(
            self._owner, record.sha256, client.name, client.account
        )
        if cached is not None:
            return cached
        raw, _ = await self._texts.run(
            f"{client.name}:{client.account}:{self._owner}:{record.sha256}",
            lambda: self._extract(record, client),
        )
        return raw

    async def _extract(self, record: FileRecord, client: Provider) -> tuple[str, str]:
        result = await self._files.get_provider_file_id(
            record.file_id, client.name, DEFAULT_PURPOSE
        )
        raw = await client.extracted_text(result.provider_file_id)
        provider_file_id = result.provider_file_id
        if raw is None:
            # Deleted or expired at the provider: exactly one re-upload.
            gone = await self.repo.get(
                self._owner, record.sha256, client.name, client.account, DEFAULT_PURPOSE
            )
            if gone is not None and gone.provider_file_id == provider_file_id:
                copy = await self._files.reupload(record, client, DEFAULT_PURPOSE, gone)
                provider_file_id = copy.provider_file_id
            else:
                # Another process replaced the lost copy already: use its copy, never
                # mark that one deleted and upload a third.
                current = await self._files.get_provider_file_id(
                    record.file_id, client.name, DEFAULT_PURPOSE
                )
                provider_file_id = current.provider_file_id
            raw = await client.extracted_text(provider_file_id)
            if raw is None:
                raise ProviderRequestError(
                    f"{client.name} lost file {provider_file_id} right after it was uploaded"
                )
        await self.repo.store_text(self._owner, record.sha256, client.name, client.account, raw)
        return raw, provider_file_id

    # -- questions ----------------------------------------------------------------------

    async def ask_file(
        self,
        file_ids: Sequence[str | UUID] | str | UUID,
        question: str,
        provider: str,
        model: str | None = None,
    ) -> AskResult:
        """Ask about files the way the provider documents it: each file's extraction as a
        system message, then the question."""
        if isinstance(file_ids, str | UUID):
            file_ids = [file_ids]
        if not file_ids:
            raise ProviderRequestError("ask_file needs at least one file id")
        if not question.strip():
            raise ProviderRequestError("ask_file needs a question")
        client = self._files.provider(provider)
        if isinstance(client, AsksWithFileReferences):
            return await self._ask_by_reference(client, client, file_ids, question, model)
        messages: list[dict[str, str]] = []
        records: list[FileRecord] = []
        for fid in file_ids:
            record = await self._records.get(self._owner, fid)
            records.append(record)
            messages.append({"role": "system", "content": await self._raw_text(record, client)})
        messages.append({"role": "user", "content": question})
        answer = await client.chat(model or client.default_model, messages)
        ids: list[str] = []
        for record in records:
            copy = await self.repo.get(
                self._owner, record.sha256, client.name, client.account, DEFAULT_PURPOSE
            )
            if copy is not None:
                ids.append(copy.provider_file_id)
        return AskResult(
            answer=answer.content,
            provider=client.name,
            model=answer.model,
            file_ids=[r.file_id for r in records],
            provider_file_ids=ids,
            usage=answer.usage,
        )

    async def _ask_by_reference(
        self,
        provider: Provider,
        client: AsksWithFileReferences,
        file_ids: Sequence[str | UUID],
        question: str,
        model: str | None,
    ) -> AskResult:
        """Upload each file once (or reuse its copy) and send references to the copies.
        A copy the provider lost is found by the answer failing: those copies are checked,
        re-uploaded once, and the question is asked once more."""
        records = [await self._records.get(self._owner, fid) for fid in file_ids]
        model = model or provider.default_model
        refs = [await self._reference(record, provider, client.ask_purpose) for record in records]
        answer = await client.ask(model, question, refs)
        if answer is None:
            for i, record in enumerate(records):
                lost = refs[i].provider_file_id
                if await provider.retrieve(lost) is None:
                    gone = await self.repo.get(
                        self._owner,
                        record.sha256,
                        provider.name,
                        provider.account,
                        client.ask_purpose,
                    )
                    # Another file with the same bytes (or another caller) may have
                    # replaced the copy already: then there is nothing to upload.
                    if gone is not None and gone.provider_file_id == lost:
                        await self._files.reupload(record, provider, client.ask_purpose, gone)
                    refs[i] = await self._reference(record, provider, client.ask_purpose)
            answer = await client.ask(model, question, refs)
            if answer is None:
                raise ProviderRequestError(
                    f"{provider.name} lost a file again right after it was uploaded"
                )
        return AskResult(
            answer=answer.content,
            provider=provider.name,
            model=answer.model,
            file_ids=[r.file_id for r in records],
            provider_file_ids=[ref.provider_file_id for ref in refs],
            usage=answer.usage,
        )

    async def _reference(self, record: FileRecord, client: Provider, purpose: str) -> FileReference:
        result = await self._files.get_provider_file_id(record.file_id, client.name, purpose)
        return FileReference(result.provider_file_id, record.mime_type, record.filename)
