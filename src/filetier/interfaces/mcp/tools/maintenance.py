"""Integrity and maintenance: verify_file, cleanup_cache, cache_stats."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from filetier.errors import IntegrityError
from filetier.interfaces.mcp.context import (
    caller_store,
    require_operator,
)
from filetier.interfaces.mcp.progress import TransferProgress
from filetier.interfaces.mcp.results import (
    CacheStats,
    CleanupOutcome,
    VerifyOutcome,
)
from filetier.interfaces.mcp.tools.common import Ctx
from filetier.models import (
    Finding,
    Tier,
)

# -- integrity and maintenance -------------------------------------------------------------


async def verify_file(
    ctx: Ctx,
    file_id: Annotated[
        str | None,
        Field(description="Omitted: the whole store (operator only)"),
    ] = None,
) -> VerifyOutcome:
    """Check that a file's bytes match its SHA-256. A corrupt cache copy is dropped, a
    corrupt stored copy set aside (`ok` false)."""
    if file_id is None:
        report = await require_operator(ctx, "verifying the whole store").verify(fix=False)
        return VerifyOutcome(
            scope="store",
            ok=report.clean,
            bytes_verified=report.bytes_verified,
            blobs_checked=report.blobs_checked,
            cache_entries_checked=report.cache_entries_checked,
            findings=report.findings,
        )
    store = caller_store(ctx)
    total = (await store.stat(file_id)).size
    findings: list[Finding] = []
    async with TransferProgress(ctx.report_progress, total, f"verifying {file_id}") as progress:
        # A corrupt cache copy is evicted by the failed read; the second read then comes
        # from the primary store, which is the copy that matters.
        for _attempt in range(2):
            tier: Tier | None = None
            try:
                async with store.open(file_id) as reader:
                    tier, record = reader.tier, reader.record
                    async for chunk in reader:
                        progress(len(chunk))
            except IntegrityError as exc:
                cache_copy = tier == "disk"
                findings.append(
                    Finding(
                        kind="corrupt_cache" if cache_copy else "corrupt_object",
                        detail=str(exc),
                        fixed=cache_copy,
                    )
                )
                if cache_copy:
                    continue
                break
            return VerifyOutcome(
                scope="file",
                ok=True,
                file_id=record.file_id,
                sha256=record.sha256,
                size=record.size,
                tier=tier,
                bytes_verified=record.size,
                findings=findings,
            )
    return VerifyOutcome(scope="file", ok=False, bytes_verified=0, findings=findings)


async def cleanup_cache(
    ctx: Ctx,
    dry_run: Annotated[bool, Field(description="Only show the plan")] = False,
    max_age_days: Annotated[
        float | None,
        Field(ge=0, description="Evict copies unused for longer"),
    ] = None,
    max_size_mb: Annotated[
        float | None,
        Field(ge=0, description="Shrink the disk cache to this"),
    ] = None,
) -> CleanupOutcome:
    """Free disk space: old cache copies, expired downloads, temp files. Stored files
    stay."""
    store = require_operator(ctx, "cache cleanup")
    report = await store.cleanup_cache(max_age_days, max_size_mb, dry_run=dry_run)
    return CleanupOutcome(
        dry_run=report.dry_run, bytes_freed=report.bytes_freed, actions=report.actions
    )


async def cache_stats(ctx: Ctx) -> CacheStats:
    """Your file and byte counts, cache sizes, and hit rates per tier."""
    stats = await caller_store(ctx).stats()
    return CacheStats(**stats.model_dump(), tier_hit_rates=stats.hit_rates)
