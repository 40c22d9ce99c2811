"""A file's bytes as an HTTP body: verified, in 1 MiB chunks, read in place.

This is the one module of the HTTP interface that reaches into :class:`FileStore`'s
private read path (``_record``, ``_locate_file``, ``_handle_bad_copy``, ``_track``,
``_missing``, ``_unreadable``, ``_content_bytes``). ``FileStore.open`` would do, but it
hashes on the event loop and reads one chunk at a time; serving the verified local file (the local primary or a
disk-cache copy) directly lets the next chunk be read *and hashed* in a worker thread
while the current one is being sent, which is what makes a download run at the speed of
a plain static-file server (see ``bench/bench_http.py``).

How each body is checked:

- small files (up to the memory tier's item size) come from the memory tier, whose
  entries were hashed when they entered, or are read and verified whole by
  ``read_bytes``, which also puts them there;
- a whole large file is hashed as it streams. The last chunk is held back until the
  digest is known: on a mismatch the connection is aborted before the final bytes, so a
  client never receives a complete, wrong file, and the bad copy is evicted (or, for the
  primary, quarantined);
- a byte range of a large file cannot be checked by itself, so the whole copy is hashed
  once before the first range is served from it;
- either way, a copy whose whole content matched is remembered in
  :class:`VerifiedCopies` by its identity (device, inode, size, mtime, ctime) for
  ``FILETIER_VERIFIED_COPY_SECONDS`` (300 s; 0 turns the memo off). Within that window
  the same, unchanged copy is served without hashing again: a file an agent fetches over
  and over costs one SHA-256 pass per window, not one per download, and streams at the
  speed of a plain static-file server. Any write to the copy, a replacement or an
  eviction changes its identity; what the window does not catch (bit rot that touches
  no metadata) the next hashed download after it, and ``filetier verify``, do.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from filetier.errors import IntegrityError
from filetier.interfaces.common.ranges import ByteRange
from filetier.interfaces.http.turns import LARGE_BODY, LargeBodies
from filetier.interfaces.http.verified import VerifiedCopies
from filetier.models import FileRecord
from filetier.reading import CorruptCopy, Located, VanishedCopy
from filetier.store import FileStore

if TYPE_CHECKING:
    from hashlib import _Hash

log = logging.getLogger("filetier.http")

CHUNK_SIZE = 1024 * 1024
READ_AHEAD = 3  # chunks read before they are sent, per download (within the budget)
SEND_PIECE = 256 * 1024  # bytes handed to the server per send


async def find_record(store: FileStore, file_id: str) -> FileRecord:
    """The owner's record (reused from the store's short-lived record cache)."""
    return await store.records.get(store.owner, file_id)


@dataclass(slots=True)
class _OpenCopy:
    located: Located
    fd: int
    st: os.stat_result


class _Aborted(Exception):
    """The stream must stop without its last bytes: the connection is dropped."""


def _hash_whole(fd: int, size: int) -> str:
    digest = hashlib.sha256()
    offset = 0
    while offset < size:
        chunk = os.pread(fd, min(CHUNK_SIZE, size - offset), offset)
        if not chunk:
            break
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest() if offset == size else ""


async def _hash_copy(fd: int, size: int) -> str:
    """``_hash_whole`` in a worker; if the request is cancelled meanwhile, the worker
    closes the descriptor when it is done with it (closing it under the worker is unsafe)."""
    job = asyncio.get_running_loop().run_in_executor(None, _hash_whole, fd, size)
    try:
        return await asyncio.shield(job)
    except asyncio.CancelledError:
        job.add_done_callback(lambda _job: os.close(fd))
        raise


class ContentBody(Response):
    """200/206 body of a file: from memory, or streamed from a verified local copy."""

    def __init__(
        self,
        *,
        status_code: int,
        headers: Mapping[str, str],
        length: int,
        data: bytes | None = None,
        copy: _OpenCopy | None = None,
        start: int = 0,
        verify: bool = False,
        record: FileRecord,
        budget: ReadAheadBudget | None = None,
        large: LargeBodies | None = None,
        on_complete: Callable[[], Awaitable[None]] | None = None,
        on_corrupt: Callable[[_OpenCopy], Awaitable[None]] | None = None,
    ) -> None:
        self.status_code = status_code
        self.background = None
        self.body = b""
        self.init_headers({**headers, "content-length": str(length)})
        self._length = length
        self._data = data
        self._copy = copy
        self._start = start
        self._verify = verify
        self._record = record
        self._budget = budget if budget is not None else ReadAheadBudget(0)
        self._large = large
        self._on_complete = on_complete
        self._on_corrupt = on_corrupt

    def close(self) -> None:
        """Release the file when the response is dropped before it is sent."""
        if self._copy is not None:
            os.close(self._copy.fd)
            self._copy = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if (
                self._large is not None
                and self._copy is not None
                and self._length >= LARGE_BODY
                and scope["method"] != "HEAD"
            ):
                async with self._large.turn():
                    await self._respond(scope, receive, send)
            else:
                await self._respond(scope, receive, send)
        finally:
            self.close()  # a no-op once the stream took the file over

    async def _respond(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        if scope["method"] == "HEAD" or self._length == 0:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            if self._length == 0 and scope["method"] != "HEAD" and self._on_complete:
                await self._on_complete()
            return
        if self._data is not None:
            await self._send_memory(send)
            return
        gone = asyncio.Event()
        watcher = asyncio.create_task(_watch_disconnect(receive, gone))
        try:
            completed = await self._send_file(send, gone)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if completed and self._on_complete:
            await self._on_complete()

    async def _send_memory(self, send: Send) -> None:
        assert self._data is not None
        data = self._data[self._start : self._start + self._length]
        for offset in range(0, len(data), CHUNK_SIZE):
            last = offset + CHUNK_SIZE >= len(data)
            await send(
                {
                    "type": "http.response.body",
                    "body": data[offset : offset + CHUNK_SIZE],
                    "more_body": not last,
                }
            )
        if self._on_complete:
            await self._on_complete()

    async def _send_file(self, send: Send, gone: asyncio.Event) -> bool:
        """Stream the copy; True when every byte was sent (and, if asked, verified)."""
        copy = self._copy
        assert copy is not None
        self._copy = None
        digest = hashlib.sha256() if self._verify else None
        ahead = _ReadAhead(copy.fd, self._start, self._start + self._length, digest, self._budget)
        try:
            while (chunk := await ahead.next()) is not None:
                last = ahead.finished
                if last and digest is not None and digest.hexdigest() != self._record.sha256:
                    raise _Aborted("the copy does not match its SHA-256")
                # Handed over in pieces: what a client that stops reading pins in the
                # transport's buffer is one piece, not one more chunk.
                view = memoryview(chunk)  # pieces without copies (h11 copies each once)
                for at in range(0, len(chunk), SEND_PIECE):
                    piece = view[at : at + SEND_PIECE]
                    more = not last or at + SEND_PIECE < len(chunk)
                    await send({"type": "http.response.body", "body": piece, "more_body": more})
                    if gone.is_set():
                        return False
            return True
        except _Aborted as problem:
            log.error("aborted the download of file %s: %s", self._record.file_id, problem.args[0])
            if self._on_corrupt is not None:
                with contextlib.suppress(IntegrityError):
                    await self._on_corrupt(copy)
            raise
        finally:
            ahead.close()


class ReadAheadBudget:
    """Bytes that every download of this process together may read ahead of its client
    (``FILETIER_HTTP_READ_AHEAD_BYTES``). One event loop: no lock needed."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, size: int) -> bool:
        if self.used + size > self.limit:
            return False
        self.used += size
        return True

    def give(self, size: int) -> None:
        self.used -= size


class _ReadAhead:
    """Chunks of ``fd[start:end]`` read (and hashed, in order) by worker threads, up to
    ``READ_AHEAD`` chunks before the sender needs them.

    SHA-256 cannot be split across threads, so a verified download runs at most at the
    speed of one core hashing; the read-ahead keeps that core busy all the time instead
    of waiting for each chunk to be sent. Each job reads one chunk, so a slow client
    holds buffers, not threads, and the default executor stays free for other work.

    A chunk read while the sender waits for it is free; every chunk read *before* it is
    asked for is borrowed from the process's :class:`ReadAheadBudget` and given back when
    the sender takes it. A client that stops reading stops its sender, so it pins at most
    the chunk being sent, never a read-ahead beyond the shared budget.
    """

    def __init__(
        self, fd: int, start: int, end: int, digest: _Hash | None, budget: ReadAheadBudget
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._fd = fd
        self._offset = start
        self._end = end
        self._digest = digest
        self._budget = budget
        self._ready: collections.deque[tuple[bytes, int]] = collections.deque()  # (chunk, lent)
        self._job: asyncio.Future[bytes] | None = None
        self._job_lent = 0
        self._waiter: asyncio.Future[None] | None = None
        self._failure: BaseException | None = None
        self._closed = False
        self._delivered = start
        self._start_job(needed=True)

    @property
    def finished(self) -> bool:
        """True once the chunk last returned by :meth:`next` ends the range."""
        return self._delivered >= self._end

    def _read(self, offset: int, size: int) -> bytes:
        chunk = os.pread(self._fd, size, offset)
        if self._digest is not None:
            self._digest.update(chunk)  # releases the GIL: runs beside the sending loop
        return chunk

    def _start_job(self, *, needed: bool = False) -> None:
        """Read the next chunk: ``needed`` when the sender waits for it, else ahead of it
        (only with bytes borrowed from the budget)."""
        if (
            self._closed
            or self._job is not None
            or self._failure is not None
            or self._offset >= self._end
            or len(self._ready) >= READ_AHEAD
        ):
            return
        size = min(CHUNK_SIZE, self._end - self._offset)
        if not needed and not self._budget.take(size):
            return  # the sender starts the read itself when it asks for the chunk
        self._job_lent = 0 if needed else size
        self._job = self._loop.run_in_executor(None, self._read, self._offset, size)
        self._job.add_done_callback(self._landed)

    def _landed(self, job: asyncio.Future[bytes]) -> None:
        self._job = None
        lent, self._job_lent = self._job_lent, 0
        if self._closed:
            self._budget.give(lent)
            os.close(self._fd)  # the reader gave up while this job was running
            return
        if job.cancelled():
            self._failure = asyncio.CancelledError()
        elif (error := job.exception()) is not None:
            self._failure = error
        else:
            chunk = job.result()
            if not chunk:
                self._failure = _Aborted("the copy is shorter than its record")
            else:
                self._ready.append((chunk, lent))
                self._offset += len(chunk)
                lent = 0
        self._budget.give(lent)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        self._start_job()

    async def next(self) -> bytes | None:
        """The next chunk, or None after the last one."""
        while not self._ready:
            if self._failure is not None:
                raise self._failure
            if self._delivered >= self._end:
                return None
            self._start_job(needed=True)
            self._waiter = self._loop.create_future()
            await self._waiter
        chunk, lent = self._ready.popleft()
        self._budget.give(lent)
        self._delivered += len(chunk)
        self._start_job()
        return chunk

    def close(self) -> None:
        """Release the file and the borrowed bytes; a job still running closes the file
        (and gives back its bytes) when it lands."""
        if self._closed:
            return
        self._closed = True
        self._budget.give(sum(lent for _chunk, lent in self._ready))
        self._ready.clear()
        if self._job is None:
            os.close(self._fd)


async def _watch_disconnect(receive: Receive, gone: asyncio.Event) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    gone.set()


class ContentReader:
    """Opens the right copy of a file for one response."""

    def __init__(
        self,
        store: FileStore,
        verified: VerifiedCopies,
        budget: ReadAheadBudget,
        large: LargeBodies | None = None,
    ) -> None:
        self._store = store
        self._verified = verified
        self._budget = budget
        self._large = large

    async def body(
        self,
        record: FileRecord,
        byte_range: ByteRange | None,
        *,
        status_code: int,
        headers: Mapping[str, str],
        downloaded_by: str | None = None,
        before_body: Callable[[], Awaitable[None]] | None = None,
    ) -> ContentBody:
        """``downloaded_by`` (a link's use): recorded in the download history with that
        name, for a range too; otherwise only whole downloads are recorded.
        ``before_body`` runs once the bytes are in hand (in memory, or a local copy open):
        a single-use link is used up there, never by a request that then gets no file."""
        store = self._store
        usage, owner = store.usage, store.owner
        started = time.perf_counter()
        start = byte_range.start if byte_range else 0
        length = byte_range.length if byte_range else record.size
        track = byte_range is None or downloaded_by is not None

        async def track_memory() -> None:
            if track:
                usage.track(owner, record, "memory", started, downloaded_by=downloaded_by)

        on_complete: Callable[[], Awaitable[None]] | None = track_memory
        data = store.memory.get(record.sha256)
        if data is None and store.memory.accepts(record.size):
            if downloaded_by is None:
                data = await store.read_bytes(record.file_id)  # verified, kept, counted there
                on_complete = None
            else:
                data, _tier = await store.reads.read(
                    store.owner, record
                )  # verified, kept; tracked here
        if data is not None:
            if before_body is not None:
                await before_body()
            return ContentBody(
                status_code=status_code,
                headers=headers,
                length=length,
                data=data,
                start=start,
                record=record,
                on_complete=on_complete,
            )

        copy = await self._open_copy(record, verify_now=byte_range is not None)
        if before_body is not None:
            try:
                await before_body()
            except BaseException:
                os.close(copy.fd)
                raise
        # A whole download hashes as it streams, unless this very copy was hashed in full
        # within the window (a range's copy was, just now, by _open_copy).
        hash_while_sending = byte_range is None and (record.sha256, copy.st) not in self._verified
        if byte_range is None and not hash_while_sending:
            self._verified.trusted += 1

        async def track_file() -> None:
            if byte_range is None and hash_while_sending:
                self._verified.add(record.sha256, copy.st)
            if track:
                usage.track(owner, record, copy.located.tier, started, downloaded_by=downloaded_by)

        async def corrupt(bad: _OpenCopy) -> None:
            self._verified.discard(record.sha256, bad.st)
            await store.reads.reject(owner, record, bad.located, CorruptCopy())

        return ContentBody(
            status_code=status_code,
            headers=headers,
            length=length,
            copy=copy,
            start=start,
            verify=hash_while_sending,
            record=record,
            budget=self._budget,
            large=self._large,
            on_complete=track_file,
            on_corrupt=corrupt,
        )

    async def _open_copy(self, record: FileRecord, *, verify_now: bool) -> _OpenCopy:
        """A local copy of the right size; with ``verify_now``, one whose hash matched
        (a gone or bad copy is the read path's to reject and replace)."""

        async def opened(located: Located) -> _OpenCopy:
            try:
                fd = os.open(located.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except FileNotFoundError:
                raise VanishedCopy() from None  # evicted between lookup and open
            st = os.fstat(fd)
            good = st.st_size == record.size
            if good and verify_now and (record.sha256, st) not in self._verified:
                good = await _hash_copy(fd, record.size) == record.sha256
                if good:
                    self._verified.add(record.sha256, st)
            if good:
                return _OpenCopy(located, fd, st)
            os.close(fd)
            raise CorruptCopy()

        return await self._store.reads.attempt(self._store.owner, record, opened)
