"""The download log: each download is an :class:`AccessEvent`, recorded in memory and
written in batches (history rows, counters); deliveries whose retention is over are found
here, and marked removed once their copies are gone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import sqlalchemy as sa

from filetier.clock import utcnow
from filetier.metadata.database import Database
from filetier.metadata.rows import new_id
from filetier.metadata.schema import UTCDateTime, file_download_history, file_metadata
from filetier.models import DownloadEvent


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


class AccessLog:
    """The download-log queries of :class:`~filetier.metadata.repository.Repository`."""

    db: Database

    async def record_accesses(self, events: Sequence[AccessEvent]) -> None:
        """Append history and bump counters for a batch of downloads, in one transaction
        (on a SQLite file one worker-thread call: a statement per file through the async
        driver would hold the one writer for a loop turn each)."""
        if events:
            await self.db.write_batch(_record_accesses_sync, list(events))

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


# The counters of many files in one executemany; the parameters are named apart from the
# columns (SQLAlchemy reserves a column's own name for its new value).
_COUNT_ACCESSES = (
    sa.update(file_metadata)
    .where(
        file_metadata.c.file_id == sa.bindparam("hit_file_id", type_=file_metadata.c.file_id.type)
    )
    .values(
        access_count=file_metadata.c.access_count + sa.bindparam("hit_count", type_=sa.Integer()),
        # Batches from several processes may land out of order.
        last_accessed=sa.case(
            (
                sa.or_(
                    file_metadata.c.last_accessed.is_(None),
                    file_metadata.c.last_accessed < sa.bindparam("hit_last", type_=UTCDateTime()),
                ),
                sa.bindparam("hit_last", type_=UTCDateTime()),
            ),
            else_=file_metadata.c.last_accessed,
        ),
        updated_at=sa.bindparam("hit_updated", type_=UTCDateTime()),
    )
)


def _record_accesses_sync(conn: sa.Connection, events: list[AccessEvent]) -> None:
    per_file: dict[UUID, tuple[int, datetime]] = {}
    for ev in events:
        count, last = per_file.get(ev.file_id, (0, ev.at))
        per_file[ev.file_id] = (count + 1, max(last, ev.at))
    conn.execute(
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
            conn.execute(
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
    now = utcnow()
    conn.execute(
        _COUNT_ACCESSES,
        [
            {"hit_file_id": file_id, "hit_count": count, "hit_last": last, "hit_updated": now}
            for file_id, (count, last) in per_file.items()
        ],
    )
