"""Download links: create_link and revoke_links."""

from __future__ import annotations

from typing import Annotated

from mcp.types import CallToolResult
from pydantic import Field

from filetier.errors import InvalidInputError
from filetier.interfaces.common.links import mint_link
from filetier.interfaces.mcp.context import (
    app_state,
    caller_store,
    request_base,
)
from filetier.interfaces.mcp.results import (
    LinkInfo,
    RevokedLinks,
    answer,
    file_link,
)
from filetier.interfaces.mcp.tools.common import Ctx, FileId
from filetier.links import parse_link_id

# -- links -------------------------------------------------------------------------------


async def create_link(
    ctx: Ctx,
    file_id: FileId,
    expires_in: Annotated[
        int, Field(ge=1, description="Seconds (up to the server's maximum)")
    ] = 3600,
    single_use: Annotated[bool, Field(description="Serve once only")] = False,
    range: Annotated[str | None, Field(description="Only these bytes: 'bytes=0-1023'")] = None,
    direct: Annotated[
        bool,
        Field(description="Pre-signed S3 URL (S3 primary only; not revocable)"),
    ] = False,
) -> Annotated[CallToolResult, LinkInfo]:
    """A signed, expiring URL to one of your files, needing no token: hand it on."""
    store = caller_store(ctx)
    record = await store.stat(file_id)
    minted = await mint_link(
        app_state(ctx).links,
        store,
        record,
        request_base=request_base(ctx),
        expires_in=expires_in,
        single_use=single_use,
        range_header=range,
        direct=direct,
    )
    summary = f"Link to {record.filename}: {minted['url']} (until {minted['expires_at']})"
    if request_base(ctx) is None and not store.settings.public_url and not direct:
        # Over stdio no HTTP server is implied: say which one serves the URL.
        summary += "; served by `filetier serve` on this data dir at that address"
    return answer(
        LinkInfo.model_validate(minted),
        summary,
        [file_link(record.file_id, record.filename, record.mime_type, record.size)],
    )


async def revoke_links(
    ctx: Ctx,
    link_id: Annotated[str | None, Field(description="This link")] = None,
    file_id: Annotated[str | None, Field(description="Every link to this file")] = None,
    all_links: Annotated[bool, Field(description="Every link of yours")] = False,
) -> RevokedLinks:
    """Revoke download links: exactly one of link_id, file_id, all_links."""
    given = [n for n, v in (("link_id", link_id), ("file_id", file_id)) if v] + (
        ["all_links"] if all_links else []
    )
    if len(given) != 1:
        raise InvalidInputError("give exactly one of link_id, file_id or all_links")
    store = caller_store(ctx)
    links = app_state(ctx).links
    if link_id:
        revoked = await links.revoke(store.owner, link_id=parse_link_id(link_id))
    elif file_id:
        record = await store.stat(file_id)
        revoked = await links.revoke(store.owner, file_id=record.file_id)
    else:
        revoked = await links.revoke(store.owner)
    return RevokedLinks(revoked=revoked)
