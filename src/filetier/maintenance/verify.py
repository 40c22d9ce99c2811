"""``verify``: re-hash every stored object and cache copy; report, and repair only if asked.

Repairs (``fix=True``), each the least destructive that restores a consistent store:

- corrupt or missing primary object: restored from a disk-cache copy that verifies,
  otherwise the bad object is quarantined and the blob marked so;
- corrupt cache copy: evicted (the primary still has the bytes);
- file rows whose blob row is missing: the blob row is recreated when the object verifies;
- quarantined blob with a verified cache copy: restored;
- unreferenced blob rows and objects: past ``gc``'s grace window, ended the way delete
  and gc end content (:meth:`filetier.ending.ContentEnd.end_content`); younger ones only reported.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Literal

from filetier.clock import utcnow
from filetier.core import Core, storage_key
from filetier.digest import StreamDigest, hash_file
from filetier.ending import ContentEnd
from filetier.finishing import finished
from filetier.models import Finding, VerifyReport
from filetier.tiers.hashing import hash_object as hash_primary_object


async def hash_object(core: Core, key: str) -> StreamDigest | None:
    """SHA-256 of a primary object, or None when it is missing."""
    return await hash_primary_object(core.primary, key)


# What a repair did: restored from a verified cache copy; set aside (a corrupt object,
# none to restore it from); left as it is (missing, none to restore it from); nothing,
# the object being good when looked at again (an upload repaired it meanwhile) or its
# content ended; nothing, its lock not had in time.
Repair = Literal["restored", "quarantined", "left", "good", "busy"]


REPAIRED = {"restored", "good"}
CORRUPT_REPAIRED: dict[Repair, str] = {
    "restored": "; restored from a verified cache copy",
    "quarantined": "; quarantined",
    "good": "; good again when repaired (an upload replaced it meanwhile)",
    "busy": "; not repaired: its lock was busy, run verify again",
    "left": "; not repaired",
}


async def _repair(core: Core, sha256: str, key: str) -> Repair:
    """Restore ``sha256``'s object from a verified cache copy, else set a corrupt one aside
    and mark the blob quarantined.

    Under the content lock, looked at again there, and carried to its end even if the run
    is cancelled: between the check and now an upload of the same content may have
    repaired the object and been acknowledged, and a repair half done (deleted, not yet
    put back) must not be left behind with its lock released."""
    async with core.content_locks.hold(sha256) as locked:
        if not locked:
            return "busy"
        return await finished(_repair_locked(core, sha256, key))


async def _repair_locked(core: Core, sha256: str, key: str) -> Repair:
    blob = await core.repo.get_blob(sha256)
    if blob is None:
        return "good"  # ended meanwhile: nothing names it any more
    digest = await hash_object(core, key)
    if digest is not None and digest.sha256 == sha256:
        if blob.status != "ok":
            await _mark_verified(core, sha256, key)
        return "good"
    if digest is not None:
        await core.primary.quarantine(key)
    if await _restore_from_cache(core, sha256, key):
        return "restored"
    if digest is None:
        return "left"
    await core.repo.set_blob_status(sha256, "quarantined")
    return "quarantined"


async def _restore_from_cache(core: Core, sha256: str, key: str) -> bool:
    """Put a verified disk-cache copy back into the primary store (under the lock)."""
    if core.local is not None:
        return False
    path = core.disk.lookup(sha256)
    if path is None:
        return False
    digest = await asyncio.to_thread(hash_file, path)
    if digest.sha256 != sha256:
        core.disk.evict(sha256)
        return False
    await core.primary.delete(key)
    await core.primary.put_file(key, path)
    await _mark_verified(core, sha256, key)
    return True


async def _mark_verified(core: Core, sha256: str, key: str) -> None:
    """The object just hashed matches: its blob is ok, with the object's time as the mark
    later deduplications check it against."""
    info = await core.primary.head(key)
    await core.repo.set_blob_status(
        sha256, "ok", verified=True, object_modified_at=info.modified if info else None
    )


async def verify_store(core: Core, ending: ContentEnd, *, fix: bool) -> VerifyReport:
    findings: list[Finding] = []
    bytes_verified = 0
    blobs = await core.repo.all_blobs()
    blob_hashes = {b.sha256 for b in blobs}
    referenced = await core.repo.referenced_hashes()

    for blob in blobs:
        if blob.status == "quarantined":
            fixed = fix and await _repair(core, blob.sha256, blob.storage_key) in REPAIRED
            findings.append(
                Finding(
                    kind="quarantined",
                    sha256=blob.sha256,
                    detail="object failed verification earlier and was quarantined; "
                    + (
                        "restored from a verified cache copy"
                        if fixed
                        else "upload the original again"
                    ),
                    fixed=fixed,
                )
            )
            continue
        digest = await hash_object(core, blob.storage_key)
        if digest is None:
            fixed = fix and await _repair(core, blob.sha256, blob.storage_key) in REPAIRED
            findings.append(
                Finding(
                    kind="missing_object",
                    sha256=blob.sha256,
                    detail=f"object {blob.storage_key} is missing from the primary store"
                    + ("; restored from a verified cache copy" if fixed else ""),
                    fixed=fixed,
                )
            )
            continue
        if digest.sha256 != blob.sha256:
            repair = await _repair(core, blob.sha256, blob.storage_key) if fix else None
            findings.append(
                Finding(
                    kind="corrupt_object",
                    sha256=blob.sha256,
                    detail=f"object {blob.storage_key} does not match its SHA-256"
                    + (
                        CORRUPT_REPAIRED[repair] if repair else " (run with --fix to quarantine it)"
                    ),
                    fixed=repair in {"restored", "quarantined", "good"},
                )
            )
            continue
        bytes_verified += digest.size
        if fix:
            await _mark_verified(core, blob.sha256, blob.storage_key)

    for sha256 in sorted(referenced - blob_hashes):
        key = storage_key(sha256)
        fixed = False
        if fix:
            digest = await hash_object(core, key)
            if digest is not None and digest.sha256 == sha256:
                await core.repo.insert_blob_row(sha256, digest.size, key)
                fixed = True
        findings.append(
            Finding(
                kind="missing_blob_row",
                sha256=sha256,
                detail="files reference content with no blob row"
                + ("; recreated from the verified object" if fixed else ""),
                fixed=fixed,
            )
        )

    # Unreferenced content past gc's grace window ends the way gc and delete end it;
    # younger content may be an upload in flight and is only reported.
    cutoff = utcnow() - timedelta(seconds=core.settings.gc_grace_seconds)
    created = {b.sha256: b.created_at for b in blobs}
    for sha256 in sorted(blob_hashes - referenced):
        fixed = fix and created[sha256] <= cutoff and await ending.end_content(sha256)
        findings.append(
            Finding(
                kind="orphan_blob_row",
                sha256=sha256,
                detail="no file references this content; "
                + ("removed" if fixed else "`filetier gc` removes it after the grace window"),
                fixed=fixed,
            )
        )

    known_keys = {b.storage_key for b in blobs}
    async for info in core.primary.list_objects("sha256/"):
        if info.key not in known_keys:
            sha256 = info.key.rsplit("/", 1)[-1]
            fixed = fix and info.modified <= cutoff and await ending.end_content(sha256)
            findings.append(
                Finding(
                    kind="orphan_object",
                    sha256=sha256,
                    detail=f"object {info.key} has no blob row; "
                    + ("removed" if fixed else "`filetier gc` removes it after the grace window"),
                    fixed=fixed,
                )
            )

    entries = await asyncio.to_thread(core.disk.entries)
    for entry in entries:
        digest = await asyncio.to_thread(hash_file, entry.path)
        if digest.sha256 != entry.sha256:
            if fix:
                core.disk.evict(entry.sha256)
                core.memory.evict(entry.sha256)
            findings.append(
                Finding(
                    kind="corrupt_cache",
                    sha256=entry.sha256,
                    detail="disk cache copy does not match its SHA-256"
                    + ("; evicted" if fix else " (run with --fix to evict it)"),
                    fixed=fix,
                )
            )
        else:
            bytes_verified += digest.size

    return VerifyReport(
        blobs_checked=len(blobs),
        cache_entries_checked=len(entries),
        bytes_verified=bytes_verified,
        findings=findings,
        fix=fix,
    )
