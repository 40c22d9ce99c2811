"""``gc``: remove content that no file references any more.

Two kinds of garbage, both only when older than the grace window, so an upload in flight
(object published, rows not yet committed) is never collected:

- blob rows that no file row references (a delete that crashed before removing them);
- objects in the primary store that no blob row names (an upload that crashed after
  publishing its object).

Each removal goes through :meth:`filetier.ending.ContentEnd.end_content`, the one function that ends
content (blob row, object, caches, provider copies) for delete, gc and verify alike; it
re-checks, under the same per-hash lock uploads take, that nothing has started
referencing the content since the plan was made.
"""

from __future__ import annotations

from datetime import timedelta

from filetier.clock import utcnow
from filetier.core import Core
from filetier.ending import ContentEnd
from filetier.models import MaintenanceReport, PlannedAction
from filetier.tiers.protocols import PartialUploads


async def collect_garbage(
    core: Core, ending: ContentEnd, *, dry_run: bool, grace: float | None = None
) -> MaintenanceReport:
    """``grace``: seconds garbage must be old to go (default: the configured window)."""
    seconds = core.settings.gc_grace_seconds if grace is None else grace
    cutoff = utcnow() - timedelta(seconds=seconds)
    blobs = await core.repo.all_blobs()
    referenced = await core.repo.referenced_hashes()
    actions: list[PlannedAction] = []
    for blob in blobs:
        if blob.sha256 not in referenced and blob.created_at <= cutoff:
            actions.append(
                PlannedAction(
                    kind="delete_orphan_blob_row",
                    target=blob.sha256,
                    bytes=blob.size,
                    reason="no file references this content",
                )
            )
    known = {b.storage_key for b in blobs}
    async for info in core.primary.list_objects("sha256/"):
        if info.key not in known and info.modified <= cutoff:
            actions.append(
                PlannedAction(
                    kind="delete_orphan_object",
                    target=info.key,
                    bytes=info.size,
                    reason="object has no blob row (an interrupted upload)",
                )
            )
    partials = core.primary if isinstance(core.primary, PartialUploads) else None
    if partials is not None:
        for info in await partials.partial_uploads():
            if info.modified <= cutoff:
                actions.append(
                    PlannedAction(
                        kind="remove_partial_upload",
                        target=info.key,
                        bytes=info.size,
                        reason="partial write left by a process that died mid-upload",
                    )
                )
    if dry_run:
        return MaintenanceReport(operation="gc", dry_run=True, actions=actions)

    done: list[PlannedAction] = []
    for action in actions:
        if action.kind == "remove_partial_upload":
            assert partials is not None
            await partials.remove_partial(action.target)
            done.append(action)
            continue
        # The same end as a delete's: blob row, object, caches and provider copies, each
        # re-checked under the lock uploads take (False: referenced again, or no lock).
        if await ending.end_content(action.target.rsplit("/", 1)[-1]):
            done.append(action)
    return MaintenanceReport(operation="gc", dry_run=False, actions=done)
