"""File inserts, batched: one :class:`FileInsert` per upload, queued to a group commit that
makes the batch's objects durable (one call per store for the whole batch: see
:class:`DurableObjects`), then inserts every blob and file row in one transaction, each
request in a savepoint of its own when the batch as a whole is refused.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from filetier.errors import QuotaExceededError, StorageUnavailableError
from filetier.metadata.advisory import ADVISORY_CLASS, advisory_key
from filetier.metadata.batching import each_alone_if_refused
from filetier.metadata.schema import blobs, file_metadata
from filetier.metadata.spare import connection_lost, driver_error
from filetier.quota import OwnerQuota

# SQLite: the statuses of the blob rows whose hashes are in one JSON array parameter.
_SQLITE_BLOB_STATUS = (
    "SELECT sha256, status FROM blobs WHERE sha256 IN (SELECT value FROM json_each(?))"
)


@runtime_checkable
class DurableObjects(Protocol):
    """A store whose published objects are made durable by the batch that commits rows
    naming them (:class:`filetier.tiers.local.LocalPrimary`). One call takes the whole
    batch's keys, so the store can sync them together instead of one by one."""

    def make_durable(self, keys: Sequence[str]) -> list[OSError | None]:
        """Blocking; one outcome per key (None: durable)."""
        ...


@dataclass(slots=True)
class FileInsert:
    values: dict[str, Any]
    quota: OwnerQuota | None
    wrote_object: bool
    object_modified_at: datetime | None
    # The store the row's object must be durable in before the row commits (fsync on).
    durable_in: DurableObjects | None


async def make_objects_durable(requests: Sequence[FileInsert]) -> list[Exception | None]:
    """Make every request's object durable, one blocking call per store (off the loop);
    a request whose object could not be made durable gets its error, and no row."""
    outcomes: list[Exception | None] = [None] * len(requests)
    by_store: dict[int, tuple[DurableObjects, list[int]]] = {}
    for i, request in enumerate(requests):
        if request.durable_in is not None:
            by_store.setdefault(id(request.durable_in), (request.durable_in, []))[1].append(i)
    for store, indexes in by_store.values():
        keys = [requests[i].values["supabase_storage_path"] for i in indexes]
        errors = await asyncio.to_thread(store.make_durable, keys)
        for i, error in zip(indexes, errors, strict=True):
            if error is not None:
                outcomes[i] = StorageUnavailableError(
                    f"could not make the object durable: {error.strerror}"
                )
    return outcomes


def insert_batch_sync(
    sync_conn: sa.Connection,
    requests: list[FileInsert],
    translate: Callable[[BaseException], Exception],
) -> list[Exception | None]:
    """SQLite: a batch in the caller's ``BEGIN IMMEDIATE`` transaction (the writer lock
    serializes the quota counts), in a handful of statements whatever its size.

    Should the batch fail as a whole (a constraint, say), each request is tried again on
    its own, so only the request at fault gets the error (:func:`each_alone_if_refused`).
    """
    return each_alone_if_refused(sync_conn, requests, _insert_all, translate)


class BatchRefused(Exception):
    """A PostgreSQL batch refused as a whole by a statement (a constraint, say), the
    server still reachable: its requests are to be tried one by one."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


def insert_batch_pg(sync_conn: sa.Connection, requests: list[FileInsert]) -> list[Exception | None]:
    """PostgreSQL: a batch in the caller's transaction, in a handful of statements (no
    savepoint: a refused batch raises :class:`BatchRefused` and is tried again request
    by request, each in a transaction of its own).

    First the locks, each kind in one statement and in a fixed order (so two batches, of
    this process or another host's, wait for each other but never deadlock): the owners'
    quota locks (held to the commit: an owner's next batch counts after this one), then
    the existing blob rows FOR UPDATE (ordering the inserts against the delete of the
    last file of the same content, which locks its blob row the same way). The rows are
    then inserted as on SQLite, the new blob rows in content order too.
    """
    owners = sorted(
        {
            advisory_key(f"quota:{r.quota.owner}")
            for r in requests
            if r.quota is not None and r.quota.limited
        }
    )
    hashes = sorted({r.values["file_hash"] for r in requests})
    order = sorted(range(len(requests)), key=lambda i: requests[i].values["file_hash"])
    try:
        if owners:
            sync_conn.execute(
                sa.text(
                    "SELECT count(pg_advisory_xact_lock(:c, k)) FROM "
                    "(SELECT unnest(CAST(:keys AS integer[])) AS k ORDER BY k) AS owners"
                ),
                {"c": ADVISORY_CLASS, "keys": owners},
            )
        status = {
            row.sha256: row.status
            for row in sync_conn.execute(
                sa.select(blobs.c.sha256, blobs.c.status)
                .where(blobs.c.sha256.in_(hashes))
                .order_by(blobs.c.sha256)
                .with_for_update()
            )
        }
        done = _insert_all(sync_conn, [requests[i] for i in order], status)
    except SQLAlchemyError as exc:
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            raise  # the server is gone: trying again request by request cannot help
        raise BatchRefused(exc) from exc
    outcomes: list[Exception | None] = [None] * len(requests)
    for i, outcome in zip(order, done, strict=True):
        outcomes[i] = outcome
    return outcomes


class Executes(Protocol):
    """What :func:`insert_batch_pg_one_statement` needs of an asyncpg connection."""

    async def execute(self, query: str, *args: Any) -> str: ...


# The file_metadata columns, each with the PostgreSQL type of its unnest() array; JSON
# goes in as text and is cast (the driver's JSON codec is SQLAlchemy's to configure).
_FILE_COLUMNS = (
    ("file_id", "uuid"),
    ("owner", "text"),
    ("original_filename", "text"),
    ("file_size", "bigint"),
    ("mime_type", "text"),
    ("supabase_storage_path", "text"),
    ("local_cache_path", "text"),
    ("file_hash", "text"),
    ("provider_file_ids", "jsonb"),
    ("upload_date", "timestamptz"),
    ("last_accessed", "timestamptz"),
    ("access_count", "integer"),
    ("metadata", "jsonb"),
    ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"),
)
_JSON_COLUMNS = frozenset(name for name, kind in _FILE_COLUMNS if kind == "jsonb")
_N = len(_FILE_COLUMNS)


def _array_of(kind: str) -> str:
    return "text[]" if kind == "jsonb" else f"{kind}[]"


# The blob rows as _insert_all makes them, in one statement: new ones inserted in content
# order; an existing one locked (ON CONFLICT locks the row, as FOR UPDATE does, whether
# it updates it or not) and marked ok again when it was not ok or its object was just
# rewritten. The file rows follow, in the same statement and so the same commit. The
# statement is idempotent, so it can be sent again when the connection was lost before
# its answer came: a file row already there can only be this batch's own (its id is
# new and random), and the blob rows end as the first run left them.
# (Only the constant column names above are formatted in: S608 does not apply.)
_ONE_STATEMENT = f"""
WITH t AS (
  SELECT * FROM unnest({
    ", ".join(f"${i + 1}::{_array_of(kind)}" for i, (_, kind) in enumerate(_FILE_COLUMNS))
}, ${_N + 1}::timestamptz[], ${_N + 2}::boolean[])
  AS t({", ".join(name for name, _ in _FILE_COLUMNS)}, object_modified_at, wrote)
), b AS (
  INSERT INTO blobs AS b (sha256, size, storage_key, status, created_at, object_modified_at)
  SELECT file_hash, file_size, supabase_storage_path, 'ok', created_at, object_modified_at
  FROM t ORDER BY file_hash
  ON CONFLICT (sha256) DO UPDATE
  SET status = 'ok', last_verified_at = EXCLUDED.created_at,
      object_modified_at = EXCLUDED.object_modified_at
  WHERE b.status <> 'ok' OR EXISTS (SELECT 1 FROM t WHERE t.file_hash = b.sha256 AND t.wrote)
)
INSERT INTO file_metadata ({", ".join(name for name, _ in _FILE_COLUMNS)})
SELECT {
    ", ".join(f"{name}::jsonb" if kind == "jsonb" else name for name, kind in _FILE_COLUMNS)
} FROM t
ON CONFLICT (file_id) DO NOTHING
"""  # noqa: S608


def one_statement(requests: Sequence[FileInsert]) -> bool:
    """Whether :func:`insert_batch_pg_one_statement` may insert ``requests``: no quota to
    count (nothing to lock per owner), and no content twice (no request depends on the
    blob row another of the batch makes)."""
    if any(r.quota is not None and r.quota.limited for r in requests):
        return False
    return len({r.values["file_hash"] for r in requests}) == len(requests)


async def insert_batch_pg_one_statement(
    conn: Executes, requests: Sequence[FileInsert]
) -> list[Exception | None]:
    """PostgreSQL: the rows of a batch :func:`one_statement` allows, in one statement
    outside a transaction (it commits alone, all or nothing), with the outcome
    :func:`insert_batch_pg` would have had. A statement the server refuses raises
    :class:`BatchRefused`, the connection left as it was."""
    columns: list[list[Any]] = [[] for _ in range(_N + 2)]
    for request in requests:
        values = request.values
        for i, (name, _) in enumerate(_FILE_COLUMNS):
            value = values[name]
            columns[i].append(json.dumps(value) if name in _JSON_COLUMNS else value)
        columns[_N].append(request.object_modified_at)
        columns[_N + 1].append(request.wrote_object)
    try:
        await conn.execute(_ONE_STATEMENT, *columns)
    except Exception as exc:
        if driver_error(exc) and not connection_lost(exc):
            raise BatchRefused(exc) from exc
        raise
    return [None] * len(requests)


def _insert_all(
    sync_conn: sa.Connection, requests: list[FileInsert], status: dict[str, str] | None = None
) -> list[Exception | None]:
    """The rows of ``requests``, with the outcome a one-by-one insert would have had:
    quotas counted in order (earlier files of the batch included), a blob row made by
    the first file of its content, marked ok again by a file that rewrote its object.
    ``status``: the blob rows' statuses when the caller read them already."""
    f = file_metadata
    outcomes: list[Exception | None] = []
    usage: dict[str, tuple[int, int]] = {}
    accepted: list[FileInsert] = []
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
    if status is None:  # SQLite (PostgreSQL read the statuses while locking the rows)
        hashes = sorted({request.values["file_hash"] for request in accepted})
        # One constant statement whatever the batch size (the hashes go in as one JSON
        # array): SQLAlchemy's expanding IN rendered a fresh statement for each size,
        # which cost more than the query itself.
        found = sync_conn.exec_driver_sql(_SQLITE_BLOB_STATUS, (json.dumps(hashes),))
        status = {row[0]: row[1] for row in found}
    new_blobs: list[dict[str, Any]] = []
    renewed: list[FileInsert] = []
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
