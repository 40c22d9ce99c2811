"""Minting a download link: the one answer the HTTP route, the MCP tool and the console
all give (the revocable ``/links/{token}`` URL, or a presigned object-store URL).
"""

from __future__ import annotations

from typing import Any

from filetier.errors import InvalidInputError
from filetier.interfaces.common.ranges import ByteRange, parse_range
from filetier.links import LinkAuthority, link_url
from filetier.models import FileRecord
from filetier.store import FileStore

DEFAULT_EXPIRES_IN = 3600


async def mint_link(
    links: LinkAuthority,
    store: FileStore,
    record: FileRecord,
    *,
    request_base: str | None,
    expires_in: int,
    single_use: bool,
    range_header: str | None,
    direct: bool,
) -> dict[str, Any]:
    """The answer to a mint request (shared by the HTTP route and the MCP tool)."""
    byte_range = _bound_range(range_header, record.size)
    if direct:
        if single_use or byte_range is not None:
            raise InvalidInputError(
                "a direct object-store URL cannot be single-use or bound to a range"
            )
        url, expires_at = await store.presigned_url(record.file_id, expires_in)
        return {
            "url": url,
            "direct": True,
            "expires_at": expires_at.isoformat(),
            "file_id": str(record.file_id),
            "revocable": False,
        }
    minted = await links.mint(
        store.owner,
        record.file_id,
        expires_in=expires_in,
        single_use=single_use,
        byte_range=(byte_range.start, byte_range.end) if byte_range else None,
    )
    grant = minted.grant
    return {
        "url": link_url(store.settings, minted.token, request_base),
        "link_id": grant.link_id.hex,
        "direct": False,
        "file_id": str(record.file_id),
        "expires_at": grant.expires_at.isoformat(),
        "single_use": grant.single_use,
        "range": byte_range.content_range if byte_range else None,
        "revocable": True,
    }


def _bound_range(header: str | None, size: int) -> ByteRange | None:
    if header is None:
        return None
    parsed = parse_range(header, size)
    if not isinstance(parsed, ByteRange):
        raise InvalidInputError(
            f"range must be one satisfiable byte range such as 'bytes=0-1023' of the file's "
            f"{size} bytes, not {header[:80]!r}"
        )
    return parsed
