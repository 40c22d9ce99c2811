"""Finding an owner's files: pages of the listing, id prefixes, pre-signed object URLs.

Only the owner's own files are searched, so another owner's can neither match nor make
an answer different (an ambiguous prefix, a page's total).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import TypedDict, Unpack, get_args
from uuid import UUID

from filetier.clock import utcnow
from filetier.config import Settings
from filetier.errors import InvalidFileIdError, InvalidInputError, NotFoundError
from filetier.metadata.repository import Repository
from filetier.models import FilePage, FileRecord, FileSort
from filetier.tiers.protocols import PrimaryStore

LIST_OFFSET_MAX = 10**12  # the largest ``offset`` a listing takes (every interface)
#: Fewest hex digits ``resolve_file_id`` accepts as an id prefix.
MIN_ID_PREFIX = 4
_HEX_RE = re.compile(r"[0-9a-f]+")


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
    """The id of the owner's one file whose id starts with ``prefix``, as git takes a
    unique commit prefix: hex digits (dashes optional), at least :data:`MIN_ID_PREFIX` of
    them. A whole id is returned as it is, found or not."""
    text = prefix.strip().lower()
    digits = text.replace("-", "")
    if not _HEX_RE.fullmatch(digits) or len(digits) > 32:
        raise InvalidFileIdError(
            f"{prefix[:64]!r} is not a file id or id prefix (hex digits, e.g. 0192b5e0)"
        )
    if len(digits) == 32:
        return UUID(digits)
    if len(digits) < MIN_ID_PREFIX:
        raise InvalidInputError(
            f"id prefix {text!r} is too short: give at least {MIN_ID_PREFIX} characters"
        )
    low, high = UUID(digits.ljust(32, "0")), UUID(digits.ljust(32, "f"))
    ids, count = await repo.file_ids_between(owner, low, high, limit=2)
    if count == 0:
        raise NotFoundError(f"no file whose id starts with {text}")
    if count > 1:
        raise InvalidInputError(
            f"id prefix {text} is ambiguous: {count} files match; give more characters"
        )
    return ids[0]


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
