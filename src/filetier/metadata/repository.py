"""Every query FileStore runs, as small named functions over :class:`Database`.

Ordering rules the callers rely on (diskcache's ``_transact`` discipline):
objects are written before the rows that reference them are committed, and an object
is deleted only after the commit that removed its last reference.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection
from uuid6 import uuid7

from filetier.errors import QuotaExceededError, StorageUnavailableError
from filetier.metadata.advisory import ADVISORY_CLASS, advisory_key
from filetier.metadata.batching import GroupCommit
from filetier.metadata.database import Database
from filetier.metadata.schema import UTCDateTime, blobs, file_download_history, file_metadata
from filetier.models import DownloadEvent, FileRecord, FileSort, TierStats
from filetier.quota import OwnerQuota


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> UUID:
    # Time-ordered keys: batched inserts into a B-tree stay at its right edge.
    return UUID(bytes=uuid7().bytes)


def record_from_row(row: RowMapping) -> FileRecord:
    return FileRecord(
        file_id=row["file_id"],
        owner=row["owner"],
        filename=row["original_filename"],
        size=row["file_size"],
        mime_type=row["mime_type"],
        sha256=row["file_hash"],
        storage_key=row["supabase_storage_path"],
        provider_file_ids=row["provider_file_ids"] or {},
        metadata=row["metadata"] or {},
        upload_date=row["upload_date"],
        last_accessed=row["last_accessed"],
        access_count=row["access_count"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


@dataclass(frozen=True, slots=True)
class AccessEvent:
    """One download, recorded in memory and written in batches."""

    file_id: UUID
    owner: str
    at: datetime
    tier: str
    bytes: int
    duration_ms: float
    verified: bool
    destination_path: str | None = None
    downloaded_by: str | None = None
    cleanup_policy: str | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class BlobRow:
    sha256: str
    size: int
    storage_key: str
    status: str
    created_at: datetime
    last_verified_at: datetime | None = None
    # The object's modification time when filetier last wrote or hashed it.
    object_modified_at: datetime | None = None


def _blob_of(row: RowMapping) -> BlobRow:
    return BlobRow(
        row["sha256"],
        row["size"],
        row["storage_key"],
        row["status"],
        row["created_at"],
        row["last_verified_at"],
        row["object_modified_at"],
    )


def _file_order(sort: FileSort) -> list[sa.ColumnElement[Any]]:
    """ORDER BY for a listing: the key, then newest first, then the id, so that pages
    never repeat or skip a row when keys tie."""
    f = file_metadata.c
    column: sa.ColumnElement[Any] = {
        "name": f.original_filename,
        "size": f.file_size,
        "type": f.mime_type,
        "uploaded": f.created_at,
        "accessed": f.last_accessed,
    }[sort.lstrip("-")]
    keyed = column.desc().nulls_last() if sort.startswith("-") else column.asc().nulls_first()
    return [keyed, f.created_at.desc(), f.file_id.desc()]


class Repository:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._inserts: GroupCommit[_FileInsert, None] = GroupCommit(self._insert_batch)

    async def settle(self) -> None:
        """Wait for queued file inserts to be answered (before the database closes)."""
        await self._inserts.wait_idle()

    # -- files ----------------------------------------------------------------------------

    async def get_file(self, owner: str, file_id: UUID) -> FileRecord | None:
        async with self.db.read() as conn:
            row = (
                (
                    await conn.execute(
                        sa.select(file_metadata).where(
                            file_metadata.c.file_id == file_id, file_metadata.c.owner == owner
                        )
                    )
                )
                .mappings()
                .first()
            )
        return record_from_row(row) if row else None

    async def get_files(self, owner: str, file_ids: Sequence[UUID]) -> dict[UUID, FileRecord]:
        """The owner's records among ``file_ids``, in one query (absent ids are left out)."""
        if not file_ids:
            return {}
        async with self.db.read() as conn:
            rows = (
                (
                    await conn.execute(
                        sa.select(file_metadata).where(
                            file_metadata.c.file_id.in_(file_ids), file_metadata.c.owner == owner
                        )
                    )
                )
                .mappings()
                .all()
            )
        records = (record_from_row(row) for row in rows)
        return {record.file_id: record for record in records}

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
                        .order_by(*_file_order(sort))
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

    async def _check_quota(self, conn: AsyncConnection, quota: OwnerQuota, incoming: int) -> None:
        if self.db.dialect == "postgresql":
            # Held until this transaction ends: the next insert for this owner, from any
            # process or host, counts after this one has committed (or rolled back).
            await conn.execute(
                sa.text("SELECT pg_advisory_xact_lock(:c, :k)"),
                {"c": ADVISORY_CLASS, "k": advisory_key(f"quota:{quota.owner}")},
            )
        f = file_metadata
        files, used = (
            await conn.execute(
                sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(f.c.file_size), 0)).where(
                    f.c.owner == quota.owner
                )
            )
        ).one()
        quota.check(int(files), int(used), incoming)

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
        return None if row is None else _blob_of(row)

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
        durable_first: Callable[[], None] | None = None,
    ) -> FileRecord:
        """Record a file whose object already exists; the blob row is created if new.

        ``quota``: refuse (QuotaExceededError, nothing written) when this file would take
        the owner over it, counted in this transaction, serialized per owner (see
        :mod:`filetier.quota`). ``wrote_object``: the caller has just written and hashed
        the object, whose modification time is ``object_modified_at``.
        ``durable_first``: blocking work that makes the object durable (fsyncs), run
        before the row commits, so a committed row never names an object a power cut
        could still take away.

        On SQLite, inserts that arrive together commit together (one transaction, one
        WAL sync: see :mod:`filetier.metadata.batching`), each in its own savepoint so
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
        request = _FileInsert(
            values, quota, wrote_object, object_modified_at if wrote_object else None, durable_first
        )
        if self.db.dialect == "sqlite":
            await self._inserts.submit(request)
        else:
            if durable_first is not None:
                await asyncio.to_thread(durable_first)
            async with self.db.write() as conn:
                if quota is not None and quota.limited:
                    await self._check_quota(conn, quota, size)
                blob = await self._get_blob(conn, sha256, lock=True)
                await conn.run_sync(_insert_rows, request, blob)
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

    async def _insert_batch(self, requests: list[_FileInsert]) -> list[Exception | None]:
        outcomes: list[Exception | None] = [None] * len(requests)
        if any(r.durable_first is not None for r in requests):
            # In parallel threads: concurrent fsyncs share the file system's journal
            # commits, where one after another each would wait for its own.
            loop = asyncio.get_running_loop()
            outcomes = list(
                await asyncio.gather(
                    *(loop.run_in_executor(_durability_pool(), _make_durable, r) for r in requests)
                )
            )
        todo = [r for r, outcome in zip(requests, outcomes, strict=True) if outcome is None]
        if todo:
            async with self.db.write() as conn:
                # One thread hop for every statement of the batch, not one per statement.
                done = iter(await conn.run_sync(_insert_batch_sync, todo, self.db.unavailable))
            outcomes = [next(done) if outcome is None else outcome for outcome in outcomes]
        return outcomes

    async def delete_file_row(self, owner: str, file_id: UUID) -> FileRecord | None:
        """Delete the owner's file row and nothing else: the same work whoever else
        stores the content. Its blob row and object go in :meth:`release_blob`, under
        the content lock, once nothing references them."""
        f = file_metadata
        async with self.db.write() as conn:
            row = (
                (
                    await conn.execute(
                        sa.delete(f)
                        .where(f.c.file_id == file_id, f.c.owner == owner)
                        .returning(*f.c)
                    )
                )
                .mappings()
                .first()
            )
        return record_from_row(row) if row else None

    async def release_blob(self, sha256: str) -> bool:
        """Drop the blob row when no file references ``sha256``; True when none does
        (the object is then the caller's to delete, after this commit)."""
        async with self.db.write() as conn:
            # Lock the blob row before asking whether it is still used: an insert of the
            # same content holds this lock until it commits, so the question below (a new
            # statement, a new snapshot) sees its file row.
            blob = await self._get_blob(conn, sha256, lock=True)
            still_used = (
                await conn.execute(
                    sa.select(file_metadata.c.file_id)
                    .where(file_metadata.c.file_hash == sha256)
                    .limit(1)
                )
            ).first()
            if still_used is not None:
                return False
            if blob is not None:
                await conn.execute(sa.delete(blobs).where(blobs.c.sha256 == sha256))
        return True

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
        return [_blob_of(r) for r in rows]

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

    # -- access bookkeeping ---------------------------------------------------------------

    async def record_accesses(self, events: Sequence[AccessEvent]) -> None:
        """Append history and bump counters for a batch of downloads, in one transaction."""
        if not events:
            return
        per_file: dict[UUID, tuple[int, datetime]] = {}
        for ev in events:
            count, last = per_file.get(ev.file_id, (0, ev.at))
            per_file[ev.file_id] = (count + 1, max(last, ev.at))
        async with self.db.write() as conn:
            await conn.execute(
                sa.insert(file_download_history),
                [
                    {
                        "id": new_id(),
                        "file_id": ev.file_id,
                        "owner": ev.owner,
                        "provider_file_id": None,
                        "downloaded_at": ev.at,
                        "downloaded_by": ev.downloaded_by,
                        "destination_path": ev.destination_path,
                        "tier": ev.tier,
                        "bytes": ev.bytes,
                        "duration_ms": ev.duration_ms,
                        "verified": ev.verified,
                        "cleanup_policy": ev.cleanup_policy,
                        "expires_at": ev.expires_at,
                        "removed_at": None,
                    }
                    for ev in events
                ],
            )
            # A new delivery to a path supersedes earlier ones: their cleanup policy no
            # longer describes the file that is there now.
            for ev in events:
                if ev.destination_path is not None:
                    await conn.execute(
                        sa.update(file_download_history)
                        .where(
                            # Only the same owner's rows: another owner's history is
                            # neither changed nor told of this delivery.
                            file_download_history.c.owner == ev.owner,
                            file_download_history.c.destination_path == ev.destination_path,
                            file_download_history.c.downloaded_at < ev.at,
                            file_download_history.c.removed_at.is_(None),
                        )
                        .values(removed_at=ev.at)
                    )
            for file_id, (count, last) in per_file.items():
                await conn.execute(
                    sa.update(file_metadata)
                    .where(file_metadata.c.file_id == file_id)
                    .values(
                        access_count=file_metadata.c.access_count + count,
                        # Batches from several processes may land out of order.
                        last_accessed=sa.case(
                            (
                                sa.or_(
                                    file_metadata.c.last_accessed.is_(None),
                                    file_metadata.c.last_accessed < last,
                                ),
                                sa.literal(last, UTCDateTime()),
                            ),
                            else_=file_metadata.c.last_accessed,
                        ),
                        updated_at=utcnow(),
                    )
                )

    async def history(self, owner: str, file_id: UUID | None, limit: int) -> list[DownloadEvent]:
        h = file_download_history
        query = sa.select(h).where(h.c.owner == owner)
        if file_id is not None:
            query = query.where(h.c.file_id == file_id)
        async with self.db.read() as conn:
            rows = (
                (
                    await conn.execute(
                        query.order_by(h.c.downloaded_at.desc(), h.c.id.desc()).limit(limit)
                    )
                )
                .mappings()
                .all()
            )
        return [
            DownloadEvent(
                file_id=r["file_id"],
                downloaded_at=r["downloaded_at"],
                downloaded_by=r["downloaded_by"],
                destination_path=r["destination_path"],
                tier=r["tier"],
                bytes=r["bytes"],
                duration_ms=r["duration_ms"],
                verified=r["verified"],
                cleanup_policy=r["cleanup_policy"],
                expires_at=r["expires_at"],
                removed_at=r["removed_at"],
            )
            for r in rows
        ]

    async def expired_deliveries(self, now: datetime) -> list[tuple[UUID, str, str]]:
        """(history id, destination path, sha256) of delivered copies due for removal.

        ``retain`` copies expire after the retention period; ``immediate`` ones after a
        safety net, for when the process that should have removed them died.
        """
        h = file_download_history
        due = sa.and_(h.c.cleanup_policy.in_(("retain", "immediate")), h.c.expires_at <= now)
        query = (
            sa.select(h.c.id, h.c.destination_path, file_metadata.c.file_hash)
            .select_from(h.outerjoin(file_metadata, file_metadata.c.file_id == h.c.file_id))
            .where(due, h.c.removed_at.is_(None), h.c.destination_path.is_not(None))
        )
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [(r[0], r[1], r[2] or "") for r in rows]

    async def mark_removed(self, history_ids: Sequence[UUID]) -> None:
        if not history_ids:
            return
        async with self.db.write() as conn:
            await conn.execute(
                sa.update(file_download_history)
                .where(file_download_history.c.id.in_(list(history_ids)))
                .values(removed_at=utcnow())
            )

    # -- stats ----------------------------------------------------------------------------

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


@dataclass(slots=True)
class _FileInsert:
    values: dict[str, Any]
    quota: OwnerQuota | None
    wrote_object: bool
    object_modified_at: datetime | None
    durable_first: Callable[[], None] | None


_POOL: list[ThreadPoolExecutor] = []


def _durability_pool() -> ThreadPoolExecutor:
    """Threads for a batch's fsyncs, apart from the default pool (sized for the CPUs,
    too few to have a batch's fsyncs in flight together)."""
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(max_workers=32, thread_name_prefix="filetier-fsync"))
    return _POOL[0]


def _make_durable(request: _FileInsert) -> Exception | None:
    try:
        if request.durable_first is not None:
            request.durable_first()
    except OSError as exc:
        return StorageUnavailableError(f"could not make the object durable: {exc.strerror}")
    return None


def _insert_rows(sync_conn: sa.Connection, request: _FileInsert, blob: BlobRow | None) -> None:
    """The blob row (new, or marked ok again) and the file row, inside the caller's
    transaction, which already holds the blob row's lock (PostgreSQL)."""
    values = request.values
    now = values["created_at"]
    sha256 = values["file_hash"]
    if blob is None:
        sync_conn.execute(
            sa.insert(blobs).values(
                sha256=sha256,
                size=values["file_size"],
                storage_key=values["supabase_storage_path"],
                status="ok",
                created_at=now,
                object_modified_at=request.object_modified_at,
            )
        )
    elif blob.status != "ok" or request.wrote_object:
        # Fresh, verified bytes replace a quarantined (or damaged) object.
        sync_conn.execute(
            sa.update(blobs)
            .where(blobs.c.sha256 == sha256)
            .values(
                status="ok",
                last_verified_at=now,
                object_modified_at=request.object_modified_at,
            )
        )
    sync_conn.execute(sa.insert(file_metadata).values(**values))


def _insert_batch_sync(
    sync_conn: sa.Connection,
    requests: list[_FileInsert],
    translate: Callable[[BaseException], Exception],
) -> list[Exception | None]:
    """SQLite: a batch in the caller's ``BEGIN IMMEDIATE`` transaction (the writer lock
    serializes the quota counts), in a handful of statements whatever its size.

    Should the batch fail as a whole (a constraint, say), it is undone and each request
    is tried again on its own, so only the request at fault gets the error.
    """
    try:
        with sync_conn.begin_nested():
            return _insert_all(sync_conn, requests)
    except SQLAlchemyError as exc:
        if len(requests) == 1:
            return [translate(exc)]
    outcomes: list[Exception | None] = []
    for request in requests:
        try:
            with sync_conn.begin_nested():
                outcomes.extend(_insert_all(sync_conn, [request]))
        except SQLAlchemyError as exc:
            outcomes.append(translate(exc))
    return outcomes


def _insert_all(sync_conn: sa.Connection, requests: list[_FileInsert]) -> list[Exception | None]:
    """The rows of ``requests``, with the outcome a one-by-one insert would have had:
    quotas counted in order (earlier files of the batch included), a blob row made by
    the first file of its content, marked ok again by a file that rewrote its object."""
    f = file_metadata
    outcomes: list[Exception | None] = []
    usage: dict[str, tuple[int, int]] = {}
    accepted: list[_FileInsert] = []
    for request in requests:
        quota, size = request.quota, request.values["file_size"]
        if quota is not None and quota.limited:
            if quota.owner not in usage:
                files, used = sync_conn.execute(
                    sa.select(
                        sa.func.count(), sa.func.coalesce(sa.func.sum(f.c.file_size), 0)
                    ).where(f.c.owner == quota.owner)
                ).one()
                usage[quota.owner] = (int(files), int(used))
            files, used = usage[quota.owner]
            try:
                quota.check(files, used, size)
            except QuotaExceededError as exc:
                outcomes.append(exc)
                continue
            usage[quota.owner] = (files + 1, used + size)
        accepted.append(request)
        outcomes.append(None)
    if not accepted:
        return outcomes
    hashes = {request.values["file_hash"] for request in accepted}
    status = {
        row.sha256: row.status
        for row in sync_conn.execute(
            sa.select(blobs.c.sha256, blobs.c.status).where(blobs.c.sha256.in_(hashes))
        )
    }
    new_blobs: list[dict[str, Any]] = []
    renewed: list[_FileInsert] = []
    for request in accepted:
        values = request.values
        sha256, now = values["file_hash"], values["created_at"]
        if sha256 not in status:
            new_blobs.append(
                {
                    "sha256": sha256,
                    "size": values["file_size"],
                    "storage_key": values["supabase_storage_path"],
                    "status": "ok",
                    "created_at": now,
                    "object_modified_at": request.object_modified_at,
                }
            )
        elif status[sha256] != "ok" or request.wrote_object:
            renewed.append(request)
        status[sha256] = "ok"
    if new_blobs:
        sync_conn.execute(sa.insert(blobs), new_blobs)
    for request in renewed:
        # Fresh, verified bytes replace a quarantined (or damaged) object. Rare: one
        # statement each, in order, after the new blob rows they may follow.
        sync_conn.execute(
            sa.update(blobs)
            .where(blobs.c.sha256 == request.values["file_hash"])
            .values(
                status="ok",
                last_verified_at=request.values["created_at"],
                object_modified_at=request.object_modified_at,
            )
        )
    sync_conn.execute(sa.insert(file_metadata), [request.values for request in accepted])
    return outcomes
