"""The one place content ends, everywhere: delete, gc, verify(fix) and a refused upload.

Content ends in this order (the crash tests check it): the blob row goes in a committed
transaction first, then the object in the primary store, then this host's disk and
memory copies; a crash between leaves at worst an object no row names, which ``gc``
collects, never a row that names nothing. The provider copies of owners who no longer
have a file with the content go too (all of them once no file does), with their text.
"""

from __future__ import annotations

from uuid import UUID

from filetier.core import Core, storage_key
from filetier.finishing import finished
from filetier.ids import no_such_file, parse_file_id
from filetier.models import DeleteResult
from filetier.providers.clients import ProviderClients
from filetier.records import RecordCache


class ContentEnd:
    def __init__(self, core: Core, records: RecordCache, providers: ProviderClients) -> None:
        self.core = core
        self._records = records
        self._providers = providers

    async def delete(self, owner: str, file_id: str | UUID, *, operator: bool) -> DeleteResult:
        """Delete one file of ``owner``. ``blob_deleted``: no other file of theirs has
        these bytes.

        The operator's delete removes content nothing references any more before it
        answers. Another owner's delete answers once its row is gone and leaves that
        step to the background: whether other owners hold the same bytes must change
        neither its answer nor the work it does, so it cannot be read from the time it
        takes (a crash before the step leaves an orphan that ``gc`` collects).
        """
        repo = self.core.repo
        fid = parse_file_id(file_id)
        self._records.forget(owner, fid)
        deleted = await repo.delete_file(owner, fid)
        if deleted is None:
            raise no_such_file(fid)
        record = deleted.record
        if operator:
            ended = await self.end_content(record.sha256)
        else:
            # Asked in the delete's own transaction, of this owner's files only.
            ended = not deleted.owner_keeps_content
            self.core.background.run(self.end_content(record.sha256))
        return DeleteResult(file_id=fid, sha256=record.sha256, blob_deleted=ended)

    async def end_content(self, sha256: str, *, lock_held: bool = False) -> bool:
        """End ``sha256`` if no file references it; True when the content itself ended.

        False while files reference it, or when its lock was not had in time (nothing is
        removed then; ``gc`` decides later). Either way the provider copies of owners
        who no longer have a file with this content go, and their extracted text.
        """
        core = self.core
        if lock_held:
            ended = await self._release(sha256)
        else:
            async with core.content_locks.hold(sha256) as locked:
                if not locked:
                    return False
                ended = await self._release(sha256)
        if ended:
            core.disk.evict(sha256)
            core.memory.evict(sha256)
        # Outside the lock: provider calls are slow, and uploads of this content wait on
        # it. Copies are per owner, so they can end while the content itself lives on.
        await self._providers.forget_content(sha256)
        return ended

    async def _release(self, sha256: str) -> bool:
        """Under the content lock: drop the blob row and object if nothing references them."""
        if not await self.core.repo.release_blob(sha256):
            return False
        # To its end even if this task is cancelled: the lock is held until the object
        # is gone, so the delete cannot land after another upload vouched for it.
        await finished(self.core.primary.delete(storage_key(sha256)))
        return True
