"""Reconcile filetier's provider records with each provider's own file list.

A plan first (:class:`SyncAction` each), executed only when not a dry run: copies the
provider no longer has are forgotten, stated expiries recorded, failed deletes retried,
and files filetier never uploaded recorded so a download can explain them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from filetier.clock import utcnow
from filetier.metadata.provider_repository import ProviderCopy
from filetier.models import SyncAction, SyncReport
from filetier.providers.clients import ProviderClients


def _expiry_differs(ours: datetime | None, stated: datetime | None) -> bool:
    """The provider states an expiry we have not recorded (a second apart is the same)."""
    if stated is None:
        return False
    return ours is None or abs((ours - stated).total_seconds()) >= 1.0


async def sync_providers(
    clients: ProviderClients, providers: Sequence[str] | None = None, *, dry_run: bool = True
) -> SyncReport:
    """Reconcile our records with each provider's own file list, both directions."""
    names = list(providers) if providers else clients.configured()
    actions: list[SyncAction] = []
    for name in names:
        client = clients.provider(name)
        listed_at = utcnow()
        remote = {f.id: f for f in await client.list_files()}
        ours = await clients.repo.for_account(client.name, client.account)
        known = {c.provider_file_id for c in ours}
        plan: list[tuple[SyncAction, ProviderCopy | None]] = []
        now = utcnow()
        for copy in ours:
            present = copy.provider_file_id in remote
            if not present and copy.uploaded_at >= listed_at:
                # Uploaded (by another process) after the list was asked for: the list
                # cannot be expected to show it, and its absence says nothing.
                continue
            if copy.status == "active" and not present:
                expired = copy.expires_at is not None and copy.expires_at <= now
                plan.append(
                    (
                        SyncAction(
                            kind="forget_expired" if expired else "forget_missing",
                            provider=client.name,
                            provider_file_id=copy.provider_file_id,
                            detail=(
                                f"expired at the provider at {copy.expires_at:%Y-%m-%d %H:%M} UTC"
                                if expired and copy.expires_at is not None
                                else "recorded as uploaded, but the provider no longer has it"
                            ),
                        ),
                        copy,
                    )
                )
            elif copy.status == "active" and _expiry_differs(
                copy.expires_at, remote[copy.provider_file_id].expires_at
            ):
                stated = remote[copy.provider_file_id].expires_at
                plan.append(
                    (
                        SyncAction(
                            kind="record_expiry",
                            provider=client.name,
                            provider_file_id=copy.provider_file_id,
                            detail=f"the provider deletes it at {stated:%Y-%m-%d %H:%M:%S} UTC",
                        ),
                        copy,
                    )
                )
            elif copy.status == "pending_delete" and not present:
                plan.append(
                    (
                        SyncAction(
                            kind="forget_missing",
                            provider=client.name,
                            provider_file_id=copy.provider_file_id,
                            detail="waiting to be deleted, and the provider no longer has it",
                        ),
                        copy,
                    )
                )
            elif copy.status == "pending_delete" and present:
                plan.append(
                    (
                        SyncAction(
                            kind="delete_at_provider",
                            provider=client.name,
                            provider_file_id=copy.provider_file_id,
                            detail="no file uses this content; the earlier delete failed",
                        ),
                        copy,
                    )
                )
        for file_id, info in remote.items():
            if file_id not in known:
                plan.append(
                    (
                        SyncAction(
                            kind="record_foreign",
                            provider=client.name,
                            provider_file_id=file_id,
                            detail=f"{info.filename or 'unnamed'}, {info.bytes:,} bytes: not "
                            "uploaded by filetier; recorded so downloads explain it",
                        ),
                        None,
                    )
                )
        actions += [action for action, _ in plan]
        if dry_run:
            continue
        for action, target in plan:
            if action.kind == "record_expiry" and target is not None:
                await clients.repo.set_expiry(target, remote[target.provider_file_id].expires_at)
            elif action.kind in ("forget_missing", "forget_expired") and target is not None:
                if target.status == "pending_delete":
                    await clients.repo.remove(target)
                else:
                    await clients.repo.set_status(target, "deleted")
            elif action.kind == "delete_at_provider" and target is not None:
                await client.delete(target.provider_file_id)
                await clients.repo.remove(target)
            elif action.kind == "record_foreign":
                info = remote[action.provider_file_id]
                await clients.repo.add_foreign(
                    client.name,
                    client.account,
                    info.id,
                    info.bytes,
                    info.filename,
                    info.purpose or "unknown",
                )
    return SyncReport(dry_run=dry_run, providers=names, actions=actions)
