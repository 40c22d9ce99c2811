"""Finding an owner's files: pages of the listing, id prefixes, pre-signed object URLs.

Only the owner's own files are searched, so another owner's can neither match nor make
an answer different (an ambiguous prefix, a page's total).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TypedDict, Unpack, get_args
from uuid import UUID

from filetier.clock import utcnow
from filetier.config import Settings
from filetier.errors import InvalidInputError
from filetier.ids import one_match, prefix_range
from filetier.metadata.repository import Repository
from filetier.models import FilePage, FileRecord, FileSort
from filetier.tiers.protocols import PrimaryStore

LIST_OFFSET_MAX = 10**12  # the largest ``offset`` a listing takes (every interface)


class ListOptions(TypedDict, total=False):
    """What a listing asks for; every key optional."""

    name_contains: str | None  # a part of the name, any case
    mime_type: str | None
    sha256: str | None
    limit: int  # 1-1000; default 100
    offset: int  # default 0
    sort: FileSort  # default "-uploaded" (newest first)


async def list_page(repo: Repository, owner: str, **options: Unpack[ListOptions]) -> FilePage:
    """A page of the owner's files, newest first unless ``sort`` names another key
    (``name``, ``size``, ``type``, ``uploaded``, ``accessed``; ``-`` for descending)."""
    limit, offset = options.get("limit", 100), options.get("offset", 0)
    sort: FileSort = options.get("sort", "-uploaded")
    sha256 = options.get("sha256")
    if not 1 <= limit <= 1000:
        raise InvalidInputError(f"limit must be between 1 and 1000, not {limit}")
    if offset < 0:
        raise InvalidInputError(f"offset cannot be negative ({offset})")
    if sort not in get_args(FileSort):
        raise InvalidInputError(
            f"sort must be one of {', '.join(get_args(FileSort))}, not {sort!r}"
        )
    if offset > LIST_OFFSET_MAX:
        # SQLite and PostgreSQL take 64-bit offsets: a larger one is an overflow in
        # the driver, not an empty page; no owner has this many files anyway.
        raise InvalidInputError(f"offset must be at most {LIST_OFFSET_MAX}, not {offset}")
    items, total = await repo.list_files(
        owner,
        name_contains=options.get("name_contains"),
        mime_type=options.get("mime_type"),
        sha256=sha256.lower() if sha256 else None,
        limit=limit,
        offset=offset,
        sort=sort,
    )
    next_offset = offset + len(items) if offset + len(items) < total else None
    return FilePage(items=items, total=total, offset=offset, limit=limit, next_offset=next_offset)


async def resolve_prefix(repo: Repository, owner: str, prefix: str) -> UUID:
    """The id of the owner's one file whose id starts with ``prefix`` (see
    :func:`filetier.ids.prefix_range`). A whole id is returned as it is, found or not."""
    covered = prefix_range(prefix)
    if isinstance(covered, UUID):
        return covered
    text, low, high = covered
    ids, count = await repo.file_ids_between(owner, low, high, limit=2)
    return one_match(text, ids, count)


async def sign_url(
    settings: Settings, primary: PrimaryStore, record: FileRecord, expires_in: int
) -> tuple[str, datetime]:
    """A pre-signed object-store URL for the record's object and when it expires.

    The bytes go straight from the object store: filetier cannot revoke the URL before
    it expires, records no download history and does not verify what is served.
    Only for a primary that can sign (S3-compatible, GCS, Azure)."""
    longest = settings.link_max_seconds
    if not 1 <= expires_in <= longest:
        raise InvalidInputError(
            f"expires_in must be between 1 and {longest} seconds "
            f"(FILETIER_LINK_MAX_SECONDS), not {expires_in}"
        )
    sign = getattr(primary, "sign_get", None)
    url = await sign(record.storage_key, timedelta(seconds=expires_in)) if sign else None
    if url is None:
        raise InvalidInputError(
            "direct object-store URLs need an S3-compatible primary store; ask for a "
            "filetier link instead"
        )
    return str(url), utcnow() + timedelta(seconds=expires_in)
