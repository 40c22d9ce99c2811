"""Whether a stored object can be trusted as the target of a deduplication.

Upload and hash-first linking both answer "already stored" only for an object vouched
for here, under the content lock. Cheap when nothing changed (the blob row, the object's
size and modification time agree); otherwise the object is hashed, and one that fails is
set aside (quarantined) so the incoming bytes replace it.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from filetier.core import Core, storage_key
from filetier.finishing import finished
from filetier.tiers.hashing import hash_object

log = logging.getLogger(__name__)

# An object's modification time is compared with the one recorded when filetier last
# wrote or hashed it; stores keep it to the microsecond (S3: the second), so any rewrite
# but one within this much of filetier's own write shows.
MTIME_TOLERANCE = timedelta(milliseconds=1)


class Voucher:
    def __init__(self, core: Core) -> None:
        self.core = core

    async def vouch(self, sha256: str, size: int) -> bool:
        """Whether the stored object of this content can be trusted as a dedup target,
        cheaply: call it under the content lock.

        Trusted when its blob row is ``ok``, the object is there with the right size,
        and its modification time is the one recorded when filetier last wrote or
        hashed it (the store's own clock on both sides: no skew to allow for). Otherwise the object is hashed (an interrupted upload's object, a
        quarantined blob's, or one touched since); one that fails is set aside
        (quarantined) so the caller writes the incoming bytes in its place. A copy silently rotted in
        place (same size, same mtime) is not caught here: reads, which hash every byte,
        and ``verify`` catch it and quarantine it, and the next upload then repairs it.
        """
        core = self.core
        key = storage_key(sha256)
        blob = await core.repo.get_blob(sha256)
        info = await core.primary.head(key)
        if info is None:
            return False
        if (
            blob is not None
            and blob.status == "ok"
            and info.size == size
            and blob.object_modified_at is not None
            and abs(info.modified - blob.object_modified_at) <= MTIME_TOLERANCE
        ):
            return True
        if info.size == size:
            digest = await hash_object(core.primary, key)
            if digest is not None and digest.sha256 == sha256 and digest.size == size:
                if blob is not None:
                    await core.repo.set_blob_status(
                        sha256, "ok", verified=True, object_modified_at=info.modified
                    )
                return True
        where = await finished(core.primary.quarantine(key))  # under the lock, to its end
        log.warning(
            "stored object %s failed its check before deduplication (set aside at %s); "
            "it is replaced by the uploaded bytes",
            sha256,
            where,
        )
        core.disk.evict(sha256)
        core.memory.evict(sha256)
        return False
