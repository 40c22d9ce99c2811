"""Every query FileStore runs, as small named functions over :class:`Database`.

The rows these queries return are in :mod:`~filetier.metadata.rows`, the download log's
queries in :mod:`~filetier.metadata.access_log`, the batched inserts in
:mod:`~filetier.metadata.inserts` and the batched deletes in :mod:`~filetier.metadata.deletes`.

Ordering rules the callers rely on (diskcache's ``_transact`` discipline):
objects are written before the rows that reference them are committed, and an object
is deleted only after the commit that removed its last reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from filetier.clock import utcnow
from filetier.errors import MetadataUnavailableError
from filetier.metadata.access_log import AccessEvent, AccessLog
from filetier.metadata.batching import GroupCommit
from filetier.metadata.database import Database
from filetier.metadata.deletes import (
    BlobRelease,
    DeletedFile,
    Deletion,
    FileRowDelete,
    Outcome,
    delete_batch_sync,
)
from filetier.metadata.inserts import (
    BatchRefused,
    DurableObjects,
    FileInsert,
    insert_batch_pg,
    insert_batch_pg_one_statement,
    insert_batch_sync,
    make_objects_durable,
    one_statement,
)
from filetier.metadata.rows import BlobRow, blob_of, file_order, new_id, record_from_row
from filetier.metadata.schema import blobs, file_download_history, file_metadata
from filetier.models import FileRecord, FileSort, TierStats
from filetier.quota import OwnerQuota

__all__ = [
    "AccessEvent",
    "BlobRow",
    "DeletedFile",
    "Repository",
    "new_id",
    "record_from_row",
    "utcnow",
]


class Repository(AccessLog):
    def __init__(self, db: Database) -> None:
        self.db = db
        self._inserts: GroupCommit[FileInsert, None] = GroupCommit(self._insert_batch)
        self._deletes: GroupCommit[Deletion, Outcome] = GroupCommit(self._delete_batch)

    async def settle(self) -> None:
        """Wait for queued inserts and deletes to be answered (before the database closes)."""
        await self._inserts.wait_idle()
        await self._deletes.wait_idle()

    # -- files ----------------------------------------------------------------------------

    async def get_file(self, owner: str, file_id: UUID) -> FileRecord | None:
        """The owner's record (on a SQLite file in one reader-thread call: the download
        path's lookup)."""
        return await self.db.read_sync(_file_of, owner, file_id)

    async def get_files(self, owner: str, file_ids: Sequence[UUID]) -> dict[UUID, FileRecord]:
        """The owner's records among ``file_ids``, in one query (absent ids are left out).
        On a SQLite file in one reader-thread call (the download path's lookup)."""
        if not file_ids:
            return {}
        return await self.db.read_sync(_files_of, owner, list(file_ids))

    async def file_ids_between(
        self, owner: str, low: UUID, high: UUID, *, limit: int
    ) -> tuple[list[UUID], int]:
        """The owner's file ids from ``low`` to ``high`` inclusive (at most ``limit`` of
        them) and how many there are. An id prefix is such a range: UUIDs order as their
        hex digits on both SQLite (hex text) and PostgreSQL (bytes), so the primary key
        index answers it."""
        f = file_metadata
        where = (f.c.owner == owner, f.c.file_id >= low, f.c.file_id <= high)
        async with self.db.read() as conn:
            total = (
                await conn.execute(sa.select(sa.func.count()).select_from(f).where(*where))
            ).scalar_one()
            rows = (
                await conn.execute(
                    sa.select(f.c.file_id).where(*where).order_by(f.c.file_id).limit(limit)
                )
            ).all()
        return [row[0] for row in rows], int(total)

    async def list_files(
        self,
        owner: str,
        *,
        name_contains: str | None,
        mime_type: str | None,
        sha256: str | None,
        limit: int,
        offset: int,
        sort: FileSort = "-uploaded",
    ) -> tuple[list[FileRecord], int]:
        where = [file_metadata.c.owner == owner]
        if name_contains:
            escaped = name_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append(file_metadata.c.original_filename.ilike(f"%{escaped}%", escape="\\"))
        if mime_type:
            if mime_type.endswith("/*"):
                where.append(file_metadata.c.mime_type.startswith(mime_type[:-1], autoescape=True))
            else:
                where.append(file_metadata.c.mime_type == mime_type)
        if sha256:
            where.append(file_metadata.c.file_hash == sha256)
        async with self.db.read() as conn:
            total = (
                await conn.execute(
                    sa.select(sa.func.count()).select_from(file_metadata).where(*where)
                )
            ).scalar_one()
            rows = (
                (
                    await conn.execute(
                        sa.select(file_metadata)
                        .where(*where)
                        .order_by(*file_order(sort))
                        .limit(limit)
                        .offset(offset)
                    )
                )
                .mappings()
                .all()
            )
        return [record_from_row(r) for r in rows], int(total)

    async def owner_usage(self, owner: str) -> tuple[int, int]:
        """(files, bytes) stored by ``owner``."""
        f = file_metadata
        async with self.db.read() as conn:
            files, total = (
                await conn.execute(
                    sa.select(
                        sa.func.count(), sa.func.coalesce(sa.func.sum(f.c.file_size), 0)
                    ).where(f.c.owner == owner)
                )
            ).one()
        return int(files), int(total)

    async def owner_has_content(self, owner: str, sha256: str, *, exclude: UUID) -> bool:
        """Whether ``owner`` has a file with this content other than ``exclude``."""
        f = file_metadata
        async with self.db.read() as conn:
            found = await conn.execute(
                sa.select(f.c.file_id)
                .where(f.c.owner == owner, f.c.file_hash == sha256, f.c.file_id != exclude)
                .limit(1)
            )
            return found.first() is not None

    async def blob_of_size_exists(self, size: int) -> bool:
        async with self.db.read() as conn:
            found = await conn.execute(
                sa.select(blobs.c.sha256)
                .where(blobs.c.size == size, blobs.c.status == "ok")
                .limit(1)
            )
            return found.first() is not None

    async def get_blob(self, sha256: str) -> BlobRow | None:
        async with self.db.read() as conn:
            return await self._get_blob(conn, sha256)

    @staticmethod
    async def _get_blob(
        conn: AsyncConnection, sha256: str, *, lock: bool = False
    ) -> BlobRow | None:
        """The blob row; with ``lock``, row-locked until the transaction ends.

        The lock is what orders an insert of a file against the delete of the last file
        with the same content on PostgreSQL (READ COMMITTED): without it, the delete
        cannot see the uncommitted new file and drops the blob row from under it. SQLite
        serializes writers already and ignores the clause.
        """
        query = sa.select(blobs).where(blobs.c.sha256 == sha256)
        if lock:
            query = query.with_for_update()
        row = (await conn.execute(query)).mappings().first()
        return None if row is None else blob_of(row)

    async def insert_file(
        self,
        *,
        owner: str,
        filename: str,
        size: int,
        mime_type: str,
        sha256: str,
        storage_key: str,
        metadata: dict[str, Any],
        local_cache_path: str | None,
        quota: OwnerQuota | None = None,
        wrote_object: bool = False,
        object_modified_at: datetime | None = None,
        durable_in: DurableObjects | None = None,
    ) -> FileRecord:
        """Record a file whose object already exists; the blob row is created if new.

        ``quota``: refuse (QuotaExceededError, nothing written) when this file would take
        the owner over it, counted in this transaction, serialized per owner (see
        :mod:`filetier.quota`). ``wrote_object``: the caller has just written and hashed
        the object, whose modification time is ``object_modified_at``.
        ``durable_in``: the store to make the object durable in (fsyncs), with the rest of
        its batch, before the row commits, so a committed row never names an object a
        power cut could still take away.

        Inserts that arrive together commit together (one transaction; on SQLite one
        WAL sync, on PostgreSQL one round of locks: see :mod:`filetier.metadata.batching`
        and :func:`~filetier.metadata.inserts.insert_batch_pg`), in a savepoint so
        one refused by its quota leaves the others in.
        """
        now = utcnow()
        file_id = new_id()
        values = {
            "file_id": file_id,
            "owner": owner,
            "original_filename": filename,
            "file_size": size,
            "mime_type": mime_type,
            "supabase_storage_path": storage_key,
            "local_cache_path": local_cache_path,
            "file_hash": sha256,
            "provider_file_ids": {},
            "upload_date": now,
            "last_accessed": None,
            "access_count": 0,
            "metadata": metadata,
            "created_at": now,
            "updated_at": now,
        }
        request = FileInsert(
            values, quota, wrote_object, object_modified_at if wrote_object else None, durable_in
        )
        await self._inserts.submit(request)
        return FileRecord(
            file_id=file_id,
            owner=owner,
            filename=filename,
            size=size,
            mime_type=mime_type,
            sha256=sha256,
            storage_key=storage_key,
            metadata=metadata,
            upload_date=now,
            created_at=now,
            updated_at=now,
        )

    async def _insert_batch(self, requests: list[FileInsert]) -> list[Exception | None]:
        outcomes = await make_objects_durable(requests)
        todo = [r for r, outcome in zip(requests, outcomes, strict=True) if outcome is None]
        if todo:
            if self.db.dialect == "postgresql":
                done = iter(await self._insert_batch_pg(todo))
            else:
                # One thread hop for the whole transaction, not one per statement.
                done = iter(await self.db.write_batch(insert_batch_sync, todo, self.db.unavailable))
            outcomes = [next(done) if outcome is None else outcome for outcome in outcomes]
        return outcomes

    async def _insert_batch_pg(self, requests: list[FileInsert]) -> list[Exception | None]:
        # The batches run one at a time, on the spare connection (no ping before each).
        spare = self.db.spare
        assert spare is not None
        if one_statement(requests):
            try:
                try:
                    async with spare.autocommit() as driver:
                        return await insert_batch_pg_one_statement(driver, requests)
                except MetadataUnavailableError:
                    # The connection, not pinged first, may have died unnoticed: once
                    # more on a new one (the statement is idempotent, so even one whose
                    # answer was lost after it committed is safe to send again).
                    async with spare.autocommit() as driver:
                        return await insert_batch_pg_one_statement(driver, requests)
            except BatchRefused:
                pass  # tried again below, the general way: so only the one at fault fails
        try:
            async with spare.transaction() as conn:
                return await conn.run_sync(insert_batch_pg, requests)
        except BatchRefused as refused:
            if len(requests) == 1:
                return [self.db.unavailable(refused.cause)]
        # Refused as a whole: each request alone, so only the one at fault gets the error.
        outcomes: list[Exception | None] = []
        for request in requests:
            outcomes.extend(await self._insert_batch_pg([request]))
        return outcomes

    async def delete_file_row(self, owner: str, file_id: UUID) -> FileRecord | None:
        """Delete the owner's file row and nothing else (see :meth:`delete_file`)."""
        deleted = await self.delete_file(owner, file_id)
        return deleted.record if deleted is not None else None

    async def delete_file(self, owner: str, file_id: UUID) -> DeletedFile | None:
        """Delete the owner's file row and nothing else: the same work whoever else
        stores the content; also tells whether the owner keeps a file with the same
        content. Its blob row and object go in :meth:`release_blob`, under the content
        lock, once nothing references them. Deletes and releases that arrive together
        commit together (:mod:`filetier.metadata.deletes`)."""
        deleted = await self._deletes.submit(FileRowDelete(owner, file_id))
        return deleted if isinstance(deleted, DeletedFile) else None

    async def release_blob(self, sha256: str) -> bool:
        """Drop the blob row when no file references ``sha256``; True when none does
        (the object is then the caller's to delete, after this commit)."""
        return await self._deletes.submit(BlobRelease(sha256)) is True

    async def _delete_batch(self, requests: list[Deletion]) -> list[Outcome | Exception]:
        # SQLite file: one thread hop for the whole transaction, not one per statement.
        return await self.db.write_batch(delete_batch_sync, requests, self.db.unavailable)

    async def owner_contents(self, owner: str) -> dict[str, int]:
        """The distinct contents among ``owner``'s files: {sha256: size}."""
        f = file_metadata
        async with self.db.read() as conn:
            rows = await conn.execute(
                sa.select(f.c.file_hash, f.c.file_size).where(f.c.owner == owner).distinct()
            )
            return {r[0]: int(r[1]) for r in rows}

    async def blob_referenced(self, sha256: str) -> bool:
        """True when a blob row or any file row still names ``sha256``."""
        async with self.db.read() as conn:
            if await self._get_blob(conn, sha256) is not None:
                return True
            found = await conn.execute(
                sa.select(file_metadata.c.file_id)
                .where(file_metadata.c.file_hash == sha256)
                .limit(1)
            )
            return found.first() is not None

    # -- blobs (maintenance) --------------------------------------------------------------

    async def all_blobs(self) -> list[BlobRow]:
        async with self.db.read() as conn:
            rows = (await conn.execute(sa.select(blobs).order_by(blobs.c.sha256))).mappings().all()
        return [blob_of(r) for r in rows]

    async def referenced_hashes(self) -> set[str]:
        async with self.db.read() as conn:
            rows = await conn.execute(sa.select(file_metadata.c.file_hash).distinct())
            return {r[0] for r in rows}

    async def set_blob_status(
        self,
        sha256: str,
        status: str,
        *,
        verified: bool = False,
        object_modified_at: datetime | None = None,
    ) -> None:
        """``verified``: the object was hashed just now; ``object_modified_at``: its
        modification time then (what deduplication compares with later)."""
        values: dict[str, Any] = {"status": status}
        if verified:
            values["last_verified_at"] = utcnow()
        if object_modified_at is not None:
            values["object_modified_at"] = object_modified_at
        async with self.db.write() as conn:
            await conn.execute(sa.update(blobs).where(blobs.c.sha256 == sha256).values(**values))

    async def insert_blob_row(self, sha256: str, size: int, storage_key: str) -> None:
        async with self.db.write() as conn:
            if await self._get_blob(conn, sha256) is None:
                await conn.execute(
                    sa.insert(blobs).values(
                        sha256=sha256,
                        size=size,
                        storage_key=storage_key,
                        status="ok",
                        created_at=utcnow(),
                    )
                )

    async def totals(self, owner: str) -> tuple[int, int, int, int, int, dict[str, TierStats]]:
        f, b, h = file_metadata, blobs, file_download_history
        async with self.db.read() as conn:
            files, logical = (
                await conn.execute(
                    sa.select(
                        sa.func.count(), sa.func.coalesce(sa.func.sum(f.c.file_size), 0)
                    ).where(f.c.owner == owner)
                )
            ).one()
            blob_count, unique = (
                await conn.execute(
                    sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(b.c.size), 0))
                )
            ).one()
            tier_rows = (
                await conn.execute(
                    sa.select(
                        h.c.tier, sa.func.count(), sa.func.coalesce(sa.func.sum(h.c.bytes), 0)
                    )
                    .where(h.c.owner == owner)
                    .group_by(h.c.tier)
                )
            ).all()
        tiers = {row[0]: TierStats(hits=int(row[1]), bytes_served=int(row[2])) for row in tier_rows}
        downloads = sum(t.hits for t in tiers.values())
        return int(files), int(logical), int(blob_count), int(unique), downloads, tiers


def _file_of(conn: sa.Connection, owner: str, file_id: UUID) -> FileRecord | None:
    f = file_metadata
    row = (
        conn.execute(sa.select(f).where(f.c.file_id == file_id, f.c.owner == owner))
        .mappings()
        .first()
    )
    return record_from_row(row) if row else None


def _files_of(conn: sa.Connection, owner: str, file_ids: list[UUID]) -> dict[UUID, FileRecord]:
    f = file_metadata
    rows = (
        conn.execute(sa.select(f).where(f.c.file_id.in_(file_ids), f.c.owner == owner))
        .mappings()
        .all()
    )
    records = (record_from_row(row) for row in rows)
    return {record.file_id: record for record in records}
