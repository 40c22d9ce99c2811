"""A few of :class:`~filetier.metadata.repository.Repository`'s reads as plain SQLite SQL.

For the CLI's quick path (:mod:`filetier.interfaces.cli.quick`), which answers ``stat``
and ``ls`` with the standard library's ``sqlite3``: importing SQLAlchemy alone costs
more than those commands may take. The repository stays the one owner of these queries:
each function here returns exactly the SQL text and parameters that SQLAlchemy sends to
the driver for the same read, and ``tests/test_sqlite_reads.py`` runs both on a real
database and compares them (and the decoded rows), so a change to a repository query or
to the schema fails there until this copy follows.

Only the default listing order (newest first) is here: the CLI asks for no other.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

Statement = tuple[str, tuple[Any, ...]]

# The version table's rows, as Database._stored_revisions reads them (SQLite has no schema).
STORED_REVISIONS = "SELECT version_num FROM alembic_version"

_FILE_COLUMNS = (
    "file_metadata.file_id, file_metadata.owner, file_metadata.original_filename, "
    "file_metadata.file_size, file_metadata.mime_type, file_metadata.supabase_storage_path, "
    "file_metadata.local_cache_path, file_metadata.file_hash, file_metadata.provider_file_ids, "
    "file_metadata.upload_date, file_metadata.last_accessed, file_metadata.access_count, "
    "file_metadata.metadata, file_metadata.created_at, file_metadata.updated_at"
)
_SELECT_FILES = f"SELECT {_FILE_COLUMNS} \nFROM file_metadata \n"
_COUNT_FILES = "SELECT count(*) AS count_1 \nFROM file_metadata \n"
_BY_OWNER = "WHERE file_metadata.owner = ?"
_NAME_CONTAINS = " AND lower(file_metadata.original_filename) LIKE lower(?) ESCAPE '\\'"
_TYPE_PREFIX = " AND (file_metadata.mime_type LIKE ? || '%' ESCAPE '/')"
_TYPE_IS = " AND file_metadata.mime_type = ?"
_HASH_IS = " AND file_metadata.file_hash = ?"
_NEWEST_FIRST = (
    " ORDER BY file_metadata.created_at DESC NULLS LAST, file_metadata.created_at DESC,"
    " file_metadata.file_id DESC\n LIMIT ? OFFSET ?"
)
_ID_RANGE = " AND file_metadata.file_id >= ? AND file_metadata.file_id <= ?"

_COPY_COLUMNS = (
    "provider_file_uploads.id, provider_file_uploads.owner, provider_file_uploads.file_hash, "
    "provider_file_uploads.provider, provider_file_uploads.provider_account, "
    "provider_file_uploads.purpose, provider_file_uploads.provider_file_id, "
    "provider_file_uploads.status, provider_file_uploads.uploaded_at, "
    "provider_file_uploads.expires_at, provider_file_uploads.download_count, "
    "provider_file_uploads.last_downloaded_at, provider_file_uploads.bytes, "
    "provider_file_uploads.filename, provider_file_uploads.last_used_at"
)


class NotPlain(ValueError):
    """A stored value this reading does not decode with certainty: leave it to the repository."""


def get_file(owner: str, file_id: UUID) -> Statement:
    """``Repository.get_file``."""
    sql = f"{_SELECT_FILES}WHERE file_metadata.file_id = ? AND file_metadata.owner = ?"
    return sql, (file_id.hex, owner)


def file_ids_between(owner: str, low: UUID, high: UUID, *, limit: int) -> list[Statement]:
    """``Repository.file_ids_between``: the count, then the ids."""
    params = (owner, low.hex, high.hex)
    ids = (
        f"SELECT file_metadata.file_id \nFROM file_metadata \n{_BY_OWNER}{_ID_RANGE}"
        " ORDER BY file_metadata.file_id\n LIMIT ? OFFSET ?"
    )
    return [(f"{_COUNT_FILES}{_BY_OWNER}{_ID_RANGE}", params), (ids, (*params, limit, 0))]


def list_files(
    owner: str,
    *,
    name_contains: str | None,
    mime_type: str | None,
    sha256: str | None,
    limit: int,
    offset: int,
) -> list[Statement]:
    """``Repository.list_files`` in the default order: the count, then the page."""
    where, params = _BY_OWNER, [owner]
    if name_contains:
        escaped = name_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where += _NAME_CONTAINS
        params.append(f"%{escaped}%")
    if mime_type:
        if mime_type.endswith("/*"):
            # SQLAlchemy's ``startswith(autoescape=True)``: "/" escapes itself, "%" and "_".
            prefix = mime_type[:-1].replace("/", "//").replace("%", "/%").replace("_", "/_")
            where += _TYPE_PREFIX
            params.append(prefix)
        else:
            where += _TYPE_IS
            params.append(mime_type)
    if sha256:
        where += _HASH_IS
        params.append(sha256)
    return [
        (f"{_COUNT_FILES}{where}", tuple(params)),
        (f"{_SELECT_FILES}{where}{_NEWEST_FIRST}", (*params, limit, offset)),
    ]


def copies_for_hash(sha256: str) -> Statement:
    """``ProviderRepository.for_hash``."""
    sql = (
        f"SELECT {_COPY_COLUMNS} \nFROM provider_file_uploads \n"
        "WHERE provider_file_uploads.file_hash = ?"
    )
    return sql, (sha256,)


# What SQLAlchemy writes for a DateTime on SQLite: naive UTC, microseconds always shown.
_STORED_TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d{6})?")


def record_json(row: dict[str, Any]) -> dict[str, Any]:
    """A ``file_metadata`` row as ``record_from_row(row).model_dump(mode="json")`` has it
    (the form ``--json`` prints); :class:`NotPlain` for a value that form might not match."""
    return {
        "file_id": str(UUID(_text(row["file_id"]))),
        "owner": _text(row["owner"]),
        "filename": _text(row["original_filename"]),
        "size": _integer(row["file_size"]),
        "mime_type": _text(row["mime_type"]),
        "sha256": _text(row["file_hash"]),
        "storage_key": _text(row["supabase_storage_path"]),
        "provider_file_ids": _json_object(row["provider_file_ids"]),
        "metadata": _json_object(row["metadata"]),
        "upload_date": _time(row["upload_date"]),
        "last_accessed": None if row["last_accessed"] is None else _time(row["last_accessed"]),
        "access_count": _integer(row["access_count"]),
        "created_at": _time(row["created_at"]),
        "updated_at": _time(row["updated_at"]),
    }


def _text(value: object) -> str:
    if type(value) is not str:
        raise NotPlain(f"text expected, found {type(value).__name__}")
    return value


def _integer(value: object) -> int:
    if type(value) is not int:
        raise NotPlain(f"integer expected, found {type(value).__name__}")
    return value


def _time(value: object) -> str:
    """pydantic's JSON form of an aware UTC datetime: ISO 8601, ``Z``, no ``.000000``."""
    text = _text(value)
    if not _STORED_TIME_RE.fullmatch(text):
        raise NotPlain(f"unexpected stored time {text[:40]!r}")
    moment = datetime.fromisoformat(text).replace(tzinfo=UTC)
    return moment.isoformat().replace("+00:00", "Z")


def _json_object(value: object) -> dict[str, Any]:
    """A JSON column as the record holds it (``row[...] or {}``), in JSON mode."""
    if value is None:
        return {}
    loaded = json.loads(_text(value)) or {}
    if type(loaded) is not dict:
        raise NotPlain("a JSON object expected")
    return {key: _json_mode(item) for key, item in loaded.items()}


def _json_mode(value: Any) -> Any:
    """What pydantic's JSON mode makes of loaded JSON: non-finite floats become null."""
    if isinstance(value, dict):
        return {key: _json_mode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_mode(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
