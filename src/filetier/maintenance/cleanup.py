"""``cleanup``: disk-cache eviction by age and size, expired delivered copies, stale temps.

The plan is computed first as a list of :class:`PlannedAction`; ``dry_run`` returns it
unexecuted. Nothing here touches the primary store: every action frees a copy that can
be fetched again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING

from filetier.clock import utcnow
from filetier.core import Core
from filetier.delivered import removable_size, remove_delivered
from filetier.models import MaintenanceReport, PlannedAction

if TYPE_CHECKING:
    from uuid import UUID

STALE_TEMP_SECONDS = 3600


def _plan_cache(core: Core, max_age_days: float, max_bytes: int) -> list[PlannedAction]:
    actions: list[PlannedAction] = []
    cutoff = time.time() - max_age_days * 86400
    entries = sorted(core.disk.entries(), key=lambda e: e.last_access)
    kept = []
    for entry in entries:
        if entry.last_access < cutoff:
            actions.append(
                PlannedAction(
                    kind="evict_cache_age",
                    target=entry.sha256,
                    bytes=entry.size,
                    reason=f"not used for more than {max_age_days:g} days",
                )
            )
        else:
            kept.append(entry)
    total = sum(e.size for e in kept)
    for entry in kept:  # least recently used first
        if total <= max_bytes:
            break
        actions.append(
            PlannedAction(
                kind="evict_cache_size",
                target=entry.sha256,
                bytes=entry.size,
                reason=f"cache over its {max_bytes:,}-byte cap (least recently used)",
            )
        )
        total -= entry.size
    return actions


def _plan_temps(core: Core) -> list[PlannedAction]:
    actions: list[PlannedAction] = []
    cutoff = time.time() - STALE_TEMP_SECONDS
    dirs = [core.disk.tmp]
    if core.local is not None:
        dirs.append(core.local.staging_dir())
    for directory in dirs:
        for path in directory.glob("*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                st = path.stat()
                if st.st_mtime < cutoff:
                    actions.append(
                        PlannedAction(
                            kind="remove_temp",
                            target=str(path),
                            bytes=st.st_size,
                            reason="temp file left by an interrupted transfer",
                        )
                    )
    return actions


async def cleanup_store(
    core: Core,
    *,
    max_age_days: float | None,
    max_size_mb: float | None,
    dry_run: bool,
) -> MaintenanceReport:
    settings = core.settings
    age = settings.max_cache_age_days if max_age_days is None else max_age_days
    cap = int((settings.max_cache_size_mb if max_size_mb is None else max_size_mb) * 1_000_000)
    await core.recorder.flush()
    actions = await asyncio.to_thread(_plan_cache, core, age, cap)
    actions += await asyncio.to_thread(_plan_temps, core)

    downloads = settings.downloads_dir.expanduser().resolve()
    due = await core.repo.expired_deliveries(utcnow())
    delivered: list[UUID] = []
    for history_id, destination, sha256 in due:
        size = await asyncio.to_thread(removable_size, Path(destination), downloads, sha256)
        delivered.append(history_id)
        if size is not None:
            actions.append(
                PlannedAction(
                    kind="remove_delivered",
                    target=destination,
                    bytes=size,
                    reason="delivered copy past its retention period",
                )
            )
    if not dry_run:
        for action in actions:
            if action.kind in {"evict_cache_age", "evict_cache_size"}:
                core.disk.evict(action.target)
            elif action.kind == "remove_delivered":
                # Checked again: the file may have changed since the plan was made.
                sha256 = next(s for _h, d, s in due if d == action.target)
                await asyncio.to_thread(remove_delivered, Path(action.target), downloads, sha256)
            else:
                with contextlib.suppress(FileNotFoundError):
                    Path(action.target).unlink()
        await core.repo.mark_removed(delivered)
        core.diskcap.recount()
    return MaintenanceReport(operation="cleanup", dry_run=dry_run, actions=actions)
