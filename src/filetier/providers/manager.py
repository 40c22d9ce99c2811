"""Upload each content at most once per provider account, and everything built on it.

``get_provider_file_id`` answers from ``provider_file_uploads`` with no network call when
a usable copy of the asking owner's is recorded. Copies are per owner: one owner's upload
never answers, or changes the rows of, another owner with the same content (a shared copy
was an oracle for what others store). Otherwise one upload happens: one in-flight task
per (owner, content, provider, account, purpose) in a process, and a lock of that name across
processes (file lock) and hosts (PostgreSQL advisory lock); whoever gets the lock second
finds the row the first one wrote. Limits are checked before any byte is sent; near the
count or byte quota, the least recently used copies are deleted at the provider first.

Every copy records when the provider deletes it (Gemini: 48 hours; OpenAI: the
configured ``expires_after``; whatever else a provider states). A recorded copy is reused
only while it has more than ``provider_reuse_margin_seconds`` left, so whoever gets an id
can still use it for the length of a request; otherwise it is uploaded again, once. A copy
the provider answers 404 for (or Gemini's 403: unknown or expired) is re-uploaded exactly
once per request. Extracted text is cached by (content, provider, account) and is never
presented as the original bytes.
"""

from __future__ import annotations

import copy as copy_module
import json
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID

from filetier.clock import utcnow
from filetier.errors import (
    FiletierError,
    OriginalNotAvailableError,
    ProviderLimitError,
    ProviderRequestError,
    UnsupportedPurposeError,
)
from filetier.metadata.provider_repository import ProviderCopy, ProviderRepository
from filetier.models import (
    AskResult,
    ExtractedText,
    FileRecord,
    ProviderCopyInfo,
    ProviderFileId,
    SyncAction,
    SyncReport,
)
from filetier.providers.base import (
    AsksWithFileReferences,
    FileReference,
    LocalContent,
    Provider,
    ProviderFile,
    UploadsFromDisk,
)
from filetier.providers.registry import SPECS, build_provider, configured_names
from filetier.singleflight import SingleFlight

if TYPE_CHECKING:
    from filetier.store import FileStore

log = logging.getLogger(__name__)

DEFAULT_PURPOSE = "file-extract"
# last_used_at is an LRU hint: a hit rewrites it at most this often.
TOUCH_INTERVAL_SECONDS = 60.0


def text_of(raw: str) -> str:
    """Kimi and GLM answer ``files.content`` with JSON whose ``content`` is the text."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        return raw
    if isinstance(parsed, dict) and isinstance(parsed.get("content"), str):
        return str(parsed["content"])
    return raw


def _expiry_differs(ours: datetime | None, stated: datetime | None) -> bool:
    """The provider states an expiry we have not recorded (a second apart is the same)."""
    if stated is None:
        return False
    return ours is None or abs((ours - stated).total_seconds()) >= 1.0


def _infos(copies: Iterable[ProviderCopy]) -> list[ProviderCopyInfo]:
    now = utcnow()
    found = [
        ProviderCopyInfo(
            provider=c.provider,
            purpose=c.purpose,
            provider_file_id=c.provider_file_id,
            status="expired" if c.status == "active" and not c.usable(now) else c.status,
            uploaded_at=c.uploaded_at,
            expires_at=c.expires_at,
            remaining_seconds=(
                max(0.0, (c.expires_at - now).total_seconds()) if c.expires_at else None
            ),
        )
        for c in copies
    ]
    # Soonest to expire first; copies with no expiry last.
    found.sort(key=lambda i: (i.remaining_seconds is None, i.remaining_seconds or 0.0))
    return found


class ProviderFiles:
    def __init__(self, store: FileStore) -> None:
        self._store = store
        self.repo = ProviderRepository(store.db)
        self._clients: dict[str, Provider] = {}
        self._uploads: SingleFlight[ProviderCopy] = SingleFlight()
        self._texts: SingleFlight[tuple[str, str]] = SingleFlight()

    def bind(self, store: FileStore) -> ProviderFiles:
        """The same clients and in-flight uploads, acting for another owner's view."""
        view = copy_module.copy(self)
        view._store = store
        return view

    @property
    def _owner(self) -> str:
        """Whose copies these are: every copy belongs to one owner (see the repository)."""
        return self._store.owner

    def provider(self, name: str) -> Provider:
        key = name.lower()
        if key not in self._clients:
            self._clients[key] = build_provider(key, self._store.settings)
        return self._clients[key]

    def _reusable(self, copy: ProviderCopy) -> bool:
        """Active, and with more life left than a request needs: the configured margin,
        or half the copy's whole lifetime when that is shorter (an OpenAI copy made to
        live one hour would otherwise never be reused under a one-hour margin)."""
        now = utcnow()
        if not copy.usable(now):
            return False
        if copy.expires_at is None:
            return True
        lifetime = (copy.expires_at - copy.uploaded_at).total_seconds()
        margin = min(self._store.settings.provider_reuse_margin_seconds, max(0.0, lifetime) / 2)
        return copy.expires_at > now + timedelta(seconds=margin)

    def configured(self) -> list[str]:
        return configured_names(self._store.settings)

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    # -- provider file ids --------------------------------------------------------------

    def _check_limits(self, client: Provider, record: FileRecord, purpose: str) -> None:
        limits = client.limits
        if purpose not in limits.purposes:
            raise UnsupportedPurposeError(
                f"{client.name} does not accept files for purpose {purpose!r}; "
                f"use one of {', '.join(sorted(limits.purposes))}"
            )
        per_file = limits.file_limit(purpose)
        if per_file is not None and record.size > per_file:
            raise ProviderLimitError(
                f"file {record.file_id} ({record.filename}) is {record.size:,} bytes; "
                f"{client.name} accepts at most {per_file:,} bytes for {purpose}"
            )
        if limits.max_total_bytes is not None and record.size > limits.max_total_bytes:
            raise ProviderLimitError(
                f"file {record.file_id} is larger than {client.name}'s whole storage quota"
            )

    async def get_provider_file_id(
        self,
        file_id: str | UUID,
        provider: str,
        purpose: str = DEFAULT_PURPOSE,
        *,
        verify: bool = False,
    ) -> ProviderFileId:
        """The provider's id for this file's content, uploading it at most once.

        With ``verify=True`` a stored id is checked with the provider first (one call),
        and re-uploaded once if the provider no longer has it.
        """
        record = await self._store._record(file_id)
        client = self.provider(provider)
        purpose = client.limits.canonical(purpose)
        self._check_limits(client, record, purpose)
        copy = await self.repo.get(self._owner, record.sha256, client.name, client.account, purpose)
        uploaded = False
        if copy is not None and self._reusable(copy):
            if verify and await client.retrieve(copy.provider_file_id) is None:
                copy, uploaded = await self._reupload(record, client, purpose, copy), True
            else:
                await self._note_use(record, copy)
        else:
            copy, uploaded = await self._upload(record, client, purpose, stale=copy)
        return ProviderFileId(
            file_id=record.file_id,
            sha256=record.sha256,
            provider=client.name,
            purpose=purpose,
            provider_file_id=copy.provider_file_id,
            uploaded=uploaded,
            expires_at=copy.expires_at,
        )

    async def _note_use(self, record: FileRecord, copy: ProviderCopy) -> None:
        last = copy.last_used_at or copy.uploaded_at
        if (utcnow() - last).total_seconds() > TOUCH_INTERVAL_SECONDS:
            await self.repo.touch(copy)
        key = (
            copy.provider if copy.purpose == DEFAULT_PURPOSE else f"{copy.provider}:{copy.purpose}"
        )
        if record.provider_file_ids.get(key) != copy.provider_file_id:
            await self.repo.ensure_mirrored(record.file_id, copy)

    async def _upload(
        self, record: FileRecord, client: Provider, purpose: str, stale: ProviderCopy | None
    ) -> tuple[ProviderCopy, bool]:
        name = f"provider:{client.name}:{client.account}:{purpose}:{self._owner}:{record.sha256}"
        uploaded = False

        async def upload_once() -> ProviderCopy:
            nonlocal uploaded
            async with self._store.content_locks.hold(name):
                # Whoever held the lock before us may have uploaded it already.
                current = await self.repo.get(
                    self._owner, record.sha256, client.name, client.account, purpose
                )
                if (
                    current is not None
                    and self._reusable(current)
                    and (stale is None or current.provider_file_id != stale.provider_file_id)
                ):
                    return current
                if current is not None and current.status == "pending_delete":
                    # The content is wanted again before its delete went through: keep the
                    # copy if the provider still has it, never leave it behind unrecorded.
                    if await client.retrieve(current.provider_file_id) is not None:
                        await self.repo.set_status(current, "active", sha256=record.sha256)
                        self._store._forget_records_with(record.sha256)
                        revived = await self.repo.get(
                            self._owner, record.sha256, client.name, client.account, purpose
                        )
                        assert revived is not None
                        return revived
                    await self.repo.remove(current)
                await self._make_room(client, record)
                await self._make_room(client, record, purpose)
                result = await self._send(record, client, purpose)
                uploaded = True
                await self.repo.record_upload(
                    owner=self._owner,
                    sha256=record.sha256,
                    provider=client.name,
                    account=client.account,
                    purpose=purpose,
                    provider_file_id=result.id,
                    size=record.size,
                    filename=record.filename,
                    expires_at=result.expires_at,
                )
                self._store._forget_records_with(record.sha256)
                fresh = await self.repo.get(
                    self._owner, record.sha256, client.name, client.account, purpose
                )
                assert fresh is not None
                return fresh

        copy = await self._uploads.run(name, upload_once)
        return copy, uploaded

    async def _send(self, record: FileRecord, client: Provider, purpose: str) -> ProviderFile:
        """One upload: from disk in pieces where the adapter can, else from memory."""
        if isinstance(client, UploadsFromDisk) and client.reads_from_disk(record.size):
            async with self._store._content_file(record) as path:
                return await client.upload_from_disk(
                    LocalContent(
                        path=path,
                        filename=record.filename,
                        size=record.size,
                        sha256=record.sha256,
                        mime_type=record.mime_type or "application/octet-stream",
                    ),
                    purpose,
                )
        data = await self._store._content_bytes(record)
        return await client.upload(record.filename, data, purpose)

    async def copies_of(self, file_id: str | UUID) -> list[ProviderCopyInfo]:
        """This file's provider copies and the life each has left (no provider call)."""
        record = await self._store._record(file_id)
        return _infos(
            c
            for c in await self.repo.for_hash(record.sha256)
            if c.owner == self._owner and c.status in ("active", "pending_delete")
        )

    async def owner_copies(self) -> list[ProviderCopyInfo]:
        """Every live copy of this owner's content, soonest to expire first."""
        return _infos(await self.repo.for_owner(self._store.owner))

    async def _reupload(
        self, record: FileRecord, client: Provider, purpose: str, gone: ProviderCopy
    ) -> ProviderCopy:
        """The provider lost ``gone``: record that, then upload once more."""
        await self.repo.set_status(gone, "deleted")
        copy, _ = await self._upload(record, client, purpose, stale=gone)
        return copy

    async def _make_room(
        self, client: Provider, record: FileRecord, purpose: str | None = None
    ) -> None:
        """Evict least recently used copies until ``record`` fits the account's quota
        (or, with ``purpose``, that purpose's own file count)."""
        limits = client.limits
        max_files = (
            limits.max_files if purpose is None else limits.max_files_per_purpose.get(purpose)
        )
        max_total = limits.max_total_bytes if purpose is None else None
        if max_files is None and max_total is None:
            return
        count, total = await self.repo.usage(client.name, client.account, purpose)

        def over(count: int, total: int) -> bool:
            return (max_files is not None and count + 1 > max_files) or (
                max_total is not None and total + record.size > max_total
            )

        scope = f"{client.name}'s" if purpose is None else f"{client.name}'s {purpose}"
        while over(count, total):
            victims = [
                c
                for c in await self.repo.least_recently_used(
                    client.name, client.account, 16, purpose
                )
                if c.file_hash != record.sha256
            ]
            if not victims:
                raise ProviderLimitError(
                    f"{scope} quota is full ({count} files, {total:,} bytes) and "
                    "filetier holds no copy there it could remove to make room"
                )
            for victim in victims:
                if not over(count, total):
                    break
                log.info("evicting %s copy %s to make room", client.name, victim.provider_file_id)
                await client.delete(victim.provider_file_id)
                await self.repo.set_status(victim, "deleted")
                count, total = count - 1, total - victim.bytes

    # -- extracted text -----------------------------------------------------------------

    async def get_file_text(self, file_id: str | UUID, provider: str) -> ExtractedText:
        client = self.provider(provider)
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
        record = await self._store._record(file_id)
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
        return self._store.owner == self._store.settings.owner

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
        result = await self.get_provider_file_id(record.file_id, client.name, DEFAULT_PURPOSE)
        raw = await client.extracted_text(result.provider_file_id)
        provider_file_id = result.provider_file_id
        if raw is None:
            # Deleted or expired at the provider: exactly one re-upload.
            gone = await self.repo.get(
                self._owner, record.sha256, client.name, client.account, DEFAULT_PURPOSE
            )
            assert gone is not None
            copy = await self._reupload(record, client, DEFAULT_PURPOSE, gone)
            provider_file_id = copy.provider_file_id
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
        file_ids: list[str | UUID],
        question: str,
        provider: str,
        model: str | None = None,
    ) -> AskResult:
        """Ask about files the way the provider documents it: each file's extraction as a
        system message, then the question."""
        if not file_ids:
            raise ProviderRequestError("ask_file needs at least one file id")
        if not question.strip():
            raise ProviderRequestError("ask_file needs a question")
        client = self.provider(provider)
        if isinstance(client, AsksWithFileReferences):
            return await self._ask_by_reference(client, client, file_ids, question, model)
        messages: list[dict[str, str]] = []
        records: list[FileRecord] = []
        for fid in file_ids:
            record = await self._store._record(fid)
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
        file_ids: list[str | UUID],
        question: str,
        model: str | None,
    ) -> AskResult:
        """Upload each file once (or reuse its copy) and send references to the copies.
        A copy the provider lost is found by the answer failing: those copies are checked,
        re-uploaded once, and the question is asked once more."""
        records = [await self._store._record(fid) for fid in file_ids]
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
                        await self._reupload(record, provider, client.ask_purpose, gone)
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
        result = await self.get_provider_file_id(record.file_id, client.name, purpose)
        return FileReference(result.provider_file_id, record.mime_type, record.filename)

    # -- lifecycle ----------------------------------------------------------------------

    async def forget_content(self, sha256: str) -> int:
        """Delete the provider copies of this content whose owner no longer has a file
        with it (all of them once no file does), and their extracted text."""
        keep = await self.repo.owners_of(sha256)
        removed = 0
        for copy in await self.repo.for_hash(sha256):
            if copy.owner in keep:
                continue
            if copy.status not in ("active", "pending_delete"):
                await self.repo.remove(copy)
                continue
            try:
                client = self.provider(copy.provider)
                if client.account != copy.account:
                    raise ProviderRequestError("the copy belongs to another account")
                await client.delete(copy.provider_file_id)
            except FiletierError as exc:
                log.warning(
                    "could not delete %s copy %s now (%s); `filetier providers sync` will",
                    copy.provider,
                    copy.provider_file_id,
                    exc,
                )
                await self.repo.set_status(copy, "pending_delete")
                continue
            await self.repo.remove(copy)
            removed += 1
        await self.repo.forget_text(sha256, keep=keep)
        return removed

    async def resolve(self, provider_file_id: str) -> ProviderCopy | None:
        """The copy a provider file id names, if it is this owner's (another owner's
        copy gets the same answer as an id filetier never saw)."""
        for copy in await self.repo.by_provider_file_id(provider_file_id):
            if copy.file_hash is not None and copy.owner == self._owner:
                return copy
        if not self._is_operator():
            return None
        for copy in await self.repo.by_provider_file_id(provider_file_id):
            if copy.file_hash is not None:
                continue  # another owner's copy: not the operator's to name either
            spec = SPECS.get(copy.provider)
            if spec is not None and not spec.offers_text:
                raise OriginalNotAvailableError(
                    f"{provider_file_id} is a {copy.provider} file that filetier never "
                    f"uploaded, so filetier holds no bytes of it, and {copy.provider} offers "
                    "no text of it either"
                )
            raise OriginalNotAvailableError(
                f"{provider_file_id} is a {copy.provider} file that filetier never uploaded; "
                f"{copy.provider} returns extracted text, not the original bytes: ask for "
                f"its text instead (get_file_text / `filetier text {provider_file_id} "
                f"{copy.provider}`)"
            )
        return None

    async def sync(self, providers: list[str] | None = None, *, dry_run: bool = True) -> SyncReport:
        """Reconcile our records with each provider's own file list, both directions."""
        names = providers or self.configured()
        actions: list[SyncAction] = []
        for name in names:
            client = self.provider(name)
            remote = {f.id: f for f in await client.list_files()}
            ours = await self.repo.for_account(client.name, client.account)
            known = {c.provider_file_id for c in ours}
            plan: list[tuple[SyncAction, ProviderCopy | None]] = []
            now = utcnow()
            for copy in ours:
                present = copy.provider_file_id in remote
                if copy.status == "active" and not present:
                    expired = copy.expires_at is not None and copy.expires_at <= now
                    plan.append(
                        (
                            SyncAction(
                                kind="forget_expired" if expired else "forget_missing",
                                provider=client.name,
                                provider_file_id=copy.provider_file_id,
                                detail=(
                                    f"expired at the provider at {copy.expires_at:%Y-%m-%d %H:%M} UTC"
                                    if expired and copy.expires_at is not None
                                    else "recorded as uploaded, but the provider no longer has it"
                                ),
                            ),
                            copy,
                        )
                    )
                elif copy.status == "active" and _expiry_differs(
                    copy.expires_at, remote[copy.provider_file_id].expires_at
                ):
                    stated = remote[copy.provider_file_id].expires_at
                    plan.append(
                        (
                            SyncAction(
                                kind="record_expiry",
                                provider=client.name,
                                provider_file_id=copy.provider_file_id,
                                detail=f"the provider deletes it at {stated:%Y-%m-%d %H:%M:%S} UTC",
                            ),
                            copy,
                        )
                    )
                elif copy.status == "pending_delete" and not present:
                    plan.append(
                        (
                            SyncAction(
                                kind="forget_missing",
                                provider=client.name,
                                provider_file_id=copy.provider_file_id,
                                detail="waiting to be deleted, and the provider no longer has it",
                            ),
                            copy,
                        )
                    )
                elif copy.status == "pending_delete" and present:
                    plan.append(
                        (
                            SyncAction(
                                kind="delete_at_provider",
                                provider=client.name,
                                provider_file_id=copy.provider_file_id,
                                detail="no file uses this content; the earlier delete failed",
                            ),
                            copy,
                        )
                    )
            for file_id, info in remote.items():
                if file_id not in known:
                    plan.append(
                        (
                            SyncAction(
                                kind="record_foreign",
                                provider=client.name,
                                provider_file_id=file_id,
                                detail=f"{info.filename or 'unnamed'}, {info.bytes:,} bytes: not "
                                "uploaded by filetier; recorded so downloads explain it",
                            ),
                            None,
                        )
                    )
            actions += [action for action, _ in plan]
            if dry_run:
                continue
            for action, target in plan:
                if action.kind == "record_expiry" and target is not None:
                    await self.repo.set_expiry(target, remote[target.provider_file_id].expires_at)
                elif action.kind in ("forget_missing", "forget_expired") and target is not None:
                    if target.status == "pending_delete":
                        await self.repo.remove(target)
                    else:
                        await self.repo.set_status(target, "deleted")
                elif action.kind == "delete_at_provider" and target is not None:
                    await client.delete(target.provider_file_id)
                    await self.repo.remove(target)
                elif action.kind == "record_foreign":
                    info = remote[action.provider_file_id]
                    await self.repo.add_foreign(
                        client.name,
                        client.account,
                        info.id,
                        info.bytes,
                        info.filename,
                        info.purpose or "unknown",
                    )
        return SyncReport(dry_run=dry_run, providers=names, actions=actions)
