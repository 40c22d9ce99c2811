"""LLM providers: get_provider_file_id, get_file_text, ask_file."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from filetier.interfaces.mcp.context import caller_store
from filetier.interfaces.mcp.results import FileText
from filetier.interfaces.mcp.tools.common import Ctx, FileId, Provider
from filetier.models import (
    AskResult,
    ProviderFileId,
)
from filetier.providers.uploads import DEFAULT_PURPOSE

# -- providers ---------------------------------------------------------------------------


async def get_provider_file_id(
    ctx: Ctx,
    file_id: FileId,
    provider: Provider,
    purpose: Annotated[str, Field(description="e.g. file-extract, image")] = DEFAULT_PURPOSE,
    verify: Annotated[bool, Field(description="Check the copy still exists")] = False,
) -> ProviderFileId:
    """A provider's file id (`file-…`) for a stored file, for its chat API; uploaded to
    the provider at most once."""
    return await caller_store(ctx).get_provider_file_id(file_id, provider, purpose, verify=verify)


async def get_file_text(
    ctx: Ctx,
    file_id: Annotated[str, Field(description="File id, or a provider's file id")],
    provider: Provider,
    offset: Annotated[int, Field(ge=0, description="From next_offset")] = 0,
    max_chars: Annotated[int, Field(ge=1, le=200_000)] = 20_000,
) -> FileText:
    """The text a provider extracts from a file (PDF, Word, image…), a page at a time;
    cached."""
    extracted = await caller_store(ctx).get_file_text(file_id, provider)
    text = extracted.text
    end = min(len(text), offset + max_chars)
    return FileText(
        file_id=extracted.file_id,
        sha256=extracted.sha256,
        provider=extracted.provider,
        provider_file_id=extracted.provider_file_id,
        text=text[offset:end],
        offset=offset,
        total_chars=len(text),
        next_offset=end if end < len(text) else None,
        cached=extracted.cached,
    )


async def ask_file(
    ctx: Ctx,
    file_ids: Annotated[list[str], Field(min_length=1, max_length=50, description="File ids")],
    question: Annotated[str, Field(min_length=1)],
    provider: Provider,
    model: Annotated[str | None, Field(description="Default: the configured one")] = None,
) -> AskResult:
    """Ask a provider's model about stored files (their extracted text)."""
    return await caller_store(ctx).ask_file(file_ids, question, provider, model)
