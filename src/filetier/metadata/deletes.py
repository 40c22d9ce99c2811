"""File-row deletes and blob releases, batched: the delete side of the group commit.

A delete is two writes: the file row, answered at once (:class:`FileRowDelete`), and
later, under the content lock, the blob row once no file names it (:class:`BlobRelease`).
Each alone is a transaction whose fixed price (SQLite: ``BEGIN IMMEDIATE`` on the one
writer, a thread hop per statement) dwarfs the row; under load they queued behind each
other and behind the upload batches for the single writer. Here the deletes and releases
that arrive together go in one transaction (:class:`~filetier.metadata.batching.GroupCommit`,
on SQLite one worker-thread call), and each caller is answered after its commit.

Order inside a batch: the file rows first, in arrival order, then the releases in
content order. A release asked before a file delete of the same content therefore sees
that delete, which is what it would see one batch later: its caller holds the content
lock, so no upload of that content commits meanwhile, and nothing left names the
content once both are in. On PostgreSQL the releases lock their blob rows ``FOR UPDATE``
in one statement, in content order, the order the insert batches lock them in, so a
delete batch and an insert batch wait for each other but never deadlock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

import sqlalchemy as sa

from filetier.metadata.batching import each_alone_if_refused
from filetier.metadata.rows import record_from_row
from filetier.metadata.schema import blobs, file_metadata
from filetier.models import FileRecord


@dataclass(frozen=True, slots=True)
class FileRowDelete:
    """Delete ``owner``'s row ``file_id``; the outcome is a :class:`DeletedFile`, or None
    when the owner has no such file."""

    owner: str
    file_id: UUID


@dataclass(frozen=True, slots=True)
class DeletedFile:
    """A deleted file's record, and whether its owner still has a file with the same
    content after the batch (asked of the owner's own files only, in the same
    transaction: the answer, and the work, are the same whoever else stores it)."""

    record: FileRecord
    owner_keeps_content: bool


@dataclass(frozen=True, slots=True)
class BlobRelease:
    """Drop the blob row of ``sha256`` unless a file names it; the outcome is True when
    none does (the object is then the caller's to delete, after the commit)."""

    sha256: str


Deletion = FileRowDelete | BlobRelease
Outcome = DeletedFile | bool | None


def delete_batch_sync(
    sync_conn: sa.Connection,
    requests: list[Deletion],
    translate: Callable[[BaseException], Exception],
) -> list[Outcome | Exception]:
    """The batch in the caller's write transaction, one outcome per request (each alone
    should the batch be refused as a whole)."""
    return each_alone_if_refused(sync_conn, requests, _delete_all, translate)


def _delete_all(sync_conn: sa.Connection, requests: list[Deletion]) -> list[Outcome]:
    outcomes: list[Outcome] = [None] * len(requests)
    f = file_metadata
    for i, request in enumerate(requests):
        if isinstance(request, FileRowDelete):
            row = (
                sync_conn.execute(
                    sa.delete(f)
                    .where(f.c.file_id == request.file_id, f.c.owner == request.owner)
                    .returning(*f.c)
                )
                .mappings()
                .first()
            )
            if row is None:
                continue
            record = record_from_row(row)
            # Right after its own delete, as if the batch's requests ran one by one.
            kept = sync_conn.execute(
                sa.select(f.c.file_id)
                .where(f.c.owner == record.owner, f.c.file_hash == record.sha256)
                .limit(1)
            ).first()
            outcomes[i] = DeletedFile(record, owner_keeps_content=kept is not None)
    releases = sorted((r.sha256, i) for i, r in enumerate(requests) if isinstance(r, BlobRelease))
    if not releases:
        return outcomes
    hashes = sorted({sha256 for sha256, _ in releases})
    # Lock the blob rows before asking whether they are still used: an insert of the
    # same content holds these locks until it commits, so the question below (a new
    # statement, a new snapshot) sees its file row. SQLite serializes writers already
    # and ignores the clause.
    existing = {
        row[0]
        for row in sync_conn.execute(
            sa.select(blobs.c.sha256)
            .where(blobs.c.sha256.in_(hashes))
            .order_by(blobs.c.sha256)
            .with_for_update()
        )
    }
    used = {
        row[0]
        for row in sync_conn.execute(
            sa.select(f.c.file_hash).where(f.c.file_hash.in_(hashes)).distinct()
        )
    }
    gone = sorted(existing - used)
    if gone:
        sync_conn.execute(sa.delete(blobs).where(blobs.c.sha256.in_(gone)))
    for sha256, i in releases:
        outcomes[i] = sha256 not in used
    return outcomes
