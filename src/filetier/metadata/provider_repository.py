"""Queries for provider copies: ``provider_file_uploads`` is the source of truth, and the
``provider_file_ids`` JSON of the owner's files with that content is kept in step in the
same transaction.

A copy belongs to one owner (``owner``; NULL for a provider-only file, which belongs to
the account): one owner's upload, status change or removal never touches another
owner's rows, so nothing in them tells an owner what another stores.

Row status: ``active`` (the provider holds it), ``deleted`` (gone at the provider),
``pending_delete`` (we asked to delete it but the provider could not be reached;
``providers sync`` finishes the job), ``foreign`` (found at the provider, never uploaded
by filetier: its original bytes are unknown).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from filetier.clock import utcnow
from filetier.metadata.database import Database
from filetier.metadata.repository import new_id
from filetier.metadata.schema import file_metadata, provider_extracted_text, provider_file_uploads

P = provider_file_uploads


@dataclass(frozen=True, slots=True)
class ContentTies:
    """One content's ties to owners: who has a file of it, its provider copies, and who
    has its extracted text cached."""

    file_owners: set[str]
    copies: list[ProviderCopy]
    text_owners: set[str]


def _ties_of(conn: sa.Connection, sha256: str) -> ContentTies:
    f, t = file_metadata, provider_extracted_text
    owners = sa.select(f.c.owner).where(f.c.file_hash == sha256).distinct()
    texts = sa.select(t.c.owner).where(t.c.file_hash == sha256).distinct()
    copies = conn.execute(sa.select(P).where(P.c.file_hash == sha256)).mappings()
    return ContentTies(
        file_owners={row[0] for row in conn.execute(owners)},
        copies=[ProviderCopy.of(row) for row in copies],
        text_owners={row[0] for row in conn.execute(texts)},
    )


def json_key(provider: str, purpose: str) -> str:
    """``kimi`` for the default purpose, ``kimi:image`` for others."""
    return provider if purpose == "file-extract" else f"{provider}:{purpose}"


@dataclass(frozen=True, slots=True)
class ProviderCopy:
    id: UUID
    owner: str | None
    file_hash: str | None
    provider: str
    account: str
    purpose: str
    provider_file_id: str
    status: str
    bytes: int
    uploaded_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    download_count: int

    @classmethod
    def of(cls, row: RowMapping) -> ProviderCopy:
        return cls(
            id=row["id"],
            owner=row["owner"],
            file_hash=row["file_hash"],
            provider=row["provider"],
            account=row["provider_account"],
            purpose=row["purpose"],
            provider_file_id=row["provider_file_id"],
            status=row["status"],
            bytes=row["bytes"],
            uploaded_at=row["uploaded_at"],
            expires_at=row["expires_at"],
            last_used_at=row["last_used_at"],
            download_count=row["download_count"],
        )

    def usable(self, now: datetime) -> bool:
        return self.status == "active" and (self.expires_at is None or self.expires_at > now)


class ProviderRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(
        self, owner: str, sha256: str, provider: str, account: str, purpose: str
    ) -> ProviderCopy | None:
        async with self.db.read() as conn:
            row = (
                (
                    await conn.execute(
                        sa.select(P).where(
                            P.c.owner == owner,
                            P.c.file_hash == sha256,
                            P.c.provider == provider,
                            P.c.provider_account == account,
                            P.c.purpose == purpose,
                        )
                    )
                )
                .mappings()
                .first()
            )
        return ProviderCopy.of(row) if row else None

    async def by_provider_file_id(self, provider_file_id: str) -> list[ProviderCopy]:
        async with self.db.read() as conn:
            rows = (
                (await conn.execute(sa.select(P).where(P.c.provider_file_id == provider_file_id)))
                .mappings()
                .all()
            )
        return [ProviderCopy.of(r) for r in rows]

    async def for_account(self, provider: str, account: str) -> list[ProviderCopy]:
        async with self.db.read() as conn:
            rows = (
                (
                    await conn.execute(
                        sa.select(P).where(
                            P.c.provider == provider, P.c.provider_account == account
                        )
                    )
                )
                .mappings()
                .all()
            )
        return [ProviderCopy.of(r) for r in rows]

    async def for_owner(self, owner: str) -> list[ProviderCopy]:
        """This owner's live copies (each owner has its own; never another owner's)."""
        async with self.db.read() as conn:
            rows = (
                (
                    await conn.execute(
                        sa.select(P).where(
                            P.c.owner == owner,
                            P.c.status.in_(("active", "pending_delete")),
                        )
                    )
                )
                .mappings()
                .all()
            )
        return [ProviderCopy.of(r) for r in rows]

    async def set_expiry(self, copy: ProviderCopy, expires_at: datetime | None) -> None:
        async with self.db.write() as conn:
            await conn.execute(sa.update(P).where(P.c.id == copy.id).values(expires_at=expires_at))

    async def for_hash(self, sha256: str) -> list[ProviderCopy]:
        async with self.db.read() as conn:
            rows = (
                (await conn.execute(sa.select(P).where(P.c.file_hash == sha256))).mappings().all()
            )
        return [ProviderCopy.of(r) for r in rows]

    async def usage(
        self, provider: str, account: str, purpose: str | None = None
    ) -> tuple[int, int]:
        """Active copies at this provider account (for one purpose, if given): (count, bytes)."""
        where = [
            P.c.provider == provider,
            P.c.provider_account == account,
            P.c.status.in_(("active", "foreign")),
        ]
        if purpose is not None:
            where.append(P.c.purpose == purpose)
        async with self.db.read() as conn:
            count, total = (
                await conn.execute(
                    sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(P.c.bytes), 0)).where(
                        *where
                    )
                )
            ).one()
        return int(count), int(total)

    async def least_recently_used(
        self, provider: str, account: str, limit: int, purpose: str | None = None
    ) -> list[ProviderCopy]:
        where = [
            P.c.provider == provider,
            P.c.provider_account == account,
            P.c.status == "active",
        ]
        if purpose is not None:
            where.append(P.c.purpose == purpose)
        async with self.db.read() as conn:
            rows = (
                (
                    await conn.execute(
                        sa.select(P)
                        .where(*where)
                        .order_by(sa.func.coalesce(P.c.last_used_at, P.c.uploaded_at), P.c.id)
                        .limit(limit)
                    )
                )
                .mappings()
                .all()
            )
        return [ProviderCopy.of(r) for r in rows]

    async def record_upload(
        self,
        *,
        owner: str,
        sha256: str,
        provider: str,
        account: str,
        purpose: str,
        provider_file_id: str,
        size: int,
        filename: str | None,
        expires_at: datetime | None,
    ) -> None:
        """Upsert the owner's copy and mirror its id into the owner's files with this content."""
        now = utcnow()
        values: dict[str, Any] = {
            "provider_file_id": provider_file_id,
            "status": "active",
            "uploaded_at": now,
            "expires_at": expires_at,
            "bytes": size,
            "filename": filename,
            "last_used_at": now,
        }
        async with self.db.write() as conn:
            # A foreign row for the same provider id is superseded by this real one.
            await conn.execute(
                sa.delete(P).where(
                    P.c.provider == provider,
                    P.c.provider_file_id == provider_file_id,
                    P.c.file_hash.is_(None),
                )
            )
            updated = await conn.execute(
                sa.update(P)
                .where(
                    P.c.owner == owner,
                    P.c.file_hash == sha256,
                    P.c.provider == provider,
                    P.c.provider_account == account,
                    P.c.purpose == purpose,
                )
                .values(**values)
            )
            if not updated.rowcount:
                await conn.execute(
                    sa.insert(P).values(
                        id=new_id(),
                        owner=owner,
                        file_hash=sha256,
                        provider=provider,
                        provider_account=account,
                        purpose=purpose,
                        download_count=0,
                        **values,
                    )
                )
            await self._mirror(conn, owner, sha256, json_key(provider, purpose), provider_file_id)

    async def set_status(
        self, copy: ProviderCopy, status: str, *, sha256: str | None = None
    ) -> None:
        async with self.db.write() as conn:
            values: dict[str, Any] = {"status": status}
            if status == "active":
                values["last_used_at"] = utcnow()
            # Only that copy: a concurrent re-upload may have put a new provider file id
            # in the same row, and it must not be marked with the old copy's fate.
            changed = await conn.execute(
                sa.update(P)
                .where(P.c.id == copy.id, P.c.provider_file_id == copy.provider_file_id)
                .values(**values)
            )
            if changed.rowcount == 0:
                return
            if copy.file_hash:
                await self._mirror(
                    conn,
                    copy.owner,
                    copy.file_hash,
                    json_key(copy.provider, copy.purpose),
                    copy.provider_file_id if status == "active" else None,
                )

    async def remove(self, copy: ProviderCopy) -> None:
        async with self.db.write() as conn:
            # Only that copy, as in set_status: a concurrent re-upload may have put a new
            # provider file id in the same row, which must stay recorded.
            removed = await conn.execute(
                sa.delete(P).where(P.c.id == copy.id, P.c.provider_file_id == copy.provider_file_id)
            )
            if removed.rowcount == 0:
                return
            if copy.file_hash:
                await self._mirror(
                    conn, copy.owner, copy.file_hash, json_key(copy.provider, copy.purpose), None
                )

    async def add_foreign(
        self,
        provider: str,
        account: str,
        provider_file_id: str,
        size: int,
        filename: str | None,
        purpose: str,
    ) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                sa.insert(P).values(
                    id=new_id(),
                    file_hash=None,
                    provider=provider,
                    provider_account=account,
                    purpose=purpose or "unknown",
                    provider_file_id=provider_file_id,
                    status="foreign",
                    uploaded_at=utcnow(),
                    bytes=size,
                    filename=filename,
                    download_count=0,
                )
            )

    async def touch(self, copy: ProviderCopy) -> None:
        async with self.db.write() as conn:
            await conn.execute(sa.update(P).where(P.c.id == copy.id).values(last_used_at=utcnow()))

    async def count_download(self, copy: ProviderCopy) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                sa.update(P)
                .where(P.c.id == copy.id)
                .values(download_count=P.c.download_count + 1, last_downloaded_at=utcnow())
            )

    async def ensure_mirrored(self, file_id: UUID, copy: ProviderCopy) -> None:
        """Heal the owner's file rows whose JSON lacks a copy (e.g. a file uploaded later
        with the same content)."""
        assert copy.file_hash is not None
        async with self.db.write() as conn:
            await self._mirror(
                conn,
                copy.owner,
                copy.file_hash,
                json_key(copy.provider, copy.purpose),
                copy.provider_file_id,
            )

    @staticmethod
    async def _mirror(
        conn: AsyncConnection, owner: str | None, sha256: str, key: str, value: str | None
    ) -> None:
        if owner is None:
            return  # a provider-only file: no file row mirrors it
        rows = (
            await conn.execute(
                sa.select(file_metadata.c.file_id, file_metadata.c.provider_file_ids).where(
                    file_metadata.c.file_hash == sha256, file_metadata.c.owner == owner
                )
            )
        ).all()
        for file_id, current in rows:
            mapping = dict(current or {})
            if value is None:
                if key not in mapping:
                    continue
                mapping.pop(key)
            elif mapping.get(key) == value:
                continue
            else:
                mapping[key] = value
            await conn.execute(
                sa.update(file_metadata)
                .where(file_metadata.c.file_id == file_id)
                .values(provider_file_ids=mapping, updated_at=utcnow())
            )

    # -- extracted text cache ---------------------------------------------------------

    async def cached_text(self, owner: str, sha256: str, provider: str, account: str) -> str | None:
        t = provider_extracted_text
        async with self.db.read() as conn:
            return (
                await conn.execute(
                    sa.select(t.c.text).where(
                        t.c.owner == owner,
                        t.c.file_hash == sha256,
                        t.c.provider == provider,
                        t.c.provider_account == account,
                    )
                )
            ).scalar_one_or_none()

    async def store_text(
        self, owner: str, sha256: str, provider: str, account: str, text: str
    ) -> None:
        t = provider_extracted_text
        async with self.db.write() as conn:
            await conn.execute(
                sa.delete(t).where(
                    t.c.owner == owner,
                    t.c.file_hash == sha256,
                    t.c.provider == provider,
                    t.c.provider_account == account,
                )
            )
            await conn.execute(
                sa.insert(t).values(
                    owner=owner,
                    file_hash=sha256,
                    provider=provider,
                    provider_account=account,
                    text=text,
                    created_at=utcnow(),
                )
            )

    async def forget_text(self, sha256: str, owners: Collection[str]) -> None:
        """Drop the cached text of this content for these owners."""
        if not owners:
            return
        t = provider_extracted_text
        async with self.db.write() as conn:
            await conn.execute(
                sa.delete(t).where(t.c.file_hash == sha256, t.c.owner.in_(sorted(owners)))
            )

    async def ties_of(self, sha256: str) -> ContentTies:
        """What still ties this content to owners, in one read transaction (on a SQLite
        file one reader-thread call): most content that ends has no copies and no text,
        and is then settled without a write."""
        return await self.db.read_sync(_ties_of, sha256)

    async def statuses(self, copies: Sequence[ProviderCopy]) -> dict[UUID, str]:
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    sa.select(P.c.id, P.c.status).where(P.c.id.in_([c.id for c in copies]))
                )
            ).all()
        return {r[0]: r[1] for r in rows}
